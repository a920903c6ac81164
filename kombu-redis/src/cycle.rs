//! The order in which a consumer on several queues takes from them: Python Kombu's
//! `queue_order_strategy` (pure).
//!
//! Kombu's Redis transport sends one BRPOP over every list of the channel's queues, band by band
//! (`q1, q2, q1<sep>3, q2<sep>3, ...`), and BRPOP serves the first list that has a message. The strategy
//! only decides the order of the queues in that list (`kombu.utils.scheduling`):
//! - `round_robin` (the default): the queue a message came from moves to the end, so every queue gets
//!   its turn. kombu-rs starts each request at the next queue (the toolkit's `FairCycle`) and the POP
//!   script takes from the queues in turn.
//! - `priority`: always the order the consumer named them in, so the first queue is drained before the
//!   second is served (within a band; band 0 of every queue still comes before band 3 of any).
//! - `sorted`: always the queues in name order, likewise drained one after the other.

use std::sync::Arc;

use kombu_core::virtual_transport::FairCycle;

/// Kombu's `queue_order_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueueOrder {
    /// `round_robin`: each queue in turn.
    #[default]
    RoundRobin,
    /// `priority`: the order the consumer gave, the first queue drained first.
    Priority,
    /// `sorted`: name order, the first name drained first.
    Sorted,
}

impl QueueOrder {
    /// The names Kombu accepts, in the order of [`QueueOrder::from_name`].
    pub const NAMES: &'static [&'static str] = &["round_robin", "priority", "sorted"];

    /// The strategy named `name` (Kombu's alias), if there is one.
    pub fn from_name(name: &str) -> Option<QueueOrder> {
        match name {
            "round_robin" => Some(QueueOrder::RoundRobin),
            "priority" => Some(QueueOrder::Priority),
            "sorted" => Some(QueueOrder::Sorted),
            _ => None,
        }
    }

    /// Kombu's name of the strategy.
    pub fn name(self) -> &'static str {
        match self {
            QueueOrder::RoundRobin => "round_robin",
            QueueOrder::Priority => "priority",
            QueueOrder::Sorted => "sorted",
        }
    }

    /// The queues of one pop request, in the order to take from them: `queues` as the channel's
    /// consumers started on them, `turns` the channel's rotation over them, which round-robin follows
    /// (each request starts a queue further on; a queue added comes last, one removed keeps the turn
    /// where it was).
    pub fn order(self, mut queues: Vec<Arc<str>>, turns: &mut FairCycle<Arc<str>>) -> Vec<Arc<str>> {
        match self {
            QueueOrder::RoundRobin => {
                follow(turns, &queues);
                turns.rotated().cloned().collect()
            }
            QueueOrder::Priority => queues,
            QueueOrder::Sorted => {
                queues.sort();
                queues
            }
        }
    }

    /// The POP script's mode argument: `1` takes each list until it is empty before the next (BRPOP's
    /// order, for `priority` and `sorted`), `0` takes one from each list in turn (`round_robin`).
    pub fn pop_mode(self) -> &'static [u8] {
        match self {
            QueueOrder::RoundRobin => b"0",
            QueueOrder::Priority | QueueOrder::Sorted => b"1",
        }
    }
}

/// Brings the rotation in line with the queues consumed now, keeping the turn fair.
fn follow(turns: &mut FairCycle<Arc<str>>, queues: &[Arc<str>]) {
    while turns.remove_first(|q| !queues.contains(q)).is_some() {}
    for q in queues {
        if !turns.iter().any(|t| t == q) {
            turns.push(q.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qs(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|s| Arc::from(*s)).collect()
    }

    #[test]
    fn orders_as_kombus_cycles() {
        let q = qs(&["b", "c", "a"]);
        let mut turns = FairCycle::new();
        let rr: Vec<Vec<Arc<str>>> = (0..4).map(|_| QueueOrder::RoundRobin.order(q.clone(), &mut turns)).collect();
        assert_eq!(rr, [qs(&["b", "c", "a"]), qs(&["c", "a", "b"]), qs(&["a", "b", "c"]), qs(&["b", "c", "a"])]);
        for _ in 0..4 {
            assert_eq!(QueueOrder::Priority.order(q.clone(), &mut turns), qs(&["b", "c", "a"]));
            assert_eq!(QueueOrder::Sorted.order(q.clone(), &mut turns), qs(&["a", "b", "c"]));
        }
        assert!(QueueOrder::RoundRobin.order(Vec::new(), &mut turns).is_empty());
        assert_eq!((QueueOrder::RoundRobin.pop_mode(), QueueOrder::Priority.pop_mode()), (&b"0"[..], &b"1"[..]));
    }

    #[test]
    fn round_robin_follows_consumers_that_come_and_go() {
        let mut turns = FairCycle::new();
        let rr = |q: &[&str], turns: &mut FairCycle<Arc<str>>| QueueOrder::RoundRobin.order(qs(q), turns);
        assert_eq!(rr(&["a", "b", "c"], &mut turns), qs(&["a", "b", "c"]));
        // b's turn is next; c's consumer is cancelled and d's starts: b keeps its turn, d comes last.
        assert_eq!(rr(&["a", "b", "d"], &mut turns), qs(&["b", "d", "a"]));
        // The queue whose turn it is (d, last) goes away: the turn wraps to the first.
        assert_eq!(rr(&["a", "b"], &mut turns), qs(&["a", "b"]));
        assert_eq!(rr(&["a", "b"], &mut turns), qs(&["b", "a"]));
    }

    #[test]
    fn names_round_trip() {
        for name in QueueOrder::NAMES {
            assert_eq!(QueueOrder::from_name(name).map(QueueOrder::name), Some(*name));
        }
        assert_eq!(QueueOrder::from_name("fifo"), None);
        assert_eq!(QueueOrder::default(), QueueOrder::RoundRobin);
    }
}
