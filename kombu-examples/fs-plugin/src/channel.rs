//! Filesystem channels: kombu-core's virtual channel over the store. This file says how the store
//! claims, settles and puts back message files (its entities are in store.rs); consumers, delivery tags,
//! prefetch and the claims that go back when a channel closes are the toolkit's.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use kombu_core::virtual_transport::{Backend, ConnectionState, WakeSlot};
use kombu_core::{Message, Result};

use crate::names::MessageName;
use crate::notify;
use crate::store::{Claim, Store};

/// What one connection's channels (kombu-core's `VirtualChannel<Store>`) and poller share.
pub(crate) type ConnShared = ConnectionState<Store>;

/// Takes the first message of `queue` that can be claimed, trying the names in `candidates` (refilled
/// from the directory when empty).
fn claim_next(store: &Store, queue: &str, candidates: &mut VecDeque<MessageName>) -> Result<Option<(Claim, Message)>> {
    let mut listed = false;
    loop {
        let Some(name) = candidates.pop_front() else {
            if listed {
                return Ok(None);
            }
            candidates.extend(store.ready(queue)?);
            listed = true;
            continue;
        };
        if let Some(claimed) = store.claim(queue, &name, store.owner())? {
            return Ok(Some(claimed));
        }
    }
}

impl Backend for Store {
    type Held = Claim;
    /// The directory listings of the queues one round has looked at.
    type Round<'a> = HashMap<Arc<str>, VecDeque<MessageName>>;

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
        if let Some((claim, message)) = claim_next(self, queue, candidates)? {
            out.push((message, claim));
        }
        Ok(())
    }

    fn ack(&self, claim: Claim) -> Result<()> {
        self.ack(&claim)
    }

    fn requeue(&self, claims: Vec<Claim>) -> Result<()> {
        let mut first_err = None;
        for claim in &claims {
            if let Err(e) = self.requeue(claim) {
                first_err.get_or_insert(e);
            }
        }
        notify::wake_root(self.root());
        first_err.map_or(Ok(()), Err)
    }

    fn reject(&self, claim: Claim) -> Result<()> {
        self.ack(&claim)
    }

    fn watch(&self, queue: &str, _slot: &Arc<WakeSlot>) -> Result<()> {
        self.ready(queue).map(|_| ())
    }
}
