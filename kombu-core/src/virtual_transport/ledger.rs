//! The delivery side of a channel that numbers its own deliveries: tags, the unsettled set and the
//! prefetch limit together (Kombu's `virtual.QoS`), so that delivering, settling and restoring keep
//! the three in step.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::qos::Qos;
use super::tags::{tag_number, unknown_tag, DeliveryTags};
use super::unacked::Unacked;
use crate::transport::Channel;
use crate::{DeliveryTag, Message, Result};

/// What [`Ledger::settle`] took out.
#[derive(Debug)]
#[must_use]
pub struct Settled<V> {
    /// The entry the delivery was recorded with.
    pub value: V,
    /// The settle made room the poller was waiting for: wake it.
    pub wake: bool,
}

/// One channel's deliveries: numbered 1, 2, ... ([`DeliveryTags`]), held until settled
/// ([`Unacked`]), within its prefetch limit ([`Qos`]).
///
/// ```
/// use kombu_core::{DeliveryTag, Message};
/// use kombu_core::virtual_transport::Ledger;
///
/// let mut ledger: Ledger<&str> = Ledger::default();
/// ledger.set_prefetch_count(1);
/// let mut m = Message::new("hi");
/// assert!(ledger.deliver(&mut m, "queue a", false, None, None).is_none());
/// assert_eq!(m.delivery_info.delivery_tag, DeliveryTag::Number(1));
/// assert_eq!(ledger.room(), 0);
/// let settled = ledger.settle(&DeliveryTag::Number(1)).unwrap();
/// assert_eq!((settled.value, settled.wake), ("queue a", true));
/// assert!(ledger.settle(&DeliveryTag::Number(1)).is_err(), "settled once only");
/// ```
#[derive(Debug)]
pub struct Ledger<V, S = RandomState> {
    tags: DeliveryTags,
    unacked: Unacked<u64, V, S>,
    qos: Qos,
}

impl<V, S: Default> Default for Ledger<V, S> {
    fn default() -> Self {
        Ledger { tags: DeliveryTags::default(), unacked: Unacked::default(), qos: Qos::default() }
    }
}

impl<V, S: BuildHasher> Ledger<V, S> {
    /// The prefetch limit.
    pub fn qos(&self) -> Qos {
        self.qos
    }

    /// Changes the prefetch limit (`basic.qos`; 0: none).
    pub fn set_prefetch_count(&mut self, prefetch_count: u16) {
        self.qos.set_prefetch_count(prefetch_count);
    }

    /// How many are delivered and not settled.
    pub fn in_flight(&self) -> usize {
        self.unacked.len()
    }

    /// How many more may be delivered now (`usize::MAX`: no limit).
    pub fn room(&self) -> usize {
        self.qos.room(self.unacked.len())
    }

    /// Numbers `message` with the next tag and names its consumer. Unless `no_ack`, records `value` as
    /// unsettled and binds the message to `channel` if given (so that `message.ack()` settles there);
    /// with `no_ack` the message is settled already and `value` comes back for the backend to finish.
    pub fn deliver(
        &mut self,
        message: &mut Message,
        value: V,
        no_ack: bool,
        consumer: Option<&Arc<str>>,
        channel: Option<Arc<dyn Channel>>,
    ) -> Option<V> {
        let tag = self.tags.next_number();
        message.delivery_info.delivery_tag = DeliveryTag::Number(tag);
        message.delivery_info.consumer_tag = consumer.cloned();
        if no_ack {
            return Some(value);
        }
        if let Some(channel) = channel {
            message.bind_channel(channel);
        }
        self.unacked.insert(tag, value);
        None
    }

    /// Settles the delivery `tag` (ack or reject): takes its entry out, and says whether that made room
    /// the poller waits for. A tag this channel does not hold is a precondition error.
    pub fn settle(&mut self, tag: &DeliveryTag) -> Result<Settled<V>> {
        let n = tag_number(tag)?;
        let in_flight = self.unacked.len();
        let value = self.unacked.remove(&n).ok_or_else(|| unknown_tag(tag))?;
        Ok(Settled { value, wake: self.qos.wakes_on_settle(in_flight) })
    }

    /// Takes back every unsettled delivery, oldest first, for the backend to restore (channel close,
    /// `recover`).
    pub fn take_unsettled(&mut self) -> Vec<V> {
        self.unacked.take_all().into_iter().map(|(_, v)| v).collect()
    }

    /// The restore hook over [`take_unsettled`](Ledger::take_unsettled): each to `put_back`, oldest
    /// first, every one tried, the first failure returned.
    pub fn restore(&mut self, mut put_back: impl FnMut(V) -> Result<()>) -> Result<()> {
        self.unacked.restore(|_, v| put_back(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(l: &mut Ledger<u32>, v: u32, no_ack: bool) -> (Message, Option<u32>) {
        let mut m = Message::new("x");
        let back = l.deliver(&mut m, v, no_ack, Some(&Arc::from("ctag")), None);
        (m, back)
    }

    #[test]
    fn no_ack_deliveries_are_numbered_but_not_held() {
        let mut l: Ledger<u32> = Ledger::default();
        let (m, back) = deliver(&mut l, 5, true);
        assert_eq!(back, Some(5));
        assert_eq!(m.delivery_info.delivery_tag, DeliveryTag::Number(1));
        assert_eq!(m.delivery_info.consumer_tag.as_deref(), Some("ctag"));
        assert_eq!(l.in_flight(), 0);
        let (m, back) = deliver(&mut l, 6, false);
        assert_eq!((back, m.delivery_info.delivery_tag.clone()), (None, DeliveryTag::Number(2)));
        assert_eq!((l.in_flight(), l.room()), (1, usize::MAX));
    }

    #[test]
    fn settles_wake_only_when_room_opens() {
        let mut l: Ledger<u32> = Ledger::default();
        l.set_prefetch_count(2);
        for v in [1, 2] {
            deliver(&mut l, v, false);
        }
        assert_eq!(l.room(), 0);
        let first = l.settle(&DeliveryTag::Number(2)).unwrap();
        assert_eq!((first.value, first.wake), (2, true));
        let second = l.settle(&DeliveryTag::Number(1)).unwrap();
        assert_eq!((second.value, second.wake), (1, false));
        assert!(l.settle(&DeliveryTag::Number(9)).is_err());
        assert!(l.settle(&DeliveryTag::Text(Arc::from("1"))).is_err());
        assert_eq!(l.qos().prefetch_count(), 2);
    }

    #[test]
    fn restores_oldest_first() {
        let mut l: Ledger<u32> = Ledger::default();
        for v in [10, 20, 30] {
            deliver(&mut l, v, false);
        }
        let _ = l.settle(&DeliveryTag::Number(2)).unwrap();
        assert_eq!(l.take_unsettled(), [10, 30]);
        deliver(&mut l, 40, false);
        let mut back = Vec::new();
        l.restore(|v| {
            back.push(v);
            Ok(())
        })
        .unwrap();
        assert_eq!((back, l.in_flight()), (vec![40], 0));
    }
}
