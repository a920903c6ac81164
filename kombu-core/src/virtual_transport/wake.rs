//! The wake slot: where a backend's channels, its broker state and other threads wake the poller that is
//! registered now, with a generation tag so that a poller replaced by another cannot clear its successor.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Wake, Waker};

use crate::hub::{Token, WakeHandle};

/// The wake handle of one connection's registered poller, if any (Kombu keeps the same idea as the
/// event loop's `on_poll_start`/`on_readable` hooks of a virtual channel).
///
/// Anyone may [`wake`](WakeSlot::wake) it, from any thread: a publish that fills an empty queue, an ack
/// that makes room under prefetch, a new consumer, lapin's I/O thread. Only a poller puts a handle in
/// (with [`register`](WakeSlot::register)), and only the [`Registration`] it got takes it out again, on
/// drop, and only while it is still the current one: a poller that is replaced (a reconnect registers
/// the new one before the old one is dropped) leaves its successor's handle alone.
///
/// ```
/// use std::sync::Arc;
/// use kombu_core::Hub;
/// use kombu_core::virtual_transport::WakeSlot;
///
/// let mut hub = Hub::new().unwrap();
/// let slot = Arc::new(WakeSlot::default());
/// assert!(!slot.wake(), "no poller yet: nobody to wake");
/// let old = slot.register(hub.add_waker(|| {}));
/// let new = slot.register(hub.add_waker(|| {}));
/// drop(old); // a stale registration does not clear the current one
/// assert!(new.is_current() && slot.wake());
/// drop(new);
/// assert!(!slot.is_registered());
/// ```
#[derive(Default)]
pub struct WakeSlot {
    current: Mutex<Option<(u64, WakeHandle)>>,
    generations: AtomicU64,
}

impl std::fmt::Debug for WakeSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.lock().as_ref().map(|(g, h)| (*g, h.token()));
        f.debug_struct("WakeSlot").field("current", &current).finish()
    }
}

impl WakeSlot {
    fn lock(&self) -> MutexGuard<'_, Option<(u64, WakeHandle)>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a poller's handle in the slot, replacing any earlier one, under a new generation. The slot
    /// is not woken: a poller that wants a first look wakes itself through the registration.
    pub fn register(self: &Arc<Self>, handle: WakeHandle) -> Registration {
        let generation = self.generations.fetch_add(1, Ordering::AcqRel) + 1;
        *self.lock() = Some((generation, handle.clone()));
        Registration { slot: self.clone(), generation, handle }
    }

    /// Wakes the registered poller; returns whether there was one. Wakes that come while one is
    /// pending are merged by the Hub, so waking often costs little.
    pub fn wake(&self) -> bool {
        match self.lock().as_ref() {
            Some((_, handle)) => {
                handle.wake();
                true
            }
            None => false,
        }
    }

    /// Whether a poller is registered.
    pub fn is_registered(&self) -> bool {
        self.lock().is_some()
    }

    /// A [`Waker`] for futures and streams (lapin's consumers): waking it wakes this slot.
    pub fn waker(self: &Arc<Self>) -> Waker {
        Waker::from(Arc::new(SlotWaker(self.clone())))
    }

    fn clear(&self, generation: u64) -> bool {
        let mut current = self.lock();
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
            true
        } else {
            false
        }
    }
}

/// The [`Wake`] side of a slot (apart, so that `wake` on an `Arc<WakeSlot>` is the slot's own).
struct SlotWaker(Arc<WakeSlot>);

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.0.wake();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake();
    }
}

/// A poller's place in a [`WakeSlot`]: keep it while registered with the Hub, drop it (in
/// `Poller::deregister`, or with the poller) to take the handle out, unless a newer poller has
/// registered since.
#[must_use = "dropping the registration takes the poller's handle out of the slot again"]
pub struct Registration {
    slot: Arc<WakeSlot>,
    generation: u64,
    handle: WakeHandle,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("generation", &self.generation).field("token", &self.token()).finish()
    }
}

impl Registration {
    /// Wakes this poller (itself), whether or not it is still the slot's current one: after
    /// registering for a first look, or when it stopped early with more to do.
    pub fn wake(&self) {
        self.handle.wake();
    }

    /// The poller's own wake handle.
    pub fn handle(&self) -> &WakeHandle {
        &self.handle
    }

    /// The token the Hub's events for this handle carry (a timer armed on it wakes the same poller).
    pub fn token(&self) -> Token {
        self.handle.token()
    }

    /// This registration's generation (the first is 1; each `register` on the slot counts one up).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the slot still holds this registration's handle (no newer poller registered).
    pub fn is_current(&self) -> bool {
        self.slot.lock().as_ref().is_some_and(|(g, _)| *g == self.generation)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.slot.clear(self.generation);
    }
}

