//! The inert transport the loader's test plugins register: it reports its name and connects to nothing.

use kombu_core::transport::{BrokerConnection, Capabilities, Transport};
use kombu_core::{BrokerUrl, Error, Result};

/// A transport that only reports its alias.
#[derive(Debug)]
pub struct Named(pub &'static str);

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
