//! The consumer side of a connection, in the shape of Kombu's MultiChannelPoller: two non-blocking
//! sockets registered with the Hub.
//!
//! - The command socket sends the pop-and-record script for each channel that has consumers and prefetch
//!   room, pipelined, and reads the replies as they arrive (a message is never only in a socket buffer:
//!   the script records it in `unacked` in the same step that pops it).
//! - The pub/sub socket receives fanout messages (PSUBSCRIBE on Kombu's channel names) and the key
//!   invalidations of Redis client-side tracking (`CLIENT TRACKING ... BCAST PREFIX <queue>`), which say
//!   that a watched queue changed, so the next pop is sent only when there may be something to take.
//!   A timer looks again every `polling_interval` in case a notification was missed, and is the only
//!   trigger on a server without tracking.
//!
//! The sockets are connected and authenticated in [`Poller::prepare`], off the event loop's thread. A
//! dropped socket (or two missed health checks) is reported to the connection's driver as a lost link;
//! the driver alone reconnects. The messages taken by requests whose replies were lost are put back from
//! the connection's in-flight hash, on a thread of their own.
//!
//! By job: `link` (the sockets, their pending replies, connect and drop, one round of work), `pop` (pop
//! requests and their replies), `fanout` (the pub/sub socket), `sync` (subscriptions and tracking
//! prefixes following the consumers), `tick` (the timer: polling, health checks, restore sweeps).

mod fanout;
mod link;
mod pop;
mod sync;
mod tick;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kombu_core::hub::{Event, EventKind, Sources};
use kombu_core::transport::{Delivery, Poller};
use kombu_core::virtual_transport::{FairCycle, Registration};
use kombu_core::{Error, ErrorKind, Result};

use crate::connection::Shared;

/// What the poller knows of one channel's requests.
#[derive(Debug)]
struct ChanPoll {
    /// There may be something to take: a pop request is due once the last one is answered.
    dirty: bool,
    /// Messages asked for and not answered yet.
    inflight: usize,
    /// The channel's queues taking turns (round-robin starts each request one further on).
    turns: FairCycle<Arc<str>>,
}

impl Default for ChanPoll {
    fn default() -> Self {
        ChanPoll { dirty: true, inflight: 0, turns: FairCycle::new() }
    }
}

/// The poller of one Redis connection.
pub(crate) struct RedisPoller {
    shared: Arc<Shared>,
    link: Option<link::Link>,
    /// This poller's place in the connection's wake slot while registered with the Hub.
    registration: Option<Registration>,
    chans: HashMap<u64, ChanPoll>,
    req_seq: u64,
    /// Both sockets, connected and authenticated by `prepare`, waiting to be registered.
    prepared: Option<link::Prepared>,
    next_restore: Instant,
    next_health: Instant,
    /// With Sentinel: the look-ups, off the loop's thread, of where the master is now.
    watch: Arc<crate::sentinel::MasterWatch>,
    next_watch: Instant,
}

impl std::fmt::Debug for RedisPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPoller").field("connected", &self.link.is_some()).finish()
    }
}

impl RedisPoller {
    pub(crate) fn new(shared: Arc<Shared>) -> RedisPoller {
        let now = Instant::now();
        RedisPoller {
            shared,
            link: None,
            registration: None,
            chans: HashMap::new(),
            req_seq: 0,
            prepared: None,
            next_restore: now,
            next_health: now,
            watch: Arc::default(),
            next_watch: now,
        }
    }

    /// Every channel may have something to take: each gets a pop request once its last is answered.
    fn mark_dirty(&mut self) {
        for cp in self.chans.values_mut() {
            cp.dirty = true;
        }
    }

    /// A new or lost link: no request is in flight, and every channel is due one.
    fn reset_requests(&mut self) {
        for cp in self.chans.values_mut() {
            cp.dirty = true;
            cp.inflight = 0;
        }
    }
}

impl Poller for RedisPoller {
    fn prepare(&mut self) -> Result<()> {
        self.prepared = Some(self.open_sockets()?);
        Ok(())
    }

    fn register(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        self.registration = Some(self.shared.waker.register(sources.waker()));
        self.connect(sources)?;
        self.arm_timer(sources, Duration::ZERO);
        Ok(())
    }

    fn ready(&mut self, event: &Event, sources: &mut Sources<'_>, out: &mut Vec<Delivery>) -> Result<()> {
        if !self.shared.open.load(std::sync::atomic::Ordering::Acquire) {
            self.drop_link(sources);
            return Ok(());
        }
        if let Some(now) = self.watch.moved() {
            self.drop_link(sources);
            return Err(Error::connection(format!("the sentinels name {now} as the master now; connecting there")));
        }
        match event.kind {
            EventKind::Timer => self.on_tick(sources),
            EventKind::Woken => self.mark_dirty(),
            _ => {}
        }
        if self.link.is_none() {
            return Err(Error::connection("redis did not answer two health checks"));
        }
        if let Err(e) = self.pump(sources, out) {
            if e.kind() == ErrorKind::Connection {
                self.drop_link(sources);
            }
            return Err(e);
        }
        Ok(())
    }

    fn deregister(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        // Requests whose replies were not read yet are put back from the in-flight hash.
        self.drop_link(sources);
        // Takes this poller's handle out of the slot, unless a newer poller registered since.
        self.registration = None;
        Ok(())
    }
}
