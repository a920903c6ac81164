//! Messages: body, content type, headers, properties, delivery info, and settling (ack, reject, requeue).

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::fields::{FieldTable, FieldValue};
use crate::serialization;
use crate::transport::Channel;

/// Whether the broker should keep a message on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeliveryMode {
    /// Kept in memory only (AMQP delivery mode 1).
    Transient,
    /// Written to disk where the broker can (AMQP delivery mode 2); Kombu's default.
    #[default]
    Persistent,
}

impl DeliveryMode {
    /// The AMQP number (1 or 2).
    pub fn as_u8(self) -> u8 {
        match self {
            DeliveryMode::Transient => 1,
            DeliveryMode::Persistent => 2,
        }
    }
    /// From the AMQP number; anything but 2 is transient.
    pub fn from_u8(n: u8) -> Self {
        if n == 2 {
            DeliveryMode::Persistent
        } else {
            DeliveryMode::Transient
        }
    }
}

/// The identity of one delivery, used to settle it. Numbers on AMQP and memory, UUID text on Redis.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryTag {
    /// A channel-local sequence number.
    Number(u64),
    /// A text tag (Kombu's Redis transport uses UUIDs).
    Text(Arc<str>),
}

impl Default for DeliveryTag {
    fn default() -> Self {
        DeliveryTag::Number(0)
    }
}

impl fmt::Display for DeliveryTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryTag::Number(n) => write!(f, "{n}"),
            DeliveryTag::Text(s) => f.write_str(s),
        }
    }
}

/// Message properties: the AMQP basic properties (headers, content type and encoding are on [`Message`]).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Properties {
    /// Persistence.
    pub delivery_mode: Option<DeliveryMode>,
    /// Priority (0-255; brokers clamp to the queue's maximum).
    pub priority: Option<u8>,
    /// Correlates a reply with its request.
    pub correlation_id: Option<String>,
    /// Queue to send a reply to.
    pub reply_to: Option<String>,
    /// Time after which an undelivered message is dropped.
    pub expiration: Option<Duration>,
    /// Application message id.
    pub message_id: Option<String>,
    /// Seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// The message type name (AMQP `type`; `type` is a Rust keyword).
    pub message_type: Option<String>,
    /// The publishing application (AMQP `app_id`).
    pub app_id: Option<String>,
    /// The publishing user (AMQP `user_id`); RabbitMQ refuses a message whose `user_id` is not the
    /// connection's user.
    pub user_id: Option<String>,
    /// AMQP `cluster_id` (deprecated in AMQP 0-9-1, carried as it came).
    pub cluster_id: Option<String>,
    /// Other properties, kept as they came (round-tripped through Kombu's envelope; AMQP has no place
    /// for them).
    pub extra: FieldTable,
}

/// Where a message came from and how to settle it. Names are shared strings (`Arc<str>`): a backend
/// hands the same name to many messages without copying it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeliveryInfo {
    /// The exchange it was published to.
    pub exchange: Arc<str>,
    /// The routing key it was published with.
    pub routing_key: Arc<str>,
    /// Delivered before and not acknowledged.
    pub redelivered: bool,
    /// The tag to settle it by.
    pub delivery_tag: DeliveryTag,
    /// The consumer it was delivered to, if any.
    pub consumer_tag: Option<Arc<str>>,
    /// How many times the broker delivered it before this delivery (0 the first time), where the
    /// backend counts: memory and Redis always (on Redis in the envelope's `properties`, under
    /// `x-delivery-count`, which Python Kombu ignores), AMQP where RabbitMQ sends `x-delivery-count`
    /// (quorum queues). `None` where nothing counts.
    pub redeliveries: Option<u32>,
}

impl Default for DeliveryInfo {
    fn default() -> Self {
        static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        let empty = EMPTY.get_or_init(|| Arc::from("")).clone();
        DeliveryInfo {
            exchange: empty.clone(),
            routing_key: empty,
            redelivered: false,
            delivery_tag: DeliveryTag::default(),
            consumer_tag: None,
            redeliveries: None,
        }
    }
}

impl DeliveryInfo {
    /// Delivery info for a message published to `exchange` with `routing_key`.
    pub fn new(exchange: impl Into<Arc<str>>, routing_key: impl Into<Arc<str>>) -> Self {
        DeliveryInfo { exchange: exchange.into(), routing_key: routing_key.into(), ..Default::default() }
    }
}

