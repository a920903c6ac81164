//! RabbitMQ's own answers to outgrowing one machine, as first-class queues: a quorum queue whose delivery
//! count feeds the poison policy, its delivery limit, and a stream consumed from an offset with consumer
//! arguments (against the shared RabbitMQ, with unique names deleted after).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{connect, get_within, unique};
use kombu_core::{Consumer, Message, PoisonPolicy, Queue};

/// Runs `drain_events` until `done` or 15 s pass.
fn drain_until(conn: &kombu_core::Connection, done: impl Fn() -> bool) {
    common::drain_until(conn, Duration::from_secs(15), || "timed out".to_owned(), done);
}

#[test]
fn a_quorum_queue_counts_redeliveries_and_the_poison_policy_dead_letters_past_the_limit() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let q = Queue::quorum(unique("quorum"));
    assert_eq!(q.arguments["x-queue-type"], "quorum");
    let seen: Arc<Mutex<Vec<Option<u32>>>> = Arc::default();
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [q.clone()])
        .poison_policy(PoisonPolicy::default().with_max_redeliveries(Some(2)))
        .on_message(move |m: Message| {
            s.lock().unwrap().push(m.delivery_info.redeliveries);
            m.requeue().unwrap();
        });
    let sub = consumer.consume().unwrap();
    ch.publish(Message::new("again and again"), "", &q.name, &Default::default()).unwrap();
    let dlq = PoisonPolicy::default().dead_letter_queue(&q.name);
    // (A passive declare that fails closes an AMQP channel: look for the dead letter on a channel of its own.)
    let dead_lettered =
        || conn.channel().unwrap().declare_queue(&Queue::new(&dlq), true).is_ok_and(|i| i.message_count == 1);
    drain_until(&conn, || seen.lock().unwrap().len() >= 3);
    drain_until(&conn, dead_lettered);
    sub.cancel().unwrap();
    // Delivered with counts 0, 1, 2 (the broker's x-delivery-count); the fourth delivery went to the DLQ.
    assert_eq!(*seen.lock().unwrap(), [Some(0), Some(1), Some(2)]);
    let dead = get_within(&*ch, &dlq, Duration::from_secs(5)).unwrap().expect("the dead-lettered message");
    assert_eq!(&dead.body[..], b"again and again");
    dead.ack().unwrap();
    ch.delete_queue(&q.name, false, false).unwrap();
    ch.delete_queue(&dlq, false, false).unwrap();
}

#[test]
fn a_quorum_queue_takes_a_delivery_limit() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let q = Queue::quorum(unique("limited")).delivery_limit(1);
    ch.declare(&q).unwrap();
    ch.publish(Message::new("twice at most"), "", &q.name, &Default::default()).unwrap();
    for _ in 0..2 {
        let m = get_within(&*ch, &q.name, Duration::from_secs(5)).unwrap().expect("delivered");
        m.requeue().unwrap();
    }
    // Past its limit the broker drops it (no dead-letter exchange here).
    assert!(get_within(&*ch, &q.name, Duration::from_millis(500)).unwrap().is_none());
    ch.delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn a_stream_is_read_from_the_offset_a_consumer_asks_for() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let q = Queue::stream(unique("stream"));
    ch.declare(&q).unwrap();
    for i in 0..5 {
        ch.publish(Message::new(format!("m{i}")), "", &q.name, &Default::default()).unwrap();
    }
    let read = |offset: kombu_core::FieldValue, want: usize| -> Vec<String> {
        let got: Arc<Mutex<Vec<String>>> = Arc::default();
        let g = got.clone();
        let sub = Consumer::new(&conn, [q.clone()])
            .auto_declare(false)
            .prefetch(10)
            .argument("x-stream-offset", offset)
            .on_message(move |m: Message| {
                g.lock().unwrap().push(String::from_utf8_lossy(&m.body).into_owned());
                m.ack().unwrap();
            })
            .consume()
            .unwrap();
        drain_until(&conn, || got.lock().unwrap().len() >= want);
        sub.cancel().unwrap();
        let v = got.lock().unwrap().clone();
        v
    };
    assert_eq!(read("first".into(), 5), ["m0", "m1", "m2", "m3", "m4"]);
    // Acknowledged messages stay in a stream: read again from offset 3.
    assert_eq!(read(kombu_core::FieldValue::I64(3), 2), ["m3", "m4"]);
    ch.delete_queue(&q.name, false, false).unwrap();
}
