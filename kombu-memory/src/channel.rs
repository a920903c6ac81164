//! Memory channels: declare, publish, get, consume and settle against the in-process broker, with
//! per-channel prefetch and unacknowledged messages that go back to their queues when the channel closes.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use kombu_core::transport::{dead_letter_by_copy, Channel, DeadLetter, Delivery, PublishOptions};
use kombu_core::{DeliveryTag, Error, Exchange, FieldTable, Message, Queue, QueueInfo, Result};

use crate::broker::{Broker, Notify, Stored};

/// What one connection's channels share.
pub(crate) struct ConnShared {
    pub(crate) broker: Arc<Broker>,
    pub(crate) notify: Arc<Notify>,
    pub(crate) channels: Mutex<Vec<Weak<MemoryChannel>>>,
    pub(crate) open: AtomicBool,
}

impl ConnShared {
    pub(crate) fn channels(&self) -> Vec<Arc<MemoryChannel>> {
        let mut list = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    }
}

/// Most messages one consumer takes before the next consumer's turn.
const TURN: usize = 16;

struct Unacked {
    queue: Arc<str>,
    stored: Stored,
}

struct Consumer {
    tag: Arc<str>,
    queue: Arc<str>,
    no_ack: bool,
}

#[derive(Default)]
struct State {
    next_tag: u64,
    unacked: FxHashMap<u64, Unacked>,
    prefetch: u16,
    consumers: Vec<Consumer>,
    rr: usize,
}

/// A channel on the memory broker.
pub(crate) struct MemoryChannel {
    me: Weak<MemoryChannel>,
    conn: Arc<ConnShared>,
    state: Mutex<State>,
    open: AtomicBool,
}

impl MemoryChannel {
    pub(crate) fn open(conn: Arc<ConnShared>) -> Arc<MemoryChannel> {
        let ch = Arc::new_cyclic(|me| MemoryChannel {
            me: me.clone(),
            conn: conn.clone(),
            state: Mutex::new(State::default()),
            open: AtomicBool::new(true),
        });
        conn.channels.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&ch));
        ch
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_open(&self) -> Result<()> {
        if self.open.load(Ordering::Acquire) && self.conn.open.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::state("channel is closed"))
        }
    }

    fn broker(&self) -> &Broker {
        &self.conn.broker
    }

    /// Turns a stored message into a delivery, recording it as unacknowledged unless `no_ack`.
    fn deliver(
        &self,
        st: &mut State,
        queue: &Arc<str>,
        stored: Stored,
        no_ack: bool,
        consumer: Option<&Arc<str>>,
    ) -> Message {
        let mut m = (*stored.message).clone();
        st.next_tag += 1;
        let tag = st.next_tag;
        m.delivery_info.redelivered = stored.redelivered;
        m.delivery_info.redeliveries = Some(stored.redeliveries);
        m.delivery_info.delivery_tag = DeliveryTag::Number(tag);
        m.delivery_info.consumer_tag = consumer.cloned();
        if !no_ack {
            if let Some(me) = self.me.upgrade() {
                m.bind_channel(me);
            }
            st.unacked.insert(tag, Unacked { queue: queue.clone(), stored });
        }
        m
    }

    /// Moves up to `budget` ready messages to this channel's consumers, in turn, within prefetch.
    /// Returns whether it stopped because of the budget (more may be ready).
    pub(crate) fn collect(&self, out: &mut Vec<Delivery>, budget: usize) -> bool {
        if !self.open.load(Ordering::Acquire) {
            return false;
        }
        let mut st = self.state();
        let n = st.consumers.len();
        if n == 0 {
            return false;
        }
        let mut broker = self.broker().lock();
        let (mut delivered, mut idle, mut i) = (0, 0, st.rr);
        let mut batch = Vec::with_capacity(TURN);
        while delivered < budget && idle < n {
            let room = match st.prefetch {
                0 => usize::MAX,
                p => usize::from(p).saturating_sub(st.unacked.len()),
            };
            if room == 0 {
                break;
            }
            // Up to TURN messages per consumer per turn: fair across queues, one queue lookup per batch.
            let take = room.min(budget - delivered).min(TURN);
            let c = &st.consumers[i % n];
            let (tag, queue, no_ack) = (c.tag.clone(), c.queue.clone(), c.no_ack);
            i += 1;
            broker.pop_into(&queue, take, &mut batch);
            let got = batch.len();
            for stored in batch.drain(..) {
                let message = self.deliver(&mut st, &queue, stored, no_ack, Some(&tag));
                out.push(Delivery::new(tag.clone(), message));
            }
            delivered += got;
            idle = if got == 0 { idle + 1 } else { 0 };
        }
        st.rr = i % n;
        delivered == budget
    }

    fn settle(&self, tag: &DeliveryTag) -> Result<Unacked> {
        let DeliveryTag::Number(n) = tag else {
            return Err(Error::precondition(format!("unknown delivery tag {tag}")));
        };
        let mut st = self.state();
        let full = st.prefetch > 0 && st.unacked.len() >= usize::from(st.prefetch);
        let u = st.unacked.remove(n).ok_or_else(|| Error::precondition(format!("unknown delivery tag {tag}")))?;
        if full {
            self.conn.notify.wake();
        }
        Ok(u)
    }

    fn restore_unacked(&self) {
        let mut unacked: Vec<(u64, Unacked)> = self.state().unacked.drain().collect();
        if unacked.is_empty() {
            return;
        }
        unacked.sort_by_key(|(tag, _)| *tag);
        let mut by_queue: HashMap<Arc<str>, Vec<Stored>> = HashMap::new();
        for (_, u) in unacked {
            by_queue.entry(u.queue).or_default().push(u.stored);
        }
        let mut broker = self.broker().lock();
        for (queue, stored) in by_queue {
            broker.requeue(&queue, stored);
        }
    }
}