/// How a received message was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Not settled yet.
    Received = 0,
    /// Acknowledged.
    Acked = 1,
    /// Rejected without requeue (dropped or dead-lettered).
    Rejected = 2,
    /// Rejected and requeued.
    Requeued = 3,
}

impl MessageState {
    fn from_u8(n: u8) -> Self {
        match n {
            1 => MessageState::Acked,
            2 => MessageState::Rejected,
            3 => MessageState::Requeued,
            _ => MessageState::Received,
        }
    }
}

/// A message: published by a [`Producer`](crate::Producer), or received by a consumer or `get`.
///
/// Content type and encoding are shared strings (`Arc<str>`; build them with `.into()` from `&str` or
/// `String`, read them with `as_deref()`). A received message settles through the channel it came from.
/// Its clones are the same delivery and share one settle state: once any of them is settled, settling
/// another fails with an [`ErrorKind::State`](crate::ErrorKind::State) error ("already settled").
/// [`detached`](Message::detached) makes an independent, unbound copy.
///
/// ```
/// use kombu_core::Message;
/// let m = Message::new("hello").content_type("text/plain").header("h", "v");
/// assert_eq!(&m.body[..], b"hello");
/// assert_eq!(m.headers["h"], "v");
/// ```
#[derive(Default, Clone)]
#[non_exhaustive]
pub struct Message {
    /// The encoded (serialized, maybe compressed) body.
    pub body: Bytes,
    /// MIME type of the body, e.g. `application/json`.
    pub content_type: Option<Arc<str>>,
    /// Character encoding of the body, e.g. `utf-8` or `binary`.
    pub content_encoding: Option<Arc<str>>,
    /// Application headers (`compression` names the compression, as in Kombu).
    pub headers: FieldTable,
    /// Properties.
    pub properties: Properties,
    /// Delivery info (empty on an outgoing message).
    pub delivery_info: DeliveryInfo,
    /// The channel it settles through and its settle state (a [`MessageState`] as a number), shared by
    /// its clones; `None` while it is bound to no channel.
    settle: Option<(Arc<dyn Channel>, Arc<AtomicU8>)>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("body_len", &self.body.len())
            .field("content_type", &self.content_type)
            .field("content_encoding", &self.content_encoding)
            .field("headers", &self.headers)
            .field("properties", &self.properties)
            .field("delivery_info", &self.delivery_info)
            .field("state", &self.state())
            .finish()
    }
}

impl PartialEq for Message {
    /// Compares content (body, content type and encoding, headers, properties, delivery info), not settle state.
    fn eq(&self, other: &Self) -> bool {
        self.body == other.body
            && self.content_type == other.content_type
            && self.content_encoding == other.content_encoding
            && self.headers == other.headers
            && self.properties == other.properties
            && self.delivery_info == other.delivery_info
    }
}

