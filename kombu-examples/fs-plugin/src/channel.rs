//! Filesystem channels: declare, publish, get, consume and settle against the store, with per-channel
//! prefetch, and claimed messages that go back to their queues when the channel closes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use kombu_core::transport::{Channel, Delivery, PublishOptions};
use kombu_core::{DeliveryTag, Error, Exchange, FieldTable, Message, Queue, QueueInfo, Result};

use crate::names::MessageName;
use crate::notify::{self, Notify};
use crate::store::{Claim, Store};

/// What one connection's channels share.
pub(crate) struct ConnShared {
    pub(crate) store: Arc<Store>,
    pub(crate) notify: Arc<Notify>,
    pub(crate) channels: Mutex<Vec<Weak<FsChannel>>>,
    pub(crate) open: AtomicBool,
}

impl ConnShared {
    pub(crate) fn channels(&self) -> Vec<Arc<FsChannel>> {
        let mut list = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    }
}

struct Consumer {
    tag: Arc<str>,
    queue: Arc<str>,
    no_ack: bool,
}

#[derive(Default)]
struct State {
    next_tag: u64,
    unacked: HashMap<u64, Claim>,
    prefetch: u16,
    consumers: Vec<Consumer>,
    rr: usize,
}

impl State {
    fn full(&self) -> bool {
        self.prefetch > 0 && self.unacked.len() >= usize::from(self.prefetch)
    }
}

/// A channel on a filesystem broker.
pub(crate) struct FsChannel {
    me: Weak<FsChannel>,
    conn: Arc<ConnShared>,
    /// Names this channel's claims: `<pid>.<channel number>`.
    owner: String,
    state: Mutex<State>,
    open: AtomicBool,
}

impl FsChannel {
    pub(crate) fn open(conn: Arc<ConnShared>) -> Arc<FsChannel> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let owner = format!("{}.{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let ch = Arc::new_cyclic(|me| FsChannel {
            me: me.clone(),
            conn: conn.clone(),
            owner,
            state: Mutex::new(State::default()),
            open: AtomicBool::new(true),
        });
        conn.channels.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&ch));
        ch
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_open(&self) -> Result<()> {
        if self.is_open() {
            Ok(())
        } else {
            Err(Error::state("channel is closed"))
        }
    }

    fn store(&self) -> &Store {
        &self.conn.store
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
                candidates.extend(self.store().ready(queue)?);
                listed = true;
                continue;
            };
            if let Some(claimed) = self.store().claim(queue, &name, &self.owner)? {
                return Ok(Some(claimed));
            }
        }
    }

    /// Numbers a claimed message and, unless `no_ack`, records it as unacknowledged.
    fn deliver(
        &self,
        st: &mut State,
        claim: Claim,
        mut message: Message,
        no_ack: bool,
        consumer: Option<&str>,
    ) -> Message {
        st.next_tag += 1;
        let tag = st.next_tag;
        message.delivery_info.delivery_tag = DeliveryTag::Number(tag);
        message.delivery_info.consumer_tag = consumer.map(Arc::from);
        if no_ack {
            if let Err(e) = self.store().ack(&claim) {
                tracing::warn!("cannot remove a message taken without ack: {e:#}");
            }
        } else {
            if let Some(me) = self.me.upgrade() {
                message.bind_channel(me);
            }
            st.unacked.insert(tag, claim);
        }
        message
    }

    /// Claims up to `budget` messages for this channel's consumers, in turn, within prefetch. Returns
    /// whether it stopped because of the budget (more may be waiting).
    pub(crate) fn collect(&self, out: &mut Vec<Delivery>, budget: usize) -> bool {
        if !self.is_open() {
            return false;
        }
        let mut st = self.state();
        let n = st.consumers.len();
        if n == 0 {
            return false;
        }
        let mut listings: HashMap<Arc<str>, VecDeque<MessageName>> = HashMap::new();
        let (mut delivered, mut idle, mut i) = (0, 0, st.rr);
        while delivered < budget && idle < n && !st.full() {
            let c = &st.consumers[i % n];
            let (tag, queue, no_ack) = (c.tag.clone(), c.queue.clone(), c.no_ack);
            i += 1;
            let candidates = listings.entry(queue.clone()).or_default();
            match self.claim_next(&queue, candidates) {
                Ok(Some((claim, message))) => {
                    let message = self.deliver(&mut st, claim, message, no_ack, Some(&tag));
                    out.push(Delivery::new(tag, message));
                    delivered += 1;
                    idle = 0;
                }
                Ok(None) => idle += 1,
                Err(e) => {
                    tracing::debug!("consumer '{tag}' on queue '{queue}': {e:#}");
                    idle += 1;
                }
            }
        }
        st.rr = i % n;
        delivered == budget
    }

    fn settle(&self, tag: &DeliveryTag) -> Result<Claim> {
        let DeliveryTag::Number(n) = tag else {
            return Err(Error::precondition(format!("unknown delivery tag {tag}")));
        };
        let mut st = self.state();
        let full = st.full();
        let claim = st.unacked.remove(n).ok_or_else(|| Error::precondition(format!("unknown delivery tag {tag}")))?;
        if full {
            self.conn.notify.wake();
        }
        Ok(claim)
    }

    fn restore_unacked(&self) -> Result<()> {
        let claims: Vec<Claim> = self.state().unacked.drain().map(|(_, c)| c).collect();
        if claims.is_empty() {
            return Ok(());
        }
        let mut first_err = None;
        for claim in &claims {
            if let Err(e) = self.store().requeue(claim) {
                first_err.get_or_insert(e);
            }
        }
        notify::wake_root(self.store().root());
        first_err.map_or(Ok(()), Err)
    }
}

