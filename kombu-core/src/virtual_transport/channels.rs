//! The channels of one connection, held weakly so that a channel dropped by its user goes away: the
//! poller asks them in turn for deliveries, the connection closes them.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// A connection's live channels, in the order they were opened.
pub struct ChannelSet<C> {
    list: Mutex<Vec<Weak<C>>>,
}

impl<C> Default for ChannelSet<C> {
    fn default() -> Self {
        ChannelSet { list: Mutex::new(Vec::new()) }
    }
}

impl<C> std::fmt::Debug for ChannelSet<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSet").field("channels", &self.live().len()).finish()
    }
}

impl<C> ChannelSet<C> {
    fn lock(&self) -> MutexGuard<'_, Vec<Weak<C>>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a channel (held weakly).
    pub fn add(&self, channel: &Arc<C>) {
        self.lock().push(Arc::downgrade(channel));
    }

    /// The channels still alive, oldest first (forgetting the dropped ones).
    pub fn live(&self) -> Vec<Arc<C>> {
        let mut list = self.lock();
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_channels_go_away() {
        let set = ChannelSet::default();
        let (a, b) = (Arc::new(1), Arc::new(2));
        set.add(&a);
        set.add(&b);
        assert_eq!(set.live().iter().map(|c| **c).collect::<Vec<_>>(), [1, 2]);
        drop(a);
        assert_eq!(set.live().iter().map(|c| **c).collect::<Vec<_>>(), [2]);
        assert_eq!(format!("{set:?}"), "ChannelSet { channels: 1 }");
    }
}
