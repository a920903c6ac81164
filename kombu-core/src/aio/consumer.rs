//! The async [`Consumer`]: a stream of the messages of one or more queues, on a channel of its own,
//! with a prefetch window, an accept list and the poison policy of the blocking consumer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::engine::{Engine, Item};
use super::{Connection, Message};
use crate::consumer::{RefusalFn, Subscription};
use crate::entity::Queue;
use crate::error::Result;
use crate::fields::{FieldTable, FieldValue};
use crate::poison::PoisonPolicy;
use crate::serialization::Accept;

/// The prefetch window of an async consumer unless set: how many messages it may hold unacknowledged.
pub const DEFAULT_PREFETCH: u16 = 100;

/// Builds an async [`Consumer`]; [`consume`](ConsumerBuilder::consume) starts it.
#[derive(Debug)]
#[must_use]
pub struct ConsumerBuilder {
    connection: Connection,
    queues: Vec<Queue>,
    accept: Accept,
    prefetch: u16,
    no_ack: bool,
    arguments: FieldTable,
    auto_declare: bool,
    poison: PoisonPolicy,
}

impl ConsumerBuilder {
    /// Content types to accept (others go to the poison policy, never to the stream).
    pub fn accept(mut self, accept: Accept) -> Self {
        self.accept = accept;
        self
    }
    /// How many messages the consumer may hold unacknowledged (default [`DEFAULT_PREFETCH`]); it bounds
    /// what a slow stream keeps in memory. `0` means no limit: the stream then keeps what the broker sends.
    pub fn prefetch(mut self, n: u16) -> Self {
        self.prefetch = n;
        self
    }
    /// Consumes without acknowledgements: messages are settled on delivery. The prefetch window does not
    /// bound such a consumer on every broker, and messages it holds are lost if it is dropped.
    pub fn no_ack(mut self, yes: bool) -> Self {
        self.no_ack = yes;
        self
    }
    /// A consumer argument (`x-stream-offset`, `x-priority`), as for the blocking consumer.
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.arguments.insert(key, value);
        self
    }
    /// Whether to declare the queues first (default true).
    pub fn auto_declare(mut self, yes: bool) -> Self {
        self.auto_declare = yes;
        self
    }
    /// The poison policy (redelivery limit, dead-letter queue names).
    pub fn poison_policy(mut self, policy: PoisonPolicy) -> Self {
        self.poison = policy;
        self
    }

    /// Starts consuming: declares the queues (unless told not to), sets the prefetch window and
    /// subscribes, on a channel of the consumer's own.
    pub async fn consume(self) -> Result<Consumer> {
        let engine = self.connection.engine()?;
        let (tx, rx) = super::inbox::inbox();
        engine.watch(tx.clone());
        let channel = self.connection.channel().await?.raw();
        let deliver = tx.clone();
        let refusals: RefusalFn = Arc::new(move |message, queue: &str, reason| {
            let refused = Item::DeadLetter { message: Box::new(message), queue: queue.to_owned(), reason };
            if let Err(Item::DeadLetter { message, .. }) = tx.send(refused) {
                requeue_orphan(&message);
            }
        });
        let mut blocking = crate::Consumer::new(self.connection.blocking(), self.queues)
            .channel(channel.clone())
            .accept(self.accept)
            .no_ack(self.no_ack)
            .auto_declare(self.auto_declare)
            .arguments(self.arguments)
            .poison_policy(self.poison.clone())
            .refusals(refusals)
            .on_message(move |m| {
                if let Err(Item::Message(m)) = deliver.send(Item::Message(Box::new(m))) {
                    requeue_orphan(&m);
                }
            });
        if self.prefetch > 0 {
            blocking = blocking.prefetch(self.prefetch);
        }
        let ch = channel.clone();
        let started = super::blocking(move || match blocking.consume() {
            Ok(subscription) => Ok(subscription),
            Err(e) => {
                if let Err(closing) = ch.close() {
                    tracing::debug!("closing the channel of a consumer that did not start: {closing:#}");
                }
                Err(e)
            }
        })
        .await?;
        Ok(Consumer { channel, subscription: Some(started), rx, poison: self.poison, ended: false, engine })
    }
}

/// A delivery that came for a consumer whose stream is gone goes back to its queue.
fn requeue_orphan(message: &crate::Message) {
    if let Err(e) = message.reject(true) {
        tracing::debug!("requeue of a delivery for a dropped consumer: {e:#}");
    }
}

