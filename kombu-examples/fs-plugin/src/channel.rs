//! Filesystem channels: kombu-core's virtual channel over the store. This file says how a connection
//! declares, publishes, claims, settles and puts back message files; consumers, delivery tags,
//! prefetch and the claims that go back when a channel closes are the toolkit's.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use kombu_core::virtual_transport::{Backend, ChannelSet, VirtualChannel, WakeSlot};
use kombu_core::{Exchange, FieldTable, Message, Queue, QueueInfo, Result};

use crate::names::MessageName;
use crate::notify;
use crate::store::{Claim, Store};

/// A channel on a filesystem broker.
pub(crate) type FsChannel = VirtualChannel<ConnShared>;

/// What one connection's channels share.
pub(crate) struct ConnShared {
    pub(crate) store: Arc<Store>,
    /// Names this connection's claims: `<pid>.<connection number>`.
    owner: String,
    /// The connection's poller, woken by this process's publishes and requeues, acks and consumers.
    pub(crate) wake: Arc<WakeSlot>,
    pub(crate) channels: ChannelSet<FsChannel>,
    pub(crate) open: AtomicBool,
}

impl ConnShared {
    pub(crate) fn new(store: Arc<Store>) -> ConnShared {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let owner = format!("{}.{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        ConnShared { store, owner, wake: Arc::default(), channels: ChannelSet::default(), open: AtomicBool::new(true) }
    }

    /// Takes the first message of `queue` that can be claimed, trying the names in `candidates` (refilled
    /// from the directory when empty).
    fn claim_next(&self, queue: &str, candidates: &mut VecDeque<MessageName>) -> Result<Option<(Claim, Message)>> {
        let mut listed = false;
        loop {
            let Some(name) = candidates.pop_front() else {
                if listed {
                    return Ok(None);
                }
                candidates.extend(self.store.ready(queue)?);
                listed = true;
                continue;
            };
            if let Some(claimed) = self.store.claim(queue, &name, &self.owner)? {
                return Ok(Some(claimed));
            }
        }
    }
}

impl Backend for ConnShared {
    type Held = Claim;
    /// The directory listings of the queues one round has looked at.
    type Round<'a> = HashMap<Arc<str>, VecDeque<MessageName>>;

    fn wake_slot(&self) -> &Arc<WakeSlot> {
        &self.wake
    }

    fn channels(&self) -> &ChannelSet<FsChannel> {
        &self.channels
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        self.store.declare_exchange(exchange, passive)
    }

    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        self.store.delete_exchange(name, if_unused)
    }

    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        self.store.declare_queue(queue, passive)
    }

    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        self.store.delete_queue(name, if_unused, if_empty)
    }

    fn bind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.store.bind(queue, exchange, routing_key, arguments)
    }

    fn unbind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.store.unbind(queue, exchange, routing_key, arguments)
    }

    fn purge_queue(&self, name: &str) -> Result<u64> {
        self.store.purge(name)
    }

    fn publish(&self, message: Message, exchange: &str, routing_key: &str) -> Result<()> {
        if self.store.publish(&message, exchange, routing_key)? > 0 {
            notify::wake_root(self.store.root());
        }
        Ok(())
    }

    fn round(&self) -> HashMap<Arc<str>, VecDeque<MessageName>> {
        HashMap::new()
    }

    /// One claim per turn (each is a rename that another process may win).
    fn take(
        &self,
        listings: &mut HashMap<Arc<str>, VecDeque<MessageName>>,
        queue: &Arc<str>,
        _max: usize,
        out: &mut Vec<(Message, Claim)>,
    ) -> Result<()> {
        let candidates = listings.entry(queue.clone()).or_default();
        if let Some((claim, message)) = self.claim_next(queue, candidates)? {
            out.push((message, claim));
        }
        Ok(())
    }

    fn ack(&self, claim: Claim) -> Result<()> {
        self.store.ack(&claim)
    }

    fn requeue(&self, claims: Vec<Claim>) -> Result<()> {
        let mut first_err = None;
        for claim in &claims {
            if let Err(e) = self.store.requeue(claim) {
                first_err.get_or_insert(e);
            }
        }
        notify::wake_root(self.store.root());
        first_err.map_or(Ok(()), Err)
    }

    fn reject(&self, claim: Claim) -> Result<()> {
        self.store.ack(&claim)
    }

    fn watch(&self, queue: &str) -> Result<()> {
        self.store.ready(queue).map(|_| ())
    }
}
