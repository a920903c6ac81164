//! What a poller sees of the Hub: tokens, readiness events, file-descriptor registration, wake handles
//! for sources on other threads, and one-shot timers. The mio types stay inside.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;

use crate::error::{Error, Result};

/// Identifies one event source registered with a Hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// Which readiness to watch for. Cannot be empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    readable: bool,
    writable: bool,
}

impl Interest {
    /// Readable.
    pub const READABLE: Interest = Interest { readable: true, writable: false };
    /// Writable.
    pub const WRITABLE: Interest = Interest { readable: false, writable: true };
    /// Readable and writable.
    pub const BOTH: Interest = Interest { readable: true, writable: true };

    /// Whether readable readiness is watched.
    pub fn is_readable(self) -> bool {
        self.readable
    }
    /// Whether writable readiness is watched.
    pub fn is_writable(self) -> bool {
        self.writable
    }

    fn to_mio(self) -> mio::Interest {
        match (self.readable, self.writable) {
            (true, true) => mio::Interest::READABLE | mio::Interest::WRITABLE,
            (false, true) => mio::Interest::WRITABLE,
            _ => mio::Interest::READABLE,
        }
    }
}

/// Why a source is being told to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A file descriptor is ready.
    Io,
    /// A [`WakeHandle`] was woken.
    Woken,
    /// A timer set with [`Sources::wake_after`] is due.
    Timer,
}

/// A readiness event for one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The source.
    pub token: Token,
    /// What happened.
    pub kind: EventKind,
    /// Readable (for `Io`).
    pub readable: bool,
    /// Writable (for `Io`).
    pub writable: bool,
    /// The peer closed, or the descriptor is in error (for `Io`).
    pub closed: bool,
}

impl Event {
    pub(crate) fn signal(token: Token, kind: EventKind) -> Event {
        Event { token, kind, readable: false, writable: false, closed: false }
    }
}

/// The waker shared by a Hub and every [`WakeHandle`] it gave out.
pub(crate) struct WakeShared {
    pub(crate) waker: mio::Waker,
    pub(crate) woken: Mutex<Vec<Token>>,
    /// The thread turning the reactor now (see [`this_thread`]; 0: none). A wake from that thread (a
    /// poller that ran out of budget asks for another turn) needs no write to the waker: the turn's
    /// caller turns again, and the next turn takes it ([`WakeShared::merged`]).
    pub(crate) turner: AtomicUsize,
    /// Wakes merged into the next turn (pushed to `woken` without a write to the waker).
    pub(crate) merged: AtomicBool,
    /// Tasks to wake with the Hub (the async API's consumer streams waiting for a delivery, which turn
    /// the reactor themselves): each wake that is not merged wakes them too, from the waking thread.
    pub(crate) watchers: Mutex<Vec<std::task::Waker>>,
}

/// Wakes the Hub from any thread so that its owner is told (`EventKind::Woken`). Cheap to clone; wakes
/// that come while one is pending are merged.
#[derive(Clone)]
pub struct WakeHandle {
    token: Token,
    pending: Arc<AtomicBool>,
    shared: Arc<WakeShared>,
}

impl std::fmt::Debug for WakeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeHandle").field("token", &self.token).finish()
    }
}

impl WakeHandle {
    /// Wakes the Hub for this handle's owner.
    pub fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.shared.woken.lock().unwrap_or_else(|e| e.into_inner()).push(self.token);
            if self.shared.turner.load(Ordering::Acquire) == this_thread() {
                self.shared.merged.store(true, Ordering::Release);
            } else if let Err(e) = self.shared.waker.wake() {
                tracing::warn!("cannot wake the hub: {e}");
            }
            let watchers = std::mem::take(&mut *self.shared.watchers.lock().unwrap_or_else(|e| e.into_inner()));
            watchers.into_iter().for_each(std::task::Waker::wake);
        }
    }

    /// The token events for this handle carry.
    pub fn token(&self) -> Token {
        self.token
    }
}

/// A number that tells this thread from every other running one (never 0): the address of a
/// thread-local.
pub(crate) fn this_thread() -> usize {
    thread_local! {
        static MARK: u8 = const { 0 };
    }
    MARK.with(|m| std::ptr::from_ref(m) as usize)
}

/// Who gets the events of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    Driver(u64),
    External,
}

/// The registration state shared by the reactor and the `Sources` it lends.
pub(crate) struct Table {
    pub(crate) next_token: usize,
    pub(crate) owners: HashMap<Token, Owner>,
    pub(crate) wake_flags: HashMap<Token, Arc<AtomicBool>>,
    pub(crate) due: BinaryHeap<Reverse<(Instant, Token)>>,
    /// Each token's one pending timer: `due` entries that no longer match are stale (re-armed) and skipped.
    pub(crate) deadlines: HashMap<Token, Instant>,
}