impl Message {
    /// A message with an already encoded body.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Message { body: body.into(), ..Default::default() }
    }
    /// Sets the content type.
    pub fn content_type(mut self, content_type: impl Into<Arc<str>>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }
    /// Sets the content encoding.
    pub fn content_encoding(mut self, encoding: impl Into<Arc<str>>) -> Self {
        self.content_encoding = Some(encoding.into());
        self
    }
    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.headers.insert(key, value);
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, priority: u8) -> Self {
        self.properties.priority = Some(priority);
        self
    }

    /// Binds a received message to the channel that settles it. Backends call this on every message they
    /// return from `get` or deliver to a consumer; `no_ack` deliveries are left unbound (and count as acked).
    pub fn bind_channel(&mut self, channel: Arc<dyn Channel>) {
        self.settle = Some((channel, Arc::new(AtomicU8::new(MessageState::Received as u8))));
    }

    /// The channel this message settles through, if it is bound to one.
    pub fn channel(&self) -> Option<&Arc<dyn Channel>> {
        self.settle.as_ref().map(|(channel, _)| channel)
    }

    /// How the message (or any of its clones) was settled (`Received` for one not bound to a channel).
    pub fn state(&self) -> MessageState {
        self.settle
            .as_ref()
            .map_or(MessageState::Received, |(_, state)| MessageState::from_u8(state.load(Ordering::Acquire)))
    }

    /// Whether the message was settled (acked, rejected or requeued).
    pub fn acknowledged(&self) -> bool {
        self.state() != MessageState::Received
    }

    fn settle_with(&self, to: MessageState, op: impl FnOnce(&dyn Channel, &DeliveryTag) -> Result<()>) -> Result<()> {
        let (bound, state) = self.claim(to)?;
        let res = op(bound.as_ref(), &self.delivery_info.delivery_tag);
        if res.is_err() {
            state.store(MessageState::Received as u8, Ordering::Release);
        }
        res
    }

    /// Marks the message settled as `to` (the first settle of any clone wins) and returns its channel and
    /// state, for the caller to settle it on the broker (and to put the state back if that fails).
    pub(crate) fn claim(&self, to: MessageState) -> Result<(&Arc<dyn Channel>, &AtomicU8)> {
        let (bound, state) = self
            .settle
            .as_ref()
            .ok_or_else(|| Error::state("message is not bound to a channel (outgoing, or consumed with no_ack)"))?;
        let received = MessageState::Received as u8;
        if let Err(prev) = state.compare_exchange(received, to as u8, Ordering::AcqRel, Ordering::Acquire) {
            return Err(Error::state(format!(
                "message {} was already settled ({:?})",
                self.delivery_info.delivery_tag,
                MessageState::from_u8(prev)
            )));
        }
        Ok((bound, state))
    }

    /// Acknowledges the message: the broker forgets it. When this returns the acknowledgement is done
    /// (Redis: applied by the server, one round trip, as in Python Kombu; AMQP: written to the socket,
    /// `basic.ack` having no reply; memory: applied). See [`ack_deferred`](Message::ack_deferred) for the
    /// batched form.
    pub fn ack(&self) -> Result<()> {
        self.settle_with(MessageState::Acked, |ch, tag| ch.ack(tag))
    }

    /// Acknowledges the message without waiting for the broker: faster under load (acks are batched),
    /// at the cost of a short window, about one round trip, in which a lost connection or a killed
    /// process redelivers it. It is sent at the latest when its connection closes or is dropped.
    /// Prefer [`ack`](Message::ack) unless measurements say otherwise.
    pub fn ack_deferred(&self) -> Result<()> {
        self.settle_with(MessageState::Acked, |ch, tag| ch.ack_deferred(tag))
    }

    /// Rejects the message; with `requeue` it goes back to its queue, otherwise it is dropped or dead-lettered.
    pub fn reject(&self, requeue: bool) -> Result<()> {
        let to = if requeue { MessageState::Requeued } else { MessageState::Rejected };
        self.settle_with(to, |ch, tag| ch.reject(tag, requeue))
    }

    /// Rejects the message back to its queue.
    pub fn requeue(&self) -> Result<()> {
        self.reject(true)
    }

    /// Moves the message to a dead-letter destination and settles it (see [`Channel::dead_letter`]).
    /// A [`Consumer`](crate::Consumer) does this itself for messages its
    /// [`PoisonPolicy`](crate::PoisonPolicy) refuses.
    pub fn dead_letter(&self, target: &crate::transport::DeadLetter<'_>) -> Result<()> {
        self.settle_with(MessageState::Rejected, |ch, _| ch.dead_letter(self, target))
    }

    /// A copy to publish again: the same body, content type, encoding, headers and properties, with no
    /// delivery information and bound to no channel.
    pub fn detached(&self) -> Message {
        let mut copy = self.clone();
        copy.delivery_info = DeliveryInfo::default();
        copy.settle = None;
        copy
    }

    /// The body after decompression (the `compression` header), still serialized.
    pub fn decompressed_body(&self) -> Result<Bytes> {
        match self.headers.get("compression").and_then(|v| v.as_str()) {
            Some(kind) => serialization::decompress(kind, &self.body),
            None => Ok(self.body.clone()),
        }
    }

    /// Decodes the body with the serializer for its content type (decompressing first if needed).
    ///
    /// ```
    /// use kombu_core::Message;
    /// let m = Message::new(r#"{"n": 1}"#).content_type("application/json");
    /// let v: serde_json::Value = m.decode().unwrap();
    /// assert_eq!(v["n"], 1);
    /// assert!(Message::new("{").content_type("application/json").decode::<serde_json::Value>().is_err());
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        let body = self.decompressed_body()?;
        serialization::decode(self.content_type.as_deref(), &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbound_message_cannot_be_settled() {
        let m = Message::new("x");
        assert_eq!(m.ack().unwrap_err().kind(), crate::ErrorKind::State);
        assert_eq!(m.state(), MessageState::Received);
    }

    #[test]
    fn delivery_mode_numbers() {
        assert_eq!(DeliveryMode::from_u8(2), DeliveryMode::Persistent);
        assert_eq!(DeliveryMode::from_u8(1), DeliveryMode::Transient);
        assert_eq!(DeliveryMode::Persistent.as_u8(), 2);
    }
}
