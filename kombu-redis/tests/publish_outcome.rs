//! Whether a failed publish may have reached the server (`Error::may_have_reached_broker`): a command the
//! server refused did not; a publish whose connection died after it was written may have. The connection
//! that dies is to a redis-server of this test's own, never the shared one.

mod common;

use kombu_core::{ErrorKind, Producer};

#[test]
fn a_publish_the_server_refused_did_not_reach_it() {
    let conn = common::open(common::URL);
    let key = common::unique("wrongtype");
    redis::cmd("SET").arg(&key).arg("not a list").query::<()>(&mut common::raw()).expect("SET");
    // Confirmed (the producer's default): the reply is read, and LPUSH on a string is refused.
    let producer = Producer::new(&conn).expect("producer");
    let err = producer.publish("x").routing_key(&key).send().expect_err("LPUSH on a string key is refused");
    assert_eq!(err.kind(), ErrorKind::Channel, "{err:#}");
    assert!(!err.may_have_reached_broker(), "refused, so not stored: {err:#}");
    assert!(!err.is_recoverable(), "{err:#}");
    redis::cmd("DEL").arg(&key).query::<()>(&mut common::raw()).expect("DEL");
}

#[test]
fn a_publish_cut_off_after_it_was_written_may_have_reached_the_server() {
    let mut server = common::PrivateRedis::start();
    let conn = common::open(&server.url());
    let producer = Producer::new(&conn).expect("producer");
    producer.publish("first").routing_key("q").send().expect("publish while the server runs");
    server.stop();
    // Written to the connection of a server that is gone: no reply, and no server to send it again to.
    let err = producer.publish("second").routing_key("q").send().expect_err("the server is gone");
    assert!(err.is_recoverable(), "{err:#}");
    assert!(err.may_have_reached_broker(), "written before the failure, so unknown: {err:#}");
    // The next one is not written at all: the unanswered one must go first, and cannot.
    let err = producer.publish("third").routing_key("q").send().expect_err("the server is still gone");
    assert!(err.is_recoverable(), "{err:#}");
    assert!(!err.may_have_reached_broker(), "never written: {err:#}");
}

/// Threads sharing a connection share its default channel; their confirmed publishes are sent in groups
/// (`gather.rs`), and each thread's publish returns once its own reply is read: every one lands, once.
#[test]
fn confirmed_publishes_from_many_threads_on_one_connection_each_land_once() {
    let conn = common::open(common::URL);
    let queue = common::unique("threads");
    let (threads, each) = (16, 100);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (conn, queue) = (&conn, &queue);
            scope.spawn(move || {
                let producer = Producer::new(conn).expect("producer");
                for i in 0..each {
                    producer.publish(&format!("{t}-{i}")).routing_key(queue).send().expect("confirmed publish");
                }
            });
        }
    });
    // Every publish returned, so each is in the queue now (no wait, no flush).
    let ch = conn.channel().expect("channel");
    let mut seen = Vec::new();
    while let Some(m) = ch.get(&queue, true).expect("get") {
        seen.push(m.decode::<String>().expect("a body of this test"));
    }
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!(before, threads * each, "some publishes are missing");
    assert_eq!(seen.len(), before, "a publish landed twice");
}
