//! Exchanges, queues and bindings: the named things a program declares on a broker.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fields::{FieldTable, FieldValue};

/// How an exchange routes a message to its bound queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ExchangeKind {
    /// The routing key must equal the binding key.
    #[default]
    Direct,
    /// The binding key is a pattern of dot-separated words, `*` for one word and `#` for zero or more.
    Topic,
    /// Every bound queue gets a copy; the routing key is ignored.
    Fanout,
    /// The message headers are matched against the binding's arguments (`x-match` `all` or `any`).
    Headers,
}

impl ExchangeKind {
    /// All kinds.
    pub const ALL: [ExchangeKind; 4] =
        [ExchangeKind::Direct, ExchangeKind::Topic, ExchangeKind::Fanout, ExchangeKind::Headers];

    /// The AMQP name of the kind (`direct`, `topic`, `fanout`, `headers`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Headers => "headers",
        }
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExchangeKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "direct" => Ok(ExchangeKind::Direct),
            "topic" => Ok(ExchangeKind::Topic),
            "fanout" => Ok(ExchangeKind::Fanout),
            "headers" => Ok(ExchangeKind::Headers),
            other => Err(Error::invalid(format!(
                "unknown exchange type '{other}' (expected direct, topic, fanout or headers)"
            ))),
        }
    }
}

/// An exchange: where messages are published, and which routes them to queues.
///
/// ```
/// use kombu_core::{Exchange, ExchangeKind};
/// let ex = Exchange::topic("logs").durable(false);
/// assert_eq!(ex.kind, ExchangeKind::Topic);
/// assert!(!ex.durable);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Exchange {
    /// The name; the empty name is the default exchange, which routes to the queue named by the routing key.
    pub name: String,
    /// How it routes.
    pub kind: ExchangeKind,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when the last queue is unbound from it.
    pub auto_delete: bool,
    /// Broker-specific arguments.
    pub arguments: FieldTable,
}

impl Exchange {
    /// An exchange of `kind` named `name` (durable, not auto-deleted, as in Kombu).
    pub fn new(name: impl Into<String>, kind: ExchangeKind) -> Self {
        Exchange { name: name.into(), kind, durable: true, auto_delete: false, arguments: FieldTable::new() }
    }
    /// A direct exchange.
    pub fn direct(name: impl Into<String>) -> Self {
        Exchange::new(name, ExchangeKind::Direct)
    }
    /// A topic exchange.
    pub fn topic(name: impl Into<String>) -> Self {
        Exchange::new(name, ExchangeKind::Topic)
    }
    /// A fanout exchange.
    pub fn fanout(name: impl Into<String>) -> Self {
        Exchange::new(name, ExchangeKind::Fanout)
    }
    /// A headers exchange.
    pub fn headers(name: impl Into<String>) -> Self {
        Exchange::new(name, ExchangeKind::Headers)
    }
    /// The default exchange (`""`).
    pub fn default_exchange() -> Self {
        Exchange::direct("")
    }
    /// Sets durability.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }
    /// Sets auto-delete.
    pub fn auto_delete(mut self, auto_delete: bool) -> Self {
        self.auto_delete = auto_delete;
        self
    }
    /// Adds an argument.
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.arguments.insert(key, value);
        self
    }
    /// Whether this is the default exchange.
    pub fn is_default(&self) -> bool {
        self.name.is_empty()
    }
}

/// A binding of a queue to an exchange.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Binding {
    /// The exchange bound from.
    pub exchange: Exchange,
    /// The binding key (a pattern for topic exchanges; ignored by fanout and headers).
    pub routing_key: String,
    /// Binding arguments; for headers exchanges the headers to match and `x-match`.
    pub arguments: FieldTable,
}

impl Binding {
    /// A binding to `exchange` with `routing_key`.
    pub fn new(exchange: Exchange, routing_key: impl Into<String>) -> Self {
        Binding { exchange, routing_key: routing_key.into(), arguments: FieldTable::new() }
    }
    /// Adds a binding argument (for a headers exchange: a header to match, or `x-match`).
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.arguments.insert(key, value);
        self
    }
}

/// A queue, with the exchange bindings that feed it.
///
/// ```
/// use kombu_core::{Exchange, Queue};
/// let q = Queue::new("tasks").bind(Exchange::direct("jobs"), "tasks").max_priority(9);
/// assert_eq!(q.bindings.len(), 1);
/// assert_eq!(q.max_priority, Some(9));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Queue {
    /// The queue name.
    pub name: String,
    /// Bindings declared with the queue.
    pub bindings: Vec<Binding>,
    /// Survives a broker restart.
    pub durable: bool,
    /// Used by one connection only, deleted when it closes.
    pub exclusive: bool,
    /// Deleted when its last consumer cancels.
    pub auto_delete: bool,
    /// Highest priority (enables priorities; AMQP `x-max-priority`).
    pub max_priority: Option<u8>,
    /// How long a message may wait in the queue (AMQP `x-message-ttl`).
    pub message_ttl: Option<Duration>,
    /// How long the queue may go unused before it is deleted (AMQP `x-expires`).
    pub expires: Option<Duration>,
    /// Exchange that rejected or expired messages go to (AMQP `x-dead-letter-exchange`).
    pub dead_letter_exchange: Option<String>,
    /// Routing key for dead-lettered messages (AMQP `x-dead-letter-routing-key`).
    pub dead_letter_routing_key: Option<String>,
    /// Other broker-specific arguments.
    pub arguments: FieldTable,
}

