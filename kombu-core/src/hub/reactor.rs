//! The private engine under the Hub and `Connection::drain_events`: one mio `Poll`, the drivers that own
//! tokens, wake-ups from other threads, and pollers' one-shot timers.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::sources::{this_thread, Event, EventKind, Owner, Sources, Table, Token, WakeShared};
use crate::error::{Error, Result};

const WAKER: mio::Token = mio::Token(0);

/// Marks the reactor as turned by this thread while the drivers run (unmarked when dropped, even by a
/// panic, so that no later thread is taken for it).
struct Turner(Arc<WakeShared>);

impl Turner {
    fn begin(shared: &Arc<WakeShared>) -> Turner {
        shared.turner.store(this_thread(), Ordering::Release);
        Turner(shared.clone())
    }
}

impl Drop for Turner {
    fn drop(&mut self) {
        self.0.turner.store(0, Ordering::Release);
    }
}

/// The owners of the tokens woken since the last look get a `Woken` event.
fn take_woken(shared: &WakeShared, table: &Table, pending: &mut Vec<(Owner, Event)>) {
    let woken = std::mem::take(&mut *shared.woken.lock().unwrap_or_else(|e| e.into_inner()));
    for t in woken {
        if let Some(flag) = table.wake_flags.get(&t) {
            flag.store(false, Ordering::Release);
        }
        if let Some(owner) = table.owners.get(&t) {
            pending.push((*owner, Event::signal(t, EventKind::Woken)));
        }
    }
}

