//! The transport registry: URL schemes (aliases) to transports.
//!
//! kombu-core knows no broker. A backend crate describes itself with a static [`TransportDescriptor`]
//! (name, schemes, constructor); a program, or the `kombu` facade for the backends its Cargo features
//! compile in, submits descriptors with [`register_transport!`](crate::register_transport), and names
//! the backends it could have compiled in but did not with
//! [`register_unavailable!`](crate::register_unavailable), for the error's hint. Both are collected at
//! link time (through `inventory`), so the [global](Registry::global) registry has them whichever way a
//! [`Connection`](crate::Connection) is made, with no call first. Plugins and programs register at run
//! time (`Registry::load_plugin` with the `plugins` feature, [`Registry::register`]). An unknown scheme
//! gets an error naming the nearest known alias, or the hint of the backend that would serve it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{Error, ErrorKind, Result};
use crate::transport::{Capabilities, Transport};

/// What the registry needs to know of a backend, as a `static` in the backend's crate: its name, the URL
/// schemes it serves (its transport's aliases), and how to make its transport.
///
/// ```
/// use std::sync::Arc;
/// use kombu_core::registry::TransportDescriptor;
/// # use kombu_core::{Capabilities, Transport, BrokerConnection, BrokerUrl, Result, Error};
/// # struct MyTransport;
/// # impl Transport for MyTransport {
/// #     fn name(&self) -> &str { "mine" }
/// #     fn aliases(&self) -> Vec<String> { MINE.schemes().iter().map(|s| s.to_string()).collect() }
/// #     fn default_port(&self) -> Option<u16> { None }
/// #     fn capabilities(&self) -> Capabilities { Capabilities::new() }
/// #     fn connect(&self, _: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> { Err(Error::unsupported("doc")) }
/// # }
/// pub static MINE: TransportDescriptor = TransportDescriptor::new("mine", &["mine", "mines"], || Arc::new(MyTransport));
///
/// // A program that links the crate registers it (the `kombu` facade does this for its backends):
/// kombu_core::register_transport!(MINE);
///
/// let reg = kombu_core::Registry::empty();
/// reg.install(&MINE).unwrap();
/// assert_eq!(reg.aliases(), ["mine", "mines"]);
/// ```
#[derive(Debug)]
pub struct TransportDescriptor {
    name: &'static str,
    schemes: &'static [&'static str],
    create: fn() -> Arc<dyn Transport>,
}

impl TransportDescriptor {
    /// A descriptor: the transport's `name`, the URL `schemes` it serves (exactly its
    /// [`aliases`](Transport::aliases), checked when it is installed), and its constructor.
    pub const fn new(
        name: &'static str,
        schemes: &'static [&'static str],
        create: fn() -> Arc<dyn Transport>,
    ) -> TransportDescriptor {
        TransportDescriptor { name, schemes, create }
    }

    /// The transport's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The URL schemes it serves.
    pub const fn schemes(&self) -> &'static [&'static str] {
        self.schemes
    }
}

/// A backend the program could have had but was built without: the schemes it would serve, and what
/// to do to get it (the `kombu` facade says which Cargo feature to enable). Only used for the error of
/// [`Registry::get`].
#[derive(Debug)]
pub struct UnavailableTransport {
    schemes: &'static [&'static str],
    hint: &'static str,
}

impl UnavailableTransport {
    /// The backend serving `schemes` is not compiled in; `hint` says how to compile it in.
    pub const fn new(schemes: &'static [&'static str], hint: &'static str) -> UnavailableTransport {
        UnavailableTransport { schemes, hint }
    }
}

