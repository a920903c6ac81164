//! The order in which a consumer on several queues takes from them: Python Kombu's
//! `queue_order_strategy` (pure).
//!
//! Kombu's Redis transport sends one BRPOP over every list of the channel's queues, band by band
//! (`q1, q2, q1<sep>3, q2<sep>3, ...`), and BRPOP serves the first list that has a message. The strategy
//! only decides the order of the queues in that list (`kombu.utils.scheduling`):
//! - `round_robin` (the default): the queue a message came from moves to the end, so every queue gets
//!   its turn. kombu-rs starts each request at the next queue and takes from the queues in turn.
//! - `priority`: always the order the consumer named them in, so the first queue is drained before the
//!   second is served (within a band; band 0 of every queue still comes before band 3 of any).
//! - `sorted`: always the queues in name order, likewise drained one after the other.

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

    /// The queues of one pop request, in the order to take from them; `rotation` counts the requests
    /// made so far (round-robin starts each one a queue further on).
    pub fn order(self, mut queues: Vec<String>, rotation: usize) -> Vec<String> {
        match self {
            QueueOrder::RoundRobin => {
                if !queues.is_empty() {
                    let r = rotation % queues.len();
                    queues.rotate_left(r);
                }
            }
            QueueOrder::Priority => {}
            QueueOrder::Sorted => queues.sort(),
        }
        queues
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

#[cfg(test)]
mod tests {
    use super::*;

    fn qs(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn orders_as_kombus_cycles() {
        let q = qs(&["b", "c", "a"]);
        assert_eq!(QueueOrder::RoundRobin.order(q.clone(), 0), qs(&["b", "c", "a"]));
        assert_eq!(QueueOrder::RoundRobin.order(q.clone(), 1), qs(&["c", "a", "b"]));
        assert_eq!(QueueOrder::RoundRobin.order(q.clone(), 5), qs(&["a", "b", "c"]));
        for r in 0..4 {
            assert_eq!(QueueOrder::Priority.order(q.clone(), r), qs(&["b", "c", "a"]));
            assert_eq!(QueueOrder::Sorted.order(q.clone(), r), qs(&["a", "b", "c"]));
        }
        assert!(QueueOrder::RoundRobin.order(Vec::new(), 3).is_empty());
        assert_eq!((QueueOrder::RoundRobin.pop_mode(), QueueOrder::Priority.pop_mode()), (&b"0"[..], &b"1"[..]));
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
