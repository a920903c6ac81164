//! kombu: one messaging API over many brokers, Python Kombu's idea in Rust.
//!
//! Pick a broker by URL scheme: `memory://` (in-process, the default feature), `redis://host:6379/0`
//! (feature `redis`, wire-compatible with Python Kombu), `amqp://guest:guest@host:5672//` (feature `amqp`,
//! RabbitMQ). Declare exchanges and queues, publish with a [`Producer`], receive with a [`Consumer`],
//! and drive any number of connections, of any backends, from one [`Hub`].
//!
//! Everything is kombu-core's, re-exported: [`Connection`] is `kombu_core::Connection`. This crate adds
//! the backends its Cargo features enable, registered at link time, so every connection finds them however
//! it is made ([`Connection::open`], [`Connection::builder`]), with no call first; a scheme of a backend
//! left out is refused with the feature to enable.
//!
//! ```
//! use kombu::{Connection, Consumer, Exchange, Hub, Producer, Queue};
//! use std::sync::{Arc, Mutex};
//!
//! let conn = Connection::open("memory://facade-doc").unwrap();
//! let exchange = Exchange::direct("asynt_exchange");
//! let queue = Queue::with_exchange("asynt_queue", exchange.clone(), "asynt_routing_key");
//!
//! let mut hub = Hub::new().unwrap();
//! conn.register_with_event_loop(&mut hub).unwrap();
//! let stop = hub.stopper();
//! let received = Arc::new(Mutex::new(Vec::new()));
//! let seen = received.clone();
//! let consumer = Consumer::new(&conn, [queue]).callback(move |body: String, message| {
//!     seen.lock().unwrap().push(body);
//!     message.ack().unwrap();
//!     stop.stop();
//! });
//! let subscription = consumer.consume().unwrap(); // consumes until dropped or cancelled
//!
//! let producer = Producer::new(&conn).unwrap();
//! producer.publish("hello world").exchange(&exchange).routing_key("asynt_routing_key").send().unwrap();
//! hub.run_forever().unwrap();
//! assert_eq!(*received.lock().unwrap(), vec!["hello world".to_string()]);
//! subscription.cancel().unwrap();
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

pub use kombu_core::*;

/// The `kombu` command-line tool (feature `cli`); the binary `src/bin/kombu.rs` calls [`cli::run`].
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;

/// Registers each backend this crate can compile in: an enabled one's descriptor, a disabled one's
/// schemes with the feature that would enable it (for the error of its URLs). Both are link-time
/// registrations, so every [`Connection`], however it is made, finds every enabled backend with no call
/// first. A compile-time check keeps each hint's schemes equal to its backend's descriptor.
macro_rules! backends {
    ($($feature:literal => $krate:ident [$($scheme:literal),+]),+ $(,)?) => {$(
        #[cfg(feature = $feature)]
        kombu_core::register_transport!($krate::DESCRIPTOR);
        #[cfg(feature = $feature)]
        const _: () = assert!(
            same_schemes($krate::DESCRIPTOR.schemes(), &[$($scheme),+]),
            concat!("the schemes of the `", $feature, "` backend differ from its hint's")
        );
        #[cfg(not(feature = $feature))]
        kombu_core::register_unavailable!(
            [$($scheme),+],
            concat!("enable the `", $feature, "` feature of the `kombu` crate")
        );
    )+};
}

backends! {
    "memory" => kombu_memory ["memory"],
    "redis" => kombu_redis ["redis", "rediss", "sentinel"],
    "amqp" => kombu_amqp ["amqp", "pyamqp", "amqps"],
}

/// Whether two lists of schemes are equal (in a `const`, where `==` on slices is not available).
#[cfg(any(feature = "memory", feature = "redis", feature = "amqp"))]
const fn same_schemes(a: &[&str], b: &[&str]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        let (x, y) = (a[i].as_bytes(), b[i].as_bytes());
        if x.len() != y.len() {
            return false;
        }
        let mut j = 0;
        while j < x.len() {
            if x[j] != y[j] {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

/// The in-process memory backend.
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use kombu_memory as memory;

/// The Redis backend, wire-compatible with Python Kombu.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use kombu_redis as redis;

/// Celery's task protocol and result backends: send tasks a Celery worker runs, parse task messages, wait
/// for results.
#[cfg(feature = "celery")]
#[cfg_attr(docsrs, doc(cfg(feature = "celery")))]
pub use kombu_celery as celery;

/// The AMQP 0-9-1 backend (RabbitMQ), on lapin.
#[cfg(feature = "amqp")]
#[cfg_attr(docsrs, doc(cfg(feature = "amqp")))]
pub use kombu_amqp as amqp;
