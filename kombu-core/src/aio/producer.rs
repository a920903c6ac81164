//! The async [`Producer`]: the blocking producer's settings and declares, with `send` awaited.

use bytes::Bytes;
use serde::Serialize;

use super::{Connection, DropOff};
use crate::entity::Exchange;
use crate::error::Result;
use crate::message::DeliveryMode;
use crate::producer::{Async, Body};
use crate::transport::Outgoing;

/// A publish being prepared: the blocking [`crate::Publish`]'s setters, with an awaited
/// [`send`](crate::Publish::send) (see there for what its outcome and a dropped future mean).
pub type Publish<'a, T> = crate::Publish<'a, T, Async>;

/// Publishes messages, for async programs. Settings given here are the defaults of each publish. With
/// confirms (the default) a `send` resolves once the broker has the message; many sends may be in flight
/// at once.
///
/// ```no_run
/// # async fn example(conn: &kombu_core::aio::Connection) -> kombu_core::Result<()> {
/// let producer = kombu_core::aio::Producer::new(conn).await?.routing_key("tasks");
/// let bodies: Vec<u32> = (0..64).collect();
/// // The future borrows the publish's body: keep the bodies alive while the sends are in flight.
/// let sends = bodies.iter().map(|n| producer.publish(n).send());
/// for outcome in futures_util_join_all(sends).await {
///     outcome?;
/// }
/// # Ok(()) }
/// # async fn futures_util_join_all<F: std::future::Future>(f: impl Iterator<Item = F>) -> Vec<F::Output> {
/// #     let mut v = Vec::new(); for x in f { v.push(x.await); } v }
/// ```
#[derive(Debug)]
pub struct Producer {
    inner: DropOff<crate::Producer>,
}

impl Producer {
    /// A producer on the connection's default channel (opened now), publishing to the default exchange
    /// with JSON.
    pub async fn new(connection: &Connection) -> Result<Producer> {
        let conn = connection.blocking().clone();
        let inner = super::blocking(move || crate::Producer::new(&conn)).await?;
        Ok(Producer { inner: DropOff::new(inner) })
    }

    /// A producer on a given channel.
    pub fn on_channel(channel: &super::Channel) -> Producer {
        Producer { inner: DropOff::new(crate::Producer::on_channel(channel.raw())) }
    }

    /// The default exchange to publish to (declared before the first publish unless `auto_declare(false)`).
    pub fn exchange(self, exchange: Exchange) -> Self {
        self.map(|p| p.exchange(exchange))
    }
    /// The default routing key.
    pub fn routing_key(self, key: impl Into<String>) -> Self {
        self.map(|p| p.routing_key(key))
    }
    /// The default serializer (`json`, `msgpack`, `yaml`, `raw`, `text`).
    pub fn serializer(self, name: impl Into<String>) -> Self {
        self.map(|p| p.serializer(name))
    }
    /// The default compression (`zlib`, `bzip2`, `lzma`, `brotli`, `zstd`), none unless set.
    pub fn compression(self, name: impl Into<String>) -> Self {
        self.map(|p| p.compression(name))
    }
    /// The default delivery mode.
    pub fn delivery_mode(self, mode: DeliveryMode) -> Self {
        self.map(|p| p.delivery_mode(mode))
    }
    /// How long each publish waits for the broker's confirm (`None`: does not wait), as for the blocking
    /// [`crate::Producer::confirm_timeout`].
    pub fn confirm_timeout(self, timeout: Option<std::time::Duration>) -> Self {
        self.map(|p| p.confirm_timeout(timeout))
    }
    /// Whether to declare the exchange before the first publish (default true).
    pub fn auto_declare(self, yes: bool) -> Self {
        self.map(|p| p.auto_declare(yes))
    }

    fn map(mut self, f: impl FnOnce(crate::Producer) -> crate::Producer) -> Self {
        let inner = self.inner.take();
        Producer { inner: DropOff::new(f(inner)) }
    }

    /// Starts a publish of `body`, serialized with the producer's serializer; finish with `.send().await`.
    pub fn publish<'a, T: Serialize + ?Sized>(&'a self, body: &'a T) -> Publish<'a, T> {
        crate::Publish::new(&self.inner, Body::Value(body))
    }

    /// Starts a publish of an already encoded body.
    pub fn publish_bytes(&self, body: impl Into<Bytes>) -> Publish<'_, ()> {
        crate::Publish::new(&self.inner, Body::Raw(body.into()))
    }

    /// Starts a publish of a received message as it came (see [`crate::Producer::forward`]).
    pub fn forward(&self, message: &crate::Message) -> Publish<'_, ()> {
        self.inner.forward_as(message)
    }

    /// Publishes prepared messages in one go (pipelined where the backend can); build them with
    /// `publish(..).into_outgoing()`.
    pub async fn send_batch(&self, batch: Vec<Outgoing>) -> Result<()> {
        self.inner.send_batch_async(batch).await
    }

    /// Waits until every publish this producer's channel sent before now is on the broker, and returns
    /// a refusal of an unconfirmed one that no call has reported yet. Sends with confirms need no flush;
    /// without confirms (`confirm_timeout(None)`) a `send` may resolve before the broker has the message
    /// (on Redis: once written, in order), and this is how to know they all arrived.
    pub async fn flush(&self) -> Result<()> {
        self.inner.flush_async().await
    }

    /// The blocking producer underneath.
    pub fn blocking(&self) -> &crate::Producer {
        &self.inner
    }
}
