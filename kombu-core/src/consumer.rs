//! `Consumer`: receives messages from one or more queues into a callback while its `Subscription` lives,
//! checking the accept list and decoding bodies; refused or undecodable messages go to an error handler
//! or, with none, to the [`PoisonPolicy`]: never lost, never a reason to stop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;

use crate::connection::{Connection, ConsumerSpec};
use crate::entity::Queue;
use crate::error::{Error, ErrorKind, Result};
use crate::fields::{FieldTable, FieldValue};
use crate::message::Message;
use crate::poison::PoisonPolicy;
use crate::serialization::Accept;
use crate::transport::Channel;

/// A user callback: hands the message back with the error when it refuses it.
type MessageFn = Box<dyn FnMut(Message) -> std::result::Result<(), Box<(Error, Message)>> + Send>;
/// What the connection's consumer table calls: a message, and why the backend could not read it.
type HandlerFn = Box<dyn FnMut(Message, Option<Error>) -> Result<()> + Send>;
type ErrorFn = Box<dyn FnMut(Error, Message) + Send>;
/// Takes a message the poison policy refuses (with its queue and the reason) in place of dead-lettering
/// it on the loop's thread: the async API dead-letters it where blocking is allowed.
pub(crate) type RefusalFn = Arc<dyn Fn(Message, &str, String) + Send + Sync>;

/// Consumes from queues: build it, then [`consume`](Consumer::consume), which returns the
/// [`Subscription`] that keeps it consuming until dropped or [cancelled](Subscription::cancel).
///
/// Messages arrive when the connection's events are processed: by [`Connection::drain_events`], or by a
/// [`Hub`](crate::Hub) the connection is registered with.
///
/// A message whose content type is not in the accept list, (with [`callback`](Consumer::callback)) whose
/// body does not decode, or that the backend could not read, does not reach the callback: it goes to the
/// [`on_error`](Consumer::on_error) handler, or, without one, to the dead-letter queue of the
/// [`PoisonPolicy`] (logged at error level). A message redelivered more than the policy allows goes there
/// too. Either way it is not lost, and the other messages keep flowing.
///
/// The consumer keeps its callbacks: after a cancel it consumes again with the same ones. Each
/// subscription calls them one message at a time.
pub struct Consumer {
    connection: Connection,
    channel: Option<Arc<dyn Channel>>,
    queues: Vec<Queue>,
    accept: Accept,
    prefetch: Option<u16>,
    no_ack: bool,
    arguments: FieldTable,
    auto_declare: bool,
    on_message: Option<Arc<Mutex<MessageFn>>>,
    on_error: Option<Arc<Mutex<ErrorFn>>>,
    poison: PoisonPolicy,
    refusals: Option<RefusalFn>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("queues", &self.queues.iter().map(|q| &q.name).collect::<Vec<_>>()).finish()
    }
}

impl Consumer {
    /// A consumer of `queues` on `connection` (on its default channel unless [`channel`](Consumer::channel)
    /// is set). Accepts every content type until [`accept`](Consumer::accept) says otherwise.
    pub fn new(connection: &Connection, queues: impl IntoIterator<Item = Queue>) -> Consumer {
        Consumer {
            connection: connection.clone(),
            channel: None,
            queues: queues.into_iter().collect(),
            accept: Accept::any(),
            prefetch: None,
            no_ack: false,
            arguments: FieldTable::new(),
            auto_declare: true,
            on_message: None,
            on_error: None,
            poison: PoisonPolicy::default(),
            refusals: None,
        }
    }

