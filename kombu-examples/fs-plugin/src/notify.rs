//! Wake-ups within the process: each connection's poller has a [`Notify`], and every connection to a
//! root directory is woken when a channel of this process publishes or requeues there. Other processes
//! are noticed by polling (see the poller).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use kombu_core::hub::WakeHandle;

/// Wakes one connection's poller, once it is registered with a Hub.
#[derive(Default)]
pub(crate) struct Notify {
    handle: Mutex<Option<WakeHandle>>,
}

impl Notify {
    pub(crate) fn set(&self, handle: Option<WakeHandle>) {
        *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = handle;
    }

    pub(crate) fn wake(&self) {
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            h.wake();
        }
    }
}

type Watchers = Mutex<HashMap<PathBuf, Vec<Weak<Notify>>>>;

fn watchers() -> &'static Watchers {
    static WATCHERS: OnceLock<Watchers> = OnceLock::new();
    WATCHERS.get_or_init(Default::default)
}

/// Adds a connection to the ones woken for `root`.
pub(crate) fn watch(root: &Path, notify: &Arc<Notify>) {
    let mut all = watchers().lock().unwrap_or_else(|e| e.into_inner());
    let list = all.entry(root.to_path_buf()).or_default();
    list.retain(|w| w.strong_count() > 0);
    list.push(Arc::downgrade(notify));
}

/// Wakes every connection of this process to `root`.
pub(crate) fn wake_root(root: &Path) {
    let live: Vec<Arc<Notify>> = {
        let mut all = watchers().lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = all.get_mut(root) else { return };
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    };
    for n in live {
        n.wake();
    }
}
