//! The async [`Connection`] and [`Channel`]: the blocking API's connection (lazy, with its failover list
//! and retry policy), with the calls that may block run where blocking is allowed.

use std::sync::{Arc, Mutex};

use super::engine::Engine;
use super::DropOff;
use crate::entity::{Exchange, Queue, QueueInfo};
use crate::error::Result;
use crate::fields::FieldTable;
use crate::transport::Capabilities;
use crate::{FailoverStrategy, RetryPolicy};

/// A connection to a broker, picked by URL scheme, for async programs. Cheap to clone (clones share the
/// connection). Opening is lazy, as for the blocking [`crate::Connection`], with the same failover list
/// (`url1;url2`), [`RetryPolicy`] and reconnect path.
#[derive(Clone, Debug)]
pub struct Connection {
    inner: Arc<DropOff<crate::Connection>>,
    engine: Arc<Mutex<Option<Arc<Engine>>>>,
}

/// Builds an async [`Connection`] with options.
#[derive(Debug)]
#[must_use]
pub struct ConnectionBuilder(crate::ConnectionBuilder);

impl ConnectionBuilder {
    /// Sets the retry policy used when connecting.
    pub fn retry(self, retry: RetryPolicy) -> Self {
        ConnectionBuilder(self.0.retry(retry))
    }
    /// Sets the failover strategy.
    pub fn failover(self, strategy: FailoverStrategy) -> Self {
        ConnectionBuilder(self.0.failover(strategy))
    }
    /// Parses the URL(s) and finds their transports; does not connect yet.
    pub fn open(self) -> Result<Connection> {
        self.0.open().map(Connection::from_blocking)
    }
}

impl Connection {
    /// A connection to `url` (or a failover list `url1;url2`), with default options. Checks the URL and
    /// its scheme now; connects on first use.
    pub fn open(url: &str) -> Result<Connection> {
        crate::Connection::open(url).map(Connection::from_blocking)
    }

    /// A builder for a connection with options.
    pub fn builder(url: &str) -> ConnectionBuilder {
        ConnectionBuilder(crate::Connection::builder(url))
    }

    /// The async form of a blocking connection (which must not be registered with a Hub). The two share
    /// the link; its consumers are then driven by the async API.
    pub fn from_blocking(connection: crate::Connection) -> Connection {
        Connection { inner: Arc::new(DropOff::new(connection)), engine: Arc::new(Mutex::new(None)) }
    }

    /// The blocking connection underneath, for the blocking API's calls (on a thread where blocking is
    /// allowed).
    pub fn blocking(&self) -> &crate::Connection {
        &self.inner
    }

    /// Connects now (if not connected yet).
    pub async fn connect(&self) -> Result<()> {
        let conn = crate::Connection::clone(&self.inner);
        super::blocking(move || conn.connect()).await
    }

    /// Whether a live connection is open.
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// The URL connected to (or the first of the list, before connecting), password hidden.
    pub fn url(&self) -> String {
        self.inner.url()
    }

    /// What the transport of the (first) URL can do.
    pub fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    /// Opens a new channel.
    pub async fn channel(&self) -> Result<Channel> {
        let conn = crate::Connection::clone(&self.inner);
        super::blocking(move || conn.channel()).await.map(Channel::new)
    }

    /// The connection's shared channel, opened on first use.
    pub async fn default_channel(&self) -> Result<Channel> {
        let conn = crate::Connection::clone(&self.inner);
        super::blocking(move || conn.default_channel()).await.map(Channel::new)
    }

    /// Declares a queue, its exchanges and bindings on the default channel.
    pub async fn declare(&self, queue: &Queue) -> Result<QueueInfo> {
        self.default_channel().await?.declare(queue).await
    }

    /// Closes the connection: consumers end, unacknowledged messages go back to their queues.
    pub async fn close(&self) -> Result<()> {
        let engine = self.engine.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(engine) = engine {
            engine.stop();
        }
        let conn = crate::Connection::clone(&self.inner);
        super::blocking(move || conn.close()).await
    }

