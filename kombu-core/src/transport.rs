//! The traits every backend implements: [`Transport`] (a factory), [`BrokerConnection`], [`Channel`] and
//! [`Poller`], and the [`Capabilities`] a transport declares.
//!
//! kombu-core knows no broker: everything broker-specific sits behind these traits, and the shared
//! conformance suite (feature `testing`) checks that every implementation keeps the same semantics.

use std::sync::Arc;
use std::time::Duration;

use crate::entity::{Exchange, ExchangeKind, Queue, QueueInfo};
use crate::error::{Error, Result};
use crate::fields::FieldTable;
use crate::hub::{Event, Sources};
use crate::message::{DeliveryTag, Message};
use crate::options::OptionSpec;
use crate::url::BrokerUrl;

/// The order in which a backend hands out messages of different priorities.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PriorityOrder {
    /// Higher priority first (AMQP, memory).
    HighestFirst,
    /// Python Kombu's Redis order: lowest first, by bands that start at these steps
    /// (`[0, 3, 6, 9]`: 0-2 first, then 3-5, 6-8, 9); FIFO within a band.
    LowestFirstInBands(Vec<u8>),
}

/// What a transport can do. The conformance suite skips, by name, the cases a transport declares it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Exchange types it routes.
    pub exchange_kinds: Vec<ExchangeKind>,
    /// Priority support, and in which order.
    pub priority: Option<PriorityOrder>,
    /// Per-queue message TTL and per-message expiration.
    pub message_ttl: bool,
    /// Dead-letter exchanges for rejected and expired messages.
    pub dead_letter: bool,
    /// Connection heartbeats.
    pub heartbeats: bool,
    /// Deliveries wake the Hub as they arrive (no polling interval).
    pub event_driven: bool,
    /// The broker is a separate server that can be restarted while clients run.
    pub external_broker: bool,
    /// A queue the broker answers replies on directly, neither declared nor acknowledged (RabbitMQ's
    /// direct reply-to, `amq.rabbitmq.reply-to`); [`RpcClient::new`](crate::RpcClient::new) uses it.
    pub direct_reply_to: Option<&'static str>,
}

impl Capabilities {
    /// Capabilities with every exchange type and nothing else.
    pub fn new() -> Self {
        Capabilities {
            exchange_kinds: ExchangeKind::ALL.to_vec(),
            priority: None,
            message_ttl: false,
            dead_letter: false,
            heartbeats: false,
            event_driven: true,
            external_broker: false,
            direct_reply_to: None,
        }
    }
    /// Sets the exchange types.
    pub fn exchange_kinds(mut self, kinds: &[ExchangeKind]) -> Self {
        self.exchange_kinds = kinds.to_vec();
        self
    }
    /// Sets priority support.
    pub fn priority(mut self, order: PriorityOrder) -> Self {
        self.priority = Some(order);
        self
    }
    /// Sets TTL support.
    pub fn message_ttl(mut self, yes: bool) -> Self {
        self.message_ttl = yes;
        self
    }
    /// Sets dead-letter support.
    pub fn dead_letter(mut self, yes: bool) -> Self {
        self.dead_letter = yes;
        self
    }
    /// Sets heartbeat support.
    pub fn heartbeats(mut self, yes: bool) -> Self {
        self.heartbeats = yes;
        self
    }
    /// Sets whether deliveries are event-driven.
    pub fn event_driven(mut self, yes: bool) -> Self {
        self.event_driven = yes;
        self
    }
    /// Sets whether the broker is an external, restartable server.
    pub fn external_broker(mut self, yes: bool) -> Self {
        self.external_broker = yes;
        self
    }
    /// Sets the queue the broker answers replies on directly.
    pub fn direct_reply_to(mut self, queue: &'static str) -> Self {
        self.direct_reply_to = Some(queue);
        self
    }
    /// Whether it routes this exchange type.
    pub fn supports(&self, kind: ExchangeKind) -> bool {
        self.exchange_kinds.contains(&kind)
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::new()
    }
}

/// A backend: opens connections to one kind of broker. Registered under its aliases in the
/// [`Registry`](crate::Registry).
pub trait Transport: Send + Sync + 'static {
    /// The main alias (`redis`).
    fn name(&self) -> &str;
    /// Every URL scheme it answers to, the main alias first.
    fn aliases(&self) -> Vec<String>;
    /// The port used when a URL has none.
    fn default_port(&self) -> Option<u16>;
    /// What it can do.
    fn capabilities(&self) -> Capabilities;
    /// The URL query options it takes, with their kinds and ranges. kombu-core checks every URL against
    /// this table before [`validate`](Transport::validate) (see [`check_url`](crate::options::check_url)): an unknown name,
    /// a value that does not parse or one out of range is an `InvalidArgument` error. `Some(&[])` means
    /// it takes no options; the default, `None`, means it does not declare them and options are not
    /// checked for it.
    fn options(&self) -> Option<&'static [OptionSpec]> {
        None
    }
    /// Checks a URL for this transport without connecting (called by `Connection::open`, so a bad URL
    /// fails there and not at first use), after its options were checked against
    /// [`options`](Transport::options). The default accepts every URL.
    fn validate(&self, url: &BrokerUrl) -> Result<()> {
        let _ = url;
        Ok(())
    }
    /// Connects to the broker a URL names.
    fn connect(&self, url: &BrokerUrl) -> Result<Box<dyn BrokerConnection>>;
}