    /// Consumes on this channel.
    pub fn channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.channel = Some(channel);
        self
    }
    /// Only these content types reach the callback.
    pub fn accept(mut self, accept: Accept) -> Self {
        self.accept = accept;
        self
    }
    /// At most `n` unacknowledged messages at a time (sets the channel's QoS).
    pub fn prefetch(mut self, n: u16) -> Self {
        self.prefetch = Some(n);
        self
    }
    /// Adds a consumer argument, given to the broker with each queue's consume: on RabbitMQ a stream's
    /// starting point (`x-stream-offset`: `"first"`, `"last"`, `"next"`, an offset, or a timestamp) or the
    /// consumer's priority (`x-priority`). A transport that takes none refuses the consume with an error.
    ///
    /// ```no_run
    /// # let conn = kombu_core::Connection::open("amqp://localhost//").unwrap();
    /// let consumer = kombu_core::Consumer::new(&conn, [kombu_core::Queue::stream("events")])
    ///     .prefetch(100) // RabbitMQ requires a prefetch to consume a stream
    ///     .argument("x-stream-offset", "first");
    /// ```
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.arguments.insert(key, value);
        self
    }

    /// The broker forgets messages as it delivers them (no ack needed, none possible).
    pub fn no_ack(mut self, yes: bool) -> Self {
        self.no_ack = yes;
        self
    }
    /// Whether to declare the queues (and their exchanges and bindings) before consuming (default true).
    pub fn auto_declare(mut self, yes: bool) -> Self {
        self.auto_declare = yes;
        self
    }

    /// The callback for each accepted message; it settles the message (ack, reject, requeue) itself.
    pub fn on_message(mut self, callback: impl FnMut(Message) + Send + 'static) -> Self {
        let mut callback = callback;
        self.on_message = Some(Arc::new(Mutex::new(Box::new(move |m| {
            callback(m);
            Ok(())
        }))));
        self
    }

    /// The callback for each accepted message, with its body decoded as `T`. A body that does not decode
    /// goes to the error handler instead.
    pub fn callback<T, F>(mut self, callback: F) -> Self
    where
        T: DeserializeOwned,
        F: FnMut(T, Message) + Send + 'static,
    {
        let mut callback = callback;
        self.on_message = Some(Arc::new(Mutex::new(Box::new(move |m: Message| match m.decode::<T>() {
            Ok(body) => {
                callback(body, m);
                Ok(())
            }
            Err(e) => Err(Box::new((e, m))),
        }))));
        self
    }

    /// Handles messages that were refused (content type not accepted) or did not decode. The handler
    /// decides what happens to the message (for example `reject(false)` to dead-letter it).
    pub fn on_error(mut self, handler: impl FnMut(Error, Message) + Send + 'static) -> Self {
        self.on_error = Some(Arc::new(Mutex::new(Box::new(handler))));
        self
    }

    /// What happens to messages that cannot be handled and have no error handler, and to messages
    /// redelivered too often (default: [`PoisonPolicy::default`]).
    pub fn poison_policy(mut self, policy: PoisonPolicy) -> Self {
        self.poison = policy;
        self
    }

    /// Hands messages the poison policy refuses to `refusals` instead of dead-lettering them in the
    /// callback (which blocks).
    #[cfg(feature = "tokio")]
    pub(crate) fn refusals(mut self, refusals: RefusalFn) -> Self {
        self.refusals = Some(refusals);
        self
    }

    /// Sets the consumer arguments as a whole.
    #[cfg(feature = "tokio")]
    pub(crate) fn arguments(mut self, arguments: FieldTable) -> Self {
        self.arguments = arguments;
        self
    }

    /// Declares the queues (unless `auto_declare(false)`), sets QoS, and starts consuming. Messages
    /// arrive while the returned [`Subscription`] lives: dropping it, or [`Subscription::cancel`], stops
    /// them. The consumer can consume again afterwards, with the same callbacks.
    pub fn consume(&self) -> Result<Subscription> {
        let on_message = self
            .on_message
            .clone()
            .ok_or_else(|| Error::invalid("consumer has no callback: set on_message or callback"))?;
        let (channel, default_channel) = match &self.channel {
            Some(c) => (c.clone(), false),
            None => (self.connection.default_channel()?, true),
        };
        let accept = self.accept.clone();
        let on_error = self.on_error.clone();
        let poison = self.poison.clone();
        let refusals = self.refusals.clone();
        let tags: Vec<Arc<str>> = self.queues.iter().map(|_| self.connection.new_consumer_tag()).collect();
        let queue_of: HashMap<Arc<str>, String> =
            tags.iter().cloned().zip(self.queues.iter().map(|q| q.name.clone())).collect();
        let handler: HandlerFn = Box::new(move |m: Message, unreadable: Option<Error>| {
            let queue = m.delivery_info.consumer_tag.as_ref().and_then(|t| queue_of.get(t)).map_or("", |q| q.as_str());
            let turn_down =
                |err: Error, m: Message| refuse(on_error.as_deref(), refusals.as_ref(), &poison, queue, err, m);
            if let Some(err) = unreadable {
                return turn_down(err, m);
            }
            if let Some(reason) = poison.over_limit(&m) {
                return match &refusals {
                    Some(hand_over) => {
                        hand_over(m, queue, reason);
                        Ok(())
                    }
                    None => poison.dead_letter(&m, queue, &reason),
                };
            }
            if !accept.allows(m.content_type.as_deref()) {
                let err = Error::new(
                    ErrorKind::ContentDisallowed,
                    format!(
                        "message {} has content type '{}', which this consumer does not accept",
                        m.delivery_info.delivery_tag,
                        m.content_type.as_deref().unwrap_or("")
                    ),
                );
                return turn_down(err, m);
            }
            let handled = (*on_message.lock().unwrap_or_else(|e| e.into_inner()))(m);
            match handled {
                Ok(()) => Ok(()),
                Err(refused) => {
                    let (err, m) = *refused;
                    turn_down(err, m)
                }
            }
        });
        let handler = Arc::new(Mutex::new(handler));
        let table = self.connection.consumers().clone();
        for tag in &tags {
            table.insert(tag.clone(), handler.clone());
        }
        let spec = ConsumerSpec {
            queues: self.queues.clone(),
            tags: tags.clone(),
            no_ack: self.no_ack,
            arguments: self.arguments.clone(),
            prefetch: self.prefetch,
            declare: self.auto_declare,
            default_channel,
            channel: Mutex::new((channel.clone(), self.connection.generation())),
        };
        match self.connection.start_consumer(spec) {
            Ok(spec) => Ok(Subscription { connection: self.connection.clone(), spec: Some(spec) }),
            Err(e) => {
                for tag in &tags {
                    let _ = channel.cancel(tag);
                    table.remove(tag);
                }
                Err(e)
            }
        }
    }
}

