//! Helpers shared by the broker tests: the broker URL and fresh names.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kombu_core::{Channel, Connection, Message, Result};

pub mod rabbit;

kombu_core::register_transport!(kombu_amqp::DESCRIPTOR);

/// The RabbitMQ the tests use (`KOMBU_AMQP_URL` overrides).
pub fn url() -> String {
    std::env::var("KOMBU_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672//".into())
}

/// A connection to the test broker.
pub fn connect() -> Connection {
    let conn = Connection::open(&url()).expect("open");
    conn.connect().expect("the tests need RabbitMQ at 127.0.0.1:5672 (guest/guest)");
    conn
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("kombu-rs-test.{prefix}.{}.{}.{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed), nanos)
}

/// Polls `get` until a message arrives or `timeout` passes (a publish on another channel may take a
/// moment to reach the queue).
pub fn get_within(channel: &dyn Channel, queue: &str, timeout: Duration) -> Result<Option<Message>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(m) = channel.get(queue, false)? {
            return Ok(Some(m));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `drain_events` until `done` says so; panics with `what` after `within`.
pub fn drain_until(conn: &Connection, within: Duration, what: impl Fn() -> String, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{}", what());
        match conn.drain_events(Some(Duration::from_millis(100))) {
            Ok(_) => {}
            Err(e) if e.kind() == kombu_core::ErrorKind::Timeout => {}
            Err(e) => panic!("drain_events: {e}"),
        }
    }
}