    /// The engine that drives this connection's consumers, started on first use.
    pub(crate) fn engine(&self) -> Result<Arc<Engine>> {
        let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = engine.as_ref() {
            return Ok(e.clone());
        }
        let started = Engine::start(&self.inner)?;
        *engine = Some(started.clone());
        Ok(started)
    }
}

/// A channel, for async programs: the transport's [`crate::Channel`], its calls awaited.
#[derive(Clone, Debug)]
pub struct Channel(pub(crate) Arc<DropOff<Arc<dyn crate::Channel>>>);

impl Channel {
    fn new(channel: Arc<dyn crate::Channel>) -> Channel {
        Channel(Arc::new(DropOff::new(channel)))
    }

    /// The transport's channel, for the blocking API's calls.
    pub fn blocking(&self) -> &Arc<dyn crate::Channel> {
        &self.0
    }

    /// The transport's channel, shared.
    pub(crate) fn raw(&self) -> Arc<dyn crate::Channel> {
        Arc::clone(self.blocking())
    }

    async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn crate::Channel) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if let Some(nonblocking) = self.0.nonblocking() {
            // Whatever was published on this channel is on the broker before its next operation.
            nonblocking.flush().await?;
        }
        let ch = Arc::clone(&self.0);
        super::blocking(move || call(ch.as_ref().as_ref())).await
    }

    /// Declares a queue, its exchanges and bindings ([`crate::Channel::declare`]).
    pub async fn declare(&self, queue: &Queue) -> Result<QueueInfo> {
        let queue = queue.clone();
        self.call(move |ch| ch.declare(&queue)).await
    }

    /// Declares a queue alone; `passive` only checks that it exists.
    pub async fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        let queue = queue.clone();
        self.call(move |ch| ch.declare_queue(&queue, passive)).await
    }

    /// Declares an exchange; `passive` only checks that it exists.
    pub async fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        let exchange = exchange.clone();
        self.call(move |ch| ch.declare_exchange(&exchange, passive)).await
    }

    /// Binds a queue to an exchange.
    pub async fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        let (q, ex, key, args) = (queue.to_owned(), exchange.to_owned(), routing_key.to_owned(), arguments.clone());
        self.call(move |ch| ch.bind_queue(&q, &ex, &key, &args)).await
    }

    /// Removes a binding of a queue to an exchange.
    pub async fn unbind_queue(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        let (q, ex, key, args) = (queue.to_owned(), exchange.to_owned(), routing_key.to_owned(), arguments.clone());
        self.call(move |ch| ch.unbind_queue(&q, &ex, &key, &args)).await
    }

    /// Deletes a queue; returns how many messages it held.
    pub async fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        let name = name.to_owned();
        self.call(move |ch| ch.delete_queue(&name, if_unused, if_empty)).await
    }

    /// Deletes an exchange.
    pub async fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        let name = name.to_owned();
        self.call(move |ch| ch.delete_exchange(&name, if_unused)).await
    }

    /// Removes every ready message from a queue; returns how many.
    pub async fn purge_queue(&self, name: &str) -> Result<u64> {
        let name = name.to_owned();
        self.call(move |ch| ch.purge_queue(&name)).await
    }

    /// Takes one message from a queue, if there is one.
    pub async fn get(&self, queue: &str, no_ack: bool) -> Result<Option<super::Message>> {
        let queue = queue.to_owned();
        self.call(move |ch| ch.get(&queue, no_ack)).await.map(|m| m.map(|m| super::Message(Box::new(m))))
    }

    /// Closes the channel; its unacknowledged messages go back to their queues.
    pub async fn close(&self) -> Result<()> {
        self.call(|ch| ch.close()).await
    }

    /// Whether the channel is usable.
    pub fn is_open(&self) -> bool {
        self.0.is_open()
    }
}
