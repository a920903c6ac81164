//! Memory channels: kombu-core's virtual channel over the in-process broker. This file says how the
//! broker gives, settles and puts back messages (its entities are in broker.rs); consumers, delivery tags,
//! prefetch and the unacknowledged messages that go back when a channel closes are the toolkit's.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use kombu_core::virtual_transport::{Backend, ConnectionState, WakeSlot};
use kombu_core::{Message, Result};

use crate::broker::{self, Broker, Stored};

/// What one connection's channels (kombu-core's `VirtualChannel<Broker>`) and poller share.
pub(crate) type ConnShared = ConnectionState<Broker>;

/// An unacknowledged delivery: where it goes back to, and what.
pub(crate) struct Unacked {
    queue: Arc<str>,
    stored: Stored,
}

impl Backend for Broker {
    type Held = Unacked;
    /// The broker's lock, held for a whole collection round (one lock for many messages).
    type Round<'a> = MutexGuard<'a, broker::State>;

    fn round(&self) -> MutexGuard<'_, broker::State> {
        self.lock()
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
        let mut broker = self.lock();
        for (queue, stored) in by_queue {
            broker.requeue(&queue, stored);
        }
        Ok(())
    }

    fn reject(&self, held: Unacked) -> Result<()> {
        self.lock().reject(&held.queue, held.stored);
        Ok(())
    }

    fn watch(&self, queue: &str, slot: &Arc<WakeSlot>) -> Result<()> {
        self.add_consumer(queue, slot)
    }

    fn unwatch(&self, queue: &str) {
        self.lock().unwatch(queue);
    }

    fn dead_letters_itself(&self, queue: &str) -> bool {
        self.lock().queues.get(queue).is_some_and(|q| q.config.dead_letter_exchange.is_some())
    }
}
