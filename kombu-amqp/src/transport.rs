//! [`AmqpTransport`]: the `amqp` transport (aliases `pyamqp` and `amqps`), registered in kombu's registry.

use kombu_core::{BrokerConnection, BrokerUrl, Capabilities, OptionSpec, PriorityOrder, Result, Transport};

use crate::connection::AmqpConnection;
use crate::options;

/// The AMQP 0-9-1 transport (RabbitMQ), on lapin.
///
/// ```
/// use kombu_core::Transport;
/// let t = kombu_amqp::AmqpTransport::new();
/// assert_eq!(t.aliases(), ["amqp", "pyamqp", "amqps"]);
/// assert!(t.capabilities().external_broker);
/// ```
#[derive(Debug, Clone, Default)]
pub struct AmqpTransport {
    _private: (),
}

impl AmqpTransport {
    /// The transport.
    pub fn new() -> Self {
        AmqpTransport { _private: () }
    }
}

impl Transport for AmqpTransport {
    fn name(&self) -> &str {
        "amqp"
    }

    fn aliases(&self) -> Vec<String> {
        crate::DESCRIPTOR.schemes().iter().map(|s| (*s).to_owned()).collect()
    }

    fn default_port(&self) -> Option<u16> {
        Some(5672)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .priority(PriorityOrder::HighestFirst)
            .message_ttl(true)
            .dead_letter(true)
            .heartbeats(true)
            .event_driven(true)
            .external_broker(true)
            .direct_reply_to("amq.rabbitmq.reply-to")
    }

    fn options(&self) -> Option<&'static [OptionSpec]> {
        Some(options::OPTIONS)
    }

    fn validate(&self, url: &BrokerUrl) -> Result<()> {
        options::parse(url).map(|_| ())
    }

    fn connect(&self, url: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
        let params = options::parse(url)?;
        Ok(Box::new(AmqpConnection::open(&params)?))
    }
}
