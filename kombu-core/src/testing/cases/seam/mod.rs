//! The seam the cases that run through both APIs are written against: a connection, its channels, a
//! consumer as a stream of deliveries, a producer, and a delivery to settle, each implemented once over
//! the blocking API (`blocking.rs`) and once over `kombu_core::aio` driven from the test thread
//! (`aio.rs`, feature `tokio`). Such a case is in the table twice: under its number through the blocking
//! API and under 100 + its number through the async API.

#[cfg(feature = "tokio")]
mod aio;
mod blocking;

use std::borrow::Borrow;
use std::ops::Deref;
use std::time::{Duration, Instant};

use super::{Check, Context, Ctx, SETTLE};
use crate::connection::RetryPolicy;
use crate::entity::{Exchange, Queue, QueueInfo};
use crate::error::Result;
use crate::fields::FieldTable;
use crate::message::Message;
use crate::poison::PoisonPolicy;
use crate::serialization::Accept;

/// Which API a case runs through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// The blocking API: channels called directly, consumers driven by `drain_events`.
    Blocking,
    /// `kombu_core::aio`, each call awaited on a runtime of the connection's own.
    #[cfg(feature = "tokio")]
    Async,
}

impl Api {
    /// A connected connection, through this API.
    pub(crate) fn open(self, ctx: &Ctx) -> Check<Box<dyn Conn>> {
        match self {
            Api::Blocking => Ok(Box::new(blocking::Conn(ctx.open()?))),
            #[cfg(feature = "tokio")]
            Api::Async => Ok(Box::new(aio::Conn::open(ctx.url())?)),
        }
    }

    /// Connects once to `url`, with no retries: how the connect ended (an `Err` if it could not open).
    pub(crate) fn connect_once(self, url: &str) -> Check<Result<()>> {
        match self {
            Api::Blocking => {
                let conn = crate::Connection::builder(url).retry(RetryPolicy::none()).open().ctx("open")?;
                Ok(conn.connect())
            }
            #[cfg(feature = "tokio")]
            Api::Async => aio::connect_once(url),
        }
    }
}

/// A connection.
pub(crate) trait Conn {
    /// A new channel.
    fn channel(&self) -> Result<Box<dyn Chan>>;
    /// A consumer of `queues` (declared first) on a channel of its own, which it closes when dropped.
    fn consume(&self, queues: Vec<Queue>, how: Consume) -> Result<Box<dyn Stream>>;
    /// A producer on the connection's default channel, with a default serializer and compression.
    fn producer(&self, serializer: Option<&str>, compression: Option<&str>) -> Result<Box<dyn Prod>>;
    /// Closes the connection.
    fn close(&self) -> Result<()>;
}

/// A channel: the calls of `Channel` the cases use; `publish` sends a message as it is.
pub(crate) trait Chan {
    fn declare(&self, queue: &Queue) -> Result<QueueInfo>;
    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo>;
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()>;
    fn bind_queue(&self, queue: &str, exchange: &str, key: &str) -> Result<()>;
    fn unbind_queue(&self, queue: &str, exchange: &str, key: &str) -> Result<()>;
    fn delete_queue(&self, name: &str) -> Result<u64>;
    fn delete_exchange(&self, name: &str) -> Result<()>;
    fn purge_queue(&self, name: &str) -> Result<u64>;
    fn publish(&self, message: Message, exchange: &str, key: &str) -> Result<()>;
    fn get(&self, queue: &str) -> Result<Option<Delivery>>;
    fn close(&self) -> Result<()>;
}

/// A consumer's deliveries, taken one at a time.
pub(crate) trait Stream {
    /// The next delivery, waiting up to `wait` (the consumer runs meanwhile); `None` if none came (or the
    /// consumer ended).
    fn next(&mut self, wait: Duration) -> Result<Option<Delivery>>;
    /// Stops deliveries; those received and not handed out go back to their queue.
    fn cancel(&mut self) -> Result<()>;
}

/// How to consume.
#[derive(Default)]
pub(crate) struct Consume {
    pub(crate) prefetch: Option<u16>,
    pub(crate) accept: Option<Accept>,
    pub(crate) poison: Option<PoisonPolicy>,
}

