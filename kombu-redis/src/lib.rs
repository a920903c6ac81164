//! The Redis backend of kombu-rs, wire-compatible with Python Kombu 5.x's redis transport: a Python
//! program and a Rust program share queues, exchanges, priorities, acknowledgements and restores on one
//! server.
//!
//! URL: `redis://[:password@|user:password@]host[:port][/db][?option=value&...]`, with Kombu's transport
//! options in the query (see [`RedisOptions`]). `rediss://` is Redis over TLS (rustls, feature `tls`, on by
//! default) on every socket: `rediss://host:6380/0?ssl_ca_certs=/etc/ca.pem&ssl_certfile=c.pem&ssl_keyfile=k.pem`
//! (redis-py's and Kombu's option names; see [`TlsOptions`]). `sentinel://s1:26379;sentinel://s2:26379/0?master_name=m`
//! finds the master through Redis Sentinel, as Kombu's sentinel transport (see [`SentinelOptions`]).
//!
//! Options (Kombu's names and defaults; declared in [`OPTIONS`] and checked by kombu-core when the URL is
//! opened: an unknown name is an error naming the nearest known one, a value out of range an error
//! naming the range; seconds may have fractions):
//!
//! | option | value | default |
//! |---|---|---|
//! | `visibility_timeout` | seconds, 0 to a year: how long a delivered, unacknowledged message stays invisible | 3600 |
//! | `ack_emulation` | flag: record deliveries in `unacked` so that they can be restored | true |
//! | `unacked_key`, `unacked_index_key`, `unacked_mutex_key` | key names (after `global_keyprefix`) | `unacked`, `unacked_index`, `unacked_mutex` |
//! | `unacked_mutex_expire` | seconds, 0 to a day: longest hold of the restore lock | 300 |
//! | `unacked_restore_interval` | seconds, 0 to a day (at least 10 ms is used): how often consumers look for timed-out deliveries | 10 |
//! | `unacked_restore_limit` | 1 to 1 000 000: most messages restored per look | 100 |
//! | `global_keyprefix` | text put before every key and pub/sub channel | empty |
//! | `fanout_prefix` | `true` (`/{db}.`), `false` (none) or a custom prefix | true |
//! | `fanout_patterns` | flag: fanout publishes go to `<exchange>/<routing key>` | true |
//! | `sep` | the separator inside binding members and priority queue names (Celery documents `sep=:`); it must not occur in routing keys or queue names | `\x06\x16` |
//! | `priority_steps` | the priority bands, `0,3,6,9` or `[0, 3, 6, 9]`: steps 0 to 9, including 0 | `[0, 3, 6, 9]` |
//! | `queue_order_strategy` | `round_robin`, `priority` or `sorted`: the order a consumer on several queues takes from them (see [`QueueOrder`]) | `round_robin` |
//! | `socket_timeout` | seconds, 0 (none) to a day: timeout of each command | 30 |
//! | `socket_connect_timeout` | seconds, 0 (the default) to an hour | 5 |
//! | `socket_keepalive` | flag: TCP keepalive | true |
//! | `health_check_interval` | seconds, 0 (off) to a day: how often the consumer sockets are checked | 25 |
//! | `polling_interval` | seconds, 0 to a day (at least 10 ms is used): longest wait between two looks at the queues | 1 |
//! | `max_connections` | 1 to 10 000: pooled command connections kept idle | 10 |
//! | `client_name` | `CLIENT SETNAME` of each connection | none |
//! | `consume_batch` | 1 to 10 000: most messages one consumer request takes | 256 |
//! | `client_tracking` | flag: wake consumers by client-side tracking of their queue keys | true |
//! | `wait_for_replicas` | 0 to 100: a confirmed publish returns once this many replicas have it (Redis `WAIT`), so that it survives a failover | 0 |
//! | `wait_for_replicas_timeout` | seconds, 1 ms to an hour: longest wait for them (then the publish is an error that may have reached the server) | 1 |
//! | `master_name` | `sentinel://` only, required: the name the sentinels monitor the master under | none |
//! | `sentinel_username`, `sentinel_password` | `sentinel://` only: credentials of the sentinels (Kombu's `sentinel_kwargs`); the master's are the URL's | none |
//! | `sentinel_ssl` | `sentinel://` only: flag: TLS to the sentinels too, with the `ssl_*` options | false |
//! | `ssl_ca_certs` | `rediss://` (and the master of `sentinel://`): PEM file of the CAs the server's certificate must chain to | Mozilla's roots |
//! | `ssl_certfile`, `ssl_keyfile` | TLS only: PEM files of a client certificate and its key (the key may be in the certificate file) | none |
//! | `ssl_cert_reqs` | TLS only: `required`, `optional` (the same for a client) or `none` (no verification, logged); `CERT_REQUIRED` etc. too | `required` |
//! | `ssl_check_hostname` | TLS only: flag: the certificate must name the host | true |
//!
//! Python Kombu reads `sep`, `priority_steps` and `queue_order_strategy` from its transport options
//! (Celery's `broker_transport_options`); a Python and a Rust program that share queues must give the
//! same `sep` and `priority_steps`, or they will not see each other's bindings and priority messages.
//!
//! Layout on the server (as Python Kombu writes it, `\x06\x16` being the default `sep`): binding sets
//! `_kombu.binding.<exchange>` with members `routing_key\x06\x16pattern\x06\x16queue`; a queue is a list
//! (LPUSH to publish, taken from the right), with priority bands in `queue\x06\x16<step>`; messages are
//! Kombu's JSON envelope; deliveries are recorded in the `unacked` hash and `unacked_index` sorted set
//! until acknowledged; fanout exchanges publish on `/<db>.<exchange>[/<routing key>]`.
//!
//! What differs from Kombu, on purpose (Python peers see the same data either way):
//! - Topic routing follows AMQP (`a.#` takes `a`), whoever routes; the binding's pattern field is still
//!   Kombu's regex, so Python publishers route to Rust bindings as Kombu does. This is the one routing
//!   difference: a Python publisher sends `a` to no `a.#` binding, a Rust publisher does.
//! - Publishing costs less than a round trip: a direct or topic exchange is routed by a Lua script beside
//!   its binding set (no SMEMBERS round trip, no client cache to keep current), and each channel writes
//!   its publishes at once but reads their replies in windows of 128, before its next other operation, or
//!   at once when a confirm is asked for. Unconfirmed publishes are sent again after a dropped connection
//!   (at least once). `publish_batch` reads the binding sets once and sends variadic LPUSHes.
//! - Consuming has no loss window: one Lua step pops up to N messages (bands in Kombu's BRPOP order,
//!   queues round-robin) and records each in `unacked`/`unacked_index` exactly as Kombu's QoS does, so a
//!   consumer killed at any instant leaves every message in its queue or in `unacked`, whence Kombu or
//!   kombu-rs restores it after the visibility timeout. Each request is also listed in a per-connection
//!   in-flight hash, so the messages of a request whose reply was lost with its socket go back at once.
//! - The consumer waits without BRPOP: it asks Redis to report changes to its queue keys (client-side
//!   caching invalidations, `CLIENT TRACKING ... BCAST PREFIX`, redirected to its pub/sub socket) and pops
//!   when told, plus once every `polling_interval` (the only trigger where tracking is unavailable).
//! - `Message::ack()` is one round trip (`MULTI ZREM HDEL EXEC` on a pooled connection), done when it
//!   returns, as in Python Kombu; `Message::ack_deferred()` queues the ack for a sender thread that
//!   sends queued acks in one transaction per batch, about one round trip later (and on close).
//! - A lost socket is reported to the connection's driver, which alone reconnects (failover list, retry
//!   policy); a payload that is not a Kombu envelope reaches the consumer unreadable, for its error
//!   handler or the dead-letter queue, byte for byte.
//! - A Rust consumer of a fanout queue receives the exchange's messages whatever their routing key
//!   (PSUBSCRIBE on `/<db>.<exchange>` and `/<db>.<exchange>/*`).
//! - Headers exchanges are routed (a Rust-only extension; the pattern field holds the JSON arguments).
//! - A restore by kombu-rs puts a message back in the queue it was taken from; Kombu re-routes it through
//!   the exchange (which can copy it to several queues). The visibility-timeout sweep routes as Kombu.
//!
//! RESP on the consumer's non-blocking sockets: commands are packed with the `redis` crate
//! (`Cmd::get_packed_command`); replies are framed with `redis-protocol`'s RESP2 decoder, which returns a
//! frame with the number of bytes it used, or "incomplete", so pipelined replies are taken off one
//! buffer as they arrive, whatever the read boundaries. The `redis` crate's own parser reads ahead from
//! its reader and reports an incomplete reply as an EOF error, which would mean re-parsing from the start
//! of the buffer on every partial read. The blocking command connections use the `redis` crate as is.

