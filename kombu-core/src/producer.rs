//! `Producer`: serializes, compresses and publishes messages to an exchange, declaring what it needs first;
//! forwards received messages as they came.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::connection::Connection;
use crate::entity::{Exchange, Queue};
use crate::error::{Error, Result};
use crate::fields::{FieldTable, FieldValue};
use crate::message::{DeliveryMode, Message};
use crate::serialization;
use crate::transport::{Channel, Outgoing, PublishOptions};

/// Publishes messages. Settings given here are the defaults of each [`publish`](Producer::publish).
///
/// A runnable example (on the memory backend) is in the `kombu` crate's documentation:
/// `producer.publish(&body).routing_key("k").priority(3).send()?`.
///
/// # What a publish's outcome guarantees
///
/// With confirms (the default: [`confirm_timeout`](Producer::confirm_timeout) is
/// [`DEFAULT_CONFIRM_TIMEOUT`]; AMQP publisher confirms, the Redis command's reply):
/// - `Ok(())`: the message is on the broker.
/// - `Err(e)` with [`e.may_have_reached_broker()`](crate::Error::may_have_reached_broker) `== false`: it is
///   not on the broker (nothing was sent: a serialization error, a closed channel, a connection that could not
///   be made, a declare that failed; or the broker refused it). Publishing it again cannot duplicate it.
/// - `Err(e)` with `may_have_reached_broker() == true`: unknown (the connection was lost after the message
///   was written, or no confirm came in time). It may be on the broker; publishing it again may deliver it
///   twice. On Redis, a publish whose reply never came is also sent again by the channel's next publish (at
///   least once).
///
/// Without confirms (`confirm_timeout(None)`), `Ok(())` only means the message was handed to the
/// connection: a failure is reported by a later call (whose own message was then not sent), and its flag
/// speaks for that later message only. Redis sends unanswered publishes again after a lost connection, so
/// they are delivered at least once. AMQP without confirms loses messages: each connection the broker (or
/// the network) closes by force can lose the publishes still in flight on it, with no error for them, as in
/// Python Kombu and py-amqp; use confirms where a message must not be lost.
///
/// The producer does not repeat a failed publish (that could publish twice): the error says whether a
/// retry can help ([`is_recoverable`](crate::Error::is_recoverable)) and whether it may duplicate, and the
/// next publish goes to a new connection.
pub struct Producer {
    channel: Mutex<Arc<dyn Channel>>,
    /// Where to get a new channel when the connection was lost (producers made with `Producer::new`).
    connection: Option<Connection>,
    exchange: Exchange,
    routing_key: String,
    serializer: String,
    compression: Option<String>,
    delivery_mode: DeliveryMode,
    auto_declare: bool,
    confirm_timeout: Option<Duration>,
    declared: Mutex<Declared>,
    /// The producer's own exchange is declared (the common case, checked without a lock).
    own_declared: AtomicBool,
}

/// What a producer has declared on its channel (declared once, again after a reconnect).
#[derive(Default)]
struct Declared {
    exchanges: HashSet<String>,
    queues: HashSet<String>,
}

/// How long [`Producer::publish`] waits, by default, for the broker to confirm a message.
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("exchange", &self.exchange.name)
            .field("routing_key", &self.routing_key)
            .field("serializer", &self.serializer)
            .finish()
    }
}

impl Producer {
    /// A producer on the connection's default channel, publishing to the default exchange with JSON.
    pub fn new(connection: &Connection) -> Result<Producer> {
        let mut producer = Producer::on_channel(connection.default_channel()?);
        producer.connection = Some(connection.clone());
        Ok(producer)
    }

    /// A producer on a given channel.
    pub fn on_channel(channel: Arc<dyn Channel>) -> Producer {
        Producer {
            channel: Mutex::new(channel),
            connection: None,
            exchange: Exchange::default_exchange(),
            routing_key: String::new(),
            serializer: "json".to_owned(),
            compression: None,
            delivery_mode: DeliveryMode::Persistent,
            auto_declare: true,
            confirm_timeout: Some(DEFAULT_CONFIRM_TIMEOUT),
            declared: Mutex::new(Declared::default()),
            own_declared: AtomicBool::new(false),
        }
    }