/// Something the reactor drives: a connection's poller plus its consumers.
pub(crate) trait Driver: Send {
    /// Registers its sources.
    fn register(&mut self, sources: &mut Sources<'_>) -> Result<()>;
    /// Handles an event; returns how many messages it delivered.
    fn ready(&mut self, event: &Event, sources: &mut Sources<'_>) -> Result<usize>;
    /// Removes its sources.
    fn deregister(&mut self, sources: &mut Sources<'_>) -> Result<()>;
    /// Whether it is done (its connection closed) and should be removed.
    fn finished(&self) -> bool;
}

pub(crate) struct Reactor {
    poll: mio::Poll,
    events: mio::Events,
    shared: Arc<WakeShared>,
    table: Table,
    drivers: HashMap<u64, Box<dyn Driver>>,
    next_driver: u64,
    pending: Vec<(Owner, Event)>,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").field("drivers", &self.drivers.len()).finish()
    }
}

/// The poll's own descriptor: readable while events wait (the async API watches it with tokio).
impl std::os::fd::AsRawFd for Reactor {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.poll.as_raw_fd()
    }
}

impl Reactor {
    pub(crate) fn new() -> Result<Reactor> {
        let poll =
            mio::Poll::new().map_err(|e| Error::with_source(crate::ErrorKind::Connection, "cannot create poll", e))?;
        let waker = mio::Waker::new(poll.registry(), WAKER)
            .map_err(|e| Error::with_source(crate::ErrorKind::Connection, "cannot create waker", e))?;
        Ok(Reactor {
            poll,
            events: mio::Events::with_capacity(256),
            shared: Arc::new(WakeShared {
                waker,
                woken: Mutex::new(Vec::new()),
                turner: AtomicUsize::new(0),
                merged: AtomicBool::new(false),
                watchers: Mutex::new(Vec::new()),
            }),
            table: Table::new(1),
            drivers: HashMap::new(),
            next_driver: 1,
            pending: Vec::new(),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<WakeShared> {
        &self.shared
    }

    fn sources(&mut self, owner: Owner) -> Sources<'_> {
        Sources { registry: self.poll.registry(), table: &mut self.table, shared: &self.shared, owner }
    }

    /// Lends the registration API for external (hub-level) sources.
    pub(crate) fn external_sources(&mut self) -> Sources<'_> {
        self.sources(Owner::External)
    }

    pub(crate) fn add_driver(&mut self, mut driver: Box<dyn Driver>) -> Result<u64> {
        let id = self.next_driver;
        self.next_driver += 1;
        let mut sources = self.sources(Owner::Driver(id));
        if let Err(e) = driver.register(&mut sources) {
            let _ = driver.deregister(&mut sources);
            self.table.forget_owner(Owner::Driver(id));
            return Err(e);
        }
        self.drivers.insert(id, driver);
        Ok(id)
    }

    pub(crate) fn remove_driver(&mut self, id: u64) {
        if let Some(mut d) = self.drivers.remove(&id) {
            let mut sources = self.sources(Owner::Driver(id));
            if let Err(e) = d.deregister(&mut sources) {
                tracing::debug!("deregistering a connection: {e:#}");
            }
            self.table.forget_owner(Owner::Driver(id));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.drivers.is_empty()
    }

    /// Whether the last turn took as many events as it can hold (more may be waiting).
    #[cfg(feature = "tokio")]
    pub(crate) fn saturated(&self) -> bool {
        self.events.iter().count() >= self.events.capacity()
    }

    /// Whether a wake made during the last turn waits for the next (the caller turns again soon).
    #[cfg(feature = "tokio")]
    pub(crate) fn rewoken(&self) -> bool {
        self.shared.merged.load(Ordering::Acquire)
    }

    /// When the next poller timer is due.
    pub(crate) fn next_due(&mut self) -> Option<Instant> {
        self.table.prune_due();
        self.table.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Waits up to `timeout` (None: until something happens) for events, hands driver events to their
    /// drivers and external events to `external`. Returns how many messages were delivered; every
    /// driver's error is pushed to `errors` (one driver's failure never keeps another from its events).
    /// Fails only if waiting itself fails.
    pub(crate) fn turn(
        &mut self,
        timeout: Option<Duration>,
        external: &mut Vec<Event>,
        errors: &mut Vec<Error>,
    ) -> Result<usize> {
        // Wakes made during the last turn on its own thread (see `WakeShared::turner`) are this one's.
        let merged = self.shared.merged.swap(false, Ordering::AcqRel);
        let now = Instant::now();
        let timeout = match (timeout, self.next_due()) {
            _ if merged => Some(Duration::ZERO),
            (t, None) => t,
            (None, Some(due)) => Some(due.saturating_duration_since(now)),
            (Some(t), Some(due)) => Some(t.min(due.saturating_duration_since(now))),
        };
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::with_source(crate::ErrorKind::Connection, "poll failed", e));
            }
        }
        let mut pending = std::mem::take(&mut self.pending);
        let mut took_woken = false;
        for ev in self.events.iter() {
            if ev.token() == WAKER {
                if !took_woken {
                    take_woken(&self.shared, &self.table, &mut pending);
                    took_woken = true;
                }
                continue;
            }
            let token = Token(ev.token().0);
            if let Some(owner) = self.table.owners.get(&token) {
                pending.push((
                    *owner,
                    Event {
                        token,
                        kind: EventKind::Io,
                        readable: ev.is_readable(),
                        writable: ev.is_writable(),
                        closed: ev.is_read_closed() || ev.is_write_closed() || ev.is_error(),
                    },
                ));
            }
        }
        if merged && !took_woken {
            take_woken(&self.shared, &self.table, &mut pending);
        }
        let now = Instant::now();
        while let Some(token) = self.table.pop_due(now) {
            if let Some(owner) = self.table.owners.get(&token) {
                pending.push((*owner, Event::signal(token, EventKind::Timer)));
            }
        }
        let mut delivered = 0;
        // From here a wake on this thread (a driver's) is merged into the next turn.
        let turning = Turner::begin(&self.shared);
        for (owner, event) in pending.drain(..) {
            match owner {
                Owner::External => external.push(event),
                Owner::Driver(id) => {
                    let Some(driver) = self.drivers.get_mut(&id) else { continue };
                    let mut sources =
                        Sources { registry: self.poll.registry(), table: &mut self.table, shared: &self.shared, owner };
                    match driver.ready(&event, &mut sources) {
                        Ok(n) => delivered += n,
                        Err(e) => errors.push(e),
                    }
                }
            }
        }
        drop(turning);
        self.pending = pending;
        let finished: Vec<u64> = self.drivers.iter().filter(|(_, d)| d.finished()).map(|(id, _)| *id).collect();
        for id in finished {
            self.remove_driver(id);
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::sources::WakeHandle;
    use std::sync::atomic::AtomicUsize;

    /// Wakes itself from inside its own turns until it was woken `times` times.
    struct Rewaking {
        handle: Option<WakeHandle>,
        woken: Arc<AtomicUsize>,
        times: usize,
    }

    impl Driver for Rewaking {
        fn register(&mut self, sources: &mut Sources<'_>) -> Result<()> {
            let handle = sources.waker();
            handle.wake();
            self.handle = Some(handle);
            Ok(())
        }
        fn ready(&mut self, event: &Event, _: &mut Sources<'_>) -> Result<usize> {
            if event.kind == EventKind::Woken && self.woken.fetch_add(1, Ordering::AcqRel) + 1 < self.times {
                self.handle.as_ref().map(WakeHandle::wake);
            }
            Ok(0)
        }
        fn deregister(&mut self, _: &mut Sources<'_>) -> Result<()> {
            Ok(())
        }
        fn finished(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_wake_inside_a_turn_is_the_next_turns_without_waiting() {
        let mut reactor = Reactor::new().expect("a reactor");
        let woken = Arc::new(AtomicUsize::new(0));
        reactor
            .add_driver(Box::new(Rewaking { handle: None, woken: woken.clone(), times: 3 }))
            .expect("the driver registers");
        let (mut external, mut errors) = (Vec::new(), Vec::new());
        for expected in 1..=3 {
            let started = Instant::now();
            reactor.turn(Some(Duration::from_secs(5)), &mut external, &mut errors).expect("a turn");
            assert!(started.elapsed() < Duration::from_secs(2), "turn {expected} waited for a wake it had");
            assert_eq!(woken.load(Ordering::Acquire), expected);
        }
        assert!(!reactor.shared.merged.load(Ordering::Acquire), "the last turn asked for no other");
        // Nothing more: the next turn waits its time out.
        let started = Instant::now();
        reactor.turn(Some(Duration::from_millis(50)), &mut external, &mut errors).expect("a turn");
        assert!(started.elapsed() >= Duration::from_millis(45));
        assert_eq!(woken.load(Ordering::Acquire), 3);
        assert!(errors.is_empty());
    }

    #[test]
    fn a_wake_from_another_thread_still_wakes_the_poll() {
        let mut reactor = Reactor::new().expect("a reactor");
        let woken = Arc::new(AtomicUsize::new(0));
        reactor
            .add_driver(Box::new(Rewaking { handle: None, woken: woken.clone(), times: 1 }))
            .expect("the driver registers");
        let (mut external, mut errors) = (Vec::new(), Vec::new());
        reactor.turn(Some(Duration::from_secs(5)), &mut external, &mut errors).expect("a turn");
        assert_eq!(woken.load(Ordering::Acquire), 1);
        // A wake from a thread that is not turning the reactor writes to the waker, as always.
        let shared = reactor.shared.clone();
        let handle = reactor.external_sources().waker();
        std::thread::spawn(move || handle.wake()).join().expect("the waking thread");
        assert!(!shared.merged.load(Ordering::Acquire));
        let started = Instant::now();
        reactor.turn(Some(Duration::from_secs(5)), &mut external, &mut errors).expect("a turn");
        assert!(started.elapsed() < Duration::from_secs(2), "the other thread's wake reached the poll");
        assert_eq!(external.len(), 1);
    }
}