#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod acks;
mod channel;
mod client;
mod command;
mod connection;
pub mod cycle;
mod dial;
mod gather;
pub mod keys;
mod nonblocking;
mod options;
pub mod payload;
mod poller;
mod publish;
pub mod resp;
mod restore;
pub mod scripts;
mod sentinel;
mod socket;
mod tls;
mod wire;

pub use connection::RedisConnection;
pub use cycle::QueueOrder;
pub use options::{
    parse_priority_steps, CertReqs, RedisOptions, SentinelOptions, TlsOptions, DEFAULT_PRIORITY_STEPS, OPTIONS,
    SENTINEL_PORT,
};

use kombu_core::options::OptionSpec;
use kombu_core::registry::TransportDescriptor;
use kombu_core::transport::{BrokerConnection, Capabilities, PriorityOrder, Transport};
use kombu_core::{BrokerUrl, ExchangeKind, Result};

/// The `redis` transport.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedisTransport;

impl RedisTransport {
    /// The transport.
    pub fn new() -> Self {
        RedisTransport
    }
}

impl Transport for RedisTransport {
    fn name(&self) -> &str {
        "redis"
    }

    fn aliases(&self) -> Vec<String> {
        DESCRIPTOR.schemes().iter().map(|s| (*s).to_owned()).collect()
    }