    /// The default exchange to publish to (declared before the first publish unless `auto_declare(false)`).
    pub fn exchange(mut self, exchange: Exchange) -> Self {
        self.exchange = exchange;
        self
    }
    /// The default routing key (a `&str` or a `String`, as for [`Publish::routing_key`]).
    pub fn routing_key(mut self, key: impl Into<String>) -> Self {
        self.routing_key = key.into();
        self
    }
    /// The default serializer (`json`, `text`, `raw`, or a registered one).
    pub fn serializer(mut self, name: impl Into<String>) -> Self {
        self.serializer = name.into();
        self
    }
    /// The default compression (`zlib`/`gzip`, or a registered one).
    pub fn compression(mut self, name: impl Into<String>) -> Self {
        self.compression = Some(name.into());
        self
    }
    /// The default delivery mode.
    pub fn delivery_mode(mut self, mode: DeliveryMode) -> Self {
        self.delivery_mode = mode;
        self
    }
    /// How long each publish waits for the broker to confirm it reached it (default
    /// [`DEFAULT_CONFIRM_TIMEOUT`], so that a returned `Ok` means the broker has the message); `None`
    /// publishes without waiting, faster, like Python Kombu's default. Backends without confirms
    /// (memory) ignore it; AMQP uses publisher confirms, Redis waits for the command's reply.
    pub fn confirm_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.confirm_timeout = timeout;
        self
    }
    /// Whether to declare the exchange before the first publish (default true).
    pub fn auto_declare(mut self, yes: bool) -> Self {
        self.auto_declare = yes;
        self
    }
    /// The channel it publishes on.
    pub fn channel(&self) -> Arc<dyn Channel> {
        self.channel.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The channel to publish on: the current one, or, when it was closed because its connection was
    /// lost, a new channel of a new connection (for producers made with [`Producer::new`]; what was
    /// declared is declared again). A publish that fails is not repeated (that could publish twice): its
    /// error says whether a retry can help, and the next publish goes to the new connection.
    fn live_channel(&self) -> Result<Arc<dyn Channel>> {
        match self.channel_now() {
            Ok(channel) => Ok(channel),
            Err(conn) => {
                let fresh = conn.default_channel()?;
                self.use_channel(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// The channel to publish on if it is usable now; otherwise the connection to open a new one on
    /// (opening may block: the async API does it where blocking is allowed).
    fn channel_now(&self) -> std::result::Result<Arc<dyn Channel>, &Connection> {
        let channel = self.channel();
        match &self.connection {
            Some(conn) if !channel.is_open() => Err(conn),
            _ => Ok(channel),
        }
    }

    /// Publishes on `fresh` from now on (a channel of a new connection): what was declared is declared again.
    fn use_channel(&self, fresh: Arc<dyn Channel>) {
        *self.channel.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        *self.declared.lock().unwrap_or_else(|e| e.into_inner()) = Declared::default();
        self.own_declared.store(false, Ordering::Release);
    }

    /// Starts a publish of `body`, serialized with the producer's serializer. Finish with
    /// [`send`](Publish::send).
    pub fn publish<'a, T: Serialize + ?Sized>(&'a self, body: &'a T) -> Publish<'a, T> {
        Publish::new(self, Body::Value(body))
    }

    /// Starts a publish of an already encoded body (content type `application/data`, encoding `binary`,
    /// unless set with [`Publish::content_type`]).
    pub fn publish_bytes(&self, body: impl Into<Bytes>) -> Publish<'_, ()> {
        Publish::new(self, Body::Raw(body.into()))
    }

    /// Starts a publish of a received message as it came: the same body bytes, content type and
    /// encoding, headers and properties (its [`detached`](Message::detached) copy), neither serialized
    /// nor compressed again, so a serializer, compression or content type set on the publish is an
    /// error. Like any publish it goes to the producer's exchange and routing key unless the publish sets
    /// them (the message's delivery info is not reused), declaring and reconnecting as the producer does.
    ///
    /// ```
    /// # fn relay(conn: &kombu_core::Connection, message: &kombu_core::Message) -> kombu_core::Result<()> {
    /// let producer = kombu_core::Producer::new(conn)?;
    /// producer.forward(message).routing_key("audit").header("relayed-by", "me").send()?;
    /// message.ack()
    /// # }
    /// ```
    pub fn forward(&self, message: &Message) -> Publish<'_, ()> {
        self.forward_as(message)
    }

    pub(crate) fn forward_as<M>(&self, message: &Message) -> Publish<'_, (), M> {
        let mut publish = Publish::new(self, Body::Forward);
        publish.message = message.detached();
        publish
    }

    /// Publishes prepared messages in one go (pipelined where the backend can).
    pub fn send_batch(&self, batch: Vec<Outgoing>) -> Result<()> {
        let ch = self.live_channel().map_err(not_sent)?;
        self.maybe_declare_exchange(&ch, None).map_err(not_sent)?;
        let options = PublishOptions { confirm_timeout: self.confirm_timeout, ..PublishOptions::default() };
        ch.publish_batch(batch, &options)
    }

    fn maybe_declare_exchange(&self, channel: &Arc<dyn Channel>, exchange: Option<&Exchange>) -> Result<()> {
        if let Some(ex) = self.exchange_to_declare(exchange) {
            channel.declare_exchange(ex, false)?;
            self.exchange_declared(ex);
        }
        Ok(())
    }

    /// The exchange a publish to `exchange` (the producer's own with `None`) must declare first, if any.
    fn exchange_to_declare<'e>(&'e self, exchange: Option<&'e Exchange>) -> Option<&'e Exchange> {
        let ex = exchange.unwrap_or(&self.exchange);
        let own = std::ptr::eq(ex, &self.exchange);
        if ex.is_default()
            || (exchange.is_none() && !self.auto_declare)
            || (own && self.own_declared.load(Ordering::Acquire))
            || self.declared.lock().unwrap_or_else(|e| e.into_inner()).exchanges.contains(&ex.name)
        {
            return None;
        }
        Some(ex)
    }

    fn exchange_declared(&self, ex: &Exchange) {
        self.declared.lock().unwrap_or_else(|e| e.into_inner()).exchanges.insert(ex.name.clone());
        if ex.name == self.exchange.name {
            self.own_declared.store(true, Ordering::Release);
        }
    }

    fn maybe_declare_queue(&self, channel: &Arc<dyn Channel>, queue: &Queue) -> Result<()> {
        if !self.queue_declared(queue) {
            channel.declare(queue)?;
            self.mark_queue_declared(queue);
        }
        Ok(())
    }

    fn queue_declared(&self, queue: &Queue) -> bool {
        self.declared.lock().unwrap_or_else(|e| e.into_inner()).queues.contains(&queue.name)
    }

    fn mark_queue_declared(&self, queue: &Queue) {
        self.declared.lock().unwrap_or_else(|e| e.into_inner()).queues.insert(queue.name.clone());
    }
}

/// An error met before the message was handed to the channel: it is not on the broker.
fn not_sent(e: Error) -> Error {
    e.with_may_have_reached_broker(false)
}

pub(crate) enum Body<'a, T: ?Sized> {
    Value(&'a T),
    Raw(Bytes),
    /// The publish's message is complete already (see [`Producer::forward`]).
    Forward,
}

/// How a [`Publish`] is sent: [`send`](Publish::send) blocks until done (`Blocking`, the default), or
/// is awaited (`Async`, the async API's `kombu::aio::Publish`).
#[derive(Debug)]
pub enum Blocking {}

/// The async API's mode of a [`Publish`]: its `send` is awaited (see `kombu::aio::Producer`).
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub enum Async {}

/// One publish being prepared; [`send`](Publish::send) publishes it. `M` says whether `send` blocks
/// (`Blocking`) or is awaited (`Async`); the setters are the same.
#[must_use = "a publish does nothing until .send() is called"]
pub struct Publish<'a, T: ?Sized, M = Blocking> {
    producer: &'a Producer,
    body: Body<'a, T>,
    exchange: Option<&'a Exchange>,
    routing_key: Option<Cow<'a, str>>,
    serializer: Option<&'a str>,
    compression: Option<&'a str>,
    content_type: Option<(Arc<str>, Arc<str>)>,
    declare: Vec<&'a Queue>,
    message: Message,
    options: PublishOptions,
    mode: std::marker::PhantomData<fn() -> M>,
}

