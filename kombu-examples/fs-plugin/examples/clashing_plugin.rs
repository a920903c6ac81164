//! A plugin with two transports, `clash-new` and `memory`: loaded where `memory` is registered, the
//! loader must refuse it whole, leaving `clash-new` unregistered too. Built as a `cdylib` for the loader's
//! tests.

use kombu_core::transport::{BrokerConnection, Capabilities, Transport};
use kombu_core::{BrokerUrl, Error, Result};

/// A transport that only reports its aliases.
#[derive(Debug)]
pub struct Named(&'static str);

impl Transport for Named {
    fn name(&self) -> &str {
        self.0
    }
    fn aliases(&self) -> Vec<String> {
        vec![self.0.to_owned()]
    }
    fn default_port(&self) -> Option<u16> {
        None
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }
    fn connect(&self, _: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
        Err(Error::unsupported("a test transport"))
    }
}

kombu_core::export_plugin!(Named("clash-new"), Named("memory"));