/// One open connection to a broker.
pub trait BrokerConnection: Send + Sync {
    /// Opens a channel.
    fn channel(&self) -> Result<Arc<dyn Channel>>;
    /// The poller that turns this connection's events into deliveries for the consumers of its channels.
    /// Each call returns a poller for the same connection; one is registered at a time.
    fn poller(&self) -> Result<Box<dyn Poller>>;
    /// Whether the connection is usable.
    fn is_open(&self) -> bool;
    /// Closes the connection and its channels; unacknowledged messages go back to their queues.
    fn close(&self) -> Result<()>;
}

/// Options of one publish.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct PublishOptions {
    /// Report a message that no queue takes (where the backend can).
    pub mandatory: bool,
    /// Wait up to this long for the broker to confirm the message (where the backend can).
    pub confirm_timeout: Option<Duration>,
}

/// A message to publish, with where it goes.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The message.
    pub message: Message,
    /// The exchange.
    pub exchange: String,
    /// The routing key.
    pub routing_key: String,
}

/// A message delivered to a consumer.
#[derive(Debug)]
#[non_exhaustive]
pub struct Delivery {
    /// The consumer it is for.
    pub consumer_tag: Arc<str>,
    /// The message, bound to its channel unless consumed with `no_ack`.
    pub message: Message,
    /// Why the backend could not read the message (for example a stored payload that is not a Kombu
    /// envelope). The message then carries the raw payload as its body; the consumer hands it to its
    /// error handler or to its [`PoisonPolicy`](crate::PoisonPolicy), never to its callback.
    pub error: Option<crate::Error>,
}

impl Delivery {
    /// A message for the consumer `consumer_tag`.
    pub fn new(consumer_tag: Arc<str>, message: Message) -> Delivery {
        Delivery { consumer_tag, message, error: None }
    }

    /// A message the backend could not read: `message` holds the raw payload, `error` says why.
    pub fn unreadable(consumer_tag: Arc<str>, message: Message, error: crate::Error) -> Delivery {
        Delivery { consumer_tag, message, error: Some(error) }
    }
}

/// Where a message that cannot be handled goes, and why: the argument of [`Channel::dead_letter`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct DeadLetter<'a> {
    /// The queue the message was consumed from.
    pub queue: &'a str,
    /// The dead-letter queue to put it in (for backends without a broker-side dead-letter exchange).
    pub to: &'a str,
    /// Why it is dead-lettered, for the logs and the `x-kombu-dead-letter-reason` header.
    pub reason: &'a str,
}

