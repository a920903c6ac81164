//! The virtual-transport toolkit: what every backend that keeps its own queues needs beside them, kept
//! once (Python Kombu's `kombu/transport/virtual/`: `QoS`, `FairCycle`, `BrokerState`).
//!
//! A broker like RabbitMQ does prefetch, rotation, delivery tags and redelivery itself; a backend that
//! stores messages in process memory, in files or in Redis lists must do them on its side. These are
//! the parts, each small and independent, that the memory, filesystem and Redis transports build on:
//!
//! - [`WakeSlot`] / [`Registration`] / [`Watchers`] (`wake.rs`): how a channel, the broker state or
//!   another thread wakes the connection's registered poller; the generation tag keeps a replaced
//!   poller from clearing its successor.
//! - [`Qos`] (`qos.rs`): prefetch room, in-flight limits and when a settle must wake the poller.
//! - [`FairCycle`] / [`Turn`] (`cycle.rs`), [`Consumers`] (`consumers.rs`): fair rotation over
//!   queues and consumers.
//! - [`DeliveryTags`] (`tags.rs`): one channel's delivery tags 1, 2, 3, ...
//! - [`Unacked`] (`unacked.rs`): delivered-but-unsettled messages in delivery order, and the restore
//!   hook that hands them back on close or `recover`.
//! - [`Ledger`] (`ledger.rs`): tags, unacked and prefetch of a numbering channel kept in step.
//! - [`ChannelSet`] (`channels.rs`): a connection's live channels, held weakly.
//!
//! The toolkit knows no store: what a backend keeps per delivery (a queue name and message, a claimed
//! file, a raw payload) is its type parameter, and putting a message back is the backend's closure.
//! It takes no locks of its own except inside [`WakeSlot`] and [`ChannelSet`]; the rest lives inside
//! the backend's channel state, under the backend's lock.

mod channels;
mod consumers;
mod cycle;
mod ledger;
mod qos;
mod tags;
mod unacked;
mod wake;

pub use channels::ChannelSet;
pub use consumers::{Consumer, Consumers};
pub use cycle::{FairCycle, Turn};
pub use ledger::{Ledger, Settled};
pub use qos::Qos;
pub use tags::{tag_number, unknown_tag, DeliveryTags};
pub use unacked::Unacked;
pub use wake::{Registration, WakeSlot, Watchers};
