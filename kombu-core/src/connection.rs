//! `Connection`: a lazily opened link to a broker chosen by URL, with failover and retry, channels, and
//! the two ways of receiving: `drain_events` (blocking) or `register_with_event_loop` (a [`Hub`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::driver::ConnectionDriver;
use crate::error::{Error, ErrorKind, Result};
use crate::hub::reactor::{Driver, Reactor};
use crate::hub::Hub;
use crate::message::Message;
use crate::registry::Registry;
use crate::transport::{BrokerConnection, Capabilities, Channel, Delivery, Poller, Transport};
use crate::url::{parse_failover, BrokerUrl};

/// How often and how fast to retry connecting (Kombu's `max_retries`, `interval_start`, `interval_step`,
/// `interval_max`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Rounds over the URL list after the first one; `None` retries forever.
    pub max_retries: Option<u32>,
    /// Wait before the first retry.
    pub interval_start: Duration,
    /// Added to the wait after each retry.
    pub interval_step: Duration,
    /// Longest wait.
    pub interval_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: Some(2),
            interval_start: Duration::from_millis(100),
            interval_step: Duration::from_millis(200),
            interval_max: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries: one round over the URLs.
    pub fn none() -> Self {
        RetryPolicy { max_retries: Some(0), ..Default::default() }
    }
    /// Sets the number of retries (`None`: forever).
    pub fn max_retries(mut self, n: Option<u32>) -> Self {
        self.max_retries = n;
        self
    }
    /// Sets the intervals.
    pub fn intervals(mut self, start: Duration, step: Duration, max: Duration) -> Self {
        self.interval_start = start;
        self.interval_step = step;
        self.interval_max = max;
        self
    }
    /// The wait before retry number `n` (0-based).
    pub fn interval(&self, n: u32) -> Duration {
        (self.interval_start + self.interval_step * n).min(self.interval_max)
    }
}

/// The order in which failover URLs are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailoverStrategy {
    /// In the order given, starting after the last one that failed.
    #[default]
    RoundRobin,
    /// In a random order each round.
    Shuffle,
}

type Handler = Box<dyn FnMut(Message, Option<Error>) -> Result<()> + Send>;

/// Consumers of one connection: consumer tag to callback.
#[derive(Default)]
pub(crate) struct ConsumerTable {
    entries: Mutex<HashMap<Arc<str>, Arc<Mutex<Handler>>>>,
}

impl ConsumerTable {
    pub(crate) fn insert(&self, tag: Arc<str>, handler: Arc<Mutex<Handler>>) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).insert(tag, handler);
    }
    pub(crate) fn remove(&self, tag: &str) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(tag);
    }
    fn get(&self, tag: &str) -> Option<Arc<Mutex<Handler>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).get(tag).cloned()
    }

    /// Hands each delivery to its consumer; a delivery for a consumer that is gone goes back to its queue.
    /// A consumer's failure (a message it could neither handle nor dead-letter) is logged and stays with
    /// that message, which is left unacknowledged: it never stops the other deliveries.
    pub(crate) fn dispatch(&self, deliveries: &mut Vec<Delivery>) -> usize {
        let mut n = 0;
        let mut rest = deliveries.drain(..).peekable();
        while let Some(d) = rest.next() {
            let Some(handler) = self.get(&d.consumer_tag) else {
                tracing::debug!("delivery for cancelled consumer {}: requeued", d.consumer_tag);
                if let Err(e) = d.message.reject(true) {
                    tracing::debug!("requeue of a delivery for a cancelled consumer: {e:#}");
                }
                continue;
            };
            // One lock for a run of deliveries to the same consumer.
            let mut call = handler.lock().unwrap_or_else(|e| e.into_inner());
            let tag = d.consumer_tag;
            let (mut message, mut error) = (d.message, d.error);
            loop {
                n += 1;
                if let Err(e) = (*call)(message, error) {
                    tracing::error!("consumer {tag}: {e:#}");
                }
                match rest.next_if(|next| Arc::ptr_eq(&next.consumer_tag, &tag)) {
                    Some(next) => (message, error) = (next.message, next.error),
                    None => break,
                }
            }
        }
        n
    }
}