/// A stream of messages (`futures_core::Stream<Item = Result<Message>>`) from one or more queues.
///
/// An `Err` item is an error of the connection (a reconnect that gave up, a failing poller); after one
/// that ends the connection, the stream ends. Messages the accept list or the poison policy refuses never
/// reach the stream: they are dead-lettered (and logged), as by the blocking consumer.
///
/// [`cancel`](Consumer::cancel) stops new deliveries and returns those not yet handed out to their
/// queue; messages handed out can still be acknowledged. Dropping the consumer closes its channel: every
/// message it holds unacknowledged, handed out or not, goes back to its queue.
pub struct Consumer {
    channel: Arc<dyn crate::Channel>,
    subscription: Option<Subscription>,
    rx: super::inbox::Inbox,
    poison: PoisonPolicy,
    ended: bool,
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("tags", &self.consumer_tags()).field("ended", &self.ended).finish()
    }
}

impl Consumer {
    /// A consumer of `queues` on `connection`; configure it, then [`consume`](ConsumerBuilder::consume).
    pub fn builder(connection: &Connection, queues: impl IntoIterator<Item = Queue>) -> ConsumerBuilder {
        ConsumerBuilder {
            connection: connection.clone(),
            queues: queues.into_iter().collect(),
            accept: Accept::any(),
            prefetch: DEFAULT_PREFETCH,
            no_ack: false,
            arguments: FieldTable::new(),
            auto_declare: true,
            poison: PoisonPolicy::default(),
        }
    }

    /// The next message, `None` once the consumer was cancelled or its connection ended (the same as
    /// `StreamExt::next`, without the `futures` crate).
    pub async fn next(&mut self) -> Option<Result<Message>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next_item(cx)).await
    }

    /// The consumer tags, one per queue (empty once cancelled).
    pub fn consumer_tags(&self) -> &[Arc<str>] {
        self.subscription.as_ref().map_or(&[], |s| s.consumer_tags())
    }

    /// Stops new deliveries: when this resolves the broker delivers nothing more, and the deliveries
    /// received but not handed out went back to their queue. The stream then ends.
    pub async fn cancel(&mut self) -> Result<()> {
        self.ended = true;
        let cancelled = match self.subscription.take() {
            Some(subscription) => super::blocking(move || subscription.cancel()).await,
            None => Ok(()),
        };
        let mut first_err = cancelled.err();
        for m in self.take_buffered() {
            if let Err(e) = m.requeue().await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Messages received and not handed out (dead-letters are done on the way).
    fn take_buffered(&mut self) -> Vec<Message> {
        let mut left = Vec::new();
        while let Some(item) = self.rx.try_recv() {
            match item {
                Item::Message(m) => left.push(Message(m)),
                Item::DeadLetter { message, queue, reason } => self.dead_letter(*message, queue, reason),
                Item::Failed(_) | Item::End => {}
            }
        }
        left
    }

    /// Dead-letters a refused message where blocking is allowed; a failure is logged (the message then
    /// stays unacknowledged, and goes back to its queue with the channel).
    fn dead_letter(&self, message: crate::Message, queue: String, reason: String) {
        let poison = self.poison.clone();
        drop(tokio::task::spawn_blocking(move || {
            crate::transport::as_async_api(|| {
                if let Err(e) = poison.dead_letter(&message, &queue, &reason) {
                    tracing::error!("dead-lettering a message of '{queue}': {e:#}");
                }
            })
        }));
    }

    fn poll_next_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        // Out of messages, the stream turns the reactor itself once: what waits (in the broker's
        // buffer, or in a store in this process) comes here on this task, not by a wake of the engine's.
        let mut turned = false;
        self.engine.polled();
        loop {
            match self.rx.poll_recv(cx) {
                // Pending with messages queued: the task's cooperative budget is spent (it was woken to
                // yield), not the messages.
                Poll::Pending if !turned && self.rx.is_empty() => {
                    // Woken when the reactor has more, whoever turns it.
                    self.engine.wait(cx.waker());
                    if !self.engine.turn_now() {
                        return Poll::Pending;
                    }
                    turned = true;
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None | Some(Item::End)) => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Item::Message(m))) => return Poll::Ready(Some(Ok(Message(m)))),
                Poll::Ready(Some(Item::Failed(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Item::DeadLetter { message, queue, reason })) => {
                    self.dead_letter(*message, queue, reason)
                }
            }
        }
    }
}

impl futures_core::Stream for Consumer {
    type Item = Result<Message>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_item(cx)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let subscription = self.subscription.take();
        // After a reconnect the consumer runs on a new channel.
        let channel = subscription.as_ref().and_then(Subscription::channel).unwrap_or_else(|| self.channel.clone());
        // Closing the channel returns every unacknowledged message, handed out or not, to its queue.
        let close = move || {
            drop(subscription);
            if let Err(e) = channel.close() {
                tracing::warn!("closing a dropped consumer's channel: {e:#}");
            }
        };
        let buffered = self.take_buffered();
        drop(buffered);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || crate::transport::as_async_api(close))),
            Err(_) => {
                if let Err(e) = std::thread::Builder::new().name("kombu-consumer-drop".into()).spawn(close) {
                    tracing::error!("cannot close a dropped consumer's channel: {e}");
                }
            }
        }
    }
}
