//! `Connection`: a lazily opened link to a broker chosen by URL, with failover and retry, channels, and
//! the two ways of receiving: `drain_events` (blocking) or `register_with_event_loop` (a [`Hub`]).
//!
//! The jobs are split by file: the retry policy and failover order (`retry`), the consumer table
//! (`consumers`), and the link with its failover (`link`); the Hub's driver is `crate::driver`.

mod consumers;
mod link;
mod retry;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) use consumers::{ConsumerSpec, ConsumerTable};
use link::Link;
pub use retry::{FailoverStrategy, RetryPolicy};

use crate::driver::{AttemptRunner, ConnectionDriver};
use crate::error::{Error, ErrorKind, Result};
use crate::hub::reactor::{Driver, Reactor};
use crate::hub::Hub;
use crate::registry::Registry;
use crate::transport::{Capabilities, Channel, Poller, Transport};
use crate::url::{parse_failover, BrokerUrl};

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
    fn driver(&self, connect_now: bool, runner: Option<AttemptRunner>) -> Result<Box<dyn Driver>> {
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
            runner,
        )))
    }

    /// Hands this connection to `hub`: from now on the hub's loop delivers its consumers' messages.
    pub fn register_with_event_loop(&self, hub: &mut Hub) -> Result<()> {
        self.hand_to_loop(None, |driver| hub.add_driver(driver).map(|_| ()))
    }

    /// Hands this connection's driver to an event loop (a Hub, or the async API's engine) with `add`;
    /// the driver connects in the background (with `runner`, where that says).
    pub(crate) fn hand_to_loop(
        &self,
        runner: Option<AttemptRunner>,
        add: impl FnOnce(Box<dyn Driver>) -> Result<()>,
    ) -> Result<()> {
        // A private loop left by earlier drain_events calls stops driving this connection.
        let private = self.inner.reactor.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(private);
        if self.inner.in_hub.swap(true, Ordering::AcqRel) {
            return Err(Error::state("connection is already registered with an event loop"));
        }
        let result = self.driver(false, runner).and_then(add);
        if result.is_err() {
            self.inner.in_hub.store(false, Ordering::Release);
        }
        result
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
            reactor.add_driver(self.driver(true, None)?)?;
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
