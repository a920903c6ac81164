//! The consumers of one connection: the [`ConsumerTable`] that hands deliveries to their callbacks, and the
//! [`ConsumerSpec`] kept for each consumer so that it can be started again on a new link.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Connection;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::transport::{Channel, Delivery};

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
    /// Consumer arguments (`x-stream-offset`, `x-priority`), given to every queue's consume.
    pub(crate) arguments: crate::fields::FieldTable,
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

    pub(super) fn start(&self, channel: &Arc<dyn Channel>) -> Result<()> {
        if self.declare {
            for q in &self.queues {
                channel.declare(q)?;
            }
        }
        if let Some(n) = self.prefetch {
            channel.qos(n)?;
        }
        for (q, tag) in self.queues.iter().zip(&self.tags) {
            channel.consume_with(&q.name, tag, self.no_ack, &self.arguments)?;
        }
        Ok(())
    }
}

static CONSUMER_SEQ: AtomicU64 = AtomicU64::new(1);

impl Connection {
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

    pub(crate) fn consumers(&self) -> &Arc<ConsumerTable> {
        &self.inner.consumers
    }

    pub(crate) fn new_consumer_tag(&self) -> Arc<str> {
        let n = CONSUMER_SEQ.fetch_add(1, Ordering::Relaxed);
        Arc::from(format!("ctag-{}-{n}", std::process::id()))
    }
}
