//! Pop requests and their replies: one pop-and-record script call per channel with consumers and
//! prefetch room, and its reply turned into deliveries (or put back when its consumer is gone).

use std::sync::Arc;

use bytes::Bytes;
use kombu_core::transport::Delivery;
use kombu_core::virtual_transport::Registration;
use kombu_core::{DeliveryTag, Message, Result};

use super::link::Pending;
use super::RedisPoller;
use crate::channel::{to_message, Held, RedisChannel};
use crate::options::RedisOptions;
use crate::payload::now_secs;
use crate::resp::{pack, Frame};
use crate::scripts::PopCall;

/// A pop request sent for a channel: enough to read its reply and to send it again.
pub(super) struct Pop {
    chan: u64,
    /// The request's id (its in-flight record when `record`).
    pub(super) req: String,
    queues: Vec<Arc<str>>,
    /// Most messages asked for.
    requested: usize,
    pub(super) record: bool,
    /// The script call, as sent.
    call: PopCall,
}

impl RedisPoller {
    /// Sends one pop request for a channel if it has consumers, room, nothing in flight and maybe work.
    pub(super) fn request(&mut self, ch: &Arc<RedisChannel>, o: &RedisOptions) {
        let (queues, room, record) = {
            let st = ch.state();
            let record = o.ack_emulation && st.consumers.iter().any(|c| !c.no_ack);
            (st.consumers.queues(), st.refill(), record)
        };
        let cp = self.chans.entry(ch.id).or_default();
        if queues.is_empty() || cp.inflight > 0 || !cp.dirty || room == 0 {
            return;
        }
        let n = room.min(o.consume_batch);
        cp.dirty = false;
        cp.inflight = n;
        let queues = o.queue_order_strategy.order(queues, &mut cp.turns);
        self.req_seq += 1;
        // Unique on the connection: the registration's generation numbers its pollers.
        let generation = self.registration.as_ref().map_or(0, Registration::generation);
        let req = format!("{generation}.{}", self.req_seq);
        let call = PopCall::new(o, &self.shared.inflight_key(), &queues, n, now_secs(), record, &req);
        let packed = call.pack(false);
        self.send(packed, Pending::Pop(Pop { chan: ch.id, req, queues, requested: n, record, call }));
    }

    /// Reads a pop request's reply: the messages go to their consumers, or back to their queue if their
    /// consumer is gone.
    pub(super) fn on_pop(&mut self, pop: Pop, frame: Frame, out: &mut Vec<Delivery>) -> Result<()> {
        let Pop { chan, ref req, ref queues, requested, record, ref call } = pop;
        if let Some(cp) = self.chans.get_mut(&chan) {
            cp.inflight = cp.inflight.saturating_sub(requested);
        }
        let items = match frame {
            Frame::Array(items) => items,
            Frame::Error(e) if e.starts_with("NOSCRIPT") => {
                // The script cache was flushed: nothing ran. Send the script itself this time.
                let packed = call.pack(true);
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
        let mut orphans: Vec<(Arc<str>, Held)> = Vec::new();
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
                orphans.push((tag, Held { queue, payload, recorded: record }));
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
                ch.track(&mut message, tag.clone(), Held { queue, payload, recorded: record });
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
}
