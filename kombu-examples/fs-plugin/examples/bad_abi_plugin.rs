//! A plugin built for another plugin ABI version: the loader must refuse it before running any of its
//! code beyond the declaration. Built as a `cdylib` for the loader's tests.

use kombu_core::transport::{BrokerConnection, Capabilities, Transport};
use kombu_core::{BrokerUrl, Error, Result};

/// A transport that would register `bad-abi` if the loader accepted the plugin.
#[derive(Debug, Default)]
pub struct BadAbiTransport;

impl Transport for BadAbiTransport {
    fn name(&self) -> &str {
        "bad-abi"
    }
    fn aliases(&self) -> Vec<String> {
        vec!["bad-abi".to_owned()]
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

kombu_core::__export_plugin_with!(
    kombu_core::plugin::ABI_VERSION + 1000,
    |r: &mut kombu_core::PluginRegistrar| -> kombu_core::Result<()> {
        r.register(BadAbiTransport);
        Ok(())
    }
);
