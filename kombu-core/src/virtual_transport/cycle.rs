//! Fair rotation over queues or consumers: each gets its turn in order, a round ends when every one has
//! come up empty in a row, and the next round starts where this one stopped (Kombu's `FairCycle` and
//! `round_robin_cycle`; pure).

/// What one turn of a [`FairCycle::round`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Something was taken: the next one's turn, and the round goes on.
    Took,
    /// Nothing there: the next one's turn; a round ends once every one came up empty in a row.
    Empty,
    /// End the round now (budget spent, no prefetch room). The one asked keeps its turn: the next round
    /// starts with it.
    Stop,
}

impl Turn {
    /// [`Took`](Turn::Took) if `n` were taken, else [`Empty`](Turn::Empty).
    pub fn took(n: usize) -> Turn {
        if n > 0 {
            Turn::Took
        } else {
            Turn::Empty
        }
    }
}

/// Items in a fixed order with a moving start: the next one whose turn it is.
///
/// Adding puts an item last; removing one keeps the turn with whoever had it (or the one after a
/// removed item), so a consumer cancelled mid-rotation neither skips nor repeats another.
///
/// ```
/// use kombu_core::virtual_transport::{FairCycle, Turn};
///
/// let mut queues: FairCycle<(&str, u32)> = FairCycle::new();
/// queues.push(("a", 1));
/// queues.push(("b", 3));
/// let mut order = Vec::new();
/// // One round over both, each taking one at a time until both are empty.
/// let mut left = vec![1, 3];
/// queues.round(|&(name, _)| {
///     let i = usize::from(name == "b");
///     if left[i] == 0 { return Turn::Empty; }
///     left[i] -= 1;
///     order.push(name);
///     Turn::Took
/// });
/// assert_eq!(order, ["a", "b", "b", "b"]);
/// ```
#[derive(Debug, Clone)]
pub struct FairCycle<T> {
    items: Vec<T>,
    next: usize,
}

impl<T> Default for FairCycle<T> {
    fn default() -> Self {
        FairCycle { items: Vec::new(), next: 0 }
    }
}

impl<T> FairCycle<T> {
    /// An empty cycle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an item last in the order.
    pub fn push(&mut self, item: T) {
        self.items.push(item);
    }

    /// Removes the item at `index` (in the fixed order), keeping the turn where it was.
    pub fn remove(&mut self, index: usize) -> Option<T> {
        if index >= self.items.len() {
            return None;
        }
        let item = self.items.remove(index);
        if index < self.next {
            self.next -= 1;
        }
        if self.next >= self.items.len() {
            self.next = 0;
        }
        Some(item)
    }

    /// Removes the first item `pred` picks.
    pub fn remove_first(&mut self, pred: impl FnMut(&T) -> bool) -> Option<T> {
        let index = self.items.iter().position(pred)?;
        self.remove(index)
    }

    /// Takes every item out, in the fixed order.
    pub fn drain(&mut self) -> Vec<T> {
        self.next = 0;
        std::mem::take(&mut self.items)
    }

    /// How many items there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items in the fixed order (not the rotation's).
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    /// The index (in the fixed order) of the one whose turn is next.
    pub fn next_index(&self) -> usize {
        self.next
    }

    /// Gives turns in rotation, starting with the one whose turn it is, until `take` says
    /// [`Turn::Stop`] or every item came up [`Turn::Empty`] in a row. Returns how many turns were
    /// given (a `Stop` counts none). An empty cycle gives none.
    pub fn round(&mut self, mut take: impl FnMut(&T) -> Turn) -> usize {
        let n = self.items.len();
        let (mut turns, mut idle) = (0, 0);
        while idle < n {
            match take(&self.items[self.next]) {
                Turn::Stop => break,
                Turn::Took => idle = 0,
                Turn::Empty => idle += 1,
            }
            turns += 1;
            self.next = (self.next + 1) % n;
        }
        turns
    }

    /// Every item once, starting with the one whose turn it is; the next call starts one further on
    /// (Kombu's round-robin order for one request over several queues).
    pub fn rotated(&mut self) -> impl Iterator<Item = &T> + '_ {
        let n = self.items.len();
        let start = self.next;
        if n > 0 {
            self.next = (self.next + 1) % n;
        }
        self.items[start..].iter().chain(self.items[..start].iter())
    }
}

