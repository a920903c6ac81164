//! The link: the live broker connection under a [`Connection`], made on first use by trying the failover
//! URLs with the retry policy, and made again (restarting the consumers on it) after it is lost.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use super::retry::{shuffle, FailoverStrategy};
use super::Connection;
use crate::error::{Error, Result};
use crate::transport::{BrokerConnection, Channel, Transport};
use crate::url::BrokerUrl;

pub(super) struct Link {
    pub(super) broker: Arc<dyn BrokerConnection>,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) url: BrokerUrl,
    pub(super) default_channel: Option<Arc<dyn Channel>>,
    pub(super) generation: u64,
}

impl Connection {
    pub(super) fn link(&self) -> Result<MutexGuard<'_, Option<Link>>> {
        self.link_with(true)
    }

    /// The live link, connecting if needed: with the retry policy, or with one round over the URLs
    /// (for callers that retry on their own schedule, like a Hub's driver).
    pub(super) fn link_with(&self, retry: bool) -> Result<MutexGuard<'_, Option<Link>>> {
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
}
