//! kombu-memory: an in-process broker for kombu-rs, registered as the `memory` transport.
//!
//! `memory://` (or `memory://name` for a separate virtual host) needs no server: every connection of
//! the process that names the same virtual host shares its exchanges and queues. It routes like the
//! other virtual transports (direct, topic, fanout and headers exchanges, with AMQP's rules), and has
//! acknowledgements, requeue, prefetch, priorities (higher first), message TTL and dead-lettering.
//!
//! It takes no URL options: `memory://name?x=1` is refused when opened (`unknown option 'x' for
//! transport memory: it takes no options`), like any unknown option of any transport.
//!
//! ```
//! use kombu_core::{Connection, Exchange, Queue, Producer};
//! kombu_core::register_transport!(kombu_memory::DESCRIPTOR);
//!
//! let conn = Connection::open("memory://doc-example").unwrap();
//! let queue = Queue::with_exchange("greetings", Exchange::direct("hello"), "greet");
//! let producer = Producer::new(&conn).unwrap().exchange(Exchange::direct("hello")).routing_key("greet");
//! producer.publish("hi there").declare(&queue).send().unwrap();
//!
//! let channel = conn.default_channel().unwrap();
//! let message = channel.get("greetings", false).unwrap().expect("a message");
//! assert_eq!(message.decode::<String>().unwrap(), "hi there");
//! message.ack().unwrap();
//! ```

#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod bindings;
mod broker;
mod channel;
mod poller;

use std::sync::Arc;

use kombu_core::registry::TransportDescriptor;
use kombu_core::transport::{BrokerConnection, Capabilities, Channel, Poller, PriorityOrder, Transport};
use kombu_core::{BrokerUrl, OptionSpec, Result};

use channel::ConnShared;

/// The memory transport.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryTransport;

impl Transport for MemoryTransport {
    fn name(&self) -> &str {
        "memory"
    }
    fn aliases(&self) -> Vec<String> {
        DESCRIPTOR.schemes().iter().map(|s| (*s).to_owned()).collect()
    }
    fn default_port(&self) -> Option<u16> {
        None
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new().priority(PriorityOrder::HighestFirst).message_ttl(true).dead_letter(true)
    }
    /// None: `memory://name?anything=...` is an error naming the option.
    fn options(&self) -> Option<&'static [OptionSpec]> {
        Some(&[])
    }
    fn connect(&self, url: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
        let name = url.hostname.clone().or_else(|| url.virtual_host.clone()).unwrap_or_default();
        Ok(Box::new(MemoryConnection { shared: ConnShared::new(broker::broker(&name)) }))
    }
}

/// The memory backend for the registry: the `kombu` facade registers it for its `memory` feature; a
/// program using this crate directly registers it with
/// `kombu_core::register_transport!(kombu_memory::DESCRIPTOR);`.
pub static DESCRIPTOR: TransportDescriptor =
    TransportDescriptor::new("memory", &["memory"], || Arc::new(MemoryTransport));

struct MemoryConnection {
    shared: Arc<ConnShared>,
}

impl BrokerConnection for MemoryConnection {
    fn channel(&self) -> Result<Arc<dyn Channel>> {
        Ok(self.shared.open_channel()?)
    }

    fn poller(&self) -> Result<Box<dyn Poller>> {
        Ok(Box::new(poller::MemoryPoller { conn: self.shared.clone(), registration: None }))
    }

    fn is_open(&self) -> bool {
        self.shared.is_open()
    }

    fn close(&self) -> Result<()> {
        self.shared.close()
    }
}
