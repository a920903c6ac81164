//! The memory poller: a wake handle per connection, woken by the broker when a watched queue gets
//! messages (or by an ack that makes room under prefetch); on wake it collects deliveries.

use std::sync::Arc;

use kombu_core::hub::{Event, Sources, WakeHandle};
use kombu_core::transport::{Delivery, Poller};
use kombu_core::Result;

use crate::channel::ConnShared;

/// Most messages one wake-up hands out before letting the Hub serve timers and other connections.
const BUDGET: usize = 4096;

pub(crate) struct MemoryPoller {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) handle: Option<WakeHandle>,
}

impl Poller for MemoryPoller {
    fn register(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        let handle = sources.waker();
        self.conn.notify.set(Some(handle.clone()));
        handle.wake();
        self.handle = Some(handle);
        Ok(())
    }

    fn ready(&mut self, _event: &Event, _sources: &mut Sources<'_>, out: &mut Vec<Delivery>) -> Result<()> {
        let mut more = false;
        for ch in self.conn.channels() {
            more |= ch.collect(out, BUDGET);
        }
        if more {
            if let Some(h) = &self.handle {
                h.wake();
            }
        }
        Ok(())
    }

    fn deregister(&mut self, _sources: &mut Sources<'_>) -> Result<()> {
        self.conn.notify.set(None);
        self.handle = None;
        Ok(())
    }
}