/// What a producer publishes.
pub(crate) enum Body<'a> {
    /// Serialized with the producer's serializer.
    Value(&'a serde_json::Value),
    /// Encoded already.
    Bytes(Vec<u8>),
    /// A received message, as it came.
    Forward(&'a Message),
}

/// Where and how a producer publishes (what is unset is the producer's).
#[derive(Default)]
pub(crate) struct Sending<'a> {
    pub(crate) exchange: Option<&'a Exchange>,
    pub(crate) routing_key: &'a str,
    pub(crate) declare: Option<&'a Queue>,
    pub(crate) compression: Option<&'a str>,
    pub(crate) headers: FieldTable,
    pub(crate) priority: Option<u8>,
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) reply_to: Option<&'a str>,
    pub(crate) message_id: Option<&'a str>,
    pub(crate) timestamp: Option<u64>,
}

impl<'a> Sending<'a> {
    /// Applies these settings to a publish of either API.
    fn dress<T: ?Sized, M>(&'a self, mut p: crate::Publish<'a, T, M>) -> crate::Publish<'a, T, M> {
        if let Some(ex) = self.exchange {
            p = p.exchange(ex);
        }
        if !self.routing_key.is_empty() {
            p = p.routing_key(self.routing_key);
        }
        if let Some(q) = self.declare {
            p = p.declare(q);
        }
        if let Some(c) = self.compression {
            p = p.compression(c);
        }
        if !self.headers.is_empty() {
            p = p.headers(self.headers.clone());
        }
        if let Some(n) = self.priority {
            p = p.priority(n);
        }
        if let Some(id) = self.correlation_id {
            p = p.correlation_id(id);
        }
        if let Some(to) = self.reply_to {
            p = p.reply_to(to);
        }
        if let Some(id) = self.message_id {
            p = p.message_id(id);
        }
        if let Some(t) = self.timestamp {
            p = p.timestamp(t);
        }
        p
    }
}

/// A producer.
pub(crate) trait Prod {
    fn send(&self, body: Body<'_>, how: &Sending<'_>) -> Result<()>;
}

/// A received message (it derefs to the `Message`), settled through the API it came by.
pub(crate) enum Delivery {
    Blocking(Box<Message>),
    #[cfg(feature = "tokio")]
    Async(crate::aio::Message, std::sync::Arc<aio::Rt>),
}

impl Deref for Delivery {
    type Target = Message;
    fn deref(&self) -> &Message {
        match self {
            Delivery::Blocking(m) => m,
            #[cfg(feature = "tokio")]
            Delivery::Async(m, _) => m,
        }
    }
}

impl Borrow<Message> for Delivery {
    fn borrow(&self) -> &Message {
        self
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Message::fmt(self, f)
    }
}

impl Delivery {
    pub(crate) fn ack(&self) -> Result<()> {
        match self {
            Delivery::Blocking(m) => m.ack(),
            #[cfg(feature = "tokio")]
            Delivery::Async(m, rt) => rt.block_on(m.ack()),
        }
    }

    pub(crate) fn reject(&self, requeue: bool) -> Result<()> {
        match self {
            Delivery::Blocking(m) => m.reject(requeue),
            #[cfg(feature = "tokio")]
            Delivery::Async(m, rt) => rt.block_on(m.reject(requeue)),
        }
    }
}

/// Gets one message, waiting up to `wait` for it to arrive.
pub(crate) fn get_within(ch: &dyn Chan, queue: &str, wait: Duration) -> Check<Option<Delivery>> {
    let end = Instant::now() + wait;
    loop {
        if let Some(m) = ch.get(queue).ctx(&format!("get from {queue}"))? {
            return Ok(Some(m));
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Takes every message from a queue (each acked), waiting `SETTLE` after the last for stragglers.
pub(crate) fn take_all(ch: &dyn Chan, queue: &str) -> Check<Vec<Delivery>> {
    let mut out = Vec::new();
    while let Some(m) = get_within(ch, queue, SETTLE)? {
        m.ack().ctx("ack")?;
        out.push(m);
    }
    Ok(out)
}

/// Publishes `m` as it is.
pub(crate) fn send(ch: &dyn Chan, ex: &str, key: &str, m: Message) -> Check {
    ch.publish(m, ex, key).ctx(&format!("publish to '{ex}' with key '{key}'"))
}
