//! Redis channels: declares and bindings in Kombu's layout, publish in one round trip (routing runs in a
//! Lua script beside the binding set), get through the atomic pop-and-record script, acks and restores
//! on Kombu's `unacked`/`unacked_index`, and per-channel prefetch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use kombu_core::envelope::Envelope;
use kombu_core::transport::{dead_letter_by_copy, Channel, DeadLetter, Outgoing, PublishOptions};
use kombu_core::virtual_transport::{Consumers, Qos, Unacked};
use kombu_core::{DeliveryTag, Error, Exchange, ExchangeKind, FieldTable, Message, Queue, QueueInfo, Result};

use crate::connection::{lock, Shared};
use crate::keys;
use crate::payload::{mark_redelivered, now_secs};
use crate::publish;
use crate::scripts::{scripts, PopCall};

/// A delivered message not yet settled.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    /// The queue it came from (restores go back there).
    pub(crate) queue: Arc<str>,
    /// The payload as stored.
    pub(crate) payload: Bytes,
    /// Recorded in `unacked` (ack emulation).
    pub(crate) recorded: bool,
}

/// A channel's consumers, its deliveries held unsettled by tag (Kombu's text tags), and its prefetch
/// limit, refilled in batches (a pop request costs a round trip).
#[derive(Debug)]
/// An ack under way: the delivery taken out of the unacked table, to be put back if the ack fails.
pub(crate) struct PendingAck {
    pub(crate) key: String,
    entry: Option<Held>,
    room: bool,
    /// Whether the server holds it in `unacked` (else there is nothing to send).
    pub(crate) recorded: bool,
}

pub(crate) struct ChanState {
    pub(crate) consumers: Consumers,
    pub(crate) qos: Qos,
    pub(crate) unacked: Unacked<Arc<str>, Held>,
}

impl Default for ChanState {
    fn default() -> Self {
        ChanState { consumers: Consumers::default(), qos: Qos::UNLIMITED.batched(), unacked: Unacked::default() }
    }
}

impl ChanState {
    /// How many messages a pop request should ask for now (0: not worth one yet).
    pub(crate) fn refill(&self) -> usize {
        self.qos.refill(self.unacked.len())
    }

    /// Every unsettled delivery, newest first: restored in that order to the served end of their
    /// lists, they come out again oldest first, as they were delivered.
    pub(crate) fn take_for_restore(&mut self) -> Vec<(Arc<str>, Held)> {
        let mut all = self.unacked.take_all();
        all.reverse();
        all
    }
}

/// A channel on a Redis connection.
pub(crate) struct RedisChannel {
    me: Weak<RedisChannel>,
    pub(crate) id: u64,
    pub(crate) shared: Arc<Shared>,
    pub(crate) state: Mutex<ChanState>,
    publisher: Mutex<publish::Publisher>,
    /// Confirmed publishes of several threads, sent together.
    gather: crate::gather::Gather<redis::Cmd>,
    open: AtomicBool,
}

impl std::fmt::Debug for RedisChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisChannel").field("id", &self.id).finish()
    }
}

/// The message a payload carries, tagged `tag`.
pub(crate) fn to_message(payload: &[u8], tag: &str) -> Result<Message> {
    let mut m = Envelope::parse(payload)?.into_message()?;
    m.delivery_info.delivery_tag = DeliveryTag::Text(Arc::from(tag));
    Ok(m)
}

