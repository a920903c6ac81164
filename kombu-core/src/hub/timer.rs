//! The Hub's timer heap: one-shot and repeating callbacks, cancellable through their handles.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cancels a timer; clone it freely, cancel from anywhere (including the timer's own callback).
#[derive(Debug, Clone)]
pub struct TimerHandle {
    cancelled: Arc<AtomicBool>,
}

impl TimerHandle {
    /// Cancels the timer; it will not fire again.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }
    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

struct Entry {
    callback: Box<dyn FnMut()>,
    interval: Option<Duration>,
    cancelled: Arc<AtomicBool>,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    entries: HashMap<u64, Entry>,
    next_id: u64,
}

impl Timers {
    pub(crate) fn add(&mut self, at: Instant, interval: Option<Duration>, callback: Box<dyn FnMut()>) -> TimerHandle {
        let cancelled = Arc::new(AtomicBool::new(false));
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(id, Entry { callback, interval, cancelled: cancelled.clone() });
        self.heap.push(Reverse((at, id)));
        TimerHandle { cancelled }
    }

    /// When the next live timer is due (dropping cancelled ones at the top).
    pub(crate) fn next_due(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            match self.entries.get(&id) {
                Some(e) if !e.cancelled.load(Ordering::Acquire) => return Some(at),
                _ => {
                    self.heap.pop();
                    self.entries.remove(&id);
                }
            }
        }
        None
    }

    /// Runs every timer due at `now`; returns how many ran.
    pub(crate) fn fire_due(&mut self, now: Instant) -> usize {
        let mut ran = 0;
        while let Some(at) = self.next_due() {
            if at > now {
                break;
            }
            let Some(Reverse((at, id))) = self.heap.pop() else { break };
            let Some(mut entry) = self.entries.remove(&id) else { continue };
            (entry.callback)();
            ran += 1;
            if let Some(every) = entry.interval {
                if !entry.cancelled.load(Ordering::Acquire) {
                    // Saturating (a huge interval is "never again"), and strictly after `now` so that an
                    // interval of zero runs once per turn instead of looping here.
                    let next = super::after(at, every);
                    let next = if next > now { next } else { super::after(now, every.max(Duration::from_nanos(1))) };
                    self.entries.insert(id, entry);
                    self.heap.push(Reverse((next, id)));
                }
            }
        }
        ran
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn one_shot_repeating_and_cancel() {
        let mut t = Timers::default();
        let start = Instant::now();
        let hits = Rc::new(Cell::new(0));
        let h = hits.clone();
        t.add(start + Duration::from_millis(10), None, Box::new(move || h.set(h.get() + 1)));
        let r = Rc::new(Cell::new(0));
        let r2 = r.clone();
        let rep = t.add(start, Some(Duration::from_millis(5)), Box::new(move || r2.set(r2.get() + 1)));
        assert_eq!(t.fire_due(start), 1);
        assert_eq!(r.get(), 1);
        assert_eq!(t.fire_due(start + Duration::from_millis(5)), 1);
        assert_eq!(t.fire_due(start + Duration::from_millis(10)), 2);
        assert_eq!(hits.get(), 1);
        rep.cancel();
        assert_eq!(t.fire_due(start + Duration::from_secs(1)), 0);
        assert_eq!(t.next_due(), None);
        assert_eq!(t.len(), 0);
    }
}
