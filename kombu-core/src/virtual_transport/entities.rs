//! The entity operations of a virtual broker: exchanges, routing, queues and bindings, as kept by the
//! backend's own store (the in-process broker, a directory). The virtual channel calls them once it
//! found itself open.

use crate::{Exchange, FieldTable, Message, Queue, QueueInfo, Result};

/// What a backend's store does for exchanges, queues and bindings ([`Channel`](crate::Channel)'s
/// entity methods of the same names, grouped by entity).
pub trait Entities: Send + Sync {
    /// Declares an exchange (`passive`: only check that it exists).
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()>;
    /// Deletes an exchange (`if_unused`: only if no queue is bound to it).
    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()>;
    /// Routes a message to its queues and wakes the pollers consuming from them; a message no queue
    /// takes is dropped.
    fn publish(&self, message: Message, exchange: &str, routing_key: &str) -> Result<()>;

    /// Declares a queue (`passive`: only check that it exists).
    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo>;
    /// Removes a queue's ready messages; returns how many.
    fn purge_queue(&self, name: &str) -> Result<u64>;
    /// Deletes a queue; returns how many messages it held.
    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64>;

    /// Binds a queue to an exchange.
    fn bind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()>;
    /// Removes a binding.
    fn unbind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()>;
}
