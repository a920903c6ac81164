//! The filesystem poller: a wake handle per connection, woken at once by publishes and requeues of this
//! process, and a timer that looks at the directories every polling interval for what other processes
//! wrote. On either it claims messages for the consumers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kombu_core::hub::{Event, EventKind, Sources, WakeHandle};
use kombu_core::transport::{Delivery, Poller};
use kombu_core::Result;

use crate::channel::ConnShared;

/// Most messages one wake-up hands out before letting the Hub serve timers and other connections.
const BUDGET: usize = 256;

pub(crate) struct FsPoller {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) interval: Duration,
    pub(crate) handle: Option<WakeHandle>,
}

impl Poller for FsPoller {
    fn register(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        let handle = sources.waker();
        self.conn.notify.set(Some(handle.clone()));
        sources.wake_after(handle.token(), self.interval);
        handle.wake();
        self.handle = Some(handle);
        Ok(())
    }

    fn ready(&mut self, event: &Event, sources: &mut Sources<'_>, out: &mut Vec<Delivery>) -> Result<()> {
        let Some(handle) = &self.handle else { return Ok(()) };
        if event.kind == EventKind::Timer && event.token == handle.token() {
            sources.wake_after(handle.token(), self.interval);
        }
        if !self.conn.open.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut more = false;
        for ch in self.conn.channels() {
            more |= ch.collect(out, BUDGET);
        }
        if more {
            handle.wake();
        }
        Ok(())
    }

    fn deregister(&mut self, _sources: &mut Sources<'_>) -> Result<()> {
        self.conn.notify.set(None);
        self.handle = None;
        Ok(())
    }
}
