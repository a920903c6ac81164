//! The user API's guard rails, on the memory backend: clones of a message share one settle state.

use kombu_core::{Connection, ErrorKind, Message, MessageState, PublishOptions, Queue};

fn open(vhost: &str) -> Connection {
    kombu_memory::link();
    Connection::open(&format!("memory://{vhost}")).unwrap()
}

#[test]
fn clones_of_a_message_share_one_settle_state_and_detached_copies_do_not() {
    let conn = open("api-clones");
    let ch = conn.channel().unwrap();
    ch.declare(&Queue::new("clones").durable(false)).unwrap();
    ch.publish(Message::new("x"), "", "clones", &PublishOptions::default()).unwrap();
    let message = ch.get("clones", false).unwrap().expect("a message");
    let clone = message.clone();
    let detached = message.detached();
    clone.ack().unwrap();
    assert_eq!(message.state(), MessageState::Acked);
    let err = message.requeue().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State);
    assert!(err.to_string().contains("already settled (Acked)"), "{err}");
    // The ack stood: nothing went back to the queue.
    assert!(ch.get("clones", false).unwrap().is_none());
    // A detached copy is not the delivery: unbound, unsettled, cannot settle anything.
    assert_eq!(detached.state(), MessageState::Received);
    assert!(detached.channel().is_none());
    assert!(detached.delivery_info.consumer_tag.is_none());
    assert_eq!(detached.ack().unwrap_err().kind(), ErrorKind::State);
    assert_eq!(detached.body, message.body);
}
