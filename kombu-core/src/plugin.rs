//! Third-party transports as shared libraries (feature `plugins`): the declaration a plugin exports, the
//! [`export_plugin!`](crate::export_plugin) macro that writes it, and the loader
//! ([`Registry::load_plugin`], and the paths listed in `KOMBU_PLUGINS`).
//!
//! A plugin is a `cdylib` crate that depends on `kombu-core` (feature `plugins`) and exports one
//! `extern "C"` symbol, [`ENTRY_SYMBOL`], returning a `#[repr(C)]` [`PluginDeclaration`]: the plugin ABI
//! version, the rustc and kombu-core versions it was built with, a fingerprint of the layout of the types
//! that cross the boundary, a fingerprint of the source of kombu-core's plugin API ([`API_FINGERPRINT`]:
//! the transport traits and the types their signatures use, hashed at build time, so that a plugin built
//! from a kombu-core whose `Channel` gained a method is refused even with equal version numbers), and a
//! registration function. The loader registers the plugin's transports all at once or not at all.
//!
//! What is checked, and when: the loader first checks what it can without running anything of the file
//! (that it exists, is a regular file, and starts with a shared-library header: on ELF systems, of this
//! machine's class, byte order and architecture, and of a shared object). Then it opens the library with
//! the dynamic loader, **which runs the library's initializers (ELF `.init_array`, static constructors)
//! before any of the checks below can be made**: a malicious or broken library runs its code then, and
//! no check of the declaration can prevent that. Only after that does it read the declaration (ABI,
//! kombu-core and rustc versions, layout and API fingerprints) and, if all agree, call the registration
//! function. A plugin is trusted code: load only libraries you would link into the program.
//!
//! Every later call into the plugin's transport, connections, channels and pollers goes through guards
//! (see the `guard` module) that turn a panic into an [`ErrorKind::Plugin`] error, provided the plugin
//! was built with `panic = "unwind"` (the default); a plugin built with `panic = "abort"` aborts the
//! process when it panics.
//!
//! What a plugin logs with `tracing` reaches the program's subscriber: the loader hands the plugin a relay
//! to the program's current dispatcher (see the `logs` module), since the plugin's own copy of `tracing`
//! has no subscriber.
//!
//! ```text
//! // In the plugin crate (crate-type = ["cdylib"]):
//! kombu_core::export_plugin!(MyTransport::new());
//!
//! // In the program:
//! let aliases = kombu_core::Registry::global().load_plugin("target/release/libmy_plugin.so")?;
//! ```
//!
//! Transports cross the boundary as Rust trait objects, so the plugin and the program must be built by the
//! same rustc, with the same kombu-core (and the same versions of its dependencies: build both from one
//! `Cargo.lock`), and must use the same global allocator (the default one). A library, once opened, is never
//! unloaded: objects it created may live as long as the process.

mod file;
mod guard;
mod logs;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::registry::{Origin, Registry};
use crate::transport::Transport;

/// The version of the plugin ABI: the layout of [`PluginDeclaration`] and the calling convention of its
/// registration function. Raised whenever either changes.
pub const ABI_VERSION: u32 = 3;

include!(concat!(env!("OUT_DIR"), "/api_fingerprint.rs"));

/// The name of the symbol every plugin exports (with [`export_plugin!`](crate::export_plugin)).
pub const ENTRY_SYMBOL: &str = "kombu_plugin_declaration";

/// The version of kombu-core this program (or plugin) was built with.
pub const KOMBU_CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The rustc that built this kombu-core (`rustc --version`).
pub const RUSTC_VERSION: &str = env!("KOMBU_RUSTC_VERSION");

/// The environment variable listing plugins to load when the global registry is first used
/// (colon-separated paths on Unix, as `PATH`).
pub const ENV_VAR: &str = "KOMBU_PLUGINS";

