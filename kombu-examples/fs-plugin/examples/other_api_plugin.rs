//! A plugin whose declaration carries another kombu-core API fingerprint (as one built from a kombu-core
//! whose traits differ would): the loader must refuse it, naming both fingerprints. Built as a `cdylib`
//! for the loader's tests.

use kombu_core::transport::{BrokerConnection, Capabilities, Transport};
use kombu_core::{BrokerUrl, Error, Result};

/// A transport that would register `other-api` if the loader accepted the plugin.
#[derive(Debug, Default)]
pub struct OtherApiTransport;

impl Transport for OtherApiTransport {
    fn name(&self) -> &str {
        "other-api"
    }
    fn aliases(&self) -> Vec<String> {
        vec!["other-api".to_owned()]
    }
    fn default_port(&self) -> Option<u16> {
        None
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }
    fn connect(&self, _: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
        Err(Error::unsupported("never registered"))
    }
}

/// The fingerprint this plugin declares: not this build's.
pub const OTHER_API: u64 = kombu_core::plugin::API_FINGERPRINT ^ 0x5a5a;

kombu_core::__export_plugin_with!(
    kombu_core::plugin::ABI_VERSION,
    OTHER_API,
    |r: &mut kombu_core::PluginRegistrar| -> kombu_core::Result<()> {
        r.register(OtherApiTransport);
        Ok(())
    }
);