impl<T: ?Sized, M> std::fmt::Debug for Publish<'_, T, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publish")
            .field("exchange", &self.exchange.map(|e| &e.name))
            .field("routing_key", &self.routing_key)
            .field("message", &self.message)
            .finish()
    }
}

impl<'a, T: ?Sized, M> Publish<'a, T, M> {
    pub(crate) fn new(producer: &'a Producer, body: Body<'a, T>) -> Self {
        let mut message = Message::default();
        message.properties.delivery_mode = Some(producer.delivery_mode);
        let options = PublishOptions { confirm_timeout: producer.confirm_timeout, ..PublishOptions::default() };
        Publish {
            producer,
            body,
            exchange: None,
            routing_key: None,
            serializer: None,
            compression: None,
            content_type: None,
            declare: Vec::new(),
            message,
            options,
            mode: std::marker::PhantomData,
        }
    }

    /// Publishes to this exchange instead of the producer's (declared first, once).
    pub fn exchange(mut self, exchange: &'a Exchange) -> Self {
        self.exchange = Some(exchange);
        self
    }
    /// The routing key (the producer's otherwise); a `&str` or a `String`, as for
    /// [`Producer::routing_key`].
    pub fn routing_key(mut self, key: impl Into<Cow<'a, str>>) -> Self {
        self.routing_key = Some(key.into());
        self
    }
    /// The serializer.
    pub fn serializer(mut self, name: &'a str) -> Self {
        self.serializer = Some(name);
        self
    }
    /// The compression.
    pub fn compression(mut self, name: &'a str) -> Self {
        self.compression = Some(name);
        self
    }
    /// Content type and encoding of a raw body.
    pub fn content_type(mut self, content_type: impl Into<Arc<str>>, encoding: impl Into<Arc<str>>) -> Self {
        self.content_type = Some((content_type.into(), encoding.into()));
        self
    }
    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.message.headers.insert(key, value);
        self
    }
    /// Adds headers.
    pub fn headers(mut self, headers: FieldTable) -> Self {
        self.message.headers.extend(headers);
        self
    }
    /// The priority.
    pub fn priority(mut self, priority: u8) -> Self {
        self.message.properties.priority = Some(priority);
        self
    }
    /// Drop the message if it is not delivered within `ttl`.
    pub fn expiration(mut self, ttl: Duration) -> Self {
        self.message.properties.expiration = Some(ttl);
        self
    }
    /// The delivery mode.
    pub fn delivery_mode(mut self, mode: DeliveryMode) -> Self {
        self.message.properties.delivery_mode = Some(mode);
        self
    }
    /// The correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.message.properties.correlation_id = Some(id.into());
        self
    }
    /// The reply-to queue.
    pub fn reply_to(mut self, queue: impl Into<String>) -> Self {
        self.message.properties.reply_to = Some(queue.into());
        self
    }
    /// The message id.
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message.properties.message_id = Some(id.into());
        self
    }
    /// The timestamp (seconds since the epoch).
    pub fn timestamp(mut self, seconds: u64) -> Self {
        self.message.properties.timestamp = Some(seconds);
        self
    }
    /// The message type name (AMQP `type`).
    pub fn message_type(mut self, name: impl Into<String>) -> Self {
        self.message.properties.message_type = Some(name.into());
        self
    }
    /// The publishing application (AMQP `app_id`).
    pub fn app_id(mut self, id: impl Into<String>) -> Self {
        self.message.properties.app_id = Some(id.into());
        self
    }
    /// The publishing user (AMQP `user_id`; RabbitMQ requires the connection's user).
    pub fn user_id(mut self, user: impl Into<String>) -> Self {
        self.message.properties.user_id = Some(user.into());
        self
    }
    /// AMQP `cluster_id`.
    pub fn cluster_id(mut self, id: impl Into<String>) -> Self {
        self.message.properties.cluster_id = Some(id.into());
        self
    }
    /// Declares `queue` (and its bindings) before publishing, once per producer.
    pub fn declare(mut self, queue: &'a Queue) -> Self {
        self.declare.push(queue);
        self
    }
    /// Asks the broker to report the message if no queue takes it (where the backend can).
    pub fn mandatory(mut self, yes: bool) -> Self {
        self.options.mandatory = yes;
        self
    }
    /// Waits up to `timeout` for the broker to confirm the message (`None`: does not wait); the
    /// producer's setting otherwise.
    pub fn confirm_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.confirm_timeout = timeout;
        self
    }
}

