//! The virtual channel: one [`Channel`] for every backend that keeps its own queues, over a small
//! [`Backend`] trait that only stores and moves messages (Python Kombu's `virtual.Channel` over a
//! transport's `_get`, `_put`, `_purge`, ...). Consumers, delivery tags, prefetch, unacked bookkeeping
//! and restore on close live here once; the backend says how to take, settle and put back a message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::connection::ConnectionState;
use super::consumers::Consumers;
use super::cycle::Turn;
use super::entities::Entities;
use super::ledger::Ledger;
use super::tags::TagHasher;
use super::wake::WakeSlot;
use crate::transport::{dead_letter_by_copy, AsyncChannel, Channel, DeadLetter, Delivery, PublishOptions};
use crate::{DeliveryTag, Error, Exchange, FieldTable, Message, Queue, QueueInfo, Result};

/// Most messages one consumer is offered per turn before the next consumer's turn.
pub const TURN: usize = 16;

/// What a backend that keeps its own queues provides to [`VirtualChannel`]: its store's [`Entities`],
/// and how to take, settle and put back messages. Implemented by the memory broker and the filesystem
/// store.
pub trait Backend: Entities + Sized + 'static {
    /// What a channel keeps for each delivery until it is settled: enough to ack, requeue or reject it
    /// (the queue and the stored message, a claimed file).
    type Held: Send + 'static;

    /// What one collection round keeps between consumers' turns (a lock on the broker state, directory
    /// listings), so that a round pays once for what every turn needs.
    type Round<'a>
    where
        Self: 'a;

    /// Starts a collection round (or a `get`).
    fn round(&self) -> Self::Round<'_>;
    /// Takes up to `max` ready messages of `queue` into `out` (fewer is fine: a backend may take one
    /// per turn). A queue that does not exist is an error.
    fn take(
        &self,
        round: &mut Self::Round<'_>,
        queue: &Arc<str>,
        max: usize,
        out: &mut Vec<(Message, Self::Held)>,
    ) -> Result<()>;
    /// Forgets a delivery for good (acked, or taken without ack).
    fn ack(&self, held: Self::Held) -> Result<()>;
    /// Puts deliveries back at the head of their queues, marked redelivered, in the order given (oldest
    /// delivery first), and wakes the pollers that consume from them: the restore hook.
    fn requeue(&self, held: Vec<Self::Held>) -> Result<()>;
    /// Settles a rejected delivery that is not requeued: dropped, or dead-lettered by the queue.
    fn reject(&self, held: Self::Held) -> Result<()>;

    /// A consumer starts on `queue` (which must exist); `slot` is its connection's poller, to wake when
    /// the queue gets messages.
    fn watch(&self, queue: &str, slot: &Arc<WakeSlot>) -> Result<()>;
    /// A consumer of `queue` stopped.
    fn unwatch(&self, _queue: &str) {}
    /// Whether `queue` dead-letters rejected messages itself (then [`Channel::dead_letter`] rejects
    /// instead of publishing a copy).
    fn dead_letters_itself(&self, _queue: &str) -> bool {
        false
    }
}

#[derive(Default)]
struct State<H> {
    consumers: Consumers,
    ledger: Ledger<H, TagHasher>,
}

/// A channel of a [`Backend`] (opened by [`ConnectionState::open_channel`]): consumers taking turns, deliveries numbered 1, 2, ... within the
/// prefetch limit, unacknowledged messages put back when the channel closes or recovers.
pub struct VirtualChannel<B: Backend> {
    me: Weak<VirtualChannel<B>>,
    conn: Arc<ConnectionState<B>>,
    state: Mutex<State<B::Held>>,
    open: AtomicBool,
}

impl<B: Backend> std::fmt::Debug for VirtualChannel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualChannel").field("open", &self.open.load(Ordering::Relaxed)).finish()
    }
}