/// FNV-1a step over one number.
const fn mix(hash: u64, value: usize) -> u64 {
    let mut h = hash;
    let bytes = (value as u64).to_le_bytes();
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

macro_rules! layout_fingerprint {
    ($($t:ty),* $(,)?) => {{
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        $(
            h = mix(h, std::mem::size_of::<$t>());
            h = mix(h, std::mem::align_of::<$t>());
        )*
        h
    }};
}

/// A fingerprint of the size and alignment of the types that cross between a program and its plugins.
/// Catches a plugin built against other versions of kombu-core's dependencies (`bytes`, `serde_json`, ...)
/// when the versions of rustc and kombu-core alone agree.
pub const LAYOUT_FINGERPRINT: u64 = layout_fingerprint!(
    crate::Message,
    crate::Properties,
    crate::DeliveryInfo,
    crate::Error,
    crate::BrokerUrl,
    crate::Capabilities,
    crate::Exchange,
    crate::Queue,
    crate::QueueInfo,
    crate::Delivery,
    crate::PublishOptions,
    crate::hub::Event,
    crate::hub::WakeHandle,
    crate::fields::FieldTable,
    crate::fields::FieldValue,
    serde_json::Value,
    bytes::Bytes,
    String,
    Vec<u8>,
    Arc<dyn Transport>,
    Box<dyn crate::BrokerConnection>,
    Arc<dyn crate::Channel>,
    Box<dyn crate::Poller>,
    PluginRegistrar,
    Option<std::time::Duration>,
    tracing::Dispatch,
);

/// What a plugin exports: read by the loader through the [`ENTRY_SYMBOL`] function. Written by
/// [`export_plugin!`](crate::export_plugin); plugin authors do not build it by hand.
///
/// The layout is C's, so that the ABI version (the first field) can be read from any plugin, whatever it
/// was built with; the other fields are read only when the ABI versions agree.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDeclaration {
    abi_version: u32,
    rustc_version: *const u8,
    rustc_version_len: usize,
    core_version: *const u8,
    core_version_len: usize,
    layout: u64,
    api: u64,
    register: unsafe extern "C" fn(*mut PluginRegistrar),
}

// SAFETY: the declaration is immutable and its pointers point to `'static` string constants.
unsafe impl Sync for PluginDeclaration {}

impl PluginDeclaration {
    /// The declaration of this build of kombu-core, with `abi_version` and the registration function.
    #[doc(hidden)]
    pub const fn __new(abi_version: u32, register: unsafe extern "C" fn(*mut PluginRegistrar)) -> Self {
        Self::__with_api(abi_version, API_FINGERPRINT, register)
    }

    /// [`__new`](Self::__new) with an explicit API fingerprint (tests of the loader use it).
    #[doc(hidden)]
    pub const fn __with_api(abi_version: u32, api: u64, register: unsafe extern "C" fn(*mut PluginRegistrar)) -> Self {
        PluginDeclaration {
            abi_version,
            rustc_version: RUSTC_VERSION.as_ptr(),
            rustc_version_len: RUSTC_VERSION.len(),
            core_version: KOMBU_CORE_VERSION.as_ptr(),
            core_version_len: KOMBU_CORE_VERSION.len(),
            layout: LAYOUT_FINGERPRINT,
            api,
            register,
        }
    }

    /// The plugin ABI version it was built for.
    pub fn abi_version(&self) -> u32 {
        self.abi_version
    }

    /// The fingerprint of kombu-core's plugin API it was built against ([`API_FINGERPRINT`] of its build).
    pub fn api_fingerprint(&self) -> u64 {
        self.api
    }
}

/// Collects the transports a plugin registers. The loader adds them to the registry only if every one of
/// their aliases is free.
#[derive(Default)]
pub struct PluginRegistrar {
    transports: Vec<Arc<dyn Transport>>,
    error: Option<String>,
    /// The plugin's path, set by the loader, for the errors of its guards.
    plugin: String,
    /// The program's log relay, set by the loader, installed by the registration as the plugin's global
    /// `tracing` dispatcher (see the `logs` module).
    host_logs: Option<tracing::Dispatch>,
}

impl std::fmt::Debug for PluginRegistrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistrar").field("transports", &self.transports).field("error", &self.error).finish()
    }
}

impl PluginRegistrar {
    /// Adds a transport (under all the aliases it reports).
    pub fn register(&mut self, transport: impl Transport) {
        self.transports.push(Arc::new(transport));
    }

    /// Adds a transport that is already shared.
    pub fn register_arc(&mut self, transport: Arc<dyn Transport>) {
        self.transports.push(transport);
    }

