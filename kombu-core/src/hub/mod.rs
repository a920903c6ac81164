//! The Hub: one event loop that drives every connection registered with it, of any backend, plus timers,
//! tick callbacks, raw file-descriptor readers and writers, and wake-ups from other threads.
//!
//! ```
//! use std::time::Duration;
//! use kombu_core::Hub;
//!
//! let mut hub = Hub::new().unwrap();
//! let stop = hub.stopper();
//! let ticks = std::rc::Rc::new(std::cell::Cell::new(0));
//! let t = ticks.clone();
//! hub.call_repeatedly(Duration::from_millis(1), move || {
//!     t.set(t.get() + 1);
//!     if t.get() == 3 {
//!         stop.stop();
//!     }
//! });
//! hub.run_forever().unwrap();
//! assert_eq!(ticks.get(), 3);
//! ```

pub(crate) mod reactor;
pub(crate) mod sources;
mod timer;

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use sources::{Event, EventKind, Interest, Sources, Token, WakeHandle};
pub use timer::TimerHandle;

use crate::error::Result;
use reactor::{Driver, Reactor};
use sources::WakeShared;
use timer::Timers;

/// Stops a running Hub from anywhere (another thread, a callback).
#[derive(Clone)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    shared: Arc<WakeShared>,
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper").field("stopped", &self.flag.load(Ordering::Relaxed)).finish()
    }
}

impl Stopper {
    /// Makes `run_forever` return after the current iteration.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        let _ = self.shared.waker.wake();
    }
}

type Callback = Box<dyn FnMut(&Event)>;

/// The event loop. See the [module docs](self) for an example.
pub struct Hub {
    reactor: Reactor,
    timers: Timers,
    ticks: Vec<Box<dyn FnMut()>>,
    callbacks: HashMap<Token, Callback>,
    on_error: Option<Box<dyn FnMut(crate::Error)>>,
    stop: Arc<AtomicBool>,
    external: Vec<Event>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("reactor", &self.reactor)
            .field("timers", &self.timers.len())
            .field("callbacks", &self.callbacks.len())
            .finish()
    }
}

impl Hub {
    /// A new, empty event loop.
    pub fn new() -> Result<Hub> {
        Ok(Hub {
            reactor: Reactor::new()?,
            timers: Timers::default(),
            ticks: Vec::new(),
            callbacks: HashMap::new(),
            on_error: None,
            stop: Arc::new(AtomicBool::new(false)),
            external: Vec::new(),
        })
    }

    /// Runs `callback` once after `delay`.
    pub fn call_later(&mut self, delay: Duration, callback: impl FnMut() + 'static) -> TimerHandle {
        self.timers.add(after(Instant::now(), delay), None, Box::new(callback))
    }

    /// Runs `callback` once at `when`.
    pub fn call_at(&mut self, when: Instant, callback: impl FnMut() + 'static) -> TimerHandle {
        self.timers.add(when, None, Box::new(callback))
    }

    /// Runs `callback` every `interval`, the first time after one interval.
    pub fn call_repeatedly(&mut self, interval: Duration, callback: impl FnMut() + 'static) -> TimerHandle {
        self.timers.add(after(Instant::now(), interval), Some(interval), Box::new(callback))
    }

    /// Cancels a timer (the same as [`TimerHandle::cancel`]).
    pub fn cancel(&mut self, timer: &TimerHandle) {
        timer.cancel();
    }

    /// Runs `callback` at the start of every loop iteration.
    pub fn on_tick(&mut self, callback: impl FnMut() + 'static) {
        self.ticks.push(Box::new(callback));
    }

    /// Also hands every error of a connection driven by this Hub to `handler` (a connection that failed
    /// to reconnect, a poller that failed). Each is logged at error level either way, and none stops the
    /// loop or the other connections: a connection goes on retrying on its retry policy.
    pub fn on_error(&mut self, handler: impl FnMut(crate::Error) + 'static) {
        self.on_error = Some(Box::new(handler));
    }