impl RedisChannel {
    pub(crate) fn new(id: u64, shared: Arc<Shared>) -> Arc<RedisChannel> {
        Arc::new_cyclic(|me| RedisChannel {
            me: me.clone(),
            id,
            shared,
            state: Mutex::new(ChanState::default()),
            publisher: Mutex::new(publish::Publisher::default()),
            gather: crate::gather::Gather::default(),
            open: AtomicBool::new(true),
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, ChanState> {
        lock(&self.state)
    }

    fn check_open(&self) -> Result<()> {
        if self.open.load(Ordering::Acquire) && self.shared.open.load(Ordering::Acquire) {
            // Whatever this channel published is on the server before its next operation.
            lock(&self.publisher).settle(&self.shared)
        } else {
            Err(Error::state("redis channel is closed"))
        }
    }

    fn prefix(&self) -> &str {
        &self.shared.opts.global_keyprefix
    }

    pub(crate) fn as_dyn(&self) -> Option<Arc<dyn Channel>> {
        self.me.upgrade().map(|c| c as Arc<dyn Channel>)
    }

    /// Keeps a delivered message for settling, and binds it to this channel.
    pub(crate) fn track(&self, message: &mut Message, tag: Arc<str>, entry: Held) {
        if let Some(me) = self.as_dyn() {
            message.bind_channel(me);
        }
        self.state().unacked.insert(tag, entry);
    }

    /// Takes one message from `queue` with the pop-and-record script.
    fn pop_one(&self, queue: &str, record: bool) -> Result<Option<(String, Bytes)>> {
        let o = &self.shared.opts;
        let call = PopCall::new(o, &self.shared.inflight_key(), &[queue], 1, now_secs(), record, "");
        let mut inv = scripts().pop.prepare_invoke();
        for k in &call.keys {
            inv.key(k);
        }
        for a in &call.args {
            inv.arg(a);
        }
        let reply: Vec<redis::Value> = self.shared.pool.run("get", |c| inv.invoke(c))?;
        let mut it = reply.into_iter().skip(1);
        match (it.next(), it.next()) {
            (Some(redis::Value::BulkString(tag)), Some(redis::Value::BulkString(payload))) => {
                Ok(Some((String::from_utf8_lossy(&tag).into_owned(), Bytes::from(payload))))
            }
            _ => Ok(None),
        }
    }

    /// Puts settled-with-requeue messages back: `front` makes them the next served (RPUSH, Kombu's restore
    /// of unacked messages), otherwise behind the waiting ones (LPUSH, Kombu's reject with requeue).
    pub(crate) fn restore(&self, entries: Vec<(Arc<str>, Held)>, front: bool) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let o = &self.shared.opts;
        let mut p = redis::pipe();
        for (tag, u) in &entries {
            let (payload, priority) = mark_redelivered(&u.payload);
            let step = keys::priority_step(priority, &o.priority_steps);
            let key = keys::queue_key(&o.global_keyprefix, &u.queue, step, &o.sep);
            if u.recorded {
                p.cmd("EVALSHA")
                    .arg(scripts().restore.get_hash())
                    .arg(3)
                    .arg(&o.unacked_key)
                    .arg(&o.unacked_index_key)
                    .arg(&key)
                    .arg(&**tag)
                    .arg(payload)
                    .arg(if front { "R" } else { "L" });
            } else {
                p.cmd(if front { "RPUSH" } else { "LPUSH" }).arg(&key).arg(payload);
            }
        }
        self.shared.pool.run("restore", |c| p.query::<()>(c))
    }

    /// Forgets a delivery here and, if it was recorded in `unacked`, on the server with `forget`; wakes the
    /// poller when that made room worth a request. On failure the delivery is kept.
    /// A message of a channel the program closed went back to its queue with it: settling it is an error.
    fn check_not_closed(&self) -> Result<()> {
        if self.open.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::state("redis channel is closed: its unacknowledged messages went back to their queues"))
        }
    }

    fn settle_ack(&self, tag: &DeliveryTag, forget: impl FnOnce(&str) -> Result<()>) -> Result<()> {
        let ack = self.begin_ack(tag)?;
        let res = if ack.recorded { forget(ack.key.as_str()) } else { Ok(()) };
        self.end_ack(ack, &res);
        res
    }

    /// Takes a delivery out of the channel's unacked table for an ack; [`end_ack`](Self::end_ack) puts
    /// it back if the ack failed.
    pub(crate) fn begin_ack(&self, tag: &DeliveryTag) -> Result<PendingAck> {
        self.check_not_closed()?;
        let key = tag.to_string();
        let (entry, room) = {
            let mut st = self.state();
            let held = st.unacked.len();
            let entry = st.unacked.remove(key.as_str());
            let room = entry.is_some() && st.qos.wakes_on_settle(held);
            (entry, room)
        };
        let recorded = entry.as_ref().map(|u| u.recorded).unwrap_or(self.shared.opts.ack_emulation);
        Ok(PendingAck { key, entry, room, recorded })
    }

    pub(crate) fn end_ack(&self, ack: PendingAck, res: &Result<()>) {
        if res.is_err() {
            if let Some(u) = ack.entry {
                self.state().unacked.insert(Arc::from(ack.key.as_str()), u);
            }
        } else if ack.room {
            self.shared.waker.wake();
        }
    }

    pub(crate) fn arc(&self) -> Result<Arc<RedisChannel>> {
        self.me.upgrade().ok_or_else(|| Error::state("redis channel was dropped"))
    }

    fn queue_size(&self, name: &str) -> Result<u64> {
        let o = &self.shared.opts;
        let mut p = redis::pipe();
        for k in keys::queue_keys(&o.global_keyprefix, name, &o.priority_steps, &o.sep) {
            p.cmd("LLEN").arg(k);
        }
        let sizes: Vec<u64> = self.shared.pool.run("LLEN", |c| p.query(c))?;
        Ok(sizes.iter().sum())
    }

