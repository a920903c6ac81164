//! The in-process broker: exchanges, bindings and queues of one virtual host, shared by every connection
//! of the process that names it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crate::bindings::Bindings;
use kombu_core::virtual_transport::{Entities, WakeSlot, Watchers};
use kombu_core::{Error, Exchange, ExchangeKind, FieldTable, Message, Queue, QueueInfo, Result};

/// A message waiting in a queue. The message itself is shared (fanout copies, unacked records).
#[derive(Clone)]
pub(crate) struct Stored {
    pub(crate) message: Arc<Message>,
    pub(crate) redelivered: bool,
    /// Deliveries before the next one (requeues counted).
    pub(crate) redeliveries: u32,
    pub(crate) expires_at: Option<Instant>,
}

struct ExchangeEntry {
    name: Arc<str>,
    kind: ExchangeKind,
    bindings: Bindings,
}

pub(crate) struct QueueEntry {
    pub(crate) config: Queue,
    /// One band per priority (index = priority), or a single band without priorities.
    bands: Vec<VecDeque<Stored>>,
    len: usize,
    /// The connections consuming from it, woken when it gets messages.
    watchers: Watchers,
    pub(crate) consumers: u32,
}

impl QueueEntry {
    fn new(config: Queue) -> Self {
        let bands = usize::from(config.max_priority.unwrap_or(0)) + 1;
        QueueEntry { config, bands: vec![VecDeque::new(); bands], len: 0, watchers: Watchers::default(), consumers: 0 }
    }

    fn band(&self, message: &Message) -> usize {
        usize::from(message.properties.priority.unwrap_or(0)).min(self.bands.len() - 1)
    }

    fn push_back(&mut self, stored: Stored) {
        let b = self.band(&stored.message);
        self.bands[b].push_back(stored);
        self.len += 1;
    }

