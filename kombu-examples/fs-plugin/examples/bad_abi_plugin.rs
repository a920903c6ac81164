//! A plugin built for another plugin ABI version: the loader must refuse it before running any of its
//! code beyond the declaration. Built as a `cdylib` for the loader's tests.

#[path = "common/named.rs"]
mod named;
use named::Named;

kombu_core::__export_plugin_with!(
    kombu_core::plugin::ABI_VERSION + 1000,
    |r: &mut kombu_core::PluginRegistrar| -> kombu_core::Result<()> {
        r.register(Named("bad-abi"));
        Ok(())
    }
);