impl<T> FromIterator<T> for FairCycle<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        FairCycle { items: iter.into_iter().collect(), next: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one round where each item has `left[item]` messages and each turn takes up to `per_turn`,
    /// stopping after `budget`; returns what was taken, in order.
    fn round(c: &mut FairCycle<usize>, left: &mut [usize], per_turn: usize, budget: usize) -> Vec<usize> {
        let mut got = Vec::new();
        c.round(|&i| {
            if got.len() >= budget {
                return Turn::Stop;
            }
            let n = left[i].min(per_turn).min(budget - got.len());
            left[i] -= n;
            got.extend(std::iter::repeat_n(i, n));
            Turn::took(n)
        });
        got
    }

    #[test]
    fn round_robin_until_all_empty() {
        let mut c: FairCycle<usize> = (0..3).collect();
        let mut left = [2, 0, 3];
        assert_eq!(round(&mut c, &mut left, 1, 100), [0, 2, 0, 2, 2]);
        assert_eq!(left, [0, 0, 0]);
        // Every one was asked once more and came up empty: nothing more, no endless loop.
        assert!(round(&mut c, &mut left, 1, 100).is_empty());
        assert!(round(&mut FairCycle::new(), &mut [], 1, 100).is_empty());
    }

    #[test]
    fn a_stop_leaves_the_turn_with_the_next() {
        let mut c: FairCycle<usize> = (0..3).collect();
        let mut left = [5, 5, 5];
        assert_eq!(round(&mut c, &mut left, 2, 3), [0, 0, 1]);
        // 1 took its turn (cut short by the budget); 2 is next.
        assert_eq!(c.next_index(), 2);
        assert_eq!(round(&mut c, &mut left, 2, 3), [2, 2, 0]);
        // Stopped before anyone is asked: the turn stays.
        let before = c.next_index();
        assert_eq!(c.round(|_| Turn::Stop), 0);
        assert_eq!(c.next_index(), before);
    }

    #[test]
    fn removing_keeps_the_turn_and_wraps() {
        let mut c: FairCycle<&str> = ["a", "b", "c", "d"].into_iter().collect();
        c.round(|_| Turn::Stop);
        // Give a and b their turn: c is next.
        let mut seen = Vec::new();
        let mut k = 0;
        c.round(|x| {
            k += 1;
            if k > 2 {
                return Turn::Stop;
            }
            seen.push(*x);
            Turn::Took
        });
        assert_eq!((seen, c.next_index()), (vec!["a", "b"], 2));
        // Removing one before the turn: c keeps it.
        assert_eq!(c.remove(0), Some("a"));
        assert_eq!(c.iter().nth(c.next_index()), Some(&"c"));
        // Removing the one whose turn it is: the next one gets it.
        assert_eq!(c.remove_first(|x| *x == "c"), Some("c"));
        assert_eq!(c.iter().nth(c.next_index()), Some(&"d"));
        // Removing the last one while it has the turn wraps to the first.
        assert_eq!(c.remove_first(|x| *x == "d"), Some("d"));
        assert_eq!(c.iter().nth(c.next_index()), Some(&"b"));
        assert_eq!(c.remove(5), None);
        // Added items come last in the order.
        c.push("e");
        assert_eq!(c.rotated().copied().collect::<Vec<_>>(), ["b", "e"]);
        assert_eq!(c.remove(0), Some("b"));
        assert_eq!((c.len(), c.next_index()), (1, 0));
        assert_eq!(c.drain(), ["e"]);
        assert!(c.is_empty());
        assert_eq!(c.rotated().count(), 0);
    }

    #[test]
    fn rotated_starts_one_further_each_time() {
        let mut c: FairCycle<&str> = ["q1", "q2", "q3"].into_iter().collect();
        let orders: Vec<Vec<&str>> = (0..4).map(|_| c.rotated().copied().collect()).collect();
        assert_eq!(orders, [["q1", "q2", "q3"], ["q2", "q3", "q1"], ["q3", "q1", "q2"], ["q1", "q2", "q3"]]);
    }
}