    /// The aliases registered so far.
    pub fn aliases(&self) -> Vec<String> {
        self.transports.iter().flat_map(|t| t.aliases()).collect()
    }
}

/// Runs a plugin's registration inside the plugin: a panic or an error is recorded in the registrar for
/// the loader to report, and never unwinds into the program.
///
/// # Safety
///
/// `registrar` is null or points to a live registrar that nothing else uses during the call (the loader
/// passes its own).
#[doc(hidden)]
pub unsafe fn __run_registration(
    registrar: *mut PluginRegistrar,
    register: impl FnOnce(&mut PluginRegistrar) -> Result<()>,
) {
    // SAFETY: see the function's contract.
    let Some(registrar) = (unsafe { registrar.as_mut() }) else { return };
    logs::install_in_plugin(registrar.host_logs.take());
    let mut staged = PluginRegistrar::default();
    // What the registration staged is dropped if it panics, so nothing half-built is observed afterwards.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let r = register(&mut staged);
        (r, staged)
    }));
    match outcome {
        Ok((Ok(()), staged)) => {
            // Wrapped here, in the plugin: see the `guard` module for why the guards must be the plugin's.
            let plugin: Arc<str> = registrar.plugin.as_str().into();
            let wrapped = staged
                .transports
                .into_iter()
                .map(|t| guard::GuardedTransport::wrap(t, plugin.clone()))
                .collect::<Result<Vec<_>>>();
            match wrapped {
                Ok(transports) => registrar.transports.extend(transports),
                Err(e) => registrar.error = Some(e.to_string()),
            }
        }
        Ok((Err(e), _)) => registrar.error = Some(e.to_string()),
        Err(panic) => {
            let what = guard::panic_message(panic.as_ref());
            registrar.error = Some(format!("the registration function panicked: {what}"));
        }
    }
}

/// Exports the plugin declaration of a `cdylib` crate, in one line. Give the transports to register:
///
/// ```text
/// kombu_core::export_plugin!(FsTransport::default());
/// kombu_core::export_plugin!(MyTransport::new(), OtherTransport);
/// ```
///
/// or a function `fn(&mut PluginRegistrar) -> kombu_core::Result<()>` that registers them (and may fail):
///
/// ```text
/// kombu_core::export_plugin!(register = my_plugin::register);
/// ```
///
/// Use it once per library, in a crate built with `crate-type = ["cdylib"]`.
#[macro_export]
macro_rules! export_plugin {
    (register = $register:path) => {
        $crate::__export_plugin_with!($crate::plugin::ABI_VERSION, $register);
    };
    ($($transport:expr),+ $(,)?) => {
        $crate::__export_plugin_with!(
            $crate::plugin::ABI_VERSION,
            |registrar: &mut $crate::plugin::PluginRegistrar| -> $crate::Result<()> {
                $( registrar.register($transport); )+
                ::std::result::Result::Ok(())
            }
        );
    };
}

/// [`export_plugin!`] with an explicit ABI version, and optionally API fingerprint (tests of the loader use
/// it to build a plugin that declares another version or fingerprint).
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin_with {
    ($abi:expr, $register:expr) => {
        $crate::__export_plugin_with!($abi, $crate::plugin::API_FINGERPRINT, $register);
    };
    ($abi:expr, $api:expr, $register:expr) => {
        const _: () = {
            unsafe extern "C" fn __kombu_plugin_register(registrar: *mut $crate::plugin::PluginRegistrar) {
                // SAFETY: the loader passes its own live registrar.
                unsafe { $crate::plugin::__run_registration(registrar, $register) }
            }

            static __KOMBU_PLUGIN_DECLARATION: $crate::plugin::PluginDeclaration =
                $crate::plugin::PluginDeclaration::__with_api($abi, $api, __kombu_plugin_register);

            /// The kombu-rs plugin declaration of this library.
            #[unsafe(no_mangle)]
            pub extern "C" fn kombu_plugin_declaration() -> *const $crate::plugin::PluginDeclaration {
                &__KOMBU_PLUGIN_DECLARATION
            }
        };
    };
}

