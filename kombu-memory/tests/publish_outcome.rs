//! A publish that fails before anything is sent says so (`Error::may_have_reached_broker` is false): a
//! body that cannot be serialized, a channel the program closed.

use std::collections::BTreeMap;

use kombu_core::{Connection, ErrorKind, Producer, Queue};

kombu_core::register_transport!(kombu_memory::DESCRIPTOR);

#[test]
fn a_publish_that_sent_nothing_says_it_did_not_reach_the_broker() {
    let conn = Connection::open("memory://publish-outcome").expect("open");
    let ch = conn.channel().expect("channel");
    ch.declare(&Queue::new("outcome")).expect("declare");
    let producer = Producer::on_channel(ch.clone());
    producer.publish("fine").routing_key("outcome").send().expect("publish");

    // JSON object keys must be strings.
    let unserializable: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let err = producer.publish(&unserializable).routing_key("outcome").send().expect_err("not JSON");
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err:#}");
    assert!(!err.may_have_reached_broker(), "{err:#}");

    ch.close().expect("close");
    let err = producer.publish("late").routing_key("outcome").send().expect_err("the channel is closed");
    assert_eq!(err.kind(), ErrorKind::State, "{err:#}");
    assert!(!err.may_have_reached_broker(), "{err:#}");
}