impl<'a, T: Serialize + ?Sized, M> Publish<'a, T, M> {
    /// Builds the message without publishing it (for [`Producer::send_batch`]).
    pub fn into_outgoing(self) -> Result<Outgoing> {
        let p = self.prepare()?;
        Ok(Outgoing { message: p.message, exchange: p.exchange.to_owned(), routing_key: p.routing_key.into_owned() })
    }

    fn prepare(mut self) -> Result<Prepared<'a>> {
        let p = self.producer;
        let encoded = match self.body {
            Body::Value(v) => Some(serialization::encode(self.serializer.unwrap_or(&p.serializer), v)?),
            Body::Raw(b) => {
                let (ct, enc) =
                    self.content_type.take().unwrap_or_else(|| ("application/data".into(), "binary".into()));
                Some((b, ct, enc))
            }
            Body::Forward if self.serializer.is_some() || self.compression.is_some() || self.content_type.is_some() => {
                return Err(Error::invalid(
                    "a forwarded message is published as it came: its serializer, compression and content type cannot be set",
                ));
            }
            Body::Forward => None,
        };
        let mut message = self.message;
        if let Some((body, ct, enc)) = encoded {
            message.body = match self.compression.or(p.compression.as_deref()) {
                Some(name) => {
                    let (z, header) = serialization::compress(name, &body)?;
                    message.headers.insert("compression", header);
                    z
                }
                None => body,
            };
            message.content_type = Some(ct);
            message.content_encoding = Some(enc);
        }
        let exchange = self.exchange.map_or(p.exchange.name.as_str(), |e| e.name.as_str());
        let routing_key = self.routing_key.unwrap_or(Cow::Borrowed(&p.routing_key));
        Ok(Prepared {
            message,
            exchange,
            routing_key,
            options: self.options,
            declare_exchange: self.exchange,
            declare_queues: self.declare,
        })
    }
}

