//! The private engine under the Hub and `Connection::drain_events`: one mio `Poll`, the drivers that own
//! tokens, wake-ups from other threads, and pollers' one-shot timers.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::sources::{Event, EventKind, Owner, Sources, Table, Token, WakeShared};
use crate::error::{Error, Result};

const WAKER: mio::Token = mio::Token(0);

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
            shared: Arc::new(WakeShared { waker, woken: Mutex::new(Vec::new()), watchers: Mutex::new(Vec::new()) }),
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
        let now = Instant::now();
        let timeout = match (timeout, self.next_due()) {
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
        for ev in self.events.iter() {
            if ev.token() == WAKER {
                let woken = std::mem::take(&mut *self.shared.woken.lock().unwrap_or_else(|e| e.into_inner()));
                for t in woken {
                    if let Some(flag) = self.table.wake_flags.get(&t) {
                        flag.store(false, Ordering::Release);
                    }
                    if let Some(owner) = self.table.owners.get(&t) {
                        pending.push((*owner, Event::signal(t, EventKind::Woken)));
                    }
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
        let now = Instant::now();
        while let Some(token) = self.table.pop_due(now) {
            if let Some(owner) = self.table.owners.get(&token) {
                pending.push((*owner, Event::signal(token, EventKind::Timer)));
            }
        }
        let mut delivered = 0;
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
        self.pending = pending;
        let finished: Vec<u64> = self.drivers.iter().filter(|(_, d)| d.finished()).map(|(id, _)| *id).collect();
        for id in finished {
            self.remove_driver(id);
        }
        Ok(delivered)
    }
}