    fn default_port(&self) -> Option<u16> {
        Some(6379)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .exchange_kinds(&[ExchangeKind::Direct, ExchangeKind::Topic, ExchangeKind::Fanout, ExchangeKind::Headers])
            .priority(PriorityOrder::LowestFirstInBands(DEFAULT_PRIORITY_STEPS.to_vec()))
            .event_driven(true)
            .external_broker(true)
    }

    fn options(&self) -> Option<&'static [OptionSpec]> {
        Some(OPTIONS)
    }

    /// Checks the options and, for TLS, reads the certificate files now, so that a missing or bad file
    /// is an error when the URL is opened rather than at the first connection.
    fn validate(&self, url: &BrokerUrl) -> Result<()> {
        let opts = RedisOptions::from_url(url)?;
        dial::Dialer::new(&opts).map(drop)
    }

    fn connect(&self, url: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
        self.validate(url)?;
        let opts = RedisOptions::from_url(url)?;
        Ok(Box::new(RedisConnection::open(opts)?))
    }
}

/// The Redis backend for the registry: the `kombu` facade registers it for its `redis` feature; a
/// program using this crate directly registers it with
/// `kombu_core::register_transport!(kombu_redis::DESCRIPTOR);`.
pub static DESCRIPTOR: TransportDescriptor =
    TransportDescriptor::new("redis", &["redis", "rediss", "sentinel"], || std::sync::Arc::new(RedisTransport::new()));

#[cfg(test)]
kombu_core::register_transport!(DESCRIPTOR);

#[cfg(test)]
mod tests {
    use super::*;

    fn kombu_redis_registered() {
        let e = kombu_core::Connection::open("rediss://localhost?ssl_ca_certs=/nonexistent/ca.pem").unwrap_err();
        assert_eq!(e.kind(), kombu_core::ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("ssl_ca_certs: cannot read '/nonexistent/ca.pem'"), "{e}");
    }

    #[test]
    fn transport_declares_kombus_redis_behaviour() {
        let t = RedisTransport::new();
        assert_eq!(t.name(), "redis");
        assert!(t.aliases().contains(&"rediss".to_string()));
        assert_eq!(t.default_port(), Some(6379));
        let caps = t.capabilities();
        assert_eq!(caps.priority, Some(PriorityOrder::LowestFirstInBands(vec![0, 3, 6, 9])));
        assert!(caps.supports(ExchangeKind::Headers) && caps.external_broker && !caps.message_ttl);
    }

    #[test]
    fn tls_options_on_plain_urls_and_bad_urls_are_argument_errors() {
        let t = RedisTransport::new();
        let e = t.validate(&"redis://localhost:6380/0?ssl_cert_reqs=none".parse().unwrap()).unwrap_err();
        assert_eq!(e.kind(), kombu_core::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("write rediss://"), "{e}");
        assert!(t.validate(&"rediss://localhost:6380/0?ssl_cert_reqs=CERT_NONE".parse().unwrap()).is_ok());
        let e = t.connect(&"redis://localhost/notanumber".parse().unwrap()).unwrap_err();
        assert_eq!(e.kind(), kombu_core::ErrorKind::InvalidArgument);
        assert!(t.validate(&"redis://h/0?priority_steps=5".parse().unwrap()).is_err());
        assert!(t.validate(&"redis://h:1/3?visibility_timeout=5".parse().unwrap()).is_ok());
        kombu_redis_registered();
        // Nothing listens on port 1: a recoverable connection error, not a panic.
        let e = t.connect(&"redis://127.0.0.1:1/0?socket_connect_timeout=0.5".parse().unwrap()).unwrap_err();
        assert!(e.is_recoverable(), "{e}");
    }
}