impl<'a, T: Serialize + ?Sized> Publish<'a, T, Blocking> {
    /// Publishes the message.
    ///
    /// An error says whether the message may have reached the broker
    /// ([`may_have_reached_broker`](crate::Error::may_have_reached_broker)); see [`Producer`] for what that
    /// guarantees.
    pub fn send(self) -> Result<()> {
        let producer = self.producer;
        let prepared = self.prepare().map_err(not_sent)?;
        let ch = producer.live_channel().map_err(not_sent)?;
        producer.maybe_declare_exchange(&ch, prepared.declare_exchange).map_err(not_sent)?;
        for q in &prepared.declare_queues {
            producer.maybe_declare_queue(&ch, q).map_err(not_sent)?;
        }
        ch.publish(prepared.message, prepared.exchange, &prepared.routing_key, &prepared.options)
    }
}

/// A message ready to publish, with what to declare first.
struct Prepared<'a> {
    message: Message,
    exchange: &'a str,
    routing_key: Cow<'a, str>,
    options: PublishOptions,
    declare_exchange: Option<&'a Exchange>,
    declare_queues: Vec<&'a Queue>,
}

#[cfg(feature = "tokio")]
impl<'a, T: Serialize + ?Sized> Publish<'a, T, Async> {
    /// Publishes the message: resolves when the broker confirmed it (with confirms, the default), or
    /// when it was handed to the connection (`confirm_timeout(None)`); the outcome means what it means
    /// for the blocking [`Publish::send`] (see [`Producer`]). The body is serialized before this
    /// returns, so the future borrows nothing of it.
    ///
    /// Many `send` futures of one producer may be in flight at once (spawned, or joined); where the
    /// backend is asynchronous underneath (AMQP, and Redis through its async link) they are pipelined on
    /// one connection. Without confirms a broker's refusal that comes after the send resolved (Redis: an
    /// error reply) is the outcome of the channel's next call.
    ///
    /// Dropping the future before it resolves: the message was then published once or not at all, and
    /// which of the two is not known (as for a publish whose confirm never came,
    /// [`may_have_reached_broker`](crate::Error::may_have_reached_broker)). To know, await it to the end
    /// (a time-out is better given with [`confirm_timeout`](Publish::confirm_timeout) than by dropping).
    pub fn send(self) -> impl std::future::Future<Output = Result<()>> + Send + 'a {
        let producer = self.producer;
        // Boxed: the future then holds a pointer, not the message (an async fn keeps its argument twice).
        let prepared = self.prepare().map(Box::new);
        async move { producer.send_async(prepared.map_err(not_sent)?).await }
    }
}