/// Why a plugin cannot be loaded: a [`ErrorKind::Plugin`] error naming the file.
fn refuse(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Plugin, format!("cannot load plugin {}: {why}", path.display()))
}

/// Opens the library and keeps it open for the life of the process: code of a library whose initializers
/// have run (and, later, objects it created) must never be unmapped.
fn open_library(path: &Path) -> Result<&'static libloading::Library> {
    // SAFETY: opening a library runs its initializers, before any check of its declaration can be made:
    // nothing here can make that safe. A plugin is trusted code by definition (see the module docs); the
    // checks of `check_file` only keep out files that are not shared libraries for this machine.
    #[cfg(unix)]
    let lib = unsafe {
        libloading::os::unix::Library::open(
            Some(path),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
        .map(libloading::Library::from)
    };
    #[cfg(not(unix))]
    let lib = unsafe { libloading::Library::new(path) };
    let lib = lib.map_err(|e| refuse(path, format!("the dynamic loader refused it: {e}")))?;
    Ok(Box::leak(Box::new(lib)))
}

/// Finds the declaration and checks that it was built for this program.
fn declaration(lib: &'static libloading::Library, path: &Path) -> Result<&'static PluginDeclaration> {
    type Entry = extern "C" fn() -> *const PluginDeclaration;
    // SAFETY: the symbol, when present, is the function `export_plugin!` writes, of type `Entry`.
    let entry: libloading::Symbol<'static, Entry> = unsafe { lib.get(ENTRY_SYMBOL.as_bytes()) }.map_err(|_| {
        refuse(path, format!("it has no `{ENTRY_SYMBOL}` symbol: build it with `kombu_core::export_plugin!`"))
    })?;
    let ptr = entry();
    if ptr.is_null() {
        return Err(refuse(path, "its declaration is a null pointer"));
    }
    // SAFETY: every ABI version starts the declaration with the `u32` ABI version, so it can be read
    // whatever the rest of the plugin's declaration looks like.
    let abi = unsafe { ptr.cast::<u32>().read() };
    if abi != ABI_VERSION {
        return Err(abi_mismatch(path, abi));
    }
    // SAFETY: with the same ABI the declaration has this layout; it is a static of a library that stays
    // loaded for the life of the process.
    let decl = unsafe { &*ptr };
    check_declaration(decl, path)?;
    Ok(decl)
}

fn abi_mismatch(path: &Path, abi: u32) -> Error {
    refuse(path, format!("it was built for plugin ABI {abi}, this program uses plugin ABI {ABI_VERSION}"))
}

/// Compares a declaration with this build: ABI first (the only field that can be read from any plugin),
/// then kombu-core, rustc, the layout fingerprint and the API fingerprint.
fn check_declaration(decl: &PluginDeclaration, path: &Path) -> Result<()> {
    if decl.abi_version != ABI_VERSION {
        return Err(abi_mismatch(path, decl.abi_version));
    }
    let text = |ptr: *const u8, len: usize, what: &str| -> Result<String> {
        if ptr.is_null() || len > 4096 {
            return Err(refuse(path, format!("its declaration has no valid {what}")));
        }
        // SAFETY: with the ABI versions equal, the declaration was written by `PluginDeclaration::__new`,
        // whose pointers and lengths come from `'static` string constants.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| refuse(path, format!("its declaration's {what} is not UTF-8")))
    };
    let core = text(decl.core_version, decl.core_version_len, "kombu-core version")?;
    if core != KOMBU_CORE_VERSION {
        return Err(refuse(
            path,
            format!(
                "it was built with kombu-core {core}, this program uses kombu-core {KOMBU_CORE_VERSION}; \
                 rebuild the plugin against this version"
            ),
        ));
    }
    let rustc = text(decl.rustc_version, decl.rustc_version_len, "rustc version")?;
    if rustc != RUSTC_VERSION {
        return Err(refuse(
            path,
            format!(
                "it was built with {rustc}, this program with {RUSTC_VERSION}; rebuild the plugin with the same \
                 compiler"
            ),
        ));
    }
    if decl.layout != LAYOUT_FINGERPRINT {
        return Err(refuse(
            path,
            "the types it shares with this program have another layout (kombu-core's dependencies differ); \
             build the plugin from this program's Cargo.lock",
        ));
    }
    if decl.api != API_FINGERPRINT {
        return Err(refuse(
            path,
            format!(
                "it was built against kombu-core plugin API {:016x}, this program uses plugin API {API_FINGERPRINT:016x} \
                 (the transport traits or the types they use differ: built from another kombu-core source?); \
                 rebuild the plugin from this program's source",
                decl.api
            ),
        ));
    }
    Ok(())
}

