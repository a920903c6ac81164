//! The transport registry: URL schemes (aliases) to transports. Built-in backends register statically
//! with [`register_transport!`](crate::register_transport) (through `inventory`); plugins and programs
//! register at run time. An unknown scheme gets an error naming the nearest known alias, or the Cargo
//! feature that would compile it in.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{Error, ErrorKind, Result};
use crate::transport::{Capabilities, Transport};

/// A static registration, collected from every linked crate by `inventory`.
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct StaticTransport {
    pub create: fn() -> Arc<dyn Transport>,
}

inventory::collect!(StaticTransport);

/// Registers a transport statically, from a backend crate:
///
/// ```text
/// kombu_core::register_transport!(MyTransport::new());
/// ```
#[macro_export]
macro_rules! register_transport {
    ($make:expr) => {
        $crate::inventory::submit! {
            $crate::registry::StaticTransport { create: || ::std::sync::Arc::new($make) }
        }
    };
}

/// Where a registered transport came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Compiled into the program.
    BuiltIn,
    /// Registered by the program at run time.
    Runtime,
    /// Loaded from a plugin library.
    Plugin(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built in"),
            Origin::Runtime => f.write_str("registered at run time"),
            Origin::Plugin(p) => write!(f, "plugin {}", p.display()),
        }
    }
}

#[derive(Clone)]
struct Entry {
    transport: Arc<dyn Transport>,
    origin: Origin,
}

/// One registered transport, as listed by [`Registry::transports`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportInfo {
    /// Main alias.
    pub name: String,
    /// Every alias.
    pub aliases: Vec<String>,
    /// Where it came from.
    pub origin: Origin,
    /// What it can do.
    pub capabilities: Capabilities,
    /// Default port.
    pub default_port: Option<u16>,
}

/// Built-in backends and the Cargo feature of the `kombu` crate that compiles each in.
const FEATURES: &[(&str, &str)] = &[
    ("memory", "memory"),
    ("redis", "redis"),
    ("rediss", "redis"),
    ("amqp", "amqp"),
    ("amqps", "amqp"),
    ("pyamqp", "amqp"),
];

/// Aliases to transports.
pub struct Registry {
    entries: RwLock<BTreeMap<String, Entry>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("aliases", &self.aliases()).finish()
    }
}

impl Registry {
    /// An empty registry (tests; programs use [`Registry::global`]).
    pub fn empty() -> Registry {
        Registry { entries: RwLock::new(BTreeMap::new()) }
    }

    /// The process-wide registry, with every statically registered transport.
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let reg = Registry::empty();
            for s in inventory::iter::<StaticTransport> {
                if let Err(e) = reg.add((s.create)(), Origin::BuiltIn) {
                    tracing::error!("built-in transport not registered: {e:#}");
                }
            }
            #[cfg(feature = "plugins")]
            crate::plugin::load_from_env(&reg);
            reg
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a transport under all its aliases. Fails, registering nothing, if any alias is taken.
    pub fn register(&self, transport: Arc<dyn Transport>) -> Result<()> {
        self.add(transport, Origin::Runtime)
    }

    pub(crate) fn add(&self, transport: Arc<dyn Transport>, origin: Origin) -> Result<()> {
        self.add_all(vec![transport], origin)
    }

