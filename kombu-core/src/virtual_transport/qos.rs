//! Prefetch accounting: how many more messages a channel may be given, given how many it holds
//! unsettled (Kombu's `virtual.QoS.can_consume` and `can_consume_max_estimate`), and when an ack should
//! wake a poller that stopped for want of room (pure).

/// A channel's prefetch limit, and whether it refills in batches.
///
/// `prefetch_count` 0 means no limit, as in AMQP. By default any free room is worth a refill; a
/// [`batched`](Qos::batched) one waits until a quarter of the window is free (or nothing is held), so a
/// backend that pays a round trip per refill (Redis) takes several messages per request, not one per ack.
///
/// ```
/// use kombu_core::virtual_transport::Qos;
///
/// let qos = Qos::new(4);
/// assert_eq!(qos.room(1), 3);
/// assert!(qos.is_full(4));
/// assert!(qos.wakes_on_settle(4), "the ack that frees the first slot wakes the poller");
/// assert!(!qos.wakes_on_settle(3), "the poller was not waiting for room");
/// assert_eq!(Qos::new(0).room(1_000_000), usize::MAX);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Qos {
    prefetch_count: u16,
    batched: bool,
}

impl Qos {
    /// No limit.
    pub const UNLIMITED: Qos = Qos { prefetch_count: 0, batched: false };

    /// At most `prefetch_count` unsettled messages (0: no limit), refilled whenever there is room.
    pub fn new(prefetch_count: u16) -> Qos {
        Qos { prefetch_count, batched: false }
    }

    /// The same limit, refilled in batches of a quarter of the window (at least one).
    pub fn batched(self) -> Qos {
        Qos { batched: true, ..self }
    }

    /// The limit (0: none).
    pub fn prefetch_count(self) -> u16 {
        self.prefetch_count
    }

    /// Changes the limit (`basic.qos`), keeping the refill mode.
    pub fn set_prefetch_count(&mut self, prefetch_count: u16) {
        self.prefetch_count = prefetch_count;
    }

    /// Whether there is no limit.
    pub fn is_unlimited(self) -> bool {
        self.prefetch_count == 0
    }

    /// How many more may be delivered while `in_flight` are unsettled (`usize::MAX`: no limit).
    pub fn room(self, in_flight: usize) -> usize {
        match self.prefetch_count {
            0 => usize::MAX,
            n => usize::from(n).saturating_sub(in_flight),
        }
    }

    /// Whether one more may be delivered (Kombu's `can_consume`).
    pub fn can_consume(self, in_flight: usize) -> bool {
        self.room(in_flight) > 0
    }

    /// Whether the window is full.
    pub fn is_full(self, in_flight: usize) -> bool {
        !self.can_consume(in_flight)
    }

    /// How many to ask for now: the room, or 0 while the room is not yet worth a request (batched:
    /// below a quarter of the window while something is held).
    pub fn refill(self, in_flight: usize) -> usize {
        let room = self.room(in_flight);
        if !self.batched || self.prefetch_count == 0 || in_flight == 0 {
            return room;
        }
        let low = (usize::from(self.prefetch_count) / 4).max(1);
        if room >= low {
            room
        } else {
            0
        }
    }

    /// Whether settling one of `in_flight` unsettled messages makes a refill worth it where it was not
    /// before: then the poller (which stopped for want of room) must be woken. Any other settle needs
    /// no wake.
    pub fn wakes_on_settle(self, in_flight: usize) -> bool {
        in_flight > 0 && self.refill(in_flight) == 0 && self.refill(in_flight - 1) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_unlimited() {
        let q = Qos::new(0);
        assert!(q.is_unlimited());
        for held in [0, 1, 65_535, usize::MAX] {
            assert_eq!(q.room(held), usize::MAX);
            assert_eq!(q.refill(held), usize::MAX);
            assert!(q.can_consume(held) && !q.wakes_on_settle(held));
        }
        assert_eq!(Qos::default(), Qos::UNLIMITED);
        assert!(Qos::new(0).batched().can_consume(10));
    }

    #[test]
    fn room_counts_down_and_never_below_zero() {
        let q = Qos::new(3);
        assert_eq!([0, 1, 2, 3, 4].map(|n| q.room(n)), [3, 2, 1, 0, 0]);
        assert!(q.is_full(3) && q.is_full(7) && !q.is_full(2));
        let mut q = q;
        q.set_prefetch_count(5);
        assert_eq!((q.prefetch_count(), q.room(3)), (5, 2));
    }

    #[test]
    fn unbatched_wakes_on_the_settle_that_leaves_full() {
        let q = Qos::new(2);
        assert_eq!([0, 1, 2, 3].map(|n| q.wakes_on_settle(n)), [false, false, true, false]);
        // Held beyond the limit (the limit was lowered): only the settle that gets back under it wakes.
        let q = Qos::new(1);
        assert_eq!([1, 2, 3].map(|n| q.wakes_on_settle(n)), [true, false, false]);
    }

    #[test]
    fn batched_refills_by_the_quarter_window() {
        let q = Qos::new(8).batched();
        // Nothing held: any room.
        assert_eq!(q.refill(0), 8);
        // A quarter of 8 is 2: one free slot is not worth a request, two are.
        assert_eq!([7, 6, 5].map(|n| q.refill(n)), [0, 2, 3]);
        assert!(!q.wakes_on_settle(8));
        assert!(q.wakes_on_settle(7));
        assert!(!q.wakes_on_settle(6));
        // Small windows still refill one at a time.
        let q = Qos::new(2).batched();
        assert_eq!((q.refill(1), q.refill(2)), (1, 0));
        assert!(q.wakes_on_settle(2));
        assert_eq!(Qos::new(8).refill(7), 1, "unbatched takes any room");
    }
}
