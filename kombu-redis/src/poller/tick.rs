//! The poller's timer: a fresh look at the queues every `polling_interval` (in case a tracking
//! notification was missed), health checks on both sockets, the visibility-timeout restore sweep, and
//! (with Sentinel) a look at where the master is.

use std::time::{Duration, Instant};

use kombu_core::hub::Sources;

use super::link::Pending;
use super::RedisPoller;
use crate::resp::pack;
use crate::restore;

impl RedisPoller {
    /// How long until the next tick: the polling interval, at most 100 ms without client tracking.
    pub(super) fn tick_interval(&self) -> Duration {
        let o = &self.shared.opts;
        match &self.link {
            Some(l) if l.tracking_ok => o.polling_interval,
            _ => o.polling_interval.min(Duration::from_millis(100)),
        }
    }

    pub(super) fn arm_timer(&self, sources: &mut Sources<'_>, delay: Duration) {
        if let Some(r) = &self.registration {
            sources.wake_after(r.token(), delay);
        }
    }

    /// Timer work: a fresh look at the queues, reconnecting, health checks, visibility restores.
    pub(super) fn on_tick(&mut self, sources: &mut Sources<'_>) {
        let now = Instant::now();
        self.mark_dirty();
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
        // With Sentinel the old master keeps serving after a failover until the sentinels turn it into a
        // replica: ask them, off this thread, where the master is (every polling interval).
        if let (true, Some(link)) = (self.shared.dialer.checks_role(), self.link.as_ref()) {
            if now >= self.next_watch {
                self.next_watch = now + o.polling_interval;
                crate::sentinel::watch_in_background(&self.shared, link.addr.clone(), &self.watch);
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
