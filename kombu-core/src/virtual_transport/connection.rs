//! What the channels and the poller of one virtual-transport connection share: the backend's store, the
//! poller's wake slot, the live channels and the open flag (Kombu's virtual `Transport` keeps the same
//! per connection).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::channel::{Backend, VirtualChannel};
use super::channels::ChannelSet;
use super::wake::WakeSlot;
use crate::transport::{Channel, Delivery};
use crate::{Error, Result};

/// One connection's shared state, over the backend's store `B` (which may itself be shared by many
/// connections, as the memory broker of a virtual host is).
pub struct ConnectionState<B: Backend> {
    backend: Arc<B>,
    wake: Arc<WakeSlot>,
    channels: ChannelSet<VirtualChannel<B>>,
    open: AtomicBool,
}

impl<B: Backend> std::fmt::Debug for ConnectionState<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionState").field("open", &self.is_open()).field("wake", &self.wake).finish()
    }
}

impl<B: Backend> ConnectionState<B> {
    /// An open connection to `backend`.
    pub fn new(backend: Arc<B>) -> Arc<ConnectionState<B>> {
        Arc::new(ConnectionState {
            backend,
            wake: Arc::default(),
            channels: ChannelSet::default(),
            open: AtomicBool::new(true),
        })
    }

    /// The backend's store.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The slot the connection's poller registers in; channels and the store wake it.
    pub fn wake_slot(&self) -> &Arc<WakeSlot> {
        &self.wake
    }

    /// Whether the connection is open.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Opens a channel (refused once the connection is closed).
    pub fn open_channel(self: &Arc<Self>) -> Result<Arc<VirtualChannel<B>>> {
        if !self.is_open() {
            return Err(Error::state("connection is closed"));
        }
        let ch = VirtualChannel::open(self.clone());
        self.channels.add(&ch);
        Ok(ch)
    }

    /// Closes every channel (their unacknowledged messages go back), then the connection, and wakes the
    /// poller so that it sees. Every channel is closed even when one fails; the first failure is returned.
    pub fn close(&self) -> Result<()> {
        let mut first_err = None;
        for ch in self.channels.live() {
            if let Err(e) = ch.close() {
                first_err.get_or_insert(e);
            }
        }
        self.open.store(false, Ordering::Release);
        self.wake.wake();
        first_err.map_or(Ok(()), Err)
    }

    /// The poller's job on each wake: every channel collects for its consumers, up to `budget` each.
    /// Returns whether one stopped because of the budget (so the poller wakes itself again).
    pub fn collect(&self, out: &mut Vec<Delivery>, budget: usize) -> bool {
        let mut more = false;
        for ch in self.channels.live() {
            more |= ch.collect(out, budget);
        }
        more
    }
}
