//! A transport whose broker is always down, for the failover and retry cases: it counts attempts and
//! refuses every connection with a recoverable error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::transport::{BrokerConnection, Capabilities, Transport};
use crate::url::BrokerUrl;

/// The scheme of [`DownTransport`].
pub const DOWN_SCHEME: &str = "kombu-test-down";

/// Refuses every connection (a `Connection` error) and counts the attempts.
#[derive(Debug, Default)]
pub struct DownTransport {
    attempts: AtomicU64,
}

impl DownTransport {
    /// Connection attempts so far.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Acquire)
    }
}

impl Transport for DownTransport {
    fn name(&self) -> &str {
        DOWN_SCHEME
    }
    fn aliases(&self) -> Vec<String> {
        vec![DOWN_SCHEME.to_owned()]
    }
    fn default_port(&self) -> Option<u16> {
        None
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }
    fn connect(&self, url: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
        self.attempts.fetch_add(1, Ordering::AcqRel);
        Err(Error::connection(format!("{url}: connection refused (this test broker is always down)")))
    }
}

static DOWN: std::sync::OnceLock<Arc<DownTransport>> = std::sync::OnceLock::new();

/// The registered down transport (registering it on first use).
pub(crate) fn install() -> Arc<DownTransport> {
    DOWN.get_or_init(|| {
        let t = Arc::new(DownTransport::default());
        if let Err(e) = super::registry().register(t.clone()) {
            tracing::debug!("down transport: {e:#}");
        }
        t
    })
    .clone()
}
