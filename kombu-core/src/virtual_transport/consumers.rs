//! A channel's consumers: one entry per consumer tag, taking turns in a [`FairCycle`].

use std::sync::Arc;

use super::cycle::{FairCycle, Turn};
use crate::{Error, Result};

/// One consumer: its tag, its queue, and whether its deliveries need no ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// The consumer tag.
    pub tag: Arc<str>,
    /// The queue it takes from.
    pub queue: Arc<str>,
    /// Deliveries are settled on delivery.
    pub no_ack: bool,
}

/// A channel's consumers, in the order they started, served in turn.
///
/// ```
/// use kombu_core::virtual_transport::Consumers;
///
/// let mut c = Consumers::default();
/// c.add("ctag-1", "tasks", false).unwrap();
/// assert!(c.add("ctag-1", "other", false).is_err(), "a tag names one consumer");
/// assert_eq!(c.cancel("ctag-1").map(|c| c.queue.to_string()), Some("tasks".to_owned()));
/// assert!(c.is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Consumers {
    cycle: FairCycle<Consumer>,
}

impl Consumers {
    /// Adds a consumer; a tag already in use on the channel is refused.
    pub fn add(&mut self, tag: &str, queue: &str, no_ack: bool) -> Result<()> {
        if self.get(tag).is_some() {
            return Err(Error::precondition(format!("consumer tag '{tag}' is already in use")));
        }
        self.cycle.push(Consumer { tag: Arc::from(tag), queue: Arc::from(queue), no_ack });
        Ok(())
    }

    /// Removes the consumer `tag`, if there is one; the turn stays fair for the others.
    pub fn cancel(&mut self, tag: &str) -> Option<Consumer> {
        self.cycle.remove_first(|c| &*c.tag == tag)
    }

    /// Removes every consumer (channel close).
    pub fn clear(&mut self) -> Vec<Consumer> {
        self.cycle.drain()
    }

    /// The consumer `tag`.
    pub fn get(&self, tag: &str) -> Option<&Consumer> {
        self.cycle.iter().find(|c| &*c.tag == tag)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.cycle.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.cycle.is_empty()
    }

    /// The consumers in the order they started.
    pub fn iter(&self) -> std::slice::Iter<'_, Consumer> {
        self.cycle.iter()
    }

    /// The queues consumed from, each once, in the order their first consumer started.
    pub fn queues(&self) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = Vec::new();
        for c in self.cycle.iter() {
            if !out.contains(&c.queue) {
                out.push(c.queue.clone());
            }
        }
        out
    }

    /// One [`FairCycle::round`] over the consumers.
    pub fn round(&mut self, take: impl FnMut(&Consumer) -> Turn) -> usize {
        self.cycle.round(take)
    }

    /// The consumers once each in rotation ([`FairCycle::rotated`]).
    pub fn rotated(&mut self) -> impl Iterator<Item = &Consumer> + '_ {
        self.cycle.rotated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_unique_and_queues_listed_once() {
        let mut c = Consumers::default();
        c.add("a", "q1", false).unwrap();
        c.add("b", "q2", true).unwrap();
        c.add("c", "q1", false).unwrap();
        let e = c.add("b", "q3", false).unwrap_err();
        assert!(e.to_string().contains("'b' is already in use"), "{e}");
        assert_eq!(c.len(), 3);
        assert_eq!(c.queues(), [Arc::from("q1"), Arc::from("q2")]);
        assert!(c.get("b").is_some_and(|b| b.no_ack));
        assert_eq!(c.cancel("zzz"), None);
        assert_eq!(c.cancel("a").map(|a| a.tag), Some(Arc::from("a")));
        assert_eq!(c.rotated().map(|c| &*c.tag).collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(c.clear().len(), 2);
        assert!(c.is_empty() && c.iter().next().is_none());
    }

    #[test]
    fn round_serves_consumers_in_turn() {
        let mut c = Consumers::default();
        for (tag, q) in [("a", "q1"), ("b", "q2")] {
            c.add(tag, q, false).unwrap();
        }
        let mut left = [("q1", 2), ("q2", 1)];
        let mut served = Vec::new();
        c.round(|consumer| {
            let slot = left.iter_mut().find(|(q, _)| **q == *consumer.queue).unwrap();
            if slot.1 == 0 {
                return Turn::Empty;
            }
            slot.1 -= 1;
            served.push(consumer.tag.to_string());
            Turn::Took
        });
        assert_eq!(served, ["a", "b", "a"]);
    }
}