    /// Registers several transports at once: all of them, or none if any alias is taken (or repeated).
    pub(crate) fn add_all(&self, transports: Vec<Arc<dyn Transport>>, origin: Origin) -> Result<()> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut new: BTreeMap<String, Entry> = BTreeMap::new();
        for transport in transports {
            let aliases = transport.aliases();
            if aliases.is_empty() {
                return Err(Error::invalid(format!("transport '{}' has no aliases", transport.name())));
            }
            for alias in aliases {
                if let Some(existing) = entries.get(&alias).or_else(|| new.get(&alias)) {
                    return Err(Error::new(
                        ErrorKind::Plugin,
                        format!("transport alias '{alias}' is already registered ({})", existing.origin),
                    ));
                }
                new.insert(alias, Entry { transport: transport.clone(), origin: origin.clone() });
            }
        }
        entries.extend(new);
        Ok(())
    }

    /// Every registered alias, sorted.
    pub fn aliases(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// One line per transport (not per alias).
    pub fn transports(&self) -> Vec<TransportInfo> {
        let entries = self.read();
        let mut out: Vec<TransportInfo> = Vec::new();
        for e in entries.values() {
            let name = e.transport.name().to_owned();
            if out.iter().any(|i| i.name == name && i.origin == e.origin) {
                continue;
            }
            out.push(TransportInfo {
                name,
                aliases: e.transport.aliases(),
                origin: e.origin.clone(),
                capabilities: e.transport.capabilities(),
                default_port: e.transport.default_port(),
            });
        }
        out
    }

    /// The transport for a URL scheme.
    ///
    /// ```
    /// let err = kombu_core::Registry::empty().get("rediss").unwrap_err();
    /// assert_eq!(err.kind(), kombu_core::ErrorKind::UnknownTransport);
    /// ```
    pub fn get(&self, alias: &str) -> Result<Arc<dyn Transport>> {
        let entries = self.read();
        if let Some(e) = entries.get(alias) {
            return Ok(e.transport.clone());
        }
        let mut msg = format!("'{alias}'");
        if let Some((_, feature)) = FEATURES.iter().find(|(a, _)| *a == alias) {
            msg.push_str(&format!(": it is not compiled in; enable the `{feature}` feature of the `kombu` crate"));
        } else {
            let nearest = entries
                .keys()
                .map(|k| (strsim::damerau_levenshtein(alias, k), k))
                .filter(|(d, k)| *d <= 2.max(k.len() / 3))
                .min();
            match nearest {
                Some((_, k)) => msg.push_str(&format!(": did you mean '{k}'?")),
                None if entries.is_empty() => msg.push_str(" (no transports are registered)"),
                None => msg.push_str(&format!(
                    " (known: {})",
                    entries.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                )),
            }
        }
        #[cfg(feature = "plugins")]
        if let Some(note) = crate::plugin::env_failures_note() {
            msg.push_str(&format!(" ({note})"));
        }
        Err(Error::new(ErrorKind::UnknownTransport, msg))
    }

    /// Where the transport registered under `alias` came from.
    pub fn origin(&self, alias: &str) -> Option<Origin> {
        self.read().get(alias).map(|e| e.origin.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::BrokerConnection;
    use crate::url::BrokerUrl;

    struct Fake(&'static [&'static str]);
    impl Transport for Fake {
        fn name(&self) -> &str {
            self.0[0]
        }
        fn aliases(&self) -> Vec<String> {
            self.0.iter().map(|s| s.to_string()).collect()
        }
        fn default_port(&self) -> Option<u16> {
            None
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::new()
        }
        fn connect(&self, _: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
            Err(Error::unsupported("fake"))
        }
    }

    #[test]
    fn did_you_mean() {
        let reg = Registry::empty();
        reg.register(Arc::new(Fake(&["sqs"]))).unwrap();
        reg.register(Arc::new(Fake(&["kafka", "confluentkafka"]))).unwrap();
        let e = reg.get("kafak").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownTransport);
        assert!(e.to_string().contains("did you mean 'kafka'?"), "{e}");
        let e = reg.get("zzzzzzzz").unwrap_err();
        assert!(e.to_string().contains("known: confluentkafka, kafka, sqs"), "{e}");
        let e = reg.get("redis").unwrap_err();
        assert!(e.to_string().contains("enable the `redis` feature"), "{e}");
    }

    #[test]
    fn duplicate_alias_registers_nothing() {
        let reg = Registry::empty();
        reg.register(Arc::new(Fake(&["a", "b"]))).unwrap();
        let e = reg.register(Arc::new(Fake(&["c", "b"]))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Plugin);
        assert!(reg.get("c").is_err(), "half-registered alias left behind");
        assert_eq!(reg.aliases(), vec!["a", "b"]);
        assert_eq!(reg.transports().len(), 1);
    }
}
