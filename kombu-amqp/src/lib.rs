//! kombu-amqp: the AMQP 0-9-1 backend of kombu-rs, for RabbitMQ, on [lapin](https://docs.rs/lapin).
//!
//! Linking this crate registers the transport under `amqp`, `pyamqp` and `amqps` (TLS, with the default
//! `tls` feature). Exchanges, queues and bindings are the broker's own; kombu's message properties and
//! headers map onto AMQP basic properties the way py-amqp maps them, so Python Kombu and kombu-rs share
//! queues. lapin runs the socket on its own thread; consumer deliveries reach kombu's Hub (or
//! `Connection::drain_events`) through a wake handle, see [`AmqpPoller`].
//!
//! ```no_run
//! use kombu_core::{Connection, Exchange, Producer, Queue};
//! let conn = Connection::open("amqp://guest:guest@127.0.0.1:5672//").unwrap();
//! let queue = Queue::with_exchange("tasks", Exchange::direct("jobs"), "tasks");
//! let producer = Producer::new(&conn).unwrap().exchange(Exchange::direct("jobs"));
//! producer.publish(&serde_json::json!({"n": 1})).routing_key("tasks").declare(&queue).send().unwrap();
//! ```
//!
//! Layout: [`fields`], [`properties`], [`errors`] and [`options`] are pure value mappings (tested without
//! a broker); `connection`, `channel` and `poller` move bytes through lapin; [`bench`](mod@bench) is the BENCH.md
//! workload on raw lapin, the ceiling `cargo xtask bench` measures kombu-amqp against.

#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod bench;
mod channel;
mod connection;
pub mod errors;
pub mod fields;
pub mod options;
mod poller;
pub mod properties;
mod reasons;
mod runtime;
mod transport;

pub use channel::AmqpChannel;
pub use connection::AmqpConnection;
pub use poller::AmqpPoller;
pub use transport::AmqpTransport;

kombu_core::register_transport!(AmqpTransport::new());

/// Makes sure this crate is linked into the program, so that its transport is registered (a linker keeps
/// a library's static registration only if something else in the same place is used). The `kombu`
/// facade calls it; programs that use kombu-amqp directly call it once. It stays beside
/// `register_transport!`.
#[inline(never)]
pub fn link() {
    std::hint::black_box(AmqpTransport::new());
}