/// What a consumer asked for, kept so that it can be set up again on a new connection after the old
/// one was lost.
pub(crate) struct ConsumerSpec {
    pub(crate) queues: Vec<crate::entity::Queue>,
    pub(crate) tags: Vec<Arc<str>>,
    pub(crate) no_ack: bool,
    pub(crate) prefetch: Option<u16>,
    pub(crate) declare: bool,
    /// On the connection's default channel (otherwise on a channel of its own).
    pub(crate) default_channel: bool,
    /// The channel it consumes on now, and the link generation that channel belongs to.
    pub(crate) channel: Mutex<(Arc<dyn Channel>, u64)>,
}

impl ConsumerSpec {
    /// The channel it consumes on now.
    pub(crate) fn channel(&self) -> Arc<dyn Channel> {
        self.channel.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    fn start(&self, channel: &Arc<dyn Channel>) -> Result<()> {
        if self.declare {
            for q in &self.queues {
                channel.declare(q)?;
            }
        }
        if let Some(n) = self.prefetch {
            channel.qos(n)?;
        }
        for (q, tag) in self.queues.iter().zip(&self.tags) {
            channel.consume(&q.name, tag, self.no_ack)?;
        }
        Ok(())
    }
}

struct Link {
    broker: Arc<dyn BrokerConnection>,
    transport: Arc<dyn Transport>,
    url: BrokerUrl,
    default_channel: Option<Arc<dyn Channel>>,
    generation: u64,
}

pub(crate) struct Inner {
    urls: Vec<BrokerUrl>,
    transports: Vec<Arc<dyn Transport>>,
    pub(crate) retry: RetryPolicy,
    strategy: FailoverStrategy,
    link: Mutex<Option<Link>>,
    /// Held while a link is being made.
    connecting: Mutex<()>,
    next_url: Mutex<usize>,
    consumers: Arc<ConsumerTable>,
    specs: Mutex<Vec<Arc<ConsumerSpec>>>,
    generation: AtomicU64,
    reactor: Mutex<Option<Reactor>>,
    pub(crate) in_hub: AtomicBool,
    closed: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        if let Some(link) = self.link.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            if let Err(e) = link.broker.close() {
                tracing::debug!("closing connection to {}: {e:#}", link.url);
            }
        }
    }
}

/// A connection to a broker, picked by URL scheme. Cheap to clone (clones share the connection).
///
/// Opening is lazy: the first operation that needs the broker connects, trying each URL of a failover
/// list (`url1;url2`) with the [`RetryPolicy`].
///
/// ```
/// use kombu_core::{Connection, ErrorKind};
/// let err = Connection::open("rediss-typo://localhost").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::UnknownTransport);
/// assert_eq!(Connection::open("::").unwrap_err().kind(), ErrorKind::InvalidArgument);
/// ```
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("urls", &self.inner.urls).finish()
    }
}

/// Builds a [`Connection`] with options.
#[derive(Debug)]
#[must_use]
pub struct ConnectionBuilder {
    url: String,
    pub(crate) retry: RetryPolicy,
    strategy: FailoverStrategy,
}

impl ConnectionBuilder {
    /// Sets the retry policy used when connecting.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Sets the failover strategy.
    pub fn failover(mut self, strategy: FailoverStrategy) -> Self {
        self.strategy = strategy;
        self
    }
    /// Parses the URL(s) and finds their transports; does not connect yet.
    pub fn open(self) -> Result<Connection> {
        let urls = parse_failover(&self.url)?;
        let registry = Registry::global();
        let transports = urls
            .iter()
            .map(|u| registry.get(&u.scheme).and_then(|t| crate::options::check_url(&*t, u).map(|()| t)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Connection {
            inner: Arc::new(Inner {
                urls,
                transports,
                retry: self.retry,
                strategy: self.strategy,
                link: Mutex::new(None),
                connecting: Mutex::new(()),
                next_url: Mutex::new(0),
                consumers: Arc::new(ConsumerTable::default()),
                specs: Mutex::new(Vec::new()),
                generation: AtomicU64::new(0),
                reactor: Mutex::new(None),
                in_hub: AtomicBool::new(false),
                closed: Arc::new(AtomicBool::new(false)),
            }),
        })
    }
}

static CONSUMER_SEQ: AtomicU64 = AtomicU64::new(1);

impl Connection {
    /// A connection to `url` (or a failover list `url1;url2`), with default options. Checks the URL and
    /// its scheme now; connects on first use.
    pub fn open(url: &str) -> Result<Connection> {
        Connection::builder(url).open()
    }