    fn push_front(&mut self, stored: Stored) {
        let b = self.band(&stored.message);
        self.bands[b].push_front(stored);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<Stored> {
        let band = self.bands.iter_mut().rev().find(|b| !b.is_empty())?;
        self.len -= 1;
        band.pop_front()
    }
}

#[derive(Default)]
pub(crate) struct State {
    exchanges: HashMap<String, ExchangeEntry>,
    pub(crate) queues: HashMap<String, QueueEntry>,
    /// The last routing key published, shared by the next message that uses it again.
    last_key: Option<Arc<str>>,
    default_exchange: Option<Arc<str>>,
}

/// One virtual host's broker.
#[derive(Default)]
pub(crate) struct Broker {
    state: Mutex<State>,
}

/// The broker of virtual host `name`, created on first use and shared by the whole process.
pub(crate) fn broker(name: &str) -> Arc<Broker> {
    static BROKERS: OnceLock<Mutex<HashMap<String, Arc<Broker>>>> = OnceLock::new();
    let mut all = BROKERS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    all.entry(name.to_owned()).or_default().clone()
}

fn no_queue(name: &str) -> Error {
    Error::not_found(format!("no queue '{name}' in vhost"))
}

fn no_exchange(name: &str) -> Error {
    Error::not_found(format!("no exchange '{name}' in vhost"))
}

impl Broker {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A consumer starts on a queue: counts it, and adds its connection to the queue's watchers (once).
    pub(crate) fn add_consumer(&self, queue: &str, slot: &Arc<WakeSlot>) -> Result<()> {
        let mut st = self.lock();
        let q = st.queues.get_mut(queue).ok_or_else(|| no_queue(queue))?;
        q.watchers.add(slot);
        q.consumers += 1;
        Ok(())
    }
}

impl Entities for Broker {
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        if exchange.is_default() {
            return Ok(());
        }
        let mut st = self.lock();
        match st.exchanges.get(&exchange.name) {
            Some(e) if e.kind != exchange.kind && !passive => Err(Error::precondition(format!(
                "exchange '{}' exists with type {}, not {}",
                exchange.name, e.kind, exchange.kind
            ))),
            Some(_) => Ok(()),
            None if passive => Err(no_exchange(&exchange.name)),
            None => {
                let entry = ExchangeEntry {
                    name: exchange.name.as_str().into(),
                    kind: exchange.kind,
                    bindings: Bindings::default(),
                };
                st.exchanges.insert(exchange.name.clone(), entry);
                Ok(())
            }
        }
    }

    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        let mut st = self.lock();
        match st.exchanges.get(name) {
            None => Err(no_exchange(name)),
            Some(e) if if_unused && !e.bindings.is_empty() => {
                Err(Error::precondition(format!("exchange '{name}' is in use")))
            }
            Some(_) => {
                st.exchanges.remove(name);
                Ok(())
            }
        }
    }

    /// Routes a message to its queues. A message no queue takes is dropped.
    fn publish(&self, message: Message, exchange: &str, routing_key: &str) -> Result<()> {
        let mut st = self.lock();
        st.route(message, exchange, routing_key, false)
    }

    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        if queue.name.is_empty() {
            return Err(Error::invalid("the memory transport needs a queue name"));
        }
        let mut st = self.lock();
        match st.queues.get(&queue.name) {
            Some(q) => {
                if !passive
                    && (q.config.max_priority != queue.max_priority || q.config.message_ttl != queue.message_ttl)
                {
                    return Err(Error::precondition(format!(
                        "queue '{}' exists with other arguments (max priority {:?}, message ttl {:?})",
                        queue.name, q.config.max_priority, q.config.message_ttl
                    )));
                }
                Ok(QueueInfo::new(queue.name.clone(), q.len as u64, q.consumers))
            }
            None if passive => Err(no_queue(&queue.name)),
            None => {
                st.queues.insert(queue.name.clone(), QueueEntry::new(queue.clone()));
                Ok(QueueInfo::new(queue.name.clone(), 0, 0))
            }
        }
    }

    fn purge_queue(&self, name: &str) -> Result<u64> {
        let mut st = self.lock();
        let q = st.queues.get_mut(name).ok_or_else(|| no_queue(name))?;
        let n = q.len as u64;
        q.bands.iter_mut().for_each(VecDeque::clear);
        q.len = 0;
        Ok(n)
    }

    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        let mut st = self.lock();
        let q = st.queues.get(name).ok_or_else(|| no_queue(name))?;
        if if_unused && q.consumers > 0 {
            return Err(Error::precondition(format!("queue '{name}' has consumers")));
        }
        if if_empty && q.len > 0 {
            return Err(Error::precondition(format!("queue '{name}' is not empty")));
        }
        let removed = st.queues.remove(name).map(|q| q.len as u64).unwrap_or(0);
        for ex in st.exchanges.values_mut() {
            ex.bindings.remove_queue(name);
        }
        Ok(removed)
    }

    fn bind_queue(&self, queue: &str, exchange: &str, key: &str, args: &FieldTable) -> Result<()> {
        let mut st = self.lock();
        if !st.queues.contains_key(queue) {
            return Err(no_queue(queue));
        }
        let ex = st.exchanges.get_mut(exchange).ok_or_else(|| no_exchange(exchange))?;
        ex.bindings.add(queue, key, args);
        Ok(())
    }

    fn unbind_queue(&self, queue: &str, exchange: &str, key: &str, args: &FieldTable) -> Result<()> {
        let mut st = self.lock();
        let ex = st.exchanges.get_mut(exchange).ok_or_else(|| no_exchange(exchange))?;
        ex.bindings.remove(queue, key, args);
        Ok(())
    }
}

