//! The connection driver: the one place that connects, reconnects and fails over, for every backend.
//!
//! A driver runs one connection inside a reactor (a [`Hub`](crate::Hub) or `drain_events`' private
//! loop): its poller's events become deliveries for the connection's consumers. When the poller reports
//! the link lost (an error of kind `Connection`), the driver drops the poller and connects again on a
//! thread of its own, following the failover list and the connection's
//! [`RetryPolicy`](crate::RetryPolicy); the result comes back through a wake-up, so the loop never waits
//! for a broker, and one slow or silent broker delays no other connection. The retry timer is one per driver: arming
//! it again replaces it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};

use crate::connection::{ConsumerTable, Inner};
use crate::error::{Error, ErrorKind, Result};
use crate::hub::reactor::Driver;
use crate::hub::{Event, EventKind, Sources, WakeHandle};
use crate::transport::{Delivery, Poller};
use crate::Connection;

/// A connection attempt on its own thread: a prepared poller, or why there is none.
type Attempt = mpsc::Receiver<Result<Box<dyn Poller>>>;

/// Where a connection attempt runs: by default a thread of its own; the async API hands it to its
/// runtime's blocking pool (so that a backend on tokio finds the caller's runtime there).
pub(crate) type AttemptRunner = Arc<dyn Fn(Box<dyn FnOnce() + Send>) + Send + Sync>;

pub(crate) struct ConnectionDriver {
    poller: Option<Box<dyn Poller>>,
    connection: Weak<Inner>,
    consumers: Arc<ConsumerTable>,
    closed: Arc<AtomicBool>,
    buf: Vec<Delivery>,
    /// The driver's own token: woken when an attempt ends, timer when a retry is due.
    wake: Option<WakeHandle>,
    attempt: Option<Attempt>,
    /// Failed attempts since the last success.
    retries: u32,
    /// A link was lost (the next attempt replaces it) rather than never made.
    lost: bool,
    /// It stopped retrying (the retry policy ran out, or the error cannot be helped by a retry).
    gave_up: bool,
    runner: Option<AttemptRunner>,
}

impl ConnectionDriver {
    pub(crate) fn new(
        connection: Weak<Inner>,
        consumers: Arc<ConsumerTable>,
        closed: Arc<AtomicBool>,
        poller: Option<Box<dyn Poller>>,
        runner: Option<AttemptRunner>,
    ) -> ConnectionDriver {
        ConnectionDriver {
            poller,
            connection,
            consumers,
            closed,
            buf: Vec::with_capacity(256),
            wake: None,
            attempt: None,
            retries: 0,
            lost: false,
            gave_up: false,
            runner,
        }
    }

    /// Starts connecting on a thread of its own (one round over the URLs; the retry policy paces the
    /// rounds). After a loss, the old link is closed there first.
    fn start_attempt(&mut self) {
        let (Some(wake), None) = (self.wake.clone(), self.attempt.as_ref()) else { return };
        let (tx, rx) = mpsc::channel();
        let weak = self.connection.clone();
        let reset = self.lost;
        let job = move || {
            let result = weak.upgrade().ok_or_else(|| Error::state("connection dropped")).and_then(|inner| {
                let conn = Connection { inner };
                if reset {
                    conn.reset_link();
                }
                let mut poller = conn.poller_with(false)?;
                poller.prepare()?;
                Ok(poller)
            });
            // The driver may be gone (its loop dropped): nobody to tell.
            let _ = tx.send(result);
            wake.wake();
        };
        if let Some(run) = &self.runner {
            run(Box::new(job));
            self.attempt = Some(rx);
            return;
        }
        match std::thread::Builder::new().name("kombu-connect".into()).spawn(job) {
            Ok(_) => self.attempt = Some(rx),
            Err(e) => tracing::error!("cannot start a connection attempt: {e}"),
        }
    }

