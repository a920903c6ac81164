//! Whether a failed publish may have reached the broker (`Error::may_have_reached_broker`), in the cases
//! RabbitMQ can show without losing a connection: refused or returned messages are not on the broker, the
//! other messages of a batch are.

mod common;

use std::time::Duration;

use common::{connect, unique};
use kombu_core::{ErrorKind, Exchange, Message, Outgoing, PublishOptions, Queue};

fn confirmed() -> PublishOptions {
    let mut o = PublishOptions::default();
    o.confirm_timeout = Some(Duration::from_secs(10));
    o
}

#[test]
fn a_publish_the_broker_refused_did_not_reach_it() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let missing = unique("missing-ex");
    let err = ch.publish(Message::new("x"), &missing, "k", &confirmed()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:#}");
    assert!(!err.may_have_reached_broker(), "{err:#}");

    let ch = conn.channel().unwrap();
    let ex = Exchange::direct(unique("ex")).durable(false);
    ch.declare_exchange(&ex, false).unwrap();
    let mut mandatory = confirmed();
    mandatory.mandatory = true;
    let err = ch.publish(Message::new("nobody"), &ex.name, "unbound", &mandatory).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "returned: {err:#}");
    assert!(!err.may_have_reached_broker(), "{err:#}");

    // A batch with one returned message: the others are on the broker.
    let q = Queue::new(unique("q")).durable(false).bind(ex.clone(), "bound");
    ch.declare(&q).unwrap();
    let out = |key: &str| Outgoing { message: Message::new("b"), exchange: ex.name.clone(), routing_key: key.into() };
    let err = ch.publish_batch(vec![out("bound"), out("unbound")], &mandatory).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:#}");
    assert!(err.may_have_reached_broker(), "the first message of the batch is on the broker: {err:#}");
    ch.delete_queue(&q.name, false, false).unwrap();
    ch.delete_exchange(&ex.name, false).unwrap();

    ch.close().unwrap();
    let err = ch.publish(Message::new("late"), "", &q.name, &confirmed()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State, "{err:#}");
    assert!(!err.may_have_reached_broker(), "{err:#}");
}