impl Queue {
    /// A durable queue named `name`, with no bindings.
    pub fn new(name: impl Into<String>) -> Self {
        Queue {
            name: name.into(),
            bindings: Vec::new(),
            durable: true,
            exclusive: false,
            auto_delete: false,
            max_priority: None,
            message_ttl: None,
            expires: None,
            dead_letter_exchange: None,
            dead_letter_routing_key: None,
            arguments: FieldTable::new(),
        }
    }
    /// Kombu's `Queue(name, exchange, routing_key)`.
    pub fn with_exchange(name: impl Into<String>, exchange: Exchange, routing_key: impl Into<String>) -> Self {
        Queue::new(name).bind(exchange, routing_key)
    }
    /// Adds a binding to `exchange` with `routing_key`.
    pub fn bind(mut self, exchange: Exchange, routing_key: impl Into<String>) -> Self {
        self.bindings.push(Binding::new(exchange, routing_key));
        self
    }
    /// Adds a prepared binding (for example a headers binding with arguments).
    pub fn binding(mut self, binding: Binding) -> Self {
        self.bindings.push(binding);
        self
    }
    /// Sets durability.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }
    /// Sets exclusivity.
    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.exclusive = exclusive;
        self
    }
    /// Sets auto-delete.
    pub fn auto_delete(mut self, auto_delete: bool) -> Self {
        self.auto_delete = auto_delete;
        self
    }
    /// Enables priorities up to `max` (clamped to 255).
    pub fn max_priority(mut self, max: u8) -> Self {
        self.max_priority = Some(max);
        self
    }
    /// Sets the per-queue message TTL.
    pub fn message_ttl(mut self, ttl: Duration) -> Self {
        self.message_ttl = Some(ttl);
        self
    }
    /// Sets the queue expiry.
    pub fn expires(mut self, expires: Duration) -> Self {
        self.expires = Some(expires);
        self
    }
    /// Sets the dead-letter exchange (and optionally its routing key).
    pub fn dead_letter(mut self, exchange: impl Into<String>, routing_key: Option<String>) -> Self {
        self.dead_letter_exchange = Some(exchange.into());
        self.dead_letter_routing_key = routing_key;
        self
    }
    /// Adds an argument.
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.arguments.insert(key, value);
        self
    }

    /// A replicated quorum queue (`x-queue-type: quorum`, durable), on brokers that have them (RabbitMQ);
    /// it counts deliveries (`x-delivery-count`), which the [`PoisonPolicy`](crate::PoisonPolicy) reads.
    pub fn quorum(name: impl Into<String>) -> Self {
        Queue::new(name).durable(true).argument("x-queue-type", "quorum")
    }

    /// A stream (`x-queue-type: stream`, durable): an append-only log that consumers read from an offset
    /// ([`Consumer::argument`](crate::Consumer::argument) `x-stream-offset`) with a prefetch set; messages
    /// stay after they are acknowledged.
    pub fn stream(name: impl Into<String>) -> Self {
        Queue::new(name).durable(true).argument("x-queue-type", "stream")
    }

    /// A quorum queue's redelivery limit (`x-delivery-limit`): the broker drops or dead-letters a message
    /// delivered more often.
    pub fn delivery_limit(self, limit: u32) -> Self {
        self.argument("x-delivery-limit", i64::from(limit))
    }

    /// The queue's arguments in AMQP form: `arguments` plus `x-max-priority`, `x-message-ttl`, `x-expires`
    /// and the dead-letter settings.
    pub fn amqp_arguments(&self) -> FieldTable {
        let mut args = self.arguments.clone();
        if let Some(p) = self.max_priority {
            args.insert("x-max-priority", i32::from(p));
        }
        if let Some(ttl) = self.message_ttl {
            args.insert("x-message-ttl", millis(ttl));
        }
        if let Some(exp) = self.expires {
            args.insert("x-expires", millis(exp));
        }
        if let Some(dlx) = &self.dead_letter_exchange {
            args.insert("x-dead-letter-exchange", dlx);
        }
        if let Some(rk) = &self.dead_letter_routing_key {
            args.insert("x-dead-letter-routing-key", rk);
        }
        args
    }
}

/// A duration in whole milliseconds, as AMQP's `x-` arguments take it, of the integer kind py-amqp
/// writes (so a queue Python declared is declared again with equal arguments).
fn millis(d: Duration) -> FieldValue {
    FieldValue::int(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What a broker reports about a declared queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct QueueInfo {
    /// The queue's name (brokers may generate one).
    pub name: String,
    /// Messages ready in the queue.
    pub message_count: u64,
    /// Active consumers.
    pub consumer_count: u32,
}

impl QueueInfo {
    /// A queue report.
    pub fn new(name: impl Into<String>, message_count: u64, consumer_count: u32) -> Self {
        QueueInfo { name: name.into(), message_count, consumer_count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_kind_parses_and_prints() {
        for k in ExchangeKind::ALL {
            assert_eq!(k.as_str().parse::<ExchangeKind>().unwrap(), k);
        }
        let err = "fan".parse::<ExchangeKind>().unwrap_err();
        assert!(err.to_string().contains("fan"));
    }

    #[test]
    fn queue_amqp_arguments() {
        let q = Queue::new("q")
            .max_priority(5)
            .message_ttl(Duration::from_millis(1500))
            .dead_letter("dlx", Some("dead".into()));
        let a = q.amqp_arguments();
        assert_eq!(a["x-max-priority"], 5);
        assert_eq!(a["x-message-ttl"], 1500);
        assert_eq!(a["x-dead-letter-exchange"], "dlx");
        assert_eq!(a["x-dead-letter-routing-key"], "dead");
    }
}
