//! A shared library that is not a kombu-rs plugin: it exports a function, but not the plugin entry
//! symbol. Built as a `cdylib` for the loader's tests.

/// Something a library might export.
#[unsafe(no_mangle)]
pub extern "C" fn not_a_kombu_plugin() -> u32 {
    42
}