impl<'a> DeadLetter<'a> {
    /// Dead-letters from `queue` to `to` for `reason`.
    pub fn new(queue: &'a str, to: &'a str, reason: &'a str) -> DeadLetter<'a> {
        DeadLetter { queue, to, reason }
    }
}

/// A channel: declares, publishes, gets, consumes and settles. Methods take `&self`: a channel is shared
/// by its producers, consumers and the messages it delivered (which settle through it).
///
/// Messages a channel returns from [`get`](Channel::get) or delivers to a consumer are bound to it with
/// [`Message::bind_channel`], unless taken with `no_ack`.
pub trait Channel: Send + Sync {
    /// Declares an exchange (`passive`: only check that it exists).
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()>;
    /// Deletes an exchange.
    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()>;
    /// Declares a queue (not its bindings; see [`Channel::declare`]). `passive`: only check that it exists.
    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo>;
    /// Deletes a queue and its bindings; returns the number of messages it held.
    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64>;
    /// Binds a queue to an exchange.
    fn bind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()>;
    /// Removes a binding.
    fn unbind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()>;
    /// Removes every ready message from a queue; returns how many.
    fn purge_queue(&self, name: &str) -> Result<u64>;
    /// Publishes a message. A message no queue takes is dropped, not an error.
    fn publish(&self, message: Message, exchange: &str, routing_key: &str, options: &PublishOptions) -> Result<()>;
    /// Publishes several messages; backends with a faster path (pipelining) override it.
    fn publish_batch(&self, batch: Vec<Outgoing>, options: &PublishOptions) -> Result<()> {
        for o in batch {
            self.publish(o.message, &o.exchange, &o.routing_key, options)?;
        }
        Ok(())
    }
    /// Takes one message from a queue, if there is one.
    fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Message>>;
    /// Starts delivering messages from `queue` to the consumer `consumer_tag` (through the connection's poller).
    fn consume(&self, queue: &str, consumer_tag: &str, no_ack: bool) -> Result<()>;
    /// [`consume`](Channel::consume) with consumer arguments (AMQP's `basic.consume` table: a stream's
    /// `x-stream-offset`, a consumer's `x-priority`). The default takes none: arguments given to a transport
    /// that has no use for them are an error, never dropped.
    fn consume_with(&self, queue: &str, consumer_tag: &str, no_ack: bool, arguments: &FieldTable) -> Result<()> {
        if arguments.is_empty() {
            return self.consume(queue, consumer_tag, no_ack);
        }
        let keys: Vec<&str> = arguments.iter().map(|(k, _)| k).collect();
        Err(Error::unsupported(format!(
            "consumer on '{queue}': this transport takes no consumer arguments ({})",
            keys.join(", ")
        )))
    }
    /// Stops a consumer; messages not yet delivered stay in the queue.
    fn cancel(&self, consumer_tag: &str) -> Result<()>;
    /// Acknowledges a delivery; when it returns, the acknowledgement has left this process (on Redis: the
    /// server has applied it).
    fn ack(&self, tag: &DeliveryTag) -> Result<()>;
    /// Acknowledges a delivery without waiting: the acknowledgement is sent within about one round trip
    /// (batched with others under load), and at the latest when the connection closes or is dropped; until
    /// then a lost connection or a killed process means a redelivery. The default is [`ack`](Channel::ack).
    fn ack_deferred(&self, tag: &DeliveryTag) -> Result<()> {
        self.ack(tag)
    }
    /// Rejects a delivery; with `requeue` it goes back to its queue (marked redelivered).
    fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()>;
    /// Moves a delivered message that cannot be handled to a dead-letter destination and settles it.
    ///
    /// The default declares the queue `target.to` (durable), publishes a copy of the message there
    /// through the default exchange with the headers `x-kombu-dead-letter-reason` and
    /// `x-kombu-dead-letter-queue`, waiting for the broker's confirmation, and then acknowledges the
    /// original. A failure between the two leaves a copy in both places, never in neither. Backends that
    /// can move a message in one step, or that have the broker's own dead-lettering, override it.
    fn dead_letter(&self, message: &Message, target: &DeadLetter<'_>) -> Result<()> {
        dead_letter_by_copy(self, message, target)
    }
    /// Redelivers every unacknowledged message of this channel.
    fn recover(&self, requeue: bool) -> Result<()>;
    /// Limits unacknowledged deliveries to `prefetch_count` (0: no limit).
    fn qos(&self, prefetch_count: u16) -> Result<()>;
    /// Closes the channel; its unacknowledged messages go back to their queues.
    fn close(&self) -> Result<()>;
    /// Whether the channel is usable.
    fn is_open(&self) -> bool;

    /// The channel's non-blocking side, for the async API, where it has one: `None` (the default) means
    /// every call may block, and an async caller runs it on a thread where blocking is allowed (tokio's
    /// blocking pool). A backend returns `Some(self)` when its hot calls (publish, ack, reject) can be
    /// awaited without blocking a runtime thread: because they are in-process (memory) or because the
    /// backend is async underneath (lapin).
    fn nonblocking(&self) -> Option<&dyn AsyncChannel> {
        None
    }

