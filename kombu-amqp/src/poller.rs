//! The bridge from lapin's consumers to kombu's Hub: a connection's consumer streams, the wake slot that
//! lapin's I/O thread pokes when a delivery arrives, and the [`Poller`] that drains the streams into
//! kombu deliveries.
//!
//! Each lapin consumer is a stream fed by lapin's I/O thread. The poller polls every stream with a
//! [`Waker`] of the connection's [`WakeSlot`] (kombu-core's virtual-transport toolkit), which wakes the
//! Hub through the handle the poller put there in [`Poller::register`]; the
//! Hub then calls [`Poller::ready`], which takes what arrived, a bounded batch per consumer per round so
//! that no queue starves another. Of this crate, only that wake runs on lapin's threads.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_lite::Stream;
use kombu_core::hub::{Event, Sources};
use kombu_core::virtual_transport::{Registration, WakeSlot};
use kombu_core::{Channel, Delivery, Poller, Result};
use lapin::options::BasicRejectOptions;

use crate::errors::from_lapin;
use crate::properties::{to_message, Envelope, SharedNames};
use crate::runtime::poll_once;

/// Deliveries taken from one consumer before the next gets its turn.
const SLICE: usize = 8;
/// Deliveries taken in one call of [`Poller::ready`] before the Hub gets a turn.
const BATCH: usize = 256;

/// One active consumer.
pub(crate) struct Entry {
    tag: Arc<str>,
    stream: lapin::Consumer,
    channel: Arc<dyn Channel>,
    lapin_channel: lapin::Channel,
    no_ack: bool,
    /// The stream ended (cancelled, or its channel failed).
    ended: bool,
    /// Names its messages share.
    names: SharedNames,
}

impl Entry {
    /// A consumer's entry.
    pub(crate) fn new(
        tag: Arc<str>,
        stream: lapin::Consumer,
        channel: Arc<dyn Channel>,
        lapin_channel: lapin::Channel,
        no_ack: bool,
    ) -> Entry {
        Entry { tag, stream, channel, lapin_channel, no_ack, ended: false, names: SharedNames::default() }
    }

    fn delivery(&mut self, d: lapin::message::Delivery) -> Delivery {
        let lapin::message::Delivery { delivery_tag, exchange, routing_key, redelivered, properties, data, .. } = d;
        let envelope = Envelope {
            delivery_tag,
            exchange: exchange.as_str(),
            routing_key: routing_key.as_str(),
            redelivered,
            consumer_tag: Some(self.tag.clone()),
        };
        let mut message = to_message(data, &properties, envelope, &mut self.names);
        if !self.no_ack {
            message.bind_channel(self.channel.clone());
        }
        Delivery::new(self.tag.clone(), message)
    }

    /// After a cancel: deliveries lapin already received for this consumer go back to the queue.
    pub(crate) fn requeue_leftovers(mut self) {
        loop {
            let mut cx = Context::from_waker(Waker::noop());
            match Pin::new(&mut self.stream).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(d))) if !self.no_ack => {
                    let requeue = BasicRejectOptions { requeue: true };
                    let mut reject = std::pin::pin!(self.lapin_channel.basic_reject(d.delivery_tag, requeue));
                    if let Poll::Ready(Err(e)) = poll_once(&mut reject) {
                        tracing::debug!("requeue of a delivery for cancelled consumer {}: {e}", self.tag);
                    }
                }
                Poll::Ready(Some(_)) => {}
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
    }
}

/// The consumers of one connection, shared by its channels (which add and remove them) and its pollers
/// (which drain them).
pub(crate) struct Deliveries {
    entries: Mutex<Vec<Entry>>,
    /// Where wakes from lapin's I/O thread go: the poller registered now, if any.
    slot: Arc<WakeSlot>,
    /// The slot as a [`Waker`] for lapin's streams.
    waker: Waker,
}

impl Deliveries {
    pub(crate) fn new() -> Arc<Deliveries> {
        let slot = Arc::new(WakeSlot::default());
        let waker = slot.waker();
        Arc::new(Deliveries { entries: Mutex::new(Vec::new()), slot, waker })
    }

    fn entries(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a consumer and wakes the poller so it starts watching it.
    pub(crate) fn add(&self, entry: Entry) {
        self.entries().push(entry);
        self.waker.wake_by_ref();
    }

    /// Removes a consumer.
    pub(crate) fn remove(&self, tag: &str) -> Option<Entry> {
        let mut entries = self.entries();
        let i = entries.iter().position(|e| &*e.tag == tag)?;
        Some(entries.remove(i))
    }

    /// Removes the consumers of one channel.
    pub(crate) fn remove_channel(&self, channel_id: u16) -> Vec<Entry> {
        let mut entries = self.entries();
        let (gone, kept) = entries.drain(..).partition(|e| e.lapin_channel.id() == channel_id);
        *entries = kept;
        gone
    }

    /// Removes every consumer.
    pub(crate) fn clear(&self) {
        self.entries().clear();
    }

    /// Takes what the consumers received, round-robin in slices of [`SLICE`] so that no queue starves
    /// another, at most [`BATCH`] in all; wakes again if more is waiting.
    fn poll(&self, out: &mut Vec<Delivery>) -> Result<()> {
        let mut cx = Context::from_waker(&self.waker);
        let mut first_err = None;
        let mut taken = 0;
        let mut entries = self.entries();
        let mut open = vec![true; entries.len()];
        let mut more = true;
        while more && taken < BATCH {
            more = false;
            for (i, e) in entries.iter_mut().enumerate() {
                if !open[i] {
                    continue;
                }
                let mut n = 0;
                while n < SLICE {
                    match Pin::new(&mut e.stream).poll_next(&mut cx) {
                        Poll::Ready(Some(Ok(d))) => {
                            out.push(e.delivery(d));
                            n += 1;
                        }
                        Poll::Ready(Some(Err(err))) => {
                            first_err.get_or_insert_with(|| from_lapin(err, &format!("consumer {}", e.tag)));
                            open[i] = false;
                            e.ended = true;
                            break;
                        }
                        Poll::Ready(None) => {
                            tracing::debug!("consumer {} was cancelled", e.tag);
                            open[i] = false;
                            e.ended = true;
                            break;
                        }
                        Poll::Pending => {
                            open[i] = false;
                            break;
                        }
                    }
                }
                taken += n;
                more |= n == SLICE;
            }
        }
        entries.retain(|e| !e.ended);
        drop(entries);
        if more {
            self.waker.wake_by_ref();
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The [`Poller`] of an AMQP connection.
pub struct AmqpPoller {
    deliveries: Arc<Deliveries>,
    registration: Option<Registration>,
}

impl std::fmt::Debug for AmqpPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpPoller").field("registered", &self.registration.is_some()).finish()
    }
}

impl AmqpPoller {
    pub(crate) fn new(deliveries: Arc<Deliveries>) -> AmqpPoller {
        AmqpPoller { deliveries, registration: None }
    }
}

impl Poller for AmqpPoller {
    fn register(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        let registration = self.deliveries.slot.register(sources.waker());
        registration.wake();
        self.registration = Some(registration);
        Ok(())
    }

    fn ready(&mut self, _event: &Event, _sources: &mut Sources<'_>, out: &mut Vec<Delivery>) -> Result<()> {
        self.deliveries.poll(out)
    }

    /// Takes this poller's handle out of the slot, unless a newer poller registered since (the same
    /// happens when the poller is dropped).
    fn deregister(&mut self, _sources: &mut Sources<'_>) -> Result<()> {
        self.registration = None;
        Ok(())
    }
}
