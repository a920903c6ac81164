//! Memory channels: kombu-core's virtual channel over the in-process broker. This file says how a
//! connection declares, publishes, takes, settles and puts back messages; consumers, delivery tags,
//! prefetch and the unacknowledged messages that go back when a channel closes are the toolkit's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};

use kombu_core::virtual_transport::{Backend, ChannelSet, VirtualChannel, WakeSlot};
use kombu_core::{Error, Exchange, FieldTable, Message, Queue, QueueInfo, Result};

use crate::broker::{self, Broker, Stored};

/// A channel on the memory broker.
pub(crate) type MemoryChannel = VirtualChannel<ConnShared>;

/// What one connection's channels share.
pub(crate) struct ConnShared {
    pub(crate) broker: Arc<Broker>,
    /// The connection's poller, woken by its queues, its acks and its consumers.
    pub(crate) wake: Arc<WakeSlot>,
    pub(crate) channels: ChannelSet<MemoryChannel>,
    pub(crate) open: AtomicBool,
}

/// An unacknowledged delivery: where it goes back to, and what.
pub(crate) struct Unacked {
    queue: Arc<str>,
    stored: Stored,
}

impl Backend for ConnShared {
    type Held = Unacked;
    /// The broker's lock, held for a whole collection round (one lock for many messages).
    type Round<'a> = MutexGuard<'a, broker::State>;

    fn wake_slot(&self) -> &Arc<WakeSlot> {
        &self.wake
    }

    fn channels(&self) -> &ChannelSet<MemoryChannel> {
        &self.channels
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        self.broker.declare_exchange(exchange, passive)
    }

    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        self.broker.delete_exchange(name, if_unused)
    }

    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        if queue.name.is_empty() {
            return Err(Error::invalid("the memory transport needs a queue name"));
        }
        self.broker.declare_queue(queue, passive)
    }

    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        self.broker.delete_queue(name, if_unused, if_empty)
    }

    fn bind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.broker.bind(queue, exchange, routing_key, arguments)
    }

    fn unbind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.broker.unbind(queue, exchange, routing_key, arguments)
    }

    fn purge_queue(&self, name: &str) -> Result<u64> {
        self.broker.purge(name)
    }

    fn publish(&self, message: Message, exchange: &str, routing_key: &str) -> Result<()> {
        self.broker.publish(message, exchange, routing_key)
    }

    fn round(&self) -> MutexGuard<'_, broker::State> {
        self.broker.lock()
    }

    fn take(
        &self,
        round: &mut MutexGuard<'_, broker::State>,
        queue: &Arc<str>,
        max: usize,
        out: &mut Vec<(Message, Unacked)>,
    ) -> Result<()> {
        let mut stored = Vec::with_capacity(max.min(kombu_core::virtual_transport::TURN));
        round.pop_into(queue, max, &mut stored)?;
        for s in stored {
            let mut m = (*s.message).clone();
            m.delivery_info.redelivered = s.redelivered;
            m.delivery_info.redeliveries = Some(s.redeliveries);
            out.push((m, Unacked { queue: queue.clone(), stored: s }));
        }
        Ok(())
    }

    fn ack(&self, _held: Unacked) -> Result<()> {
        Ok(())
    }

    fn requeue(&self, held: Vec<Unacked>) -> Result<()> {
        let mut by_queue: HashMap<Arc<str>, Vec<Stored>> = HashMap::new();
        for u in held {
            by_queue.entry(u.queue).or_default().push(u.stored);
        }
        let mut broker = self.broker.lock();
        for (queue, stored) in by_queue {
            broker.requeue(&queue, stored);
        }
        Ok(())
    }

    fn reject(&self, held: Unacked) -> Result<()> {
        self.broker.lock().reject(&held.queue, held.stored);
        Ok(())
    }

    fn watch(&self, queue: &str) -> Result<()> {
        self.broker.watch(queue, &self.wake)
    }

    fn unwatch(&self, queue: &str) {
        self.broker.lock().unwatch(queue);
    }

    fn dead_letters_itself(&self, queue: &str) -> bool {
        self.broker.lock().queues.get(queue).is_some_and(|q| q.config.dead_letter_exchange.is_some())
    }
}