#[cfg(feature = "tokio")]
impl Producer {
    async fn send_async(&self, p: Box<Prepared<'_>>) -> Result<()> {
        let ch = self.channel_for_async().await.map_err(not_sent)?;
        let exchange = self.exchange_to_declare(p.declare_exchange).cloned();
        let queues: Vec<Queue> =
            p.declare_queues.iter().filter(|q| !self.queue_declared(q)).map(|q| (*q).clone()).collect();
        if exchange.is_some() || !queues.is_empty() {
            let (c, ex, qs) = (ch.clone(), exchange.clone(), queues.clone());
            crate::aio::blocking(move || {
                if let Some(ex) = &ex {
                    c.declare_exchange(ex, false)?;
                }
                qs.iter().try_for_each(|q| c.declare(q).map(|_| ()))
            })
            .await
            .map_err(not_sent)?;
            if let Some(ex) = &exchange {
                self.exchange_declared(ex);
            }
            queues.iter().for_each(|q| self.mark_queue_declared(q));
        }
        if let Some(nonblocking) = ch.nonblocking() {
            if nonblocking.in_place() {
                tokio::task::consume_budget().await;
                return ch.publish(p.message, p.exchange, &p.routing_key, &p.options);
            }
            return nonblocking.publish(p.message, p.exchange, &p.routing_key, &p.options).await;
        }
        let (message, exchange, key, options) =
            (p.message, p.exchange.to_owned(), p.routing_key.into_owned(), p.options);
        Box::pin(crate::aio::blocking(move || ch.publish(message, &exchange, &key, &options))).await
    }

    /// The channel to publish on, a new one (opened where blocking is allowed) after a lost connection.
    async fn channel_for_async(&self) -> Result<Arc<dyn Channel>> {
        match self.channel_now() {
            Ok(channel) => Ok(channel),
            Err(conn) => {
                let conn = conn.clone();
                let fresh = crate::aio::blocking(move || conn.default_channel()).await?;
                self.use_channel(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// Waits until every publish sent before now is on the broker (see [`crate::aio::Producer::flush`]).
    pub(crate) async fn flush_async(&self) -> Result<()> {
        let ch = self.channel_for_async().await?;
        match ch.nonblocking() {
            Some(nonblocking) => nonblocking.flush().await,
            None => Ok(()),
        }
    }

    /// [`send_batch`](Producer::send_batch), awaited.
    pub(crate) async fn send_batch_async(&self, batch: Vec<Outgoing>) -> Result<()> {
        let ch = self.channel_for_async().await.map_err(not_sent)?;
        if let Some(ex) = self.exchange_to_declare(None).cloned() {
            let c = ch.clone();
            let declared = ex.clone();
            crate::aio::blocking(move || c.declare_exchange(&declared, false)).await.map_err(not_sent)?;
            self.exchange_declared(&ex);
        }
        let options = PublishOptions { confirm_timeout: self.confirm_timeout, ..PublishOptions::default() };
        if let Some(nonblocking) = ch.nonblocking() {
            return nonblocking.publish_batch(batch, &options).await;
        }
        crate::aio::blocking(move || ch.publish_batch(batch, &options)).await
    }
}