impl Channel for MemoryChannel {
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        self.check_open()?;
        self.broker().declare_exchange(exchange, passive)
    }

    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        self.check_open()?;
        self.broker().delete_exchange(name, if_unused)
    }

    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        self.check_open()?;
        if queue.name.is_empty() {
            return Err(Error::invalid("the memory transport needs a queue name"));
        }
        self.broker().declare_queue(queue, passive)
    }

    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        self.check_open()?;
        self.broker().delete_queue(name, if_unused, if_empty)
    }

    fn bind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.check_open()?;
        self.broker().bind(queue, exchange, routing_key, arguments)
    }

    fn unbind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.check_open()?;
        self.broker().unbind(queue, exchange, routing_key, arguments)
    }

    fn purge_queue(&self, name: &str) -> Result<u64> {
        self.check_open()?;
        self.broker().purge(name)
    }

    fn publish(&self, message: Message, exchange: &str, routing_key: &str, _options: &PublishOptions) -> Result<()> {
        self.check_open()?;
        self.broker().publish(message, exchange, routing_key)
    }

    fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Message>> {
        self.check_open()?;
        let mut st = self.state();
        let stored = {
            let mut broker = self.broker().lock();
            if !broker.queues.contains_key(queue) {
                return Err(Error::not_found(format!("no queue '{queue}' in vhost")));
            }
            broker.pop(queue)
        };
        let queue: Arc<str> = Arc::from(queue);
        Ok(stored.map(|s| self.deliver(&mut st, &queue, s, no_ack, None)))
    }

    fn consume(&self, queue: &str, consumer_tag: &str, no_ack: bool) -> Result<()> {
        self.check_open()?;
        let mut st = self.state();
        if st.consumers.iter().any(|c| &*c.tag == consumer_tag) {
            return Err(Error::precondition(format!("consumer tag '{consumer_tag}' is already in use")));
        }
        self.broker().watch(queue, &self.conn.notify)?;
        st.consumers.push(Consumer { tag: Arc::from(consumer_tag), queue: Arc::from(queue), no_ack });
        drop(st);
        self.conn.notify.wake();
        Ok(())
    }

    fn cancel(&self, consumer_tag: &str) -> Result<()> {
        let mut st = self.state();
        if let Some(pos) = st.consumers.iter().position(|c| &*c.tag == consumer_tag) {
            let c = st.consumers.remove(pos);
            self.broker().lock().unwatch(&c.queue);
        }
        Ok(())
    }

    fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        self.settle(tag).map(|_| ())
    }

    fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()> {
        let u = self.settle(tag)?;
        let mut broker = self.broker().lock();
        if requeue {
            broker.requeue(&u.queue, vec![u.stored]);
        } else {
            broker.reject(&u.queue, u.stored);
        }
        Ok(())
    }

    /// The queue's own dead-letter exchange when it has one (as a broker does on reject); otherwise a
    /// copy to `target.to`.
    fn dead_letter(&self, message: &Message, target: &DeadLetter<'_>) -> Result<()> {
        let has_dlx =
            self.broker().lock().queues.get(target.queue).is_some_and(|q| q.config.dead_letter_exchange.is_some());
        if has_dlx {
            return self.reject(&message.delivery_info.delivery_tag, false);
        }
        dead_letter_by_copy(self, message, target)
    }

    fn recover(&self, _requeue: bool) -> Result<()> {
        self.check_open()?;
        self.restore_unacked();
        Ok(())
    }

    fn qos(&self, prefetch_count: u16) -> Result<()> {
        self.check_open()?;
        self.state().prefetch = prefetch_count;
        self.conn.notify.wake();
        Ok(())
    }

    fn close(&self) -> Result<()> {
        if !self.open.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let consumers: Vec<Consumer> = self.state().consumers.drain(..).collect();
        {
            let mut broker = self.broker().lock();
            for c in consumers {
                broker.unwatch(&c.queue);
            }
        }
        self.restore_unacked();
        Ok(())
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire) && self.conn.open.load(Ordering::Acquire)
    }
}

impl Drop for MemoryChannel {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