impl Registry {
    /// Loads a transport plugin (a shared library exporting [`export_plugin!`](crate::export_plugin)'s
    /// declaration) and registers its transports; returns the aliases added.
    ///
    /// Refused with an [`ErrorKind::Plugin`] error, registering nothing: a path that does not exist, a file
    /// that is not a shared library for this machine, a library without the [`ENTRY_SYMBOL`], a plugin
    /// built for another ABI, rustc or kombu-core version, layout or [`API_FINGERPRINT`], a registration
    /// that fails or panics, and an alias that is already registered (built in, or by another plugin). A
    /// library that was opened stays loaded. Opening it runs its initializers, before the checks of its
    /// declaration (see the module docs): load only trusted plugins.
    ///
    /// ```
    /// let reg = kombu_core::Registry::empty();
    /// let err = reg.load_plugin("/no/such/plugin.so").unwrap_err();
    /// assert_eq!(err.kind(), kombu_core::ErrorKind::Plugin);
    /// assert!(err.to_string().contains("no such file"), "{err}");
    /// ```
    pub fn load_plugin(&self, path: impl AsRef<Path>) -> Result<Vec<String>> {
        let path = path.as_ref();
        file::check_file(path)?;
        let lib = open_library(path)?;
        let decl = declaration(lib, path)?;
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut registrar = PluginRegistrar {
            plugin: canonical.display().to_string(),
            host_logs: Some(logs::HostRelay::dispatch()),
            ..Default::default()
        };
        // SAFETY: the declaration was checked to come from this ABI, rustc and kombu-core, so the registration
        // function takes a `PluginRegistrar` of this layout; it does not unwind (`__run_registration`).
        unsafe { (decl.register)(&mut registrar) };
        if let Some(why) = registrar.error {
            return Err(refuse(path, format!("its registration failed: {why}")));
        }
        if registrar.transports.is_empty() {
            return Err(refuse(path, "it registered no transports"));
        }
        let aliases = registrar.aliases();
        let origin = Origin::Plugin(canonical);
        self.add_all(registrar.transports, origin).map_err(|e| refuse(path, e.message()))?;
        tracing::info!("loaded plugin {}: transports {}", path.display(), aliases.join(", "));
        Ok(aliases)
    }
}

/// A plugin listed in `KOMBU_PLUGINS` that failed to load: [`env_failures`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// The path, as listed.
    pub path: PathBuf,
    /// Why it was refused (the loader's reason, without the path).
    pub reason: String,
}

/// The plugins listed in `KOMBU_PLUGINS` that failed to load.
static ENV_FAILURES: Mutex<Vec<LoadFailure>> = Mutex::new(Vec::new());

/// Loads every plugin listed in `KOMBU_PLUGINS` into `registry` (the global one, as it is created). A
/// failure is logged and remembered for [`env_failures`]; the other plugins still load.
pub(crate) fn load_from_env(registry: &Registry) {
    for path in env_paths() {
        if let Err(e) = registry.load_plugin(&path) {
            tracing::error!("{ENV_VAR}: {e:#}");
            let prefix = format!("cannot load plugin {}: ", path.display());
            let reason = e.message().strip_prefix(&prefix).unwrap_or(e.message()).to_owned();
            ENV_FAILURES.lock().unwrap_or_else(|e| e.into_inner()).push(LoadFailure { path, reason });
        }
    }
}

