//! The filesystem poller: a wake handle per connection, woken at once by publishes and requeues of this
//! process, and a timer that looks at the directories every polling interval for what other processes
//! wrote. On either it claims messages for the consumers.

use std::sync::Arc;
use std::time::Duration;

use kombu_core::hub::{Event, EventKind, Sources};
use kombu_core::transport::{Delivery, Poller};
use kombu_core::virtual_transport::Registration;
use kombu_core::Result;

use crate::channel::ConnShared;

/// Most messages one wake-up hands out before letting the Hub serve timers and other connections.
const BUDGET: usize = 256;

pub(crate) struct FsPoller {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) interval: Duration,
    pub(crate) registration: Option<Registration>,
}

impl Poller for FsPoller {
    fn register(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        let registration = self.conn.wake_slot().register(sources.waker());
        sources.wake_after(registration.token(), self.interval);
        registration.wake();
        self.registration = Some(registration);
        Ok(())
    }

    fn ready(&mut self, event: &Event, sources: &mut Sources<'_>, out: &mut Vec<Delivery>) -> Result<()> {
        let Some(registration) = &self.registration else { return Ok(()) };
        if event.kind == EventKind::Timer && event.token == registration.token() {
            sources.wake_after(registration.token(), self.interval);
        }
        if !self.conn.is_open() {
            return Ok(());
        }
        if self.conn.collect(out, BUDGET) {
            registration.wake();
        }
        Ok(())
    }

    fn deregister(&mut self, _sources: &mut Sources<'_>) -> Result<()> {
        self.registration = None;
        Ok(())
    }
}
