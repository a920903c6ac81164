//! One `Connection` type however it is made: `kombu::Connection::open`, `Connection::builder(url).open()`
//! and kombu-core's own `Connection::open` give the same type, and each finds every backend the facade's
//! features enable, with no call first (the facade registers them at link time), against the real
//! Redis and RabbitMQ.

use kombu::registry::Origin;
use kombu::{Connection, ErrorKind, Producer, Registry, RetryPolicy};

/// Takes the facade's type; it is kombu-core's, so core-made connections are accepted as they are.
fn round_trip(conn: kombu::Connection, queue: &str) -> String {
    conn.connect().unwrap();
    let channel = conn.default_channel().unwrap();
    channel.declare(&kombu::Queue::new(queue).durable(false).auto_delete(false)).unwrap();
    Producer::new(&conn).unwrap().routing_key(queue).publish("one type").send().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let message = loop {
        if let Some(m) = channel.get(queue, false).unwrap() {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no message on {queue}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    message.ack().unwrap();
    channel.delete_queue(queue, false, false).unwrap();
    message.decode::<String>().unwrap()
}

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("one_connection.{what}.{}.{nanos}", std::process::id())
}

#[test]
fn every_way_of_making_a_connection_gives_one_type_that_finds_every_backend() {
    // The same type, checked by the compiler: no conversion between the facade's and the core's.
    let same: fn(kombu_core::Connection) -> kombu::Connection = |c| c;
    let made: Vec<(&str, kombu::Connection)> = vec![
        ("memory", Connection::open("memory://one-connection").unwrap()),
        ("redis", Connection::builder("redis://127.0.0.1:6379/0").retry(RetryPolicy::none()).open().unwrap()),
        ("amqp", same(kombu_core::Connection::open("amqp://guest:guest@127.0.0.1:5672//").unwrap())),
        ("amqp builder", kombu_core::Connection::builder("pyamqp://guest:guest@127.0.0.1:5672//").open().unwrap()),
        ("redis core", kombu_core::Connection::open("redis://127.0.0.1:6379/0").unwrap()),
    ];
    for (what, conn) in made {
        assert_eq!(round_trip(conn, &unique(what)), "one type", "{what}");
    }
}

#[test]
fn the_registry_holds_the_enabled_backends_as_built_in() {
    let registry = Registry::global();
    for alias in ["memory", "redis", "rediss", "sentinel", "amqp", "amqps", "pyamqp"] {
        assert_eq!(registry.origin(alias), Some(Origin::BuiltIn), "{alias}");
    }
    let names: Vec<String> = registry.transports().into_iter().map(|t| t.name).collect();
    for name in ["memory", "redis", "amqp"] {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
    }
    let e = Connection::open("redsi://127.0.0.1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownTransport);
    assert!(e.to_string().contains("did you mean 'redis'?"), "{e}");
}
