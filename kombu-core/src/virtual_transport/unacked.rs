//! Unacked bookkeeping: the messages a channel delivered and that are not settled yet, kept in delivery
//! order so that restoring them (on close, `recover`, a lost connection) puts them back as they were
//! (Kombu's `QoS._delivered` and `restore_unacked`).

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use crate::Result;

/// Delivered-but-unsettled entries by delivery tag `K` (a number, or Redis's text tags), each holding
/// what the backend needs to settle or restore it (`V`: the queue and the stored message, a claimed
/// file, a payload).
///
/// Settling removes an entry; restoring takes them all, oldest delivery first. What a restore does is
/// the backend's hook (the closure given to [`restore`](Unacked::restore)); the bookkeeping only
/// guarantees that every entry is handed to it exactly once.
///
/// ```
/// use kombu_core::virtual_transport::Unacked;
///
/// let mut held: Unacked<u64, &str> = Unacked::default();
/// held.insert(2, "second");
/// held.insert(1, "first"); // the order is delivery order, not tag order
/// held.insert(3, "third");
/// assert_eq!(held.remove(&3), Some("third"));
/// let mut restored = Vec::new();
/// held.restore(|_, v| { restored.push(v); Ok(()) }).unwrap();
/// assert_eq!(restored, ["second", "first"]);
/// assert!(held.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Unacked<K, V, S = RandomState> {
    entries: HashMap<K, (u64, V), S>,
    delivered: u64,
}

impl<K, V, S: Default> Default for Unacked<K, V, S> {
    fn default() -> Self {
        Unacked { entries: HashMap::default(), delivered: 0 }
    }
}

impl<K: Eq + Hash, V, S: BuildHasher> Unacked<K, V, S> {
    /// Records a delivery; returns the entry it replaces if the tag was already held.
    pub fn insert(&mut self, tag: K, value: V) -> Option<V> {
        self.delivered += 1;
        self.entries.insert(tag, (self.delivered, value)).map(|(_, v)| v)
    }

    /// Settles a delivery: takes its entry out, if held.
    pub fn remove<Q>(&mut self, tag: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.remove(tag).map(|(_, v)| v)
    }

    /// The entry of a held delivery.
    pub fn get<Q>(&self, tag: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(tag).map(|(_, v)| v)
    }

    /// Whether a delivery is held.
    pub fn contains<Q>(&self, tag: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.contains_key(tag)
    }

    /// How many are held (the in-flight count prefetch is measured against).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes every entry out, oldest delivery first.
    pub fn take_all(&mut self) -> Vec<(K, V)> {
        let mut all: Vec<(u64, K, V)> = self.entries.drain().map(|(k, (seq, v))| (seq, k, v)).collect();
        all.sort_unstable_by_key(|(seq, _, _)| *seq);
        all.into_iter().map(|(_, k, v)| (k, v)).collect()
    }

    /// The restore hook: takes every entry out and hands each to `put_back`, oldest delivery first.
    /// Every entry is tried even when one fails; the first failure is returned (the entries are out of
    /// the book either way: a backend that can lose one says so in its own hook).
    pub fn restore(&mut self, mut put_back: impl FnMut(K, V) -> Result<()>) -> Result<()> {
        let mut first_err = None;
        for (k, v) in self.take_all() {
            if let Err(e) = put_back(k, v) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use std::sync::Arc;

    #[test]
    fn settles_and_counts() {
        let mut u: Unacked<Arc<str>, u32> = Unacked::default();
        assert_eq!(u.insert(Arc::from("a"), 1), None);
        assert_eq!(u.insert(Arc::from("b"), 2), None);
        assert_eq!(u.insert(Arc::from("a"), 3), Some(1));
        assert_eq!(u.len(), 2);
        assert!(u.contains("a") && u.get("b") == Some(&2));
        assert_eq!(u.remove("a"), Some(3));
        assert_eq!(u.remove("a"), None, "settled once only");
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn restore_hands_each_back_once_in_order_despite_errors() {
        let mut u: Unacked<u64, &str> = Unacked::default();
        for (tag, v) in [(10, "a"), (3, "b"), (7, "c"), (1, "d")] {
            u.insert(tag, v);
        }
        u.remove(&7);
        let mut seen = Vec::new();
        let res = u.restore(|tag, v| {
            seen.push(v);
            if tag == 3 {
                Err(Error::connection("queue gone"))
            } else {
                Ok(())
            }
        });
        assert_eq!(seen, ["a", "b", "d"]);
        assert!(res.unwrap_err().to_string().contains("queue gone"));
        assert!(u.is_empty());
        assert!(u.restore(|_, _| Err(Error::connection("never called"))).is_ok());
        assert!(u.take_all().is_empty());
    }
}
