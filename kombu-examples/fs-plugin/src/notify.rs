//! Wake-ups within the process: every connection to a root directory is woken (through its poller's
//! wake slot) when a channel of this process publishes or requeues there. Other processes are noticed
//! by polling (see the poller).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use kombu_core::virtual_transport::{WakeSlot, Watchers};

fn watchers() -> MutexGuard<'static, HashMap<PathBuf, Watchers>> {
    static WATCHERS: OnceLock<Mutex<HashMap<PathBuf, Watchers>>> = OnceLock::new();
    WATCHERS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds a connection to the ones woken for `root`.
pub(crate) fn watch(root: &Path, slot: &Arc<WakeSlot>) {
    watchers().entry(root.to_path_buf()).or_default().add(slot);
}

/// Wakes every connection of this process to `root`.
pub(crate) fn wake_root(root: &Path) {
    if let Some(list) = watchers().get_mut(root) {
        list.wake_all();
    }
}