    /// A builder for a connection with options.
    pub fn builder(url: &str) -> ConnectionBuilder {
        ConnectionBuilder { url: url.to_owned(), retry: RetryPolicy::default(), strategy: FailoverStrategy::default() }
    }

    fn link(&self) -> Result<MutexGuard<'_, Option<Link>>> {
        self.link_with(true)
    }

    /// The live link, connecting if needed: with the retry policy, or with one round over the URLs
    /// (for callers that retry on their own schedule, like a Hub's driver).
    fn link_with(&self, retry: bool) -> Result<MutexGuard<'_, Option<Link>>> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::state("connection is closed"));
        }
        {
            let mut guard = self.inner.link.lock().unwrap_or_else(|e| e.into_inner());
            if guard.as_ref().is_some_and(|l| !l.broker.is_open()) {
                *guard = None;
            }
            if guard.is_some() {
                return Ok(guard);
            }
        }
        // Connecting (and waiting between rounds) holds only `connecting`, so that a slow broker keeps
        // nobody from the connection's state (`is_connected`, `url`, ...); callers that need a link wait
        // for the one being made.
        let _connecting = self.inner.connecting.lock().unwrap_or_else(|e| e.into_inner());
        {
            let guard = self.inner.link.lock().unwrap_or_else(|e| e.into_inner());
            if guard.as_ref().is_some_and(|l| l.broker.is_open()) {
                return Ok(guard);
            }
        }
        let mut link = self.establish(retry)?;
        self.restart_consumers(&mut link)?;
        let mut guard = self.inner.link.lock().unwrap_or_else(|e| e.into_inner());
        *guard = Some(link);
        Ok(guard)
    }

    /// Sets up, on a new link, the consumers that were consuming on an earlier one.
    fn restart_consumers(&self, link: &mut Link) -> Result<()> {
        let specs = self.inner.specs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for spec in specs {
            if spec.channel.lock().unwrap_or_else(|e| e.into_inner()).1 == link.generation {
                continue;
            }
            let channel = if spec.default_channel {
                match &link.default_channel {
                    Some(c) => c.clone(),
                    None => {
                        let c = link.broker.channel()?;
                        link.default_channel = Some(c.clone());
                        c
                    }
                }
            } else {
                link.broker.channel()?
            };
            spec.start(&channel)?;
            *spec.channel.lock().unwrap_or_else(|e| e.into_inner()) = (channel, link.generation);
        }
        Ok(())
    }

    /// Starts a consumer now and keeps its spec, so that it is started again after a reconnect.
    pub(crate) fn start_consumer(&self, spec: ConsumerSpec) -> Result<Arc<ConsumerSpec>> {
        let spec = Arc::new(spec);
        spec.start(&spec.channel())?;
        self.inner.specs.lock().unwrap_or_else(|e| e.into_inner()).push(spec.clone());
        Ok(spec)
    }

    /// Forgets a consumer's spec (it was cancelled).
    pub(crate) fn forget_consumer(&self, spec: &Arc<ConsumerSpec>) {
        self.inner.specs.lock().unwrap_or_else(|e| e.into_inner()).retain(|s| !Arc::ptr_eq(s, spec));
    }

    /// The generation of the current link (0 before connecting).
    pub(crate) fn generation(&self) -> u64 {
        let guard = self.inner.link.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|l| l.generation).unwrap_or(0)
    }

    /// Drops the current link (closing it, best effort), so that the next use connects again.
    pub(crate) fn reset_link(&self) {
        let old = self.inner.link.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(l) = old {
            if let Err(e) = l.broker.close() {
                tracing::debug!("closing a lost connection to {}: {e:#}", l.url);
            }
        }
    }

    fn establish(&self, retry: bool) -> Result<Link> {
        let inner = &self.inner;
        let n = inner.urls.len();
        let mut round = 0u32;
        loop {
            let mut order: Vec<usize> = {
                let start = *inner.next_url.lock().unwrap_or_else(|e| e.into_inner());
                (0..n).map(|i| (start + i) % n).collect()
            };
            if inner.strategy == FailoverStrategy::Shuffle {
                shuffle(&mut order);
            }
            let mut last_err = None;
            let mut recoverable = false;
            for i in order {
                let url = &inner.urls[i];
                match inner.transports[i].connect(url) {
                    Ok(broker) => {
                        *inner.next_url.lock().unwrap_or_else(|e| e.into_inner()) = i;
                        tracing::debug!("connected to {url}");
                        return Ok(Link {
                            broker: Arc::from(broker),
                            transport: inner.transports[i].clone(),
                            url: url.clone(),
                            default_channel: None,
                            generation: inner.generation.fetch_add(1, Ordering::AcqRel) + 1,
                        });
                    }
                    Err(e) => {
                        tracing::warn!("cannot connect to {url}: {e:#}");
                        recoverable |= e.is_recoverable();
                        *inner.next_url.lock().unwrap_or_else(|e| e.into_inner()) = (i + 1) % n;
                        last_err = Some(e);
                    }
                }
            }
            let err = last_err.unwrap_or_else(|| Error::connection("no broker URL"));
            let retries_left = retry && inner.retry.max_retries.is_none_or(|max| round < max);
            if !recoverable || !retries_left {
                return Err(err);
            }
            std::thread::sleep(inner.retry.interval(round));
            round += 1;
        }
    }

    /// Connects now (if not connected yet).
    pub fn connect(&self) -> Result<()> {
        self.link().map(|_| ())
    }

    /// Whether a live connection is open.
    pub fn is_connected(&self) -> bool {
        let guard = self.inner.link.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().is_some_and(|l| l.broker.is_open())
    }

    /// The URL connected to (or the first of the list, before connecting), password hidden.
    pub fn url(&self) -> String {
        let guard = self.inner.link.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(l) => l.url.to_string(),
            None => self.inner.urls[0].to_string(),
        }
    }

    /// What the transport of the (first) URL can do.
    pub fn capabilities(&self) -> Capabilities {
        let guard = self.inner.link.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(l) => l.transport.capabilities(),
            None => self.inner.transports[0].capabilities(),
        }
    }

    /// Opens a new channel.
    pub fn channel(&self) -> Result<Arc<dyn Channel>> {
        let guard = self.link()?;
        match guard.as_ref() {
            Some(link) => link.broker.channel(),
            None => Err(Error::connection("not connected")),
        }
    }

    /// The connection's shared channel, opened on first use.
    pub fn default_channel(&self) -> Result<Arc<dyn Channel>> {
        let mut guard = self.link()?;
        let link = guard.as_mut().ok_or_else(|| Error::connection("not connected"))?;
        if let Some(ch) = link.default_channel.as_ref().filter(|c| c.is_open()) {
            return Ok(ch.clone());
        }
        let ch = link.broker.channel()?;
        link.default_channel = Some(ch.clone());
        Ok(ch)
    }

    fn poller(&self) -> Result<Box<dyn Poller>> {
        self.poller_with(true)
    }

    pub(crate) fn poller_with(&self, retry: bool) -> Result<Box<dyn Poller>> {
        let guard = self.link_with(retry)?;
        match guard.as_ref() {
            Some(link) => link.broker.poller(),
            None => Err(Error::connection("not connected")),
        }
    }

    /// A driver for this connection: with `connect_now`, connected (and its poller prepared) on this
    /// thread first, so that connection errors are returned here; otherwise it connects on a thread of
    /// its own once registered.
    fn driver(&self, connect_now: bool) -> Result<Box<dyn Driver>> {
        let poller = if connect_now {
            let mut p = self.poller()?;
            p.prepare()?;
            Some(p)
        } else {
            None
        };
        Ok(Box::new(ConnectionDriver::new(
            Arc::downgrade(&self.inner),
            self.inner.consumers.clone(),
            self.inner.closed.clone(),
            poller,
        )))
    }

    /// Hands this connection to `hub`: from now on the hub's loop delivers its consumers' messages.
    pub fn register_with_event_loop(&self, hub: &mut Hub) -> Result<()> {
        // A private loop left by earlier drain_events calls stops driving this connection.
        let private = self.inner.reactor.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(private);
        if self.inner.in_hub.swap(true, Ordering::AcqRel) {
            return Err(Error::state("connection is already registered with an event loop"));
        }
        let result = self.driver(false).and_then(|d| hub.add_driver(d));
        if result.is_err() {
            self.inner.in_hub.store(false, Ordering::Release);
        }
        result.map(|_| ())
    }

    /// Waits for messages and hands them to their consumers' callbacks. Returns how many were delivered,
    /// or a `Timeout` error if none arrived within `timeout` (`None`: wait forever). An error from a
    /// consumer (for example a refused content type) is returned after the other messages of the batch.
    pub fn drain_events(&self, timeout: Option<Duration>) -> Result<usize> {
        if self.inner.in_hub.load(Ordering::Acquire) {
            return Err(Error::state("connection is driven by a Hub; run the hub instead of drain_events"));
        }
        let mut guard = self.inner.reactor.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let mut reactor = Reactor::new()?;
            reactor.add_driver(self.driver(true)?)?;
            *guard = Some(reactor);
        }
        let reactor = guard.as_mut().ok_or_else(|| Error::state("no reactor"))?;
        let deadline = timeout.map(|t| crate::hub::after(Instant::now(), t));
        let mut external = Vec::new();
        let mut errors = Vec::new();
        loop {
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let delivered = reactor.turn(wait, &mut external, &mut errors).and_then(|n| {
                let mut errors = errors.drain(..);
                match errors.next() {
                    None => Ok(n),
                    Some(first) => {
                        for later in errors {
                            tracing::error!("draining events: {later:#}");
                        }
                        Err(first)
                    }
                }
            });
            if reactor.is_empty() {
                *guard = None;
                delivered?;
                return Err(Error::state("connection closed"));
            }
            match delivered {
                Ok(0) => {}
                Err(e) if e.kind() == ErrorKind::Connection => {
                    // The connection was lost: the next call connects again and restarts the consumers.
                    *guard = None;
                    drop(guard);
                    self.reset_link();
                    return Err(e);
                }
                other => return other,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::timeout("no message arrived before the timeout"));
            }
        }
    }

    pub(crate) fn consumers(&self) -> &Arc<ConsumerTable> {
        &self.inner.consumers
    }

    pub(crate) fn new_consumer_tag(&self) -> Arc<str> {
        let n = CONSUMER_SEQ.fetch_add(1, Ordering::Relaxed);
        Arc::from(format!("ctag-{}-{n}", std::process::id()))
    }

    /// Closes the connection: consumers stop, unacknowledged messages go back to their queues.
    pub fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.reactor.lock().unwrap_or_else(|e| e.into_inner()).take();
        let link = self.inner.link.lock().unwrap_or_else(|e| e.into_inner()).take();
        match link {
            Some(l) => l.broker.close(),
            None => Ok(()),
        }
    }
}

fn shuffle(v: &mut [usize]) {
    // A small xorshift seeded from the clock is plenty to spread clients over brokers.
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64);
    let mut x = clock.unwrap_or(0) ^ u64::from(std::process::id()) ^ 0x9E37_79B9_7F4A_7C15;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_intervals_grow_to_max() {
        let p = RetryPolicy::default().intervals(
            Duration::from_millis(100),
            Duration::from_millis(100),
            Duration::from_millis(250),
        );
        assert_eq!(p.interval(0), Duration::from_millis(100));
        assert_eq!(p.interval(1), Duration::from_millis(200));
        assert_eq!(p.interval(5), Duration::from_millis(250));
    }

    #[test]
    fn shuffle_keeps_elements() {
        let mut v = vec![0, 1, 2, 3, 4];
        shuffle(&mut v);
        v.sort();
        assert_eq!(v, vec![0, 1, 2, 3, 4]);
    }
}
