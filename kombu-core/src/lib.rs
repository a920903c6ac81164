//! kombu-core: the broker-independent heart of kombu-rs.
//!
//! It defines the entities ([`Exchange`], [`Queue`], [`Binding`], [`Message`]), typed header values
//! ([`fields`]), Kombu's JSON
//! [`envelope`], [`routing`] for virtual exchanges, [`serialization`], the [`transport`] traits every
//! backend implements, the [`Registry`] of transports by URL scheme, the user API ([`Connection`],
//! [`Producer`], [`Consumer`] and its [`Subscription`], [`SimpleQueue`], [`RpcClient`]) and the [`Hub`] event loop. It knows no broker: backends
//! live in their own crates, each describing itself with a [`TransportDescriptor`](registry::TransportDescriptor)
//! that the program registers with [`register_transport!`].
//!
//! Programs normally use the `kombu` facade crate, which re-exports this one (its [`Connection`] is this
//! one) and registers the backends chosen by Cargo features.

#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "tokio")]
pub mod aio;
mod connection;
mod consumer;
mod driver;
mod entity;
pub mod envelope;
mod error;
pub mod fields;
pub mod hub;
mod message;
pub mod options;
#[cfg(feature = "plugins")]
pub mod plugin;
mod poison;
mod producer;
pub mod registry;
pub mod routing;
mod rpc;
pub mod serialization;
mod simple;
pub mod transport;
pub mod url;
pub mod virtual_transport;

#[cfg(feature = "testing")]
pub mod testing;

pub use connection::{Connection, ConnectionBuilder, FailoverStrategy, RetryPolicy};
pub use consumer::{Consumer, Subscription};
pub use entity::{Binding, Exchange, ExchangeKind, Queue, QueueInfo};
pub use error::{Error, ErrorKind, Report, Result};
pub use fields::{Decimal, FieldTable, FieldValue};
pub use hub::{Hub, Stopper, TimerHandle};
pub use message::{DeliveryInfo, DeliveryMode, DeliveryTag, Message, MessageState, Properties};
pub use options::{OptionKind, OptionSpec, Options};
#[cfg(feature = "plugins")]
pub use plugin::{PluginDeclaration, PluginRegistrar};
pub use poison::{PoisonPolicy, DEFAULT_MAX_REDELIVERIES};
pub use producer::{Blocking, Producer, Publish, DEFAULT_CONFIRM_TIMEOUT};
pub use registry::Registry;
pub use rpc::{RpcClient, MAX_CALL_TIMEOUT};
pub use serialization::Accept;
pub use simple::SimpleQueue;
pub use transport::{
    AsyncChannel, BrokerConnection, Capabilities, Channel, DeadLetter, Delivery, Outgoing, Poller, PriorityOrder,
    PublishOptions, Transport,
};
pub use url::BrokerUrl;

#[doc(hidden)]
pub use inventory;