    /// Calls `callback` whenever `fd` is readable. The descriptor must stay open until removed.
    pub fn add_reader(&mut self, fd: RawFd, callback: impl FnMut(&Event) + 'static) -> Result<Token> {
        self.add_fd(fd, Interest::READABLE, Box::new(callback))
    }

    /// Calls `callback` whenever `fd` is writable.
    pub fn add_writer(&mut self, fd: RawFd, callback: impl FnMut(&Event) + 'static) -> Result<Token> {
        self.add_fd(fd, Interest::WRITABLE, Box::new(callback))
    }

    fn add_fd(&mut self, fd: RawFd, interest: Interest, callback: Callback) -> Result<Token> {
        let token = self.reactor.external_sources().register_fd(fd, interest)?;
        self.callbacks.insert(token, callback);
        Ok(token)
    }

    /// Stops watching a descriptor added with `add_reader` or `add_writer`.
    pub fn remove_fd(&mut self, fd: RawFd, token: Token) -> Result<()> {
        self.callbacks.remove(&token);
        self.reactor.external_sources().deregister_fd(fd, token)
    }

    /// A handle that, woken from any thread, runs `callback` on the Hub's thread.
    pub fn add_waker(&mut self, callback: impl FnMut() + 'static) -> WakeHandle {
        let handle = self.reactor.external_sources().waker();
        let mut callback = callback;
        self.callbacks.insert(handle.token(), Box::new(move |_| callback()));
        handle
    }

    /// A handle that stops `run_forever` from anywhere.
    pub fn stopper(&self) -> Stopper {
        Stopper { flag: self.stop.clone(), shared: self.reactor.shared().clone() }
    }

    /// Stops `run_forever` after the current iteration.
    pub fn stop(&self) {
        self.stopper().stop();
    }

    pub(crate) fn add_driver(&mut self, driver: Box<dyn Driver>) -> Result<u64> {
        self.reactor.add_driver(driver)
    }

    /// One iteration: due timers, tick callbacks, then wait for events until the next timer (or until
    /// woken) and handle them. Returns how many messages were delivered.
    pub fn run_once(&mut self) -> Result<usize> {
        self.run_once_for(None)
    }

    fn run_once_for(&mut self, max_wait: Option<Duration>) -> Result<usize> {
        self.timers.fire_due(Instant::now());
        for tick in self.ticks.iter_mut() {
            tick();
        }
        if self.stop.load(Ordering::Acquire) {
            return Ok(0);
        }
        let wait = self.timers.next_due().map(|at| at.saturating_duration_since(Instant::now()));
        let wait = match (wait, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut external = std::mem::take(&mut self.external);
        let mut errors = Vec::new();
        let result = self.reactor.turn(wait, &mut external, &mut errors);
        for ev in external.drain(..) {
            if let Some(cb) = self.callbacks.get_mut(&ev.token) {
                cb(&ev);
            }
        }
        self.external = external;
        self.timers.fire_due(Instant::now());
        for e in errors {
            tracing::error!("event loop: {e:#}");
            if let Some(handler) = self.on_error.as_mut() {
                handler(e);
            }
        }
        result
    }

    /// Runs until [`stop`](Hub::stop) (or a [`Stopper`]) is called. Errors of the connections it drives
    /// are logged and go to the [`on_error`](Hub::on_error) handler; they do not end the loop. Only a
    /// failure of the loop itself (the operating system's poll) is returned.
    pub fn run_forever(&mut self) -> Result<()> {
        self.stop.store(false, Ordering::Release);
        while !self.stop.load(Ordering::Acquire) {
            self.run_once()?;
        }
        Ok(())
    }

    /// Runs until stopped or until `duration` has passed.
    pub fn run_for(&mut self, duration: Duration) -> Result<()> {
        let end = after(Instant::now(), duration);
        self.stop.store(false, Ordering::Release);
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            self.run_once_for(Some(end - now))?;
        }
        Ok(())
    }
}