impl<B: Backend> VirtualChannel<B> {
    /// Opens a channel on the connection `conn` ([`ConnectionState::open_channel`] also lists it).
    pub(crate) fn open(conn: Arc<ConnectionState<B>>) -> Arc<VirtualChannel<B>> {
        Arc::new_cyclic(|me| VirtualChannel {
            me: me.clone(),
            conn,
            state: Mutex::new(State { consumers: Consumers::default(), ledger: Ledger::default() }),
            open: AtomicBool::new(true),
        })
    }

    fn backend(&self) -> &B {
        self.conn.backend()
    }

    fn state(&self) -> MutexGuard<'_, State<B::Held>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_open(&self) -> Result<()> {
        if self.is_open() {
            Ok(())
        } else {
            Err(Error::state("channel is closed"))
        }
    }

    /// Numbers a taken message; records it as unacknowledged unless `no_ack` (then it is forgotten).
    fn deliver(
        &self,
        ledger: &mut Ledger<B::Held, TagHasher>,
        mut message: Message,
        held: B::Held,
        no_ack: bool,
        consumer: Option<&Arc<str>>,
    ) -> Message {
        let me = if no_ack { None } else { self.me.upgrade().map(|c| c as Arc<dyn Channel>) };
        if let Some(held) = ledger.deliver(&mut message, held, no_ack, consumer, me) {
            if let Err(e) = self.backend().ack(held) {
                tracing::warn!("cannot forget a message taken without ack: {e:#}");
            }
        }
        message
    }

    /// Moves up to `budget` ready messages to this channel's consumers, in turn (up to [`TURN`] each),
    /// within prefetch. Returns whether it stopped because of the budget (more may be ready).
    pub fn collect(&self, out: &mut Vec<Delivery>, budget: usize) -> bool {
        if !self.is_open() {
            return false;
        }
        let mut guard = self.state();
        let st = &mut *guard;
        if st.consumers.is_empty() {
            return false;
        }
        let mut round = self.backend().round();
        let mut delivered = 0;
        let mut batch = Vec::with_capacity(TURN);
        st.consumers.round(|c| {
            let max = st.ledger.room().min(budget - delivered).min(TURN);
            if max == 0 {
                return Turn::Stop;
            }
            if let Err(e) = self.backend().take(&mut round, &c.queue, max, &mut batch) {
                tracing::debug!("consumer '{}' on queue '{}': {e:#}", c.tag, c.queue);
            }
            let got = batch.len();
            for (message, held) in batch.drain(..) {
                let message = self.deliver(&mut st.ledger, message, held, c.no_ack, Some(&c.tag));
                out.push(Delivery::new(c.tag.clone(), message));
            }
            delivered += got;
            Turn::took(got)
        });
        delivered == budget
    }

    fn settle(&self, tag: &DeliveryTag) -> Result<B::Held> {
        let settled = self.state().ledger.settle(tag)?;
        if settled.wake {
            self.conn.wake_slot().wake();
        }
        Ok(settled.value)
    }

    /// Every unacknowledged message back to its queue, oldest first.
    fn restore_unacked(&self) -> Result<()> {
        let held = self.state().ledger.take_unsettled();
        if held.is_empty() {
            return Ok(());
        }
        self.backend().requeue(held)
    }
}