impl Channel for FsChannel {
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        self.check_open()?;
        self.store().declare_exchange(exchange, passive)
    }

    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        self.check_open()?;
        self.store().delete_exchange(name, if_unused)
    }

    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        self.check_open()?;
        self.store().declare_queue(queue, passive)
    }

    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        self.check_open()?;
        self.store().delete_queue(name, if_unused, if_empty)
    }

    fn bind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.check_open()?;
        self.store().bind(queue, exchange, routing_key, arguments)
    }

    fn unbind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.check_open()?;
        self.store().unbind(queue, exchange, routing_key, arguments)
    }

    fn purge_queue(&self, name: &str) -> Result<u64> {
        self.check_open()?;
        self.store().purge(name)
    }

    fn publish(&self, message: Message, exchange: &str, routing_key: &str, _options: &PublishOptions) -> Result<()> {
        self.check_open()?;
        if self.store().publish(&message, exchange, routing_key)? > 0 {
            notify::wake_root(self.store().root());
        }
        Ok(())
    }

    fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Message>> {
        self.check_open()?;
        let mut st = self.state();
        let claimed = self.claim_next(queue, &mut VecDeque::new())?;
        Ok(claimed.map(|(claim, message)| self.deliver(&mut st, claim, message, no_ack, None)))
    }

    fn consume(&self, queue: &str, consumer_tag: &str, no_ack: bool) -> Result<()> {
        self.check_open()?;
        self.store().ready(queue)?;
        let mut st = self.state();
        if st.consumers.iter().any(|c| &*c.tag == consumer_tag) {
            return Err(Error::precondition(format!("consumer tag '{consumer_tag}' is already in use")));
        }
        st.consumers.push(Consumer { tag: Arc::from(consumer_tag), queue: Arc::from(queue), no_ack });
        drop(st);
        self.conn.notify.wake();
        Ok(())
    }

    fn cancel(&self, consumer_tag: &str) -> Result<()> {
        self.state().consumers.retain(|c| &*c.tag != consumer_tag);
        Ok(())
    }

    fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        let claim = self.settle(tag)?;
        self.store().ack(&claim)
    }

    fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()> {
        let claim = self.settle(tag)?;
        if requeue {
            self.store().requeue(&claim)?;
            notify::wake_root(self.store().root());
            Ok(())
        } else {
            self.store().ack(&claim)
        }
    }

    fn recover(&self, _requeue: bool) -> Result<()> {
        self.check_open()?;
        self.restore_unacked()
    }

    fn qos(&self, prefetch_count: u16) -> Result<()> {
        self.check_open()?;
        self.state().prefetch = prefetch_count;
        self.conn.notify.wake();
        Ok(())
    }

    fn close(&self) -> Result<()> {
        if !self.open.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.state().consumers.clear();
        self.restore_unacked()
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire) && self.conn.open.load(Ordering::Acquire)
    }
}

impl Drop for FsChannel {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!("closing a filesystem channel: {e:#}");
        }
    }
}
