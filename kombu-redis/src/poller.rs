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

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kombu_core::envelope::Envelope;
use kombu_core::hub::{Event, EventKind, Interest, Sources, WakeHandle};
use kombu_core::transport::{Delivery, Poller};
use kombu_core::{DeliveryTag, Error, ErrorKind, Message, Result};

use crate::channel::{to_message, RedisChannel, Unacked};
use crate::connection::{lock, Shared};
use crate::keys;
use crate::options::RedisOptions;
use crate::payload::now_secs;
use crate::resp::{classify, error_text, pack, Frame, FrameBuf, PubSub};
use crate::restore;
use crate::scripts::{scripts, POP};
use crate::socket::{auth_commands, handshake, Sock};

const INVALIDATE: &[u8] = b"__redis__:invalidate";

/// A pop request sent for a channel: enough to read its reply and to send it again.
struct Pop {
    chan: u64,
    /// The request's id (its in-flight record when `record`).
    req: String,
    queues: Vec<String>,
    /// Most messages asked for.
    requested: usize,
    record: bool,
    /// The script's arguments, as sent.
    args: Vec<Vec<u8>>,
}

/// What a reply on the command socket answers.
enum Pending {
    Pop(Pop),
    Tracking,
    Pong,
    Ignore,
}

/// Both sockets of a live link.
struct Link {
    sub: Sock,
    cmd: Sock,
    pending: VecDeque<Pending>,
    subscribed: BTreeSet<String>,
    tracked: Vec<String>,
    tracking_ok: bool,
    /// The pub/sub connection's id, where tracking invalidations are redirected.
    client_id: i64,
    /// Health checks the command socket has not answered.
    pongs_missing: u32,
    /// Health checks since the pub/sub socket last said anything.
    sub_silent: u32,
}

#[derive(Debug, Default)]
struct ChanPoll {
    dirty: bool,
    inflight: usize,
    rotation: usize,
}

/// Sockets connected by `prepare`: pub/sub, command, and the pub/sub connection's id (where tracking
/// invalidations go) if the server told it.
struct Prepared {
    sub: std::net::TcpStream,
    cmd: std::net::TcpStream,
    client_id: Option<i64>,
}