    fn consumer_count(&self, queue: &str) -> u32 {
        self.shared
            .channels()
            .iter()
            .map(|c| c.state().consumers.iter().filter(|e| &*e.queue == queue).count() as u32)
            .sum()
    }

    fn binding_pattern(&self, kind: ExchangeKind, routing_key: &str, arguments: &FieldTable) -> String {
        match kind {
            ExchangeKind::Topic => keys::topic_pattern(routing_key),
            ExchangeKind::Headers => serde_json::to_string(arguments).unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Removes every binding of `queue` from every binding set (found with SCAN).
    fn remove_bindings_of(&self, queue: &str) -> Result<()> {
        let prefix = self.prefix().to_owned();
        let pattern = format!("{}*", keys::glob_escape(&keys::binding_key(&prefix, "")));
        let suffix = format!("{}{queue}", self.shared.opts.sep);
        let set_keys: Vec<String> = self.shared.pool.run("SCAN", |c| {
            let mut cursor = 0u64;
            let mut out = Vec::new();
            loop {
                let (next, batch): (u64, Vec<String>) =
                    redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).query(c)?;
                out.extend(batch);
                if next == 0 {
                    return Ok(out);
                }
                cursor = next;
            }
        })?;
        let binding_prefix = keys::binding_key(&prefix, "");
        for set in set_keys {
            let members: Vec<Vec<u8>> =
                self.shared.pool.run("SMEMBERS", |c| redis::cmd("SMEMBERS").arg(&set).query(c))?;
            let gone: Vec<Vec<u8>> = members.into_iter().filter(|m| m.ends_with(suffix.as_bytes())).collect();
            if gone.is_empty() {
                continue;
            }
            let exchange = set.strip_prefix(&binding_prefix).unwrap_or(&set).to_owned();
            let permanent = keys::binding_permanent_key(&prefix, &exchange);
            let mut p = redis::pipe();
            p.cmd("SREM").arg(&set).arg(&gone).ignore();
            p.cmd("SREM").arg(&permanent).arg(&gone).ignore();
            self.shared.pool.run("SREM", |c| p.query::<()>(c))?;
        }
        if lock(&self.shared.fanout).remove(queue).is_some() {
            self.shared.waker.wake();
        }
        Ok(())
    }
}

impl Channel for RedisChannel {
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        self.check_open()?;
        if passive {
            if lock(&self.shared.exchanges).contains_key(&exchange.name) {
                return Ok(());
            }
            let key = keys::binding_key(self.prefix(), &exchange.name);
            let exists: bool = self.shared.pool.run("EXISTS", |c| redis::cmd("EXISTS").arg(&key).query(c))?;
            return if exists {
                Ok(())
            } else {
                Err(Error::not_found(format!("no exchange '{}' on redis", exchange.name)))
            };
        }
        let mut table = lock(&self.shared.exchanges);
        match table.get(&exchange.name) {
            Some(k) if *k != exchange.kind => Err(Error::precondition(format!(
                "exchange '{}' was declared as {k}, not {}",
                exchange.name, exchange.kind
            ))),
            _ => {
                table.insert(exchange.name.clone(), exchange.kind);
                Ok(())
            }
        }
    }

    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        self.check_open()?;
        let key = keys::binding_key(self.prefix(), name);
        if if_unused {
            let n: u64 = self.shared.pool.run("SCARD", |c| redis::cmd("SCARD").arg(&key).query(c))?;
            if n > 0 {
                return Err(Error::precondition(format!("exchange '{name}' has {n} bindings")));
            }
        }
        let permanent = keys::binding_permanent_key(self.prefix(), name);
        self.shared.pool.run("DEL", |c| redis::cmd("DEL").arg(&key).arg(&permanent).query::<()>(c))?;
        lock(&self.shared.exchanges).remove(name);
        let mut fanout = lock(&self.shared.fanout);
        for set in fanout.values_mut() {
            set.remove(name);
        }
        fanout.retain(|_, s| !s.is_empty());
        drop(fanout);
        self.shared.waker.wake();
        Ok(())
    }

    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        self.check_open()?;
        let name = if queue.name.is_empty() { format!("amq.gen-{}", uuid::Uuid::new_v4()) } else { queue.name.clone() };
        let size = self.queue_size(&name)?;
        if passive && size == 0 && !lock(&self.shared.queues).contains(&name) {
            return Err(Error::not_found(format!("no queue '{name}' on redis")));
        }
        lock(&self.shared.queues).insert(name.clone());
        Ok(QueueInfo::new(name.clone(), size, self.consumer_count(&name)))
    }

    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        self.check_open()?;
        if if_unused && self.consumer_count(name) > 0 {
            return Err(Error::precondition(format!("queue '{name}' has consumers")));
        }
        let size = self.queue_size(name)?;
        if if_empty && size > 0 {
            return Err(Error::precondition(format!("queue '{name}' is not empty ({size} messages)")));
        }
        self.remove_bindings_of(name)?;
        let o = &self.shared.opts;
        let lists = keys::queue_keys(&o.global_keyprefix, name, &o.priority_steps, &o.sep);
        self.shared.pool.run("DEL", |c| redis::cmd("DEL").arg(&lists).query::<()>(c))?;
        lock(&self.shared.queues).remove(name);
        Ok(size)
    }

    fn bind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.check_open()?;
        if exchange.is_empty() {
            return Ok(());
        }
        let kind = self.shared.exchange_kind(exchange);
        let pattern = self.binding_pattern(kind, routing_key, arguments);
        let member = keys::binding_member(routing_key, &pattern, queue, &self.shared.opts.sep);
        let mut p = redis::pipe();
        p.atomic();
        p.cmd("SADD").arg(keys::binding_key(self.prefix(), exchange)).arg(&member).ignore();
        p.cmd("SADD").arg(keys::binding_permanent_key(self.prefix(), exchange)).arg(&member).ignore();
        self.shared.pool.run("bind", |c| p.query::<()>(c))?;
        if kind == ExchangeKind::Fanout {
            lock(&self.shared.fanout).entry(queue.to_owned()).or_default().insert(exchange.to_owned());
            self.shared.waker.wake();
        }
        Ok(())
    }

    fn unbind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.check_open()?;
        let kind = self.shared.exchange_kind(exchange);
        let pattern = self.binding_pattern(kind, routing_key, arguments);
        let member = keys::binding_member(routing_key, &pattern, queue, &self.shared.opts.sep);
        let mut p = redis::pipe();
        p.atomic();
        p.cmd("SREM").arg(keys::binding_key(self.prefix(), exchange)).arg(&member).ignore();
        p.cmd("SREM").arg(keys::binding_permanent_key(self.prefix(), exchange)).arg(&member).ignore();
        self.shared.pool.run("unbind", |c| p.query::<()>(c))?;
        if kind == ExchangeKind::Fanout {
            let mut fanout = lock(&self.shared.fanout);
            if let Some(set) = fanout.get_mut(queue) {
                set.remove(exchange);
                if set.is_empty() {
                    fanout.remove(queue);
                }
            }
            drop(fanout);
            self.shared.waker.wake();
        }
        Ok(())
    }

    fn purge_queue(&self, name: &str) -> Result<u64> {
        self.check_open()?;
        let o = &self.shared.opts;
        let mut p = redis::pipe();
        p.atomic();
        for k in keys::queue_keys(&o.global_keyprefix, name, &o.priority_steps, &o.sep) {
            p.cmd("LLEN").arg(&k);
            p.cmd("DEL").arg(&k).ignore();
        }
        let sizes: Vec<u64> = self.shared.pool.run("purge", |c| p.query(c))?;
        Ok(sizes.iter().sum())
    }

    fn publish(&self, message: Message, exchange: &str, routing_key: &str, options: &PublishOptions) -> Result<()> {
        if !self.is_open() {
            return Err(Error::state("redis channel is closed"));
        }
        let commands = publish::commands_of(&self.shared, &message, exchange, routing_key)?;
        if options.confirm_timeout.is_some() || options.mandatory {
            self.gather.send(commands, |all| lock(&self.publisher).send(&self.shared, all, true))
        } else {
            lock(&self.publisher).send(&self.shared, &commands, false)
        }
    }

    fn publish_batch(&self, batch: Vec<Outgoing>, _options: &PublishOptions) -> Result<()> {
        self.check_open()?;
        let mut publisher = lock(&self.publisher);
        publish::publish_batch(&self.shared, &mut publisher, &batch)
    }

    fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Message>> {
        self.check_open()?;
        let record = self.shared.opts.ack_emulation && !no_ack;
        let Some((tag, payload)) = self.pop_one(queue, record)? else {
            return Ok(None);
        };
        match to_message(&payload, &tag) {
            Ok(mut m) => {
                if !no_ack {
                    self.track(
                        &mut m,
                        Arc::from(tag.as_str()),
                        Held { queue: Arc::from(queue), payload, recorded: record },
                    );
                }
                Ok(Some(m))
            }
            Err(e) => {
                // Not a Kombu message: moved, byte for byte, to the queue's dead-letter queue (the
                // default poison policy's name), and reported.
                let o = &self.shared.opts;
                let dlq = kombu_core::PoisonPolicy::default().dead_letter_queue(queue);
                let list = keys::queue_key(&o.global_keyprefix, &dlq, 0, &o.sep);
                let mut inv = scripts().dead_letter.prepare_invoke();
                inv.key(&o.unacked_key).key(&o.unacked_index_key).key(&list);
                inv.arg(&tag).arg(&payload[..]).arg(if record { "0" } else { "1" });
                self.shared.pool.run("dead-letter", |c| inv.invoke::<i64>(c))?;
                Err(e.context(format!("message {tag} in queue '{queue}' is not a Kombu envelope; moved to '{dlq}'")))
            }
        }
    }

    fn consume(&self, queue: &str, consumer_tag: &str, no_ack: bool) -> Result<()> {
        self.check_open()?;
        self.state().consumers.add(consumer_tag, queue, no_ack)?;
        self.shared.waker.wake();
        Ok(())
    }

    fn cancel(&self, consumer_tag: &str) -> Result<()> {
        self.state().consumers.cancel(consumer_tag);
        self.shared.waker.wake();
        Ok(())
    }

    fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        // Synchronous, as in Python Kombu: when this returns, the server has forgotten the message.
        self.settle_ack(tag, |tag| crate::acks::forget(&self.shared, &[tag]))
    }

    fn ack_deferred(&self, tag: &DeliveryTag) -> Result<()> {
        self.settle_ack(tag, |tag| self.shared.acks.push(&self.shared, Arc::from(tag)))
    }

    fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()> {
        self.check_not_closed()?;
        let key: Arc<str> = Arc::from(tag.to_string());
        let (entry, limited) = {
            let mut st = self.state();
            (st.unacked.remove(&key), !st.qos.is_unlimited())
        };
        let res = match (entry, requeue) {
            (Some(u), true) => self.restore(vec![(key, u)], false),
            (None, true) => Err(Error::state(format!("unknown delivery tag {tag} on this channel"))),
            (Some(u), false) if !u.recorded => Ok(()),
            (_, false) => crate::acks::forget(&self.shared, &[&*key]),
        };
        if limited {
            self.shared.waker.wake();
        }
        res
    }

    /// Moves the message's payload as stored, byte for byte, from `unacked` to the dead-letter list in
    /// one step (Python Kombu reads that list as an ordinary queue).
    fn dead_letter(&self, message: &Message, target: &DeadLetter<'_>) -> Result<()> {
        let key: Arc<str> = Arc::from(message.delivery_info.delivery_tag.to_string());
        let Some(entry) = self.state().unacked.remove(&key) else {
            return dead_letter_by_copy(self, message, target);
        };
        let o = &self.shared.opts;
        let list = keys::queue_key(&o.global_keyprefix, target.to, 0, &o.sep);
        let mut inv = scripts().dead_letter.prepare_invoke();
        inv.key(&o.unacked_key).key(&o.unacked_index_key).key(&list);
        inv.arg(&*key).arg(&entry.payload[..]).arg(if entry.recorded { "0" } else { "1" });
        match self.shared.pool.run("dead-letter", |c| inv.invoke::<i64>(c)) {
            Ok(moved) => {
                if moved == 0 {
                    tracing::warn!("message {key} was restored by another consumer before it could be dead-lettered");
                }
                self.shared.waker.wake();
                Ok(())
            }
            Err(e) => {
                self.state().unacked.insert(key, entry);
                Err(e)
            }
        }
    }

    fn recover(&self, _requeue: bool) -> Result<()> {
        let entries = self.state().take_for_restore();
        let res = self.restore(entries, true);
        self.shared.waker.wake();
        res
    }

    fn qos(&self, prefetch_count: u16) -> Result<()> {
        self.state().qos.set_prefetch_count(prefetch_count);
        self.shared.waker.wake();
        Ok(())
    }

    fn close(&self) -> Result<()> {
        if !self.open.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let settled = lock(&self.publisher).settle(&self.shared);
        let entries = {
            let mut st = self.state();
            st.consumers.clear();
            st.take_for_restore()
        };
        lock(&self.shared.channels).retain(|c| c.id != self.id);
        self.shared.waker.wake();
        self.restore(entries, true)?;
        settled
    }

    /// Publishes and acks are awaited on the connection's pipelined async link (see `nonblocking.rs`).
    fn nonblocking(&self) -> Option<&dyn kombu_core::AsyncChannel> {
        Some(self)
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire) && self.shared.open.load(Ordering::Acquire)
    }
}