    /// An attempt ended: registers its poller, or schedules the next try.
    fn finish_attempt(&mut self, result: Result<Box<dyn Poller>>, sources: &mut Sources<'_>) -> Result<()> {
        let result = result.and_then(|mut poller| match poller.register(sources) {
            Ok(()) => Ok(poller),
            Err(e) => {
                if let Err(again) = poller.deregister(sources) {
                    tracing::debug!("deregistering a poller that failed to register: {again:#}");
                }
                Err(e)
            }
        });
        match result {
            Ok(poller) => {
                self.poller = Some(poller);
                if self.lost {
                    let url = self.connection.upgrade().map(|inner| Connection { inner }.url()).unwrap_or_default();
                    tracing::info!("reconnected to {url}");
                }
                self.retries = 0;
                self.lost = false;
                Ok(())
            }
            Err(e) => {
                let Some(inner) = self.connection.upgrade() else { return Ok(()) };
                let retry = &inner.retry;
                // `max_retries` bounds the first connection; a link that was lost is sought for as long
                // as the driver runs (a broker restart must not stop consumers for good), at the
                // policy's intervals.
                let left = self.lost || retry.max_retries.is_none_or(|max| self.retries < max);
                if !e.is_recoverable() || !left {
                    self.gave_up = true;
                    let why = if e.is_recoverable() { "retries exhausted" } else { "a retry cannot help" };
                    return Err(e.context(format!("consumers stopped ({why})")));
                }
                let delay = retry.interval(self.retries);
                self.retries = self.retries.saturating_add(1);
                tracing::warn!("cannot connect ({e:#}); retrying in {delay:?}");
                if let Some(w) = &self.wake {
                    sources.wake_after(w.token(), delay);
                }
                Ok(())
            }
        }
    }

    /// The poller reported the link lost: drop it and connect again.
    fn lose(&mut self, err: &Error, sources: &mut Sources<'_>) {
        if let Some(mut p) = self.poller.take() {
            if let Err(e) = p.deregister(sources) {
                tracing::debug!("deregistering a lost connection: {e:#}");
            }
        }
        tracing::warn!("connection lost ({err:#}); reconnecting");
        self.lost = true;
        self.start_attempt();
    }
}

impl Drop for ConnectionDriver {
    fn drop(&mut self) {
        if let Some(inner) = self.connection.upgrade() {
            inner.in_hub.store(false, Ordering::Release);
        }
    }
}

impl Driver for ConnectionDriver {
    fn register(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        self.wake = Some(sources.waker());
        match self.poller.as_mut() {
            Some(p) => p.register(sources),
            None => {
                self.start_attempt();
                Ok(())
            }
        }
    }

    fn ready(&mut self, event: &Event, sources: &mut Sources<'_>) -> Result<usize> {
        if self.closed.load(Ordering::Acquire) || self.gave_up {
            return Ok(0);
        }
        if self.wake.as_ref().is_some_and(|w| w.token() == event.token) {
            match event.kind {
                EventKind::Timer if self.poller.is_none() => self.start_attempt(),
                EventKind::Woken => {
                    let ended = match self.attempt.as_ref().map(|rx| rx.try_recv()) {
                        Some(Ok(result)) => Some(result),
                        Some(Err(mpsc::TryRecvError::Disconnected)) => {
                            Some(Err(Error::connection("a connection attempt ended without an answer")))
                        }
                        Some(Err(mpsc::TryRecvError::Empty)) | None => None,
                    };
                    if let Some(result) = ended {
                        self.attempt = None;
                        self.finish_attempt(result, sources)?;
                    }
                }
                _ => {}
            }
            return Ok(0);
        }
        let Some(poller) = self.poller.as_mut() else { return Ok(0) };
        let polled = poller.ready(event, sources, &mut self.buf);
        let dispatched = self.consumers.dispatch(&mut self.buf);
        match polled {
            Err(e) if e.kind() == ErrorKind::Connection => {
                self.lose(&e, sources);
                Ok(dispatched)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(dispatched),
        }
    }

    fn deregister(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        match self.poller.as_mut() {
            Some(p) => p.deregister(sources),
            None => Ok(()),
        }
    }

    fn finished(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.gave_up
    }
}
