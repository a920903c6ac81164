//! kombu: one messaging API over many brokers, Python Kombu's idea in Rust.
//!
//! Pick a broker by URL scheme: `memory://` (in-process, the default feature), `redis://host:6379/0`
//! (feature `redis`, wire-compatible with Python Kombu), `amqp://guest:guest@host:5672//` (feature `amqp`,
//! RabbitMQ). Declare exchanges and queues, publish with a [`Producer`], receive with a [`Consumer`],
//! and drive any number of connections, of any backends, from one [`Hub`].
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

/// Makes sure the backends enabled by Cargo features are linked in, so that their transports are in the
/// [`Registry`]. [`Connection::open`] calls it; call it yourself before using the registry directly.
pub fn install_transports() {
    #[cfg(feature = "memory")]
    kombu_memory::link();
    #[cfg(feature = "redis")]
    kombu_redis::link();
    #[cfg(feature = "amqp")]
    kombu_amqp::link();
}

/// A connection to a broker, chosen by URL scheme (see [`kombu_core::Connection`], which it derefs to).
///
/// It is the core connection plus the guarantee that every backend enabled by Cargo features is
/// registered before the URL is looked up.
#[derive(Clone, Debug)]
pub struct Connection(kombu_core::Connection);

impl Connection {
    /// Opens a connection to `url` (or a failover list `url1;url2`). Connects on first use.
    pub fn open(url: &str) -> Result<Connection> {
        install_transports();
        kombu_core::Connection::open(url).map(Connection)
    }

    /// A builder for a connection with options (retry policy, failover strategy).
    pub fn builder(url: &str) -> ConnectionBuilder {
        install_transports();
        kombu_core::Connection::builder(url)
    }

    /// The core connection.
    pub fn into_inner(self) -> kombu_core::Connection {
        self.0
    }
}

impl std::ops::Deref for Connection {
    type Target = kombu_core::Connection;
    fn deref(&self) -> &kombu_core::Connection {
        &self.0
    }
}

impl From<kombu_core::Connection> for Connection {
    fn from(c: kombu_core::Connection) -> Self {
        Connection(c)
    }
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
