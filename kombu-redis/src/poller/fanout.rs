//! The pub/sub socket: fanout messages handed to every consumer whose queue is bound to the exchange
//! (each copy with its own delivery tag, recorded in `unacked` under ack emulation), and tracking
//! invalidations, which say a watched queue changed.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use kombu_core::envelope::Envelope;
use kombu_core::transport::Delivery;
use kombu_core::virtual_transport::Consumer;
use kombu_core::Result;

use super::link::Pending;
use super::RedisPoller;
use crate::channel::Held;
use crate::connection::lock;
use crate::keys;
use crate::payload::{new_tag, now_secs, score, unacked_entry};
use crate::resp::{classify, pack, PubSub, INVALIDATE};

impl RedisPoller {
    /// Reads the pub/sub socket: fanout messages become deliveries, invalidations mark every channel
    /// worth a new pop request.
    pub(super) fn read_sub(&mut self, out: &mut Vec<Delivery>) -> Result<()> {
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
            self.mark_dirty();
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
        let mut served: HashSet<Arc<str>> = HashSet::new();
        let mut records = Vec::new();
        for ch in self.shared.channels() {
            let consumers: Vec<Consumer> = ch.state().consumers.iter().cloned().collect();
            for c in consumers {
                if served.contains(&c.queue) || !fanout.get(&*c.queue).is_some_and(|s| s.contains(&exchange)) {
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
                let tag = new_tag();
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
                        let entry = unacked_entry(&payload, &di.exchange, &di.routing_key);
                        records.push((tag.clone(), entry));
                    }
                    ch.track(&mut message, Arc::from(tag.as_str()), Held { queue: c.queue.clone(), payload, recorded });
                }
                out.push(Delivery::new(c.tag.clone(), message));
            }
        }
        let now = score(now_secs());
        for (tag, entry) in records {
            let zadd = pack("ZADD", &[o.unacked_index_key.as_bytes(), now.as_bytes(), tag.as_bytes()]);
            let hset = pack("HSET", &[o.unacked_key.as_bytes(), tag.as_bytes(), &entry[..]]);
            self.send(zadd, Pending::Ignore);
            self.send(hset, Pending::Ignore);
        }
    }
}