    /// Declares a queue with its bindings, and the exchanges they name (Kombu's `Queue.declare`).
    fn declare(&self, queue: &Queue) -> Result<QueueInfo> {
        for b in &queue.bindings {
            if !b.exchange.is_default() {
                self.declare_exchange(&b.exchange, false)?;
            }
        }
        let info = self.declare_queue(queue, false)?;
        for b in &queue.bindings {
            if !b.exchange.is_default() {
                self.bind_queue(&info.name, &b.exchange.name, &b.routing_key, &b.arguments)?;
            }
        }
        Ok(info)
    }
}

/// [`Channel::dead_letter`]'s default: declares `target.to`, publishes a copy there (confirmed) with the
/// reason in its headers, then acknowledges the original. For backends that override `dead_letter` and
/// fall back to it.
pub fn dead_letter_by_copy<C: Channel + ?Sized>(channel: &C, message: &Message, target: &DeadLetter<'_>) -> Result<()> {
    channel.declare_queue(&Queue::new(target.to), false)?;
    let mut copy = message.detached();
    copy.headers.insert("x-kombu-dead-letter-reason", target.reason);
    copy.headers.insert("x-kombu-dead-letter-queue", target.queue);
    let options = PublishOptions { confirm_timeout: Some(DEAD_LETTER_CONFIRM), ..Default::default() };
    channel.publish(copy, "", target.to, &options)?;
    channel.ack(&message.delivery_info.delivery_tag)
}

/// How long dead-lettering by copy waits for the broker to confirm the copy.
const DEAD_LETTER_CONFIRM: Duration = Duration::from_secs(30);

/// The calls of a [`Channel`] that an async caller awaits: each keeps the meaning of the blocking call of
/// the same name (`Ok` means done: a confirmed publish is on the broker, an ack has been sent) and must
/// never block the thread that polls it. Returned by [`Channel::nonblocking`].
///
/// Cancellation: a future dropped before it resolves has done its work once or not at all (a publish is
/// then as a publish whose confirm never came: it may be on the broker).
#[async_trait::async_trait]
pub trait AsyncChannel: Send + Sync {
    /// [`Channel::publish`], awaited.
    async fn publish(
        &self,
        message: Message,
        exchange: &str,
        routing_key: &str,
        options: &PublishOptions,
    ) -> Result<()>;
    /// [`Channel::publish_batch`], awaited: by default one publish after another.
    async fn publish_batch(&self, batch: Vec<Outgoing>, options: &PublishOptions) -> Result<()> {
        for o in batch {
            self.publish(o.message, &o.exchange, &o.routing_key, options).await?;
        }
        Ok(())
    }
    /// [`Channel::ack`], awaited.
    async fn ack(&self, tag: &DeliveryTag) -> Result<()>;
    /// [`Channel::reject`], awaited.
    async fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()>;
    /// Waits until every publish made through this side before now is on the broker (a backend whose
    /// unconfirmed publishes resolve before the broker answers them); returns a refusal of one not
    /// reported yet. The async channel's other operations await it first, so a channel reads its own
    /// writes. By default there is nothing to wait for.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
    /// Whether the channel's own blocking calls (publish, ack, reject) never wait: they are done in
    /// place, in this process (memory). The async API then makes them directly, after a unit of the
    /// task's cooperative budget, instead of through this trait's boxed futures. `false` by default.
    fn in_place(&self) -> bool {
        false
    }
}

thread_local! {
    static FROM_ASYNC_API: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current call comes from the async API (`aio`, feature `tokio`): it then runs on a thread
/// of the caller's tokio runtime (its blocking pool, or a connection attempt entered into the runtime), so
/// a backend that runs on tokio may use `tokio::runtime::Handle::current()` instead of a runtime of its own.
pub fn from_async_api() -> bool {
    FROM_ASYNC_API.with(|f| f.get())
}

/// Runs `f` marked as coming from the async API (see [`from_async_api`]).
#[cfg(feature = "tokio")]
pub(crate) fn as_async_api<T>(f: impl FnOnce() -> T) -> T {
    let before = FROM_ASYNC_API.with(|flag| flag.replace(true));
    let out = f();
    FROM_ASYNC_API.with(|flag| flag.set(before));
    out
}

/// Wakes a connection's consumers: registers the connection's event sources (sockets, or a waker for
/// sources on other threads) with a [`Hub`](crate::Hub), and turns their readiness into deliveries.
pub trait Poller: Send {
    /// Blocking setup (connecting sockets, handshakes), run on a thread of its own before
    /// [`register`](Poller::register), so that an event loop never waits for a broker. The default does
    /// nothing.
    fn prepare(&mut self) -> Result<()> {
        Ok(())
    }
    /// Registers event sources; must not block (see [`prepare`](Poller::prepare)). Returns an error of
    /// kind `Connection` if the link it prepared is gone. Anything already waiting should be signalled (for example by waking).
    fn register(&mut self, sources: &mut Sources<'_>) -> Result<()>;
    /// One of its sources is ready (or it was woken, or a timer it set is due): push what can be delivered.
    /// A lost link is reported as an error of kind `Connection`, after pushing what arrived before: the
    /// connection's driver alone reconnects (following the failover list and the retry policy) and
    /// registers a new poller; a poller never reconnects on its own.
    fn ready(&mut self, event: &Event, sources: &mut Sources<'_>, out: &mut Vec<Delivery>) -> Result<()>;
    /// Removes its event sources.
    fn deregister(&mut self, sources: &mut Sources<'_>) -> Result<()>;
}

impl std::fmt::Debug for dyn Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transport({})", self.name())
    }
}

impl std::fmt::Debug for dyn Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Channel(open: {})", self.is_open())
    }
}

impl std::fmt::Debug for dyn BrokerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BrokerConnection(open: {})", self.is_open())
    }
}