impl<B: Backend> Channel for VirtualChannel<B> {
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        self.check_open()?;
        self.backend().declare_exchange(exchange, passive)
    }

    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        self.check_open()?;
        self.backend().delete_exchange(name, if_unused)
    }

    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        self.check_open()?;
        self.backend().declare_queue(queue, passive)
    }

    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        self.check_open()?;
        self.backend().delete_queue(name, if_unused, if_empty)
    }

    fn bind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.check_open()?;
        self.backend().bind_queue(queue, exchange, routing_key, arguments)
    }

    fn unbind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.check_open()?;
        self.backend().unbind_queue(queue, exchange, routing_key, arguments)
    }

    fn purge_queue(&self, name: &str) -> Result<u64> {
        self.check_open()?;
        self.backend().purge_queue(name)
    }

    fn publish(&self, message: Message, exchange: &str, routing_key: &str, _options: &PublishOptions) -> Result<()> {
        self.check_open()?;
        self.backend().publish(message, exchange, routing_key)
    }

    fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Message>> {
        self.check_open()?;
        let mut st = self.state();
        let mut one = Vec::with_capacity(1);
        {
            let mut round = self.backend().round();
            self.backend().take(&mut round, &Arc::from(queue), 1, &mut one)?;
        }
        Ok(one.pop().map(|(message, held)| self.deliver(&mut st.ledger, message, held, no_ack, None)))
    }

    fn consume(&self, queue: &str, consumer_tag: &str, no_ack: bool) -> Result<()> {
        self.check_open()?;
        let mut st = self.state();
        st.consumers.add(consumer_tag, queue, no_ack)?;
        if let Err(e) = self.backend().watch(queue, self.conn.wake_slot()) {
            st.consumers.cancel(consumer_tag);
            return Err(e);
        }
        drop(st);
        self.conn.wake_slot().wake();
        Ok(())
    }

    fn cancel(&self, consumer_tag: &str) -> Result<()> {
        let cancelled = self.state().consumers.cancel(consumer_tag);
        if let Some(c) = cancelled {
            self.backend().unwatch(&c.queue);
        }
        Ok(())
    }

    fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        let held = self.settle(tag)?;
        self.backend().ack(held)
    }

    fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()> {
        let held = self.settle(tag)?;
        if requeue {
            self.backend().requeue(vec![held])
        } else {
            self.backend().reject(held)
        }
    }

    /// The queue's own dead-letter exchange when it has one (as a broker does on reject); otherwise a
    /// copy to `target.to`.
    fn dead_letter(&self, message: &Message, target: &DeadLetter<'_>) -> Result<()> {
        if self.backend().dead_letters_itself(target.queue) {
            return Channel::reject(self, &message.delivery_info.delivery_tag, false);
        }
        dead_letter_by_copy(self, message, target)
    }

    fn recover(&self, _requeue: bool) -> Result<()> {
        self.check_open()?;
        self.restore_unacked()
    }

    fn qos(&self, prefetch_count: u16) -> Result<()> {
        self.check_open()?;
        self.state().ledger.set_prefetch_count(prefetch_count);
        self.conn.wake_slot().wake();
        Ok(())
    }

    fn close(&self) -> Result<()> {
        if !self.open.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let consumers = self.state().consumers.clear();
        for c in consumers {
            self.backend().unwatch(&c.queue);
        }
        self.restore_unacked()
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire) && self.conn.is_open()
    }

    /// A backend keeps its queues in this process (memory) or on a local disk, and its calls are short:
    /// the async API awaits them in place.
    fn nonblocking(&self) -> Option<&dyn AsyncChannel> {
        Some(self)
    }
}

/// The calls run in place (see `nonblocking`). Under tokio each takes a unit of the task's cooperative
/// budget, so a loop of publishes that never waits still lets the runtime's other tasks run.
#[async_trait::async_trait]
impl<B: Backend> AsyncChannel for VirtualChannel<B> {
    async fn publish(
        &self,
        message: Message,
        exchange: &str,
        routing_key: &str,
        options: &PublishOptions,
    ) -> Result<()> {
        cooperate().await;
        Channel::publish(self, message, exchange, routing_key, options)
    }
    async fn publish_batch(&self, batch: Vec<crate::Outgoing>, options: &PublishOptions) -> Result<()> {
        cooperate().await;
        Channel::publish_batch(self, batch, options)
    }
    async fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        cooperate().await;
        Channel::ack(self, tag)
    }
    async fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()> {
        cooperate().await;
        Channel::reject(self, tag, requeue)
    }
    fn in_place(&self) -> bool {
        true
    }
}

