//! Subscription sync: the fanout patterns subscribed and the queue prefixes tracked brought in line with
//! the channels' consumers, then a pop request for each channel that is due one.

use std::collections::{BTreeSet, HashSet};

use kombu_core::Result;

use super::link::Pending;
use super::RedisPoller;
use crate::connection::lock;
use crate::keys;
use crate::resp::{error_text, pack, tracking_on, Frame};

impl RedisPoller {
    /// Subscriptions, tracking prefixes and pop requests brought in line with the channels' consumers.
    pub(super) fn sync(&mut self) -> Result<()> {
        let Some(link) = self.link.as_mut() else { return Ok(()) };
        let o = self.shared.opts.clone();
        let channels = self.shared.channels();
        let fanout = lock(&self.shared.fanout).clone();
        let mut patterns = BTreeSet::new();
        let mut prefixes = Vec::new();
        for ch in &channels {
            for c in ch.state().consumers.iter() {
                prefixes.push(format!("{}{}", o.global_keyprefix, c.queue));
                for ex in fanout.get(&*c.queue).into_iter().flatten() {
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
                link.cmd.wbuf.extend(tracking_on(link.client_id, &prefixes));
                link.pending.push_back(Pending::Tracking);
            }
            link.tracked = prefixes;
            self.mark_dirty();
        }
        let live: HashSet<u64> = channels.iter().map(|c| c.id).collect();
        self.chans.retain(|id, _| live.contains(id));
        for ch in channels {
            self.request(&ch, &o);
        }
        Ok(())
    }

    /// Reads the reply to `CLIENT TRACKING ON`: refused means polling from now on.
    pub(super) fn on_tracking(&mut self, frame: &Frame) {
        if let Some(e) = error_text(frame) {
            tracing::warn!("redis refused client tracking ({e}); polling every {:?}", self.tick_interval());
            if let Some(l) = self.link.as_mut() {
                l.tracking_ok = false;
            }
        }
    }
}