/// The longest a Hub timer, a wake-up or a deadline is put off: about a hundred years. Later instants
/// are taken as this one, as "never" in practice.
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + delay`, saturating: a delay too long for an [`Instant`] (such as [`Duration::MAX`]) gives the
/// latest instant the clock can hold within [`FOREVER`], never a panic.
///
/// ```
/// use std::time::{Duration, Instant};
/// let now = Instant::now();
/// assert_eq!(kombu_core::hub::after(now, Duration::from_secs(1)), now + Duration::from_secs(1));
/// assert!(kombu_core::hub::after(now, Duration::MAX) > now + Duration::from_secs(365 * 24 * 3600));
/// ```
pub fn after(now: Instant, delay: Duration) -> Instant {
    let mut d = delay.min(FOREVER);
    loop {
        if let Some(at) = now.checked_add(d) {
            return at;
        }
        if d.is_zero() {
            return now;
        }
        d /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::rc::Rc;

    #[test]
    fn timers_fire_in_order() {
        let mut hub = Hub::new().unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (a, b) = (log.clone(), log.clone());
        hub.call_later(Duration::from_millis(20), move || a.borrow_mut().push("late"));
        hub.call_later(Duration::from_millis(5), move || b.borrow_mut().push("early"));
        let cancelled = hub.call_later(Duration::from_millis(1), || panic!("cancelled timer ran"));
        hub.cancel(&cancelled);
        hub.run_for(Duration::from_millis(60)).unwrap();
        assert_eq!(*log.borrow(), vec!["early", "late"]);
    }

    #[test]
    fn huge_delays_saturate_instead_of_panicking() {
        let mut hub = Hub::new().unwrap();
        let fired = Rc::new(RefCell::new(0));
        let f = fired.clone();
        let far = hub.call_later(Duration::MAX, move || *f.borrow_mut() += 1);
        let f = fired.clone();
        let rep = hub.call_repeatedly(Duration::from_secs_f64(1e19), move || *f.borrow_mut() += 1);
        let f = fired.clone();
        hub.call_at(Instant::now(), move || *f.borrow_mut() += 100);
        hub.run_for(Duration::from_millis(20)).unwrap();
        assert_eq!(*fired.borrow(), 100);
        far.cancel();
        rep.cancel();
        // A timer due now with a huge repeat interval is rescheduled without overflow.
        let f = fired.clone();
        hub.call_repeatedly(Duration::ZERO, move || *f.borrow_mut() += 1);
        hub.run_for(Duration::from_millis(5)).unwrap();
        assert!(*fired.borrow() > 100);
    }

    #[test]
    fn waker_from_another_thread_runs_callback() {
        let mut hub = Hub::new().unwrap();
        let hits = Rc::new(RefCell::new(0));
        let h = hits.clone();
        let stop = hub.stopper();
        let waker = hub.add_waker(move || {
            *h.borrow_mut() += 1;
            stop.stop();
        });
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            waker.wake();
        });
        hub.run_forever().unwrap();
        t.join().unwrap();
        assert_eq!(*hits.borrow(), 1);
    }

    #[test]
    fn reader_callback_sees_readable_fd() {
        let (mut tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
        rx.set_nonblocking(true).unwrap();
        let mut hub = Hub::new().unwrap();
        let seen = Rc::new(RefCell::new(false));
        let s = seen.clone();
        let stop = hub.stopper();
        hub.add_reader(rx.as_raw_fd(), move |ev| {
            assert!(ev.readable);
            *s.borrow_mut() = true;
            stop.stop();
        })
        .unwrap();
        tx.write_all(b"x").unwrap();
        hub.run_for(Duration::from_secs(5)).unwrap();
        assert!(*seen.borrow());
    }
}