/// The poller of one Redis connection.
pub(crate) struct RedisPoller {
    shared: Arc<Shared>,
    link: Option<Link>,
    waker: Option<WakeHandle>,
    /// This poller's number on its connection.
    id: u64,
    chans: HashMap<u64, ChanPoll>,
    req_seq: u64,
    /// Both sockets, connected and authenticated by `prepare`, waiting to be registered.
    prepared: Option<Prepared>,
    next_restore: Instant,
    next_health: Instant,
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
            waker: None,
            id: 0,
            chans: HashMap::new(),
            req_seq: 0,
            prepared: None,
            next_restore: now,
            next_health: now,
        }
    }

    fn tick_interval(&self) -> Duration {
        let o = &self.shared.opts;
        match &self.link {
            Some(l) if l.tracking_ok => o.polling_interval,
            _ => o.polling_interval.min(Duration::from_millis(100)),
        }
    }

    fn arm_timer(&self, sources: &mut Sources<'_>, delay: Duration) {
        if let Some(w) = &self.waker {
            sources.wake_after(w.token(), delay);
        }
    }

    /// Opens and authenticates both sockets (blocking, with the connect timeout).
    fn open_sockets(&self) -> Result<Prepared> {
        let o = &self.shared.opts;
        // The pub/sub socket: its id (where tracking invalidations are sent; a server or ACL that refuses
        // CLIENT ID means polling instead), then subscribed to the invalidations.
        let mut sub_cmds = auth_commands(o);
        sub_cmds.push(pack("CLIENT", &["ID"]));
        sub_cmds.push(pack("SUBSCRIBE", &[INVALIDATE]));
        let id_at = sub_cmds.len() - 2;
        let (sub, replies) = handshake(o, &sub_cmds, &[id_at])?;
        let client_id = match replies.get(id_at) {
            Some(Frame::Integer(id)) => Some(*id),
            _ => None,
        };
        let mut cmd_cmds = auth_commands(o);
        cmd_cmds.push(pack("SELECT", &[o.db.to_string()]));
        cmd_cmds.push(pack("SCRIPT", &["LOAD", POP]));
        let load_at = cmd_cmds.len() - 1;
        let (cmd, _) = handshake(o, &cmd_cmds, &[load_at])?;
        Ok(Prepared { sub, cmd, client_id })
    }

    /// Registers the prepared sockets (preparing them here if `prepare` was not called).
    fn connect(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        let o = self.shared.opts.clone();
        let Prepared { sub, cmd, client_id } = match self.prepared.take() {
            Some(p) => p,
            None => self.open_sockets()?,
        };
        let sub_token = sources.register_fd(sub.as_raw_fd(), Interest::READABLE)?;
        let cmd_token = match sources.register_fd(cmd.as_raw_fd(), Interest::READABLE) {
            Ok(t) => t,
            Err(e) => {
                let _ = sources.deregister_fd(sub.as_raw_fd(), sub_token);
                return Err(e);
            }
        };
        self.link = Some(Link {
            sub: Sock {
                stream: sub,
                token: sub_token,
                rbuf: FrameBuf::new(),
                wbuf: Vec::new(),
                writable_watched: false,
            },
            cmd: Sock {
                stream: cmd,
                token: cmd_token,
                rbuf: FrameBuf::new(),
                wbuf: Vec::new(),
                writable_watched: false,
            },
            pending: VecDeque::new(),
            subscribed: BTreeSet::new(),
            tracked: Vec::new(),
            tracking_ok: client_id.is_some() && o.client_tracking,
            client_id: client_id.unwrap_or(0),
            pongs_missing: 0,
            sub_silent: 0,
        });
        for cp in self.chans.values_mut() {
            cp.dirty = true;
            cp.inflight = 0;
        }
        Ok(())
    }

    /// Drops the link: unregisters its sockets and puts back what its unanswered requests took.
    fn drop_link(&mut self, sources: &mut Sources<'_>) {
        let Some(link) = self.link.take() else { return };
        for s in [&link.sub, &link.cmd] {
            if let Err(e) = sources.deregister_fd(s.stream.as_raw_fd(), s.token) {
                tracing::debug!("deregistering a redis socket: {e:#}");
            }
        }
        let lost: Vec<String> = link
            .pending
            .iter()
            .filter_map(|p| match p {
                Pending::Pop(Pop { req, record: true, .. }) => Some(req.clone()),
                _ => None,
            })
            .collect();
        for cp in self.chans.values_mut() {
            cp.inflight = 0;
            cp.dirty = true;
        }
        restore::recover_in_background(&self.shared, lost);
    }

    fn send(&mut self, bytes: Vec<u8>, pending: Pending) {
        if let Some(link) = self.link.as_mut() {
            link.cmd.wbuf.extend_from_slice(&bytes);
            link.pending.push_back(pending);
        }
    }

    /// One round of work: read both sockets, hand out deliveries, send what is due, write.
    fn pump(&mut self, sources: &mut Sources<'_>, out: &mut Vec<Delivery>) -> Result<()> {
        self.read_sub(out)?;
        self.read_cmd(out)?;
        self.sync()?;
        if let Some(link) = self.link.as_mut() {
            link.cmd.flush(sources)?;
            link.sub.flush(sources)?;
        }
        Ok(())
    }

    fn read_sub(&mut self, out: &mut Vec<Delivery>) -> Result<()> {
        let Some(link) = self.link.as_mut() else { return Ok(()) };
        link.sub.fill()?;
        let mut messages = Vec::new();
        let mut invalidated = false;
        if link.sub.rbuf.pending() > 0 {
            link.sub_silent = 0;
        }
        while let Some(frame) = link.sub.rbuf.next_frame()? {
            match classify(frame, INVALIDATE)? {
                PubSub::Message { channel, data } => messages.push((channel, data)),
                PubSub::Invalidate(_) => invalidated = true,
                PubSub::Other => {}
            }
        }
        if invalidated {
            for cp in self.chans.values_mut() {
                cp.dirty = true;
            }
        }
        for (channel, data) in messages {
            self.deliver_fanout(&channel, data, out);
        }
        Ok(())
    }

    fn deliver_fanout(&mut self, channel: &[u8], data: Vec<u8>, out: &mut Vec<Delivery>) {
        let shared = self.shared.clone();
        let o = &shared.opts;
        let name = String::from_utf8_lossy(channel);
        let exchange = keys::fanout_exchange(&o.global_keyprefix, &name).to_owned();
        let fanout = lock(&self.shared.fanout).clone();
        let mut served: HashSet<String> = HashSet::new();
        let mut records = Vec::new();
        for ch in self.shared.channels() {
            let consumers = ch.state().consumers.clone();
            for c in consumers {
                if served.contains(&c.queue) || !fanout.get(&c.queue).is_some_and(|s| s.contains(&exchange)) {
                    continue;
                }
                served.insert(c.queue.clone());
                let mut env = match Envelope::parse(&data) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!("fanout message on {name} is not a Kombu envelope, dropped: {e:#}");
                        return;
                    }
                };
                // Each queue's copy gets its own delivery tag, so that each is settled on its own.
                let tag = uuid::Uuid::new_v4().to_string();
                env.properties.delivery_tag = Some(tag.clone());
                let payload = Bytes::from(env.to_vec());
                let mut message = match env.into_message() {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!("fanout message on {name} cannot be read, dropped: {e:#}");
                        return;
                    }
                };
                message.delivery_info.consumer_tag = Some(c.tag.clone());
                if !c.no_ack {
                    let recorded = o.ack_emulation;
                    if recorded {
                        let di = &message.delivery_info;
                        let mut entry = b"[".to_vec();
                        entry.extend_from_slice(&payload);
                        entry.extend_from_slice(
                            format!(
                                ", {}, {}]",
                                serde_json::Value::from(&*di.exchange),
                                serde_json::Value::from(&*di.routing_key)
                            )
                            .as_bytes(),
                        );
                        records.push((tag.clone(), entry));
                    }
                    ch.track(
                        &mut message,
                        Arc::from(tag.as_str()),
                        Unacked { queue: c.queue.clone(), payload, recorded },
                    );
                }
                out.push(Delivery::new(c.tag.clone(), message));
            }
        }
        let now = format!("{:.6}", now_secs());
        for (tag, entry) in records {
            let zadd = pack("ZADD", &[o.unacked_index_key.as_bytes(), now.as_bytes(), tag.as_bytes()]);
            let hset = pack("HSET", &[o.unacked_key.as_bytes(), tag.as_bytes(), &entry[..]]);
            self.send(zadd, Pending::Ignore);
            self.send(hset, Pending::Ignore);
        }
    }

    fn read_cmd(&mut self, out: &mut Vec<Delivery>) -> Result<()> {
        let mut frames = Vec::new();
        {
            let Some(link) = self.link.as_mut() else { return Ok(()) };
            link.cmd.fill()?;
            while let Some(frame) = link.cmd.rbuf.next_frame()? {
                let pending = link.pending.pop_front().unwrap_or(Pending::Ignore);
                frames.push((pending, frame));
            }
        }
        for (pending, frame) in frames {
            match pending {
                Pending::Pop(pop) => self.on_pop(pop, frame, out)?,
                Pending::Tracking => {
                    if let Some(e) = error_text(&frame) {
                        tracing::warn!("redis refused client tracking ({e}); polling every {:?}", self.tick_interval());
                        if let Some(l) = self.link.as_mut() {
                            l.tracking_ok = false;
                        }
                    }
                }
                Pending::Pong => {
                    if let Some(l) = self.link.as_mut() {
                        l.pongs_missing = 0;
                    }
                }
                Pending::Ignore => {
                    if let Some(e) = error_text(&frame) {
                        tracing::warn!("redis refused a command: {e}");
                    }
                }
            }
        }
        Ok(())
    }

    fn on_pop(&mut self, pop: Pop, frame: Frame, out: &mut Vec<Delivery>) -> Result<()> {
        let Pop { chan, ref req, ref queues, requested, record, ref args } = pop;
        if let Some(cp) = self.chans.get_mut(&chan) {
            cp.inflight = cp.inflight.saturating_sub(requested);
        }
        let items = match frame {
            Frame::Array(items) => items,
            Frame::Error(e) if e.starts_with("NOSCRIPT") => {
                // The script cache was flushed: nothing ran. Send the script itself this time.
                let mut eval: Vec<&[u8]> = vec![POP.as_bytes()];
                eval.extend(args.iter().skip(1).map(|a| a.as_slice()));
                let packed = pack("EVAL", &eval);
                if let Some(cp) = self.chans.get_mut(&chan) {
                    cp.inflight += requested;
                }
                self.send(packed, Pending::Pop(pop));
                return Ok(());
            }
            Frame::Error(e) => {
                tracing::warn!("consuming from {queues:?} failed: {e}");
                return Ok(());
            }
            _ => return Ok(()),
        };
        let got = items.len() / 3;
        if got > 0 && record {
            let hdel = pack("HDEL", &[self.shared.inflight_key(), req.clone()]);
            self.send(hdel, Pending::Ignore);
        }
        if got >= requested {
            if let Some(cp) = self.chans.get_mut(&chan) {
                cp.dirty = true;
            }
        }
        let channel = self.shared.channels().into_iter().find(|c| c.id == chan);
        let mut orphans: Vec<(Arc<str>, Unacked)> = Vec::new();
        let mut it = items.into_iter();
        while let (Some(j), Some(Frame::BulkString(tag)), Some(Frame::BulkString(payload))) =
            (it.next(), it.next(), it.next())
        {
            let idx = match j {
                Frame::Integer(i) => usize::try_from(i).unwrap_or(usize::MAX),
                _ => usize::MAX,
            };
            let Some(queue) = queues.get(idx).cloned() else { continue };
            let tag: Arc<str> = Arc::from(String::from_utf8_lossy(&tag).as_ref());
            let payload = Bytes::from(payload);
            let consumer =
                channel.as_ref().and_then(|ch| ch.state().consumers.iter().find(|c| c.queue == queue).cloned());
            let (Some(ch), Some(c)) = (channel.as_ref(), consumer) else {
                orphans.push((tag, Unacked { queue, payload, recorded: record }));
                continue;
            };
            // A payload that is not a readable Kombu envelope still goes to the consumer, unreadable: its
            // error handler or its poison policy decides (never left behind in `unacked`).
            let (mut message, unreadable) = match to_message(&payload, &tag) {
                Ok(m) => (m, None),
                Err(e) => {
                    let mut m = Message::new(payload.clone());
                    m.delivery_info.delivery_tag = DeliveryTag::Text(tag.clone());
                    let why = format!("message {tag} in queue '{queue}' is not a readable Kombu envelope");
                    (m, Some(e.context(why)))
                }
            };
            message.delivery_info.consumer_tag = Some(c.tag.clone());
            if c.no_ack {
                if record {
                    let shared = self.shared.clone();
                    let o = &shared.opts;
                    let zrem = pack("ZREM", &[o.unacked_index_key.as_str(), &*tag]);
                    let hdel = pack("HDEL", &[o.unacked_key.as_str(), &*tag]);
                    self.send(zrem, Pending::Ignore);
                    self.send(hdel, Pending::Ignore);
                }
            } else {
                ch.track(&mut message, tag.clone(), Unacked { queue, payload, recorded: record });
            }
            out.push(match unreadable {
                None => Delivery::new(c.tag.clone(), message),
                Some(e) => Delivery::unreadable(c.tag.clone(), message, e),
            });
        }
        if !orphans.is_empty() {
            // Taken for a consumer that was cancelled (or a channel that closed) meanwhile: put back, unmarked.
            let holder = channel.or_else(|| self.shared.channels().into_iter().next());
            match holder {
                Some(ch) => {
                    if let Err(e) = ch.restore(orphans, true) {
                        tracing::warn!(
                            "cannot put back messages of a cancelled consumer ({e:#}); visibility timeout will"
                        );
                    }
                }
                None => tracing::warn!("messages of a closed channel stay in unacked until the visibility timeout"),
            }
        }
        Ok(())
    }

    /// Subscriptions, tracking prefixes and pop requests brought in line with the channels' consumers.
    fn sync(&mut self) -> Result<()> {
        let Some(link) = self.link.as_mut() else { return Ok(()) };
        let o = self.shared.opts.clone();
        let channels = self.shared.channels();
        let fanout = lock(&self.shared.fanout).clone();
        let mut patterns = BTreeSet::new();
        let mut prefixes = Vec::new();
        for ch in &channels {
            for c in &ch.state().consumers {
                prefixes.push(format!("{}{}", o.global_keyprefix, c.queue));
                for ex in fanout.get(&c.queue).into_iter().flatten() {
                    patterns.extend(keys::fanout_patterns(
                        &o.global_keyprefix,
                        &o.fanout_prefix,
                        ex,
                        o.fanout_patterns,
                    ));
                }
            }
        }
        let added: Vec<&String> = patterns.difference(&link.subscribed).collect();
        if !added.is_empty() {
            link.sub.wbuf.extend(pack("PSUBSCRIBE", &added));
        }
        let removed: Vec<&String> = link.subscribed.difference(&patterns).collect();
        if !removed.is_empty() {
            link.sub.wbuf.extend(pack("PUNSUBSCRIBE", &removed));
        }
        link.subscribed = patterns;
        let prefixes = keys::minimal_prefixes(prefixes);
        if link.tracking_ok && prefixes != link.tracked {
            if !link.tracked.is_empty() {
                link.cmd.wbuf.extend(pack("CLIENT", &["TRACKING", "OFF"]));
                link.pending.push_back(Pending::Ignore);
            }
            if !prefixes.is_empty() {
                let id = link.client_id.to_string();
                let mut args: Vec<&str> = vec!["TRACKING", "ON", "REDIRECT", &id, "BCAST", "NOLOOP"];
                for p in &prefixes {
                    args.push("PREFIX");
                    args.push(p);
                }
                link.cmd.wbuf.extend(pack("CLIENT", &args));
                link.pending.push_back(Pending::Tracking);
            }
            link.tracked = prefixes;
            for cp in self.chans.values_mut() {
                cp.dirty = true;
            }
        }
        let live: HashSet<u64> = channels.iter().map(|c| c.id).collect();
        self.chans.retain(|id, _| live.contains(id));
        for ch in channels {
            self.request(&ch, &o);
        }
        Ok(())
    }

    /// Sends one pop request for a channel if it has consumers, room, nothing in flight and maybe work.
    fn request(&mut self, ch: &Arc<RedisChannel>, o: &RedisOptions) {
        let (queues, room, record) = {
            let st = ch.state();
            let mut queues: Vec<String> = Vec::new();
            for c in &st.consumers {
                if !queues.contains(&c.queue) {
                    queues.push(c.queue.clone());
                }
            }
            let record = o.ack_emulation && st.consumers.iter().any(|c| !c.no_ack);
            (queues, st.worth_asking(), record)
        };
        let cp = self.chans.entry(ch.id).or_insert(ChanPoll { dirty: true, inflight: 0, rotation: 0 });
        if queues.is_empty() || cp.inflight > 0 || !cp.dirty || room == 0 {
            return;
        }
        let n = room.min(o.consume_batch);
        cp.dirty = false;
        cp.inflight = n;
        let queues = o.queue_order_strategy.order(queues, cp.rotation);
        cp.rotation = cp.rotation.wrapping_add(1);
        self.req_seq += 1;
        let req = format!("{}.{}", self.id, self.req_seq);
        let mut args: Vec<Vec<u8>> = vec![scripts().pop.get_hash().as_bytes().to_vec()];
        args.push((3 + queues.len() * o.priority_steps.len()).to_string().into_bytes());
        args.push(o.unacked_key.clone().into_bytes());
        args.push(o.unacked_index_key.clone().into_bytes());
        args.push(self.shared.inflight_key().into_bytes());
        for step in &o.priority_steps {
            for q in &queues {
                args.push(keys::queue_key(&o.global_keyprefix, q, *step, &o.sep).into_bytes());
            }
        }
        args.push(n.to_string().into_bytes());
        args.push(format!("{:.6}", now_secs()).into_bytes());
        args.push(if record { b"1".to_vec() } else { b"0".to_vec() });
        args.push(req.clone().into_bytes());
        args.push((o.visibility_timeout.as_millis() as u64).to_string().into_bytes());
        args.push(queues.len().to_string().into_bytes());
        args.push(o.queue_order_strategy.pop_mode().to_vec());
        args.extend(queues.iter().map(|q| q.clone().into_bytes()));
        let packed = pack("EVALSHA", &args);
        self.send(packed, Pending::Pop(Pop { chan: ch.id, req, queues, requested: n, record, args }));
    }

    /// Timer work: a fresh look at the queues, reconnecting, health checks, visibility restores.
    fn on_tick(&mut self, sources: &mut Sources<'_>) {
        let now = Instant::now();
        for cp in self.chans.values_mut() {
            cp.dirty = true;
        }
        let o = self.shared.opts.clone();
        if !o.health_check_interval.is_zero() && now >= self.next_health {
            self.next_health = now + o.health_check_interval;
            let dead = self.link.as_ref().is_some_and(|l| l.pongs_missing >= 2 || l.sub_silent >= 2);
            if dead {
                tracing::warn!("redis did not answer two health checks");
                self.drop_link(sources);
            } else if let Some(link) = self.link.as_mut() {
                link.pongs_missing += 1;
                link.sub_silent += 1;
                link.cmd.wbuf.extend(pack("PING", &[] as &[&str]));
                link.pending.push_back(Pending::Pong);
                link.sub.wbuf.extend(pack("PING", &[] as &[&str]));
            }
        }
        if self.link.is_some() && now >= self.next_restore {
            self.next_restore = now + o.unacked_restore_interval;
            if o.ack_emulation {
                restore::sweep_in_background(&self.shared);
            }
        }
        self.arm_timer(sources, self.tick_interval());
    }
}

impl Poller for RedisPoller {
    fn prepare(&mut self) -> Result<()> {
        self.prepared = Some(self.open_sockets()?);
        Ok(())
    }

    fn register(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        let w = sources.waker();
        self.id = self.shared.next_poller.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *lock(&self.shared.waker) = Some((self.id, w.clone()));
        self.waker = Some(w);
        self.connect(sources)?;
        self.arm_timer(sources, Duration::ZERO);
        Ok(())
    }

    fn ready(&mut self, event: &Event, sources: &mut Sources<'_>, out: &mut Vec<Delivery>) -> Result<()> {
        if !self.shared.open.load(std::sync::atomic::Ordering::Acquire) {
            self.drop_link(sources);
            return Ok(());
        }
        match event.kind {
            EventKind::Timer => self.on_tick(sources),
            EventKind::Woken => {
                for cp in self.chans.values_mut() {
                    cp.dirty = true;
                }
            }
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
        {
            let mut waker = lock(&self.shared.waker);
            if waker.as_ref().is_some_and(|(id, _)| *id == self.id) {
                *waker = None;
            }
        }
        self.waker = None;
        Ok(())
    }
}
