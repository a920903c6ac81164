//! Request and reply over any backend: [`RpcClient`] sends a request with `reply_to` and a fresh
//! `correlation_id` and waits for the matching reply; [`Message::reply`] answers a request on the serving
//! side.
//!
//! ```no_run
//! use std::time::Duration;
//! use kombu_core::{Connection, Consumer, Queue, RpcClient};
//! let conn = Connection::open("memory://rpc-doc").unwrap();
//! // The server: answers each request on `double` with twice its number.
//! let server = Consumer::new(&conn, [Queue::new("double")]).callback(|n: u64, request| {
//!     request.reply(&(n * 2)).unwrap();
//!     request.ack().unwrap();
//! });
//! let _serving = server.consume().unwrap();
//!
//! let rpc = RpcClient::new(&conn).unwrap();
//! let reply = rpc.call(rpc.producer().publish(&21).routing_key("double"), Duration::from_secs(5)).unwrap();
//! assert_eq!(reply.decode::<u64>().unwrap(), 42);
//! ```
//!
//! The client waits by driving its connection (`drain_events`), so other consumers of that connection
//! are served meanwhile, and the connection must not be in a Hub. A reply that comes after its call
//! timed out is dropped, logged at debug level.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::connection::Connection;
use crate::consumer::{Consumer, Subscription};
use crate::entity::Queue;
use crate::error::{Error, ErrorKind, Result};
use crate::message::Message;
use crate::producer::{Producer, Publish};
use crate::transport::{Channel, PublishOptions};

/// The longest a call may wait (an hour): a longer wait is a mistake, and a reply queue is not a store.
pub const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long an unused reply queue of [`RpcClient::new`] lives on the broker after the client is gone.
const REPLY_QUEUE_EXPIRES: Duration = Duration::from_secs(600);

/// Calls that wait for a reply, keyed by correlation id; `Some` once the reply came.
type Pending = Arc<Mutex<HashMap<String, Option<Message>>>>;

/// The client side of request and reply: a reply queue of its own, consumed on a channel of its own, and
/// a [`Producer`] on that same channel to send requests with.
pub struct RpcClient {
    connection: Connection,
    reply_to: String,
    producer: Producer,
    pending: Pending,
    _subscription: Subscription,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient").field("reply_to", &self.reply_to).finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A client on the broker's direct reply-to where the transport has one
    /// ([`Capabilities::direct_reply_to`](crate::Capabilities::direct_reply_to)), else on a reply queue of its
    /// own ([`with_reply_queue`](RpcClient::with_reply_queue)).
    pub fn new(connection: &Connection) -> Result<RpcClient> {
        match connection.capabilities().direct_reply_to {
            Some(pseudo_queue) => Self::direct(connection, pseudo_queue),
            None => Self::with_reply_queue(connection),
        }
    }

    /// A client with a reply queue of its own (`kombu-rs.rpc.<uuid>`: not durable, deleted when the client
    /// goes, expiring ten minutes after it is last used where the broker supports it).
    pub fn with_reply_queue(connection: &Connection) -> Result<RpcClient> {
        let name = format!("kombu-rs.rpc.{}", uuid::Uuid::new_v4());
        let queue = Queue::new(&name).durable(false).auto_delete(true).expires(REPLY_QUEUE_EXPIRES);
        let channel = connection.channel()?;
        channel.declare(&queue)?;
        Self::start(connection, channel, queue)
    }

    /// A client that takes its replies from a queue the broker provides and answers on directly, neither
    /// declared nor acknowledged, such as RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): requests
    /// are then published on the consuming channel, as such queues require.
    pub fn direct(connection: &Connection, pseudo_queue: &str) -> Result<RpcClient> {
        Self::start(connection, connection.channel()?, Queue::new(pseudo_queue))
    }

    fn start(connection: &Connection, channel: Arc<dyn Channel>, queue: Queue) -> Result<RpcClient> {
        let pending: Pending = Arc::default();
        let inbox = pending.clone();
        let reply_to = queue.name.clone();
        let consumer =
            Consumer::new(connection, [queue]).channel(channel.clone()).auto_declare(false).no_ack(true).on_message(
                move |reply| {
                    let id = reply.properties.correlation_id.clone().unwrap_or_default();
                    let mut pending = inbox.lock().unwrap_or_else(|e| e.into_inner());
                    match pending.get_mut(&id) {
                        Some(slot) => *slot = Some(reply),
                        None => tracing::debug!("dropped a reply for no waiting call (correlation id '{id}')"),
                    }
                },
            );
        let subscription = consumer.consume()?;
        Ok(RpcClient {
            connection: connection.clone(),
            reply_to,
            producer: Producer::on_channel(channel),
            pending,
            _subscription: subscription,
        })
    }

    /// The queue replies come to (the requests' `reply_to`).
    pub fn reply_to(&self) -> &str {
        &self.reply_to
    }

    /// The producer to build requests with: on the reply queue's channel (which direct reply-to needs).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Sends `request` with this client's `reply_to` and a fresh correlation id, and waits up to `timeout`
    /// (at most [`MAX_CALL_TIMEOUT`]) for the reply with that id. A `Timeout` error if none came.
    pub fn call<T: Serialize + ?Sized>(&self, request: Publish<'_, T>, timeout: Duration) -> Result<Message> {
        if timeout > MAX_CALL_TIMEOUT {
            return Err(Error::invalid(format!("an RPC timeout of {timeout:?} is longer than an hour")));
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), None);
        let outcome = request
            .correlation_id(id.clone())
            .reply_to(self.reply_to.clone())
            .send()
            .and_then(|()| self.wait(&id, Instant::now() + timeout, timeout));
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        outcome
    }

    fn wait(&self, id: &str, deadline: Instant, timeout: Duration) -> Result<Message> {
        loop {
            if let Some(reply) =
                self.pending.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id).and_then(Option::take)
            {
                return Ok(reply);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::timeout(format!("no reply to request {id} within {timeout:?}")));
            }
            match self.connection.drain_events(Some(left)) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Timeout => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Message {
    /// Answers this request: publishes `body` (as JSON) to its `reply_to` queue through the default exchange,
    /// with its `correlation_id`, on the channel it came from. An error if it has no `reply_to`, or was not
    /// received from a channel.
    pub fn reply<T: Serialize + ?Sized>(&self, body: &T) -> Result<()> {
        let (encoded, content_type, encoding) = crate::serialization::encode("json", body)?;
        self.reply_with(Message::new(encoded).content_type(content_type).content_encoding(encoding))
    }

    /// [`reply`](Message::reply) with a message of your own (body, content type, headers); its correlation
    /// id is set to the request's.
    pub fn reply_with(&self, mut reply: Message) -> Result<()> {
        let to = self
            .properties
            .reply_to
            .as_deref()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| Error::invalid("cannot reply: the request has no reply_to"))?;
        let channel =
            self.channel().ok_or_else(|| Error::state("cannot reply: the request was not received from a channel"))?;
        reply.properties.correlation_id = self.properties.correlation_id.clone();
        channel.publish(reply, "", to, &PublishOptions::default())
    }
}