async fn cooperate() {
    #[cfg(feature = "tokio")]
    tokio::task::consume_budget().await;
}

impl<B: Backend> Drop for VirtualChannel<B> {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!("closing a channel: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, VecDeque};

    /// A store of named queues of bodies, logging what the channel asks of it.
    #[derive(Default)]
    struct Toy {
        queues: Mutex<HashMap<String, VecDeque<String>>>,
        log: Mutex<Vec<String>>,
    }

    impl Toy {
        fn log(&self, line: String) {
            self.log.lock().unwrap().push(line);
        }
        fn taken_log(&self) -> Vec<String> {
            std::mem::take(&mut *self.log.lock().unwrap())
        }
        fn fill(&self, queue: &str, n: usize) {
            let mut qs = self.queues.lock().unwrap();
            let q = qs.entry(queue.to_owned()).or_default();
            q.extend((1..=n).map(|i| format!("{queue}{i}")));
        }
    }

    impl Entities for Toy {
        fn declare_exchange(&self, _: &Exchange, _: bool) -> Result<()> {
            Ok(())
        }
        fn delete_exchange(&self, _: &str, _: bool) -> Result<()> {
            Ok(())
        }
        fn publish(&self, message: Message, _: &str, routing_key: &str) -> Result<()> {
            let body = String::from_utf8_lossy(&message.body).into_owned();
            self.queues.lock().unwrap().entry(routing_key.to_owned()).or_default().push_back(body);
            Ok(())
        }
        fn declare_queue(&self, queue: &Queue, _: bool) -> Result<QueueInfo> {
            self.queues.lock().unwrap().entry(queue.name.clone()).or_default();
            Ok(QueueInfo::new(queue.name.clone(), 0, 0))
        }
        fn purge_queue(&self, name: &str) -> Result<u64> {
            let mut qs = self.queues.lock().unwrap();
            Ok(qs.get_mut(name).map_or(0, |q| q.drain(..).count() as u64))
        }
        fn delete_queue(&self, name: &str, _: bool, _: bool) -> Result<u64> {
            Ok(self.queues.lock().unwrap().remove(name).map_or(0, |q| q.len() as u64))
        }
        fn bind_queue(&self, _: &str, _: &str, _: &str, _: &FieldTable) -> Result<()> {
            Ok(())
        }
        fn unbind_queue(&self, _: &str, _: &str, _: &str, _: &FieldTable) -> Result<()> {
            Ok(())
        }
    }

    impl Backend for Toy {
        type Held = (Arc<str>, String);
        type Round<'a> = ();

        fn round(&self) {}

        fn take(&self, _: &mut (), queue: &Arc<str>, max: usize, out: &mut Vec<(Message, Self::Held)>) -> Result<()> {
            let mut qs = self.queues.lock().unwrap();
            let q = qs.get_mut(&**queue).ok_or_else(|| Error::not_found(format!("no queue '{queue}'")))?;
            for _ in 0..max {
                let Some(body) = q.pop_front() else { break };
                out.push((Message::new(body.clone()), (queue.clone(), body)));
            }
            Ok(())
        }
        fn ack(&self, held: Self::Held) -> Result<()> {
            self.log(format!("ack {}", held.1));
            Ok(())
        }
        fn requeue(&self, held: Vec<Self::Held>) -> Result<()> {
            let bodies: Vec<&str> = held.iter().map(|(_, b)| b.as_str()).collect();
            self.log(format!("requeue {}", bodies.join(",")));
            Ok(())
        }
        fn reject(&self, held: Self::Held) -> Result<()> {
            self.log(format!("reject {}", held.1));
            Ok(())
        }
        fn watch(&self, queue: &str, _: &Arc<WakeSlot>) -> Result<()> {
            self.log(format!("watch {queue}"));
            self.queues.lock().unwrap().get(queue).map(|_| ()).ok_or_else(|| Error::not_found("no such queue"))
        }
        fn unwatch(&self, queue: &str) {
            self.log(format!("unwatch {queue}"));
        }
    }

    fn bodies(out: &[Delivery]) -> Vec<String> {
        out.iter().map(|d| String::from_utf8_lossy(&d.message.body).into_owned()).collect()
    }

    fn setup() -> (Arc<ConnectionState<Toy>>, Arc<VirtualChannel<Toy>>) {
        let conn = ConnectionState::new(Arc::new(Toy::default()));
        let ch = conn.open_channel().unwrap();
        (conn, ch)
    }

    #[test]
    fn prefetch_limits_collection_and_acks_make_room() {
        let (conn, ch) = setup();
        conn.backend().fill("q", 5);
        ch.qos(2).unwrap();
        ch.consume("q", "c1", false).unwrap();
        let mut out = Vec::new();
        assert!(!conn.collect(&mut out, 100));
        assert_eq!(bodies(&out), ["q1", "q2"]);
        let tags: Vec<DeliveryTag> = out.iter().map(|d| d.message.delivery_info.delivery_tag.clone()).collect();
        assert_eq!(tags, [DeliveryTag::Number(1), DeliveryTag::Number(2)]);
        Channel::ack(&*ch, &tags[0]).unwrap();
        assert!(Channel::ack(&*ch, &tags[0]).is_err(), "settled once");
        out.clear();
        conn.collect(&mut out, 100);
        assert_eq!(bodies(&out), ["q3"]);
        // Budget: stops early and says so.
        ch.qos(0).unwrap();
        out.clear();
        assert!(conn.collect(&mut out, 1));
        assert_eq!(bodies(&out), ["q4"]);
    }

    #[test]
    fn consumers_take_turns() {
        let (conn, ch) = setup();
        conn.backend().fill("a", TURN + 2);
        conn.backend().fill("b", 1);
        ch.consume("a", "ca", true).unwrap();
        ch.consume("b", "cb", true).unwrap();
        let mut out = Vec::new();
        conn.collect(&mut out, 1000);
        let by: Vec<&str> = out.iter().map(|d| &*d.consumer_tag).collect();
        let mut expect = vec!["ca"; TURN];
        expect.extend(["cb", "ca", "ca"]);
        assert_eq!(by, expect);
        // no_ack: every one forgotten at once, none held.
        assert_eq!(conn.backend().taken_log().iter().filter(|l| l.starts_with("ack")).count(), TURN + 3);
    }

    #[test]
    fn close_restores_oldest_first_and_unwatches() {
        let (conn, ch) = setup();
        conn.backend().fill("q", 3);
        for _ in 0..3 {
            ch.get("q", false).unwrap().unwrap();
        }
        ch.consume("q", "c1", false).unwrap();
        Channel::reject(&*ch, &DeliveryTag::Number(2), false).unwrap();
        conn.backend().taken_log();
        conn.close().unwrap();
        assert_eq!(conn.backend().taken_log(), ["unwatch q", "requeue q1,q3"]);
        assert!(!ch.is_open());
        assert!(conn.open_channel().is_err());
        assert!(ch.get("q", false).is_err());
    }

    #[test]
    fn a_consume_refused_leaves_no_consumer() {
        let (conn, ch) = setup();
        assert!(ch.consume("missing", "c1", false).is_err());
        conn.backend().fill("q", 1);
        ch.consume("q", "c1", false).unwrap();
        assert!(ch.consume("q", "c1", false).is_err(), "tag in use");
        ch.cancel("c1").unwrap();
        assert_eq!(conn.backend().taken_log(), ["watch missing", "watch q", "unwatch q"]);
        ch.recover(true).unwrap();
        Channel::reject(&*ch, &DeliveryTag::Number(1), true).unwrap_err();
        conn.backend().fill("q", 2);
        assert_eq!((ch.purge_queue("q").unwrap(), ch.delete_queue("q", false, false).unwrap()), (3, 0));
    }
}