/// A consumer's registration with its connection, made by [`Consumer::consume`]: its callbacks get
/// messages while this lives. Dropping it cancels it (an error then is logged); so does
/// [`cancel`](Subscription::cancel), which reports the error.
#[must_use = "dropping a Subscription cancels it at once: keep it while messages should arrive"]
pub struct Subscription {
    connection: Connection,
    /// `None` once cancelled.
    spec: Option<Arc<ConsumerSpec>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("tags", &self.consumer_tags()).finish()
    }
}

impl Subscription {
    /// The consumer tags, one per queue, in the consumer's order of queues.
    pub fn consumer_tags(&self) -> &[Arc<str>] {
        self.spec.as_ref().map_or(&[], |s| &s.tags)
    }

    /// The channel it consumes on now (a new one after a reconnect).
    #[cfg(feature = "tokio")]
    pub(crate) fn channel(&self) -> Option<Arc<dyn Channel>> {
        self.spec.as_ref().map(|s| s.channel())
    }

    /// Stops consuming; messages not yet delivered stay in their queues. The connection forgets the
    /// consumer even when the broker's cancel fails (the error says why), so it is never restarted.
    pub fn cancel(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        let Some(spec) = self.spec.take() else { return Ok(()) };
        self.connection.forget_consumer(&spec);
        let channel = spec.channel();
        let mut first_err = None;
        for tag in &spec.tags {
            // A closed channel took its consumers with it.
            if channel.is_open() {
                if let Err(e) = channel.cancel(tag) {
                    first_err.get_or_insert(e);
                }
            }
            self.connection.consumers().remove(tag);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let tags = self.consumer_tags().join(", ");
        if let Err(e) = self.stop() {
            tracing::warn!("cancelling consumer {tags} on drop: {e:#}");
        }
    }
}

/// A message the consumer cannot handle: to the error handler, or by the poison policy.
fn refuse(
    on_error: Option<&Mutex<ErrorFn>>,
    refusals: Option<&RefusalFn>,
    poison: &PoisonPolicy,
    queue: &str,
    err: Error,
    message: Message,
) -> Result<()> {
    match on_error {
        Some(handler) => {
            (*handler.lock().unwrap_or_else(|e| e.into_inner()))(err, message);
            Ok(())
        }
        None if message.channel().is_none() => {
            tracing::error!(
                "message {} from queue '{queue}' consumed with no_ack cannot be handled and is gone: {err:#}",
                message.delivery_info.delivery_tag
            );
            Ok(())
        }
        None => match refusals {
            Some(hand_over) => {
                hand_over(message, queue, err.report().to_string());
                Ok(())
            }
            None => poison.dead_letter(&message, queue, &err.report().to_string()),
        },
    }
}
