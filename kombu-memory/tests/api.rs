//! The user API's guard rails, on the memory backend: clones of a message share one settle state, a
//! forward publishes a message as it came and refuses re-encoding, and a publish and its producer take
//! the routing key the same way.

use kombu_core::{Connection, ErrorKind, Exchange, Message, MessageState, Producer, PublishOptions, Queue};

kombu_core::register_transport!(kombu_memory::DESCRIPTOR);

fn open(vhost: &str) -> Connection {
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

#[test]
fn a_forward_cannot_be_encoded_again() {
    let conn = open("api-forward");
    let producer = Producer::new(&conn).unwrap();
    let message = Message::new("{}").content_type("application/json");
    let refused = [
        producer.forward(&message).serializer("json").send(),
        producer.forward(&message).compression("zlib").send(),
        producer.forward(&message).content_type("text/plain", "utf-8").send(),
    ];
    for r in refused {
        let err = r.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(!err.may_have_reached_broker());
    }
}

#[test]
fn a_publish_takes_its_routing_key_as_its_producer_does() {
    let conn = open("api-routing-key");
    let ch = conn.channel().unwrap();
    for q in ["by-str", "by-string", "default"] {
        ch.declare(&Queue::new(q).durable(false)).unwrap();
    }
    let producer = Producer::new(&conn).unwrap().exchange(Exchange::default_exchange()).routing_key("default");
    producer.publish_bytes("1").routing_key("by-str").send().unwrap();
    // An owned key needs no binding kept alive beside the builder.
    let publish = producer.publish_bytes("2").routing_key(format!("by-{}", "string"));
    publish.send().unwrap();
    producer.publish_bytes("3").send().unwrap();
    for (q, body) in [("by-str", "1"), ("by-string", "2"), ("default", "3")] {
        let got = ch.get(q, true).unwrap().unwrap_or_else(|| panic!("nothing in {q}"));
        assert_eq!(&got.body[..], body.as_bytes());
    }
}

#[test]
fn consumer_arguments_are_refused_by_a_transport_that_takes_none() {
    let conn = open("api-consumer-arguments");
    let q = Queue::new("args").durable(false);
    conn.channel().unwrap().declare(&q).unwrap();
    let err = kombu_core::Consumer::new(&conn, [q]).argument("x-priority", 5).on_message(|_| {}).consume().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("x-priority"), "{err}");
}
