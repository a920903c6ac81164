//! A plugin whose declaration carries another kombu-core API fingerprint (as one built from a kombu-core
//! whose traits differ would): the loader must refuse it, naming both fingerprints. Built as a `cdylib`
//! for the loader's tests.

#[path = "common/named.rs"]
mod named;
use named::Named;

/// The fingerprint this plugin declares: not this build's.
pub const OTHER_API: u64 = kombu_core::plugin::API_FINGERPRINT ^ 0x5a5a;

kombu_core::__export_plugin_with!(
    kombu_core::plugin::ABI_VERSION,
    OTHER_API,
    |r: &mut kombu_core::PluginRegistrar| -> kombu_core::Result<()> {
        r.register(Named("other-api"));
        Ok(())
    }
);