impl Table {
    pub(crate) fn new(first_token: usize) -> Self {
        Table {
            next_token: first_token,
            owners: HashMap::new(),
            wake_flags: HashMap::new(),
            due: BinaryHeap::new(),
            deadlines: HashMap::new(),
        }
    }
    pub(crate) fn allocate(&mut self, owner: Owner) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        self.owners.insert(t, owner);
        t
    }
    pub(crate) fn forget_owner(&mut self, owner: Owner) {
        self.owners.retain(|_, o| *o != owner);
        let owners = &self.owners;
        self.wake_flags.retain(|t, _| owners.contains_key(t));
        self.deadlines.retain(|t, _| owners.contains_key(t));
    }

    /// Drops timer entries that were re-armed or whose token is gone; the next real deadline is then at
    /// the top of `due`.
    pub(crate) fn prune_due(&mut self) {
        while let Some(Reverse((at, token))) = self.due.peek().copied() {
            if self.deadlines.get(&token) == Some(&at) {
                break;
            }
            self.due.pop();
        }
    }

    /// Takes the next timer due at or before `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Token> {
        self.prune_due();
        let Reverse((at, token)) = self.due.peek().copied()?;
        if at > now {
            return None;
        }
        self.due.pop();
        self.deadlines.remove(&token);
        Some(token)
    }
}

/// The Hub's registration API, lent to a [`Poller`](crate::transport::Poller) while it registers or handles
/// an event. Everything registered through it belongs to that poller.
pub struct Sources<'a> {
    pub(crate) registry: &'a mio::Registry,
    pub(crate) table: &'a mut Table,
    pub(crate) shared: &'a Arc<WakeShared>,
    pub(crate) owner: Owner,
}

impl std::fmt::Debug for Sources<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").field("owner", &self.owner).finish()
    }
}

impl Sources<'_> {
    /// Watches a file descriptor (which must stay open until deregistered).
    pub fn register_fd(&mut self, fd: RawFd, interest: Interest) -> Result<Token> {
        let token = self.table.allocate(self.owner);
        if let Err(e) = self.registry.register(&mut SourceFd(&fd), mio::Token(token.0), interest.to_mio()) {
            self.table.owners.remove(&token);
            return Err(Error::with_source(crate::ErrorKind::Connection, format!("cannot watch fd {fd}"), e));
        }
        Ok(token)
    }

    /// Changes what is watched on a registered descriptor.
    pub fn reregister_fd(&mut self, fd: RawFd, token: Token, interest: Interest) -> Result<()> {
        self.registry
            .reregister(&mut SourceFd(&fd), mio::Token(token.0), interest.to_mio())
            .map_err(|e| Error::with_source(crate::ErrorKind::Connection, format!("cannot re-watch fd {fd}"), e))
    }

    /// Stops watching a descriptor.
    pub fn deregister_fd(&mut self, fd: RawFd, token: Token) -> Result<()> {
        self.table.owners.remove(&token);
        self.registry
            .deregister(&mut SourceFd(&fd))
            .map_err(|e| Error::with_source(crate::ErrorKind::Connection, format!("cannot unwatch fd {fd}"), e))
    }

    /// A handle that wakes this owner from any thread.
    pub fn waker(&mut self) -> WakeHandle {
        let token = self.table.allocate(self.owner);
        let pending = Arc::new(AtomicBool::new(false));
        self.table.wake_flags.insert(token, pending.clone());
        WakeHandle { token, pending, shared: self.shared.clone() }
    }

    /// Asks for one `EventKind::Timer` event with `token` after `delay` (a delay beyond
    /// [`FOREVER`](super::FOREVER) is taken as that: never in practice). A token has one timer: arming
    /// it again replaces the earlier deadline, so timers never pile up.
    pub fn wake_after(&mut self, token: Token, delay: Duration) {
        let at = super::after(Instant::now(), delay);
        self.table.deadlines.insert(token, at);
        self.table.due.push(Reverse((at, token)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_after_saturates_on_huge_delays_and_rearming_replaces() {
        let mut reactor = crate::hub::reactor::Reactor::new().unwrap();
        let mut sources = reactor.external_sources();
        let token = sources.waker().token();
        let now = Instant::now();
        sources.wake_after(token, Duration::from_secs_f64(1e19));
        assert!(sources.table.deadlines[&token] > now + Duration::from_secs(3600 * 24 * 365));
        sources.wake_after(token, Duration::MAX);
        sources.wake_after(token, Duration::from_millis(5));
        // One timer for the token: the last deadline, the others stale and skipped.
        assert!(sources.table.deadlines[&token] <= now + Duration::from_secs(1));
        assert_eq!(sources.table.pop_due(now + Duration::from_secs(1)), Some(token));
        assert_eq!(sources.table.pop_due(now + Duration::from_secs(3600 * 24 * 365 * 200)), None);
    }
}
