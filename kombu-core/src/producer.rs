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
        let channel = self.channel();
        if channel.is_open() {
            return Ok(channel);
        }
        let Some(conn) = &self.connection else { return Ok(channel) };
        let fresh = conn.default_channel()?;
        *self.channel.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        *self.declared.lock().unwrap_or_else(|e| e.into_inner()) = Declared::default();
        self.own_declared.store(false, Ordering::Release);
        Ok(fresh)
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
        let ex = exchange.unwrap_or(&self.exchange);
        let own = exchange.is_none_or(|e| std::ptr::eq(e, &self.exchange));
        if ex.is_default()
            || (exchange.is_none() && !self.auto_declare)
            || (own && self.own_declared.load(Ordering::Acquire))
        {
            return Ok(());
        }
        if self.declared.lock().unwrap_or_else(|e| e.into_inner()).exchanges.contains(&ex.name) {
            return Ok(());
        }
        channel.declare_exchange(ex, false)?;
        self.declared.lock().unwrap_or_else(|e| e.into_inner()).exchanges.insert(ex.name.clone());
        if own {
            self.own_declared.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn maybe_declare_queue(&self, channel: &Arc<dyn Channel>, queue: &Queue) -> Result<()> {
        if self.declared.lock().unwrap_or_else(|e| e.into_inner()).queues.contains(&queue.name) {
            return Ok(());
        }
        channel.declare(queue)?;
        self.declared.lock().unwrap_or_else(|e| e.into_inner()).queues.insert(queue.name.clone());
        Ok(())
    }
}

/// An error met before the message was handed to the channel: it is not on the broker.
fn not_sent(e: Error) -> Error {
    e.with_may_have_reached_broker(false)
}

enum Body<'a, T: ?Sized> {
    Value(&'a T),
    Raw(Bytes),
    /// The publish's message is complete already (see [`Producer::forward`]).
    Forward,
}

/// One publish being prepared; [`send`](Publish::send) publishes it.
#[must_use = "a publish does nothing until .send() is called"]
pub struct Publish<'a, T: ?Sized> {
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
}

impl<T: ?Sized> std::fmt::Debug for Publish<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publish")
            .field("exchange", &self.exchange.map(|e| &e.name))
            .field("routing_key", &self.routing_key)
            .field("message", &self.message)
            .finish()
    }
}

impl<'a, T: ?Sized> Publish<'a, T> {
    fn new(producer: &'a Producer, body: Body<'a, T>) -> Self {
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

impl<'a, T: Serialize + ?Sized> Publish<'a, T> {
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