/// A descriptor submitted by [`register_transport!`](crate::register_transport).
#[doc(hidden)]
#[derive(Debug)]
pub struct StaticTransport(pub &'static TransportDescriptor);

/// A backend named by [`register_unavailable!`](crate::register_unavailable).
#[doc(hidden)]
#[derive(Debug)]
pub struct StaticUnavailable(pub &'static UnavailableTransport);

inventory::collect!(StaticTransport);
inventory::collect!(StaticUnavailable);

/// Registers a backend's [`TransportDescriptor`] in the [global](Registry::global) registry, at link
/// time: once in a program (or a test binary) that links the backend, at the top level of any of its
/// modules. Submitting the same descriptor twice registers it once.
///
/// ```text
/// kombu_core::register_transport!(my_backend::DESCRIPTOR);
/// ```
#[macro_export]
macro_rules! register_transport {
    ($descriptor:expr) => {
        $crate::inventory::submit! { $crate::registry::StaticTransport(&$descriptor) }
    };
}

/// Names, for the error of an unknown scheme, a backend this program was built without (an
/// [`UnavailableTransport`](crate::registry::UnavailableTransport)), at link time.
///
/// ```text
/// kombu_core::register_unavailable!(["kafka"], "enable the `kafka` feature of the `my_app` crate");
/// ```
#[macro_export]
macro_rules! register_unavailable {
    ([$($scheme:literal),+ $(,)?], $hint:expr) => {
        $crate::inventory::submit! {
            $crate::registry::StaticUnavailable(&$crate::registry::UnavailableTransport::new(&[$($scheme),+], $hint))
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

/// Aliases to transports.
pub struct Registry {
    entries: RwLock<BTreeMap<String, Entry>>,
    /// Schemes of backends the program was built without, to the hint saying how to get them.
    unavailable: RwLock<BTreeMap<String, &'static str>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("aliases", &self.aliases()).finish()
    }
}

impl Registry {
    /// An empty registry (tests; programs use [`Registry::global`]).
    pub fn empty() -> Registry {
        Registry { entries: RwLock::new(BTreeMap::new()), unavailable: RwLock::new(BTreeMap::new()) }
    }

    /// The process-wide registry, made on first use with every descriptor submitted by
    /// [`register_transport!`](crate::register_transport) (and every backend named by
    /// [`register_unavailable!`](crate::register_unavailable)) in the program, then the plugins of
    /// `KOMBU_PLUGINS` (feature `plugins`).
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let reg = Registry::empty();
            let mut installed: Vec<&TransportDescriptor> = Vec::new();
            for StaticTransport(d) in inventory::iter::<StaticTransport> {
                // The same backend submitted twice (by the facade and by a test, say) registers once.
                if installed.iter().any(|i| i.name == d.name && i.schemes == d.schemes) {
                    continue;
                }
                match reg.install(d) {
                    Ok(()) => installed.push(d),
                    Err(e) => tracing::error!("built-in transport not registered: {e:#}"),
                }
            }
            for StaticUnavailable(u) in inventory::iter::<StaticUnavailable> {
                reg.note_unavailable(u);
            }
            #[cfg(feature = "plugins")]
            crate::plugin::load_from_env(&reg);
            reg
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the transport of `descriptor` and registers it under its schemes, as built in. Fails,
    /// registering nothing, if any scheme is taken or the transport's aliases are not the descriptor's
    /// schemes.
    pub fn install(&self, descriptor: &TransportDescriptor) -> Result<()> {
        let transport = (descriptor.create)();
        if transport.aliases() != descriptor.schemes {
            return Err(Error::invalid(format!(
                "transport '{}' has aliases {:?}, its descriptor schemes {:?}",
                descriptor.name,
                transport.aliases(),
                descriptor.schemes
            )));
        }
        self.add(transport, Origin::BuiltIn)
    }

    /// Remembers that the program was built without the backend serving `unavailable`'s schemes, for the
    /// error of [`get`](Registry::get).
    pub fn note_unavailable(&self, unavailable: &UnavailableTransport) {
        let mut map = self.unavailable.write().unwrap_or_else(|e| e.into_inner());
        for scheme in unavailable.schemes {
            map.insert((*scheme).to_owned(), unavailable.hint);
        }
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
    /// let err = kombu_core::Registry::empty().get("nosuch").unwrap_err();
    /// assert_eq!(err.kind(), kombu_core::ErrorKind::UnknownTransport);
    /// ```
    pub fn get(&self, alias: &str) -> Result<Arc<dyn Transport>> {
        let entries = self.read();
        if let Some(e) = entries.get(alias) {
            return Ok(e.transport.clone());
        }
        let mut msg = format!("'{alias}'");
        let hint = self.unavailable.read().unwrap_or_else(|e| e.into_inner()).get(alias).copied();
        if let Some(hint) = hint {
            msg.push_str(&format!(": it is not compiled in; {hint}"));
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
        static KAFKA: UnavailableTransport = UnavailableTransport::new(&["kafka", "kafkas"], "enable `kafka`");
        reg.note_unavailable(&KAFKA);
        let e = reg.get("kafkas").unwrap_err();
        assert_eq!(e.to_string(), "unknown transport: 'kafkas': it is not compiled in; enable `kafka`");
        assert!(reg.get("kafka").is_ok(), "a registered transport wins over a hint");
    }

    static LINKED: TransportDescriptor =
        TransportDescriptor::new("linked-fake", &["linked-fake", "linked-fakes"], || {
            Arc::new(Fake(&["linked-fake", "linked-fakes"]))
        });
    // Twice, as a facade and a test of the same program may: it registers once.
    crate::register_transport!(LINKED);
    crate::register_transport!(LINKED);
    crate::register_unavailable!(["absent-fake"], "build with the `absent` feature");

    #[test]
    fn link_time_registrations_reach_the_global_registry() {
        let global = Registry::global();
        assert_eq!(global.get("linked-fakes").unwrap().name(), "linked-fake");
        assert_eq!(global.origin("linked-fake"), Some(Origin::BuiltIn));
        let e = global.get("absent-fake").unwrap_err();
        assert!(
            e.to_string().ends_with("'absent-fake': it is not compiled in; build with the `absent` feature"),
            "{e}"
        );
    }

    #[test]
    fn install_checks_schemes_against_aliases() {
        static WRONG: TransportDescriptor = TransportDescriptor::new("w", &["w", "x"], || Arc::new(Fake(&["w"])));
        let reg = Registry::empty();
        let e = reg.install(&WRONG).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(reg.aliases().is_empty());
        reg.install(&LINKED).unwrap();
        assert_eq!(reg.aliases(), ["linked-fake", "linked-fakes"]);
        assert_eq!(reg.install(&LINKED).unwrap_err().kind(), ErrorKind::Plugin, "a taken scheme is refused");
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