/// The slots to wake when one resource changes (a queue that gets messages, a directory written to):
/// held weakly, so a connection that goes away drops out on the next wake. Not synchronized itself:
/// it lives inside the state lock of whatever it watches.
#[derive(Default)]
pub struct Watchers {
    slots: Vec<Weak<WakeSlot>>,
}

impl std::fmt::Debug for Watchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchers").field("slots", &self.slots.len()).finish()
    }
}

impl Watchers {
    /// Adds a slot, once: returns false if it was already watching.
    pub fn add(&mut self, slot: &Arc<WakeSlot>) -> bool {
        self.slots.retain(|w| w.strong_count() > 0);
        if self.slots.iter().any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(slot))) {
            return false;
        }
        self.slots.push(Arc::downgrade(slot));
        true
    }

    /// Stops watching with `slot`; returns whether it was watching.
    pub fn remove(&mut self, slot: &Arc<WakeSlot>) -> bool {
        let before = self.slots.len();
        self.slots.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(slot)));
        self.slots.len() < before
    }

    /// Wakes every live slot and forgets the dead ones; returns how many pollers were woken.
    pub fn wake_all(&mut self) -> usize {
        let mut woken = 0;
        self.slots.retain(|w| match w.upgrade() {
            Some(slot) => {
                woken += usize::from(slot.wake());
                true
            }
            None => false,
        });
        woken
    }

    /// How many live slots watch.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|w| w.strong_count() > 0).count()
    }

    /// Whether no live slot watches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hub;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    fn counting(hub: &mut Hub) -> (WakeHandle, Rc<Cell<u32>>) {
        let n = Rc::new(Cell::new(0));
        let m = n.clone();
        (hub.add_waker(move || m.set(m.get() + 1)), n)
    }

    fn turn(hub: &mut Hub) {
        hub.run_for(Duration::from_millis(20)).unwrap();
    }

    #[test]
    fn wakes_the_current_poller_only() {
        let mut hub = Hub::new().unwrap();
        let slot = Arc::new(WakeSlot::default());
        let (h1, n1) = counting(&mut hub);
        let (h2, n2) = counting(&mut hub);
        let first = slot.register(h1);
        assert!(slot.wake());
        turn(&mut hub);
        assert_eq!((n1.get(), n2.get()), (1, 0));
        let second = slot.register(h2);
        assert_eq!((first.generation(), second.generation()), (1, 2));
        assert!(!first.is_current() && second.is_current());
        slot.wake();
        turn(&mut hub);
        assert_eq!((n1.get(), n2.get()), (1, 1));
        // The stale registration goes away without clearing its successor.
        drop(first);
        assert!(slot.is_registered());
        slot.wake();
        turn(&mut hub);
        assert_eq!(n2.get(), 2);
        drop(second);
        assert!(!slot.is_registered());
        assert!(!slot.wake());
    }

    #[test]
    fn a_registration_wakes_itself_even_when_stale() {
        let mut hub = Hub::new().unwrap();
        let slot = Arc::new(WakeSlot::default());
        let (h1, n1) = counting(&mut hub);
        let (h2, _) = counting(&mut hub);
        let first = slot.register(h1);
        let _second = slot.register(h2);
        first.wake();
        turn(&mut hub);
        assert_eq!(n1.get(), 1);
        assert_eq!(first.token(), first.handle().token());
    }

    #[test]
    fn std_waker_wakes_the_slot() {
        let mut hub = Hub::new().unwrap();
        let slot = Arc::new(WakeSlot::default());
        let (h, n) = counting(&mut hub);
        let _reg = slot.register(h);
        let waker = slot.waker();
        waker.wake_by_ref();
        turn(&mut hub);
        waker.wake();
        turn(&mut hub);
        assert_eq!(n.get(), 2);
    }

    #[test]
    fn watchers_wake_live_slots_once_each() {
        let mut hub = Hub::new().unwrap();
        let (a, b) = (Arc::new(WakeSlot::default()), Arc::new(WakeSlot::default()));
        let (h, n) = counting(&mut hub);
        let _reg = a.register(h);
        let mut w = Watchers::default();
        assert!(w.add(&a) && !w.add(&a) && w.add(&b));
        assert_eq!(w.len(), 2);
        // b has no poller: it is watched but nobody is woken through it.
        assert_eq!(w.wake_all(), 1);
        turn(&mut hub);
        assert_eq!(n.get(), 1);
        drop(b);
        assert_eq!(w.len(), 1);
        assert!(w.remove(&a) && w.is_empty() && !w.remove(&a));
        assert_eq!(w.wake_all(), 0);
    }
}