/// The plugins listed in `KOMBU_PLUGINS` that failed to load into the global registry, with why (empty
/// until the global registry is first used, which loads them).
pub fn env_failures() -> Vec<LoadFailure> {
    ENV_FAILURES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The `KOMBU_PLUGINS` load failures, as one note for an unknown-transport error (None if there were none).
pub(crate) fn env_failures_note() -> Option<String> {
    let failures = ENV_FAILURES.lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<String> =
        failures.iter().map(|f| format!("cannot load plugin {}: {}", f.path.display(), f.reason)).collect();
    (!list.is_empty()).then(|| format!("{ENV_VAR}: {}", list.join("; ")))
}

/// The paths of plugins given in `KOMBU_PLUGINS`, as the loader reads them.
pub fn env_paths() -> Vec<PathBuf> {
    std::env::var_os(ENV_VAR)
        .map(|list| std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn no_registration(_: *mut PluginRegistrar) {}

    struct Fake;
    impl Transport for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn aliases(&self) -> Vec<String> {
            vec!["fake".into()]
        }
        fn default_port(&self) -> Option<u16> {
            None
        }
        fn capabilities(&self) -> crate::Capabilities {
            crate::Capabilities::new()
        }
        fn connect(&self, _: &crate::BrokerUrl) -> Result<Box<dyn crate::BrokerConnection>> {
            Err(Error::unsupported("fake"))
        }
    }

    fn checked(decl: &PluginDeclaration) -> std::result::Result<(), String> {
        check_declaration(decl, Path::new("/p.so")).map_err(|e| {
            assert_eq!(e.kind(), ErrorKind::Plugin);
            e.to_string()
        })
    }

    #[test]
    fn accepts_its_own_declaration() {
        assert_eq!(checked(&PluginDeclaration::__new(ABI_VERSION, no_registration)), Ok(()));
    }

    #[test]
    fn refuses_other_versions_each_with_its_reason() {
        let other_abi = PluginDeclaration::__new(ABI_VERSION + 1, no_registration);
        assert!(checked(&other_abi).unwrap_err().contains(&format!("plugin ABI {}", ABI_VERSION + 1)));

        let mut old_core = PluginDeclaration::__new(ABI_VERSION, no_registration);
        old_core.core_version = "0.0.1".as_ptr();
        old_core.core_version_len = 5;
        let e = checked(&old_core).unwrap_err();
        assert!(e.contains("kombu-core 0.0.1") && e.contains(KOMBU_CORE_VERSION), "{e}");

        let old = "rustc 1.0.0 (a59807616 2015-05-15)";
        let mut old_rustc = PluginDeclaration::__new(ABI_VERSION, no_registration);
        old_rustc.rustc_version = old.as_ptr();
        old_rustc.rustc_version_len = old.len();
        let e = checked(&old_rustc).unwrap_err();
        assert!(e.contains("built with rustc 1.0.0") && e.contains("same compiler"), "{e}");

        let mut other_layout = PluginDeclaration::__new(ABI_VERSION, no_registration);
        other_layout.layout ^= 1;
        assert!(checked(&other_layout).unwrap_err().contains("layout"));

        let other_api = PluginDeclaration::__with_api(ABI_VERSION, API_FINGERPRINT ^ 1, no_registration);
        let e = checked(&other_api).unwrap_err();
        assert!(
            e.contains(&format!("{:016x}", API_FINGERPRINT ^ 1)) && e.contains(&format!("{API_FINGERPRINT:016x}")),
            "{e}"
        );

        let mut broken = PluginDeclaration::__new(ABI_VERSION, no_registration);
        broken.rustc_version = std::ptr::null();
        assert!(checked(&broken).unwrap_err().contains("no valid rustc version"));
    }

    #[test]
    fn a_failing_or_panicking_registration_is_reported_not_unwound() {
        let mut r = PluginRegistrar::default();
        // SAFETY: a live registrar, or null.
        unsafe { __run_registration(&mut r, |_| Err(Error::invalid("no config"))) };
        assert!(r.error.as_deref().is_some_and(|e| e.contains("no config")), "{r:?}");
        let mut r = PluginRegistrar::default();
        unsafe {
            __run_registration(&mut r, |r| {
                r.register(Fake);
                panic!("boom")
            })
        };
        assert!(r.error.as_deref().is_some_and(|e| e.contains("panicked: boom")), "{r:?}");
        assert!(r.transports.is_empty(), "what a panicking registration staged was kept");
        unsafe { __run_registration(std::ptr::null_mut(), |_| Ok(())) };
    }
}
