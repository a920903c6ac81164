//! kombu-amqp: the AMQP 0-9-1 backend of kombu-rs, for RabbitMQ, on [lapin](https://docs.rs/lapin).
//!
//! Its [`DESCRIPTOR`] registers the transport under `amqp`, `pyamqp` and `amqps` (TLS, with the default
//! `tls` feature). Exchanges, queues and bindings are the broker's own; kombu's message properties and
//! headers map onto AMQP basic properties the way py-amqp maps them, so Python Kombu and kombu-rs share
//! queues. lapin runs the socket on its own thread; consumer deliveries reach kombu's Hub (or
//! `Connection::drain_events`) through a wake handle, see [`AmqpPoller`].
//!
//! ```no_run
//! use kombu_core::{Connection, Exchange, Producer, Queue};
//! kombu_core::register_transport!(kombu_amqp::DESCRIPTOR);
//! let conn = Connection::open("amqp://guest:guest@127.0.0.1:5672//").unwrap();
//! let queue = Queue::with_exchange("tasks", Exchange::direct("jobs"), "tasks");
//! let producer = Producer::new(&conn).unwrap().exchange(Exchange::direct("jobs"));
//! producer.publish(&serde_json::json!({"n": 1})).routing_key("tasks").declare(&queue).send().unwrap();
//! ```
//!
//! TLS (`amqps://`, feature `tls`) is rustls with the `ssl_*` options of [`options`]: client certificates,
//! `login_method=EXTERNAL`, and certificate failures as `AccessRefused` errors that are not retried.
//!
//! Layout: [`fields`], [`properties`], [`errors`] and [`options`] are pure value mappings (tested without
//! a broker); `connection`, `channel` and `poller` move bytes through lapin; `tls` builds the TLS client
//! configuration from the PEM files; [`bench`](mod@bench) is the BENCH.md
//! workload on raw lapin, the ceiling `cargo xtask bench` measures kombu-amqp against.

#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod bench;
mod channel;
mod connection;
pub mod errors;
pub mod fields;
mod nonblocking;
pub mod options;
mod outcome;
mod poller;
pub mod properties;
mod reasons;
mod runtime;
#[cfg(feature = "tls")]
mod tls;
mod transport;

pub use channel::AmqpChannel;
pub use connection::AmqpConnection;
pub use poller::AmqpPoller;
pub use transport::AmqpTransport;

/// The AMQP backend for the registry: the `kombu` facade registers it for its `amqp` feature; a
/// program using this crate directly registers it with
/// `kombu_core::register_transport!(kombu_amqp::DESCRIPTOR);`.
pub static DESCRIPTOR: kombu_core::registry::TransportDescriptor =
    kombu_core::registry::TransportDescriptor::new("amqp", &["amqp", "pyamqp", "amqps"], || {
        std::sync::Arc::new(AmqpTransport::new())
    });
