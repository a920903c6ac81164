//! kombu-fs-plugin: a third-party transport for kombu-rs, shipped as a plugin (a shared library loaded at
//! run time), that keeps queues in a directory: one directory per queue, one file per message.
//!
//! It registers the `filesystem` transport (alias `fs`). The URL names the directory, which every
//! connection (of any process) that names it shares: `filesystem:///var/spool/kombu` (or
//! `filesystem://localhost/var/spool/kombu`). Its one option, `polling_interval` (seconds, 0.001 to 3600,
//! default 0.1), sets how often a consumer looks for messages written by other processes; messages
//! published by the same process wake consumers at once. Any other option is refused with the nearest
//! known name, by kombu-core's check of the declared options.
//!
//! ```text
//! cargo build -p kombu-fs-plugin --release
//! KOMBU_PLUGINS=target/release/libkombu_fs_plugin.so my-program filesystem:///tmp/q
//! ```
//!
//! Like Python Kombu's `filesystem` transport, a message is written to a temporary file and renamed into
//! its queue's directory, so a reader never sees half a message. A consumer claims one by renaming it
//! (only one rename can win, so no message is delivered twice), an ack deletes it, and a requeue (or the
//! close of the channel that held it) renames it back. Unlike Python's, it routes every exchange type
//! (direct, topic, fanout, headers) with AMQP's rules, has priorities (higher first) and message TTL, and
//! gives back the messages held by a process that died. Files are Kombu's JSON message envelope.

#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod channel;
mod names;
mod notify;
mod poller;
mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kombu_core::transport::{BrokerConnection, Capabilities, Channel, Poller, PriorityOrder, Transport};
use kombu_core::{BrokerUrl, Error, OptionSpec, Options, Result};

use channel::ConnShared;
use store::Store;

/// How often consumers look for messages from other processes, by default.
const DEFAULT_POLLING_INTERVAL: Duration = Duration::from_millis(100);

/// The options a `filesystem://` URL takes.
const OPTIONS: &[OptionSpec] =
    &[OptionSpec::seconds_between("polling_interval", Duration::from_millis(1), Duration::from_secs(3600))];

/// The filesystem transport.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsTransport;

impl FsTransport {
    /// The directory and polling interval a URL names.
    fn settings(url: &BrokerUrl) -> Result<(&Path, Duration)> {
        if url.hostname.as_deref().is_some_and(|h| h != "localhost") {
            return Err(Error::invalid(format!(
                "{url}: a filesystem URL names a local directory, as filesystem:///path (host '{}' given)",
                url.hostname.as_deref().unwrap_or_default()
            )));
        }
        if url.path.is_empty() || url.path == "/" {
            return Err(Error::invalid(format!("{url}: name the directory of the queues, as filesystem:///path")));
        }
        let options = Options::new("filesystem", OPTIONS, url)?;
        let interval = options.seconds("polling_interval")?.unwrap_or(DEFAULT_POLLING_INTERVAL);
        Ok((Path::new(&url.path), interval))
    }
}

impl Transport for FsTransport {
    fn name(&self) -> &str {
        "filesystem"
    }

    fn aliases(&self) -> Vec<String> {
        vec!["filesystem".to_owned(), "fs".to_owned()]
    }

    fn default_port(&self) -> Option<u16> {
        None
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new().priority(PriorityOrder::HighestFirst).message_ttl(true).event_driven(false)
    }

    fn options(&self) -> Option<&'static [OptionSpec]> {
        Some(OPTIONS)
    }

    fn validate(&self, url: &BrokerUrl) -> Result<()> {
        FsTransport::settings(url).map(|_| ())
    }

    fn connect(&self, url: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
        let (root, interval) = FsTransport::settings(url)?;
        let store = Arc::new(Store::open(root)?);
        let shared = ConnShared::new(store);
        notify::watch(shared.backend().root(), shared.wake_slot());
        Ok(Box::new(FsConnection { shared, interval }))
    }
}

kombu_core::export_plugin!(FsTransport);

/// One connection to a directory.
struct FsConnection {
    shared: Arc<ConnShared>,
    interval: Duration,
}

impl BrokerConnection for FsConnection {
    fn channel(&self) -> Result<Arc<dyn Channel>> {
        Ok(self.shared.open_channel()?)
    }

    fn poller(&self) -> Result<Box<dyn Poller>> {
        Ok(Box::new(poller::FsPoller { conn: self.shared.clone(), interval: self.interval, registration: None }))
    }

    fn is_open(&self) -> bool {
        self.shared.is_open()
    }

    fn close(&self) -> Result<()> {
        self.shared.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> BrokerUrl {
        s.parse().unwrap()
    }

    #[test]
    fn urls_name_a_local_directory() {
        let u = url("filesystem:///tmp/q");
        let (root, interval) = FsTransport::settings(&u).unwrap();
        assert_eq!((root, interval), (Path::new("/tmp/q"), DEFAULT_POLLING_INTERVAL));
        let u = url("fs://localhost/tmp/q?polling_interval=0.5");
        let (root, interval) = FsTransport::settings(&u).unwrap();
        assert_eq!((root, interval), (Path::new("/tmp/q"), Duration::from_millis(500)));
        for bad in [
            "filesystem://",
            "filesystem:///",
            "filesystem://tmp/q",
            "fs:///q?polling_interval=0",
            "fs:///q?polling_interval=x",
            "fs:///q?polling_interval=1e20",
            "fs:///q?poling_interval=1",
        ] {
            let e = FsTransport::settings(&url(bad)).unwrap_err();
            assert_eq!(e.kind(), kombu_core::ErrorKind::InvalidArgument, "{bad}");
        }
    }
}