impl State {
    fn route(&mut self, mut message: Message, exchange: &str, routing_key: &str, redelivered: bool) -> Result<()> {
        message.delivery_info.routing_key = match &self.last_key {
            Some(k) if **k == *routing_key => k.clone(),
            _ => {
                let k: Arc<str> = Arc::from(routing_key);
                self.last_key = Some(k.clone());
                k
            }
        };
        if exchange.is_empty() {
            message.delivery_info.exchange = self.default_exchange.get_or_insert_with(|| Arc::from("")).clone();
            if let Some(q) = self.queues.get_mut(routing_key) {
                enqueue(q, Arc::new(message), redelivered);
            }
            return Ok(());
        }
        let ex = self.exchanges.get_mut(exchange).ok_or_else(|| no_exchange(exchange))?;
        message.delivery_info.exchange = ex.name.clone();
        let targets = ex.bindings.targets(ex.kind, routing_key, &message.headers);
        let shared = Arc::new(message);
        for name in targets {
            if let Some(q) = self.queues.get_mut(&name) {
                enqueue(q, shared.clone(), redelivered);
            }
        }
        Ok(())
    }

    /// Takes up to `max` live messages from a queue into `out` (one queue lookup for the batch); expired
    /// ones are dead-lettered or dropped on the way.
    pub(crate) fn pop_into(&mut self, queue: &str, max: usize, out: &mut Vec<Stored>) -> Result<()> {
        let mut expired = Vec::new();
        let q = self.queues.get_mut(queue).ok_or_else(|| no_queue(queue))?;
        let mut taken = 0;
        while taken < max {
            let Some(stored) = q.pop() else { break };
            match stored.expires_at {
                Some(at) if at <= Instant::now() => expired.push(stored),
                _ => {
                    out.push(stored);
                    taken += 1;
                }
            }
        }
        if !expired.is_empty() {
            let dl = dead_letter_target(&q.config);
            for stored in expired {
                self.dead_letter(dl.clone(), stored);
            }
        }
        Ok(())
    }

    /// Puts messages back at the head of their queue, marked redelivered (in the order given).
    pub(crate) fn requeue(&mut self, queue: &str, mut stored: Vec<Stored>) {
        if let Some(q) = self.queues.get_mut(queue) {
            while let Some(mut s) = stored.pop() {
                s.redelivered = true;
                s.redeliveries = s.redeliveries.saturating_add(1);
                q.push_front(s);
            }
            q.watchers.wake_all();
        }
    }

    /// Drops a rejected message, or routes it to the queue's dead-letter exchange.
    pub(crate) fn reject(&mut self, queue: &str, stored: Stored) {
        let dl = self.queues.get(queue).and_then(|q| dead_letter_target(&q.config));
        self.dead_letter(dl, stored);
    }

    fn dead_letter(&mut self, target: Option<(String, Option<String>)>, stored: Stored) {
        let Some((exchange, key)) = target else { return };
        let mut message = Arc::unwrap_or_clone(stored.message);
        message.properties.expiration = None;
        let key = key.unwrap_or_else(|| message.delivery_info.routing_key.to_string());
        if let Err(e) = self.route(message, &exchange, &key, false) {
            tracing::warn!("dead-lettering to '{exchange}': {e:#}");
        }
    }

    pub(crate) fn unwatch(&mut self, queue: &str) {
        let auto_delete = match self.queues.get_mut(queue) {
            Some(q) => {
                q.consumers = q.consumers.saturating_sub(1);
                q.consumers == 0 && q.config.auto_delete
            }
            None => false,
        };
        if auto_delete {
            self.queues.remove(queue);
            for ex in self.exchanges.values_mut() {
                ex.bindings.remove_queue(queue);
            }
        }
    }
}

fn dead_letter_target(config: &Queue) -> Option<(String, Option<String>)> {
    config.dead_letter_exchange.clone().map(|ex| (ex, config.dead_letter_routing_key.clone()))
}

fn enqueue(q: &mut QueueEntry, message: Arc<Message>, redelivered: bool) {
    let ttl = match (message.properties.expiration, q.config.message_ttl) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    q.push_back(Stored {
        message,
        redelivered,
        redeliveries: u32::from(redelivered),
        expires_at: ttl.map(|t| Instant::now() + t),
    });
    // Pollers are woken when a queue becomes non-empty; one that stops early (budget, prefetch) wakes
    // itself again or is woken by the ack that makes room, so later messages need no wake of their own.
    if q.len == 1 {
        q.watchers.wake_all();
    }
}
