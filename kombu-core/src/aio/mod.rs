//! The async API for tokio programs (feature `tokio`): the same connections, transports, channels and
//! pollers as the blocking API, awaited instead of waited for.
//!
//! ```no_run
//! # async fn example() -> kombu_core::Result<()> {
//! use kombu_core::aio::{Connection, Consumer, Producer};
//! use kombu_core::Queue;
//!
//! let conn = Connection::open("memory://aio-doc")?;
//! let queue = Queue::new("hello");
//! conn.declare(&queue).await?;
//! let producer = Producer::new(&conn).await?.routing_key("hello");
//! producer.publish("hi").send().await?;
//! let mut consumer = Consumer::builder(&conn, [queue]).prefetch(10).consume().await?;
//! let message = consumer.next().await.expect("a message")?;
//! assert_eq!(message.decode::<String>()?, "hi");
//! message.ack().await?;
//! consumer.cancel().await?;
//! # Ok(()) }
//! ```
//!
//! (The `kombu` crate's documentation has it runnable, on the memory backend.) [`Consumer`] is a
//! `futures_core::Stream`; its own `next()` spares a program the `futures` crate.
//!
//! How it runs. A connection's consumers are driven by an *engine*: a tokio task that owns the same
//! connection driver a [`Hub`](crate::Hub) would (its poller, its reconnect and failover path), in a
//! private reactor whose poll descriptor tokio watches (`AsyncFd`), with the reactor's timers on
//! `tokio::time`. Wake-ups from other threads (a backend's I/O thread, a connection attempt) reach the
//! task through the reactor's waker. A consumer stream out of messages turns the reactor itself, on its
//! own task, and while streams are polled the engine leaves the turning to them: deliveries are made on
//! the consumer's thread, as `drain_events` makes them in the blocking API. Calls that may block (connecting, declaring, and the publishes and
//! acks of a backend without a non-blocking side, [`Channel::nonblocking`](crate::Channel::nonblocking))
//! run on tokio's blocking pool; a backend whose hot calls never block (memory) or that is async
//! underneath (AMQP on lapin) is awaited directly.
//!
//! Rules an async program may rely on:
//! - No call blocks a runtime thread: a `current_thread` runtime stays responsive while messages flow
//!   and while a broker that never answers is being connected to.
//! - Futures and streams are `Send`: they work on multi-thread runtimes.
//! - A dropped `send()` future published its message once or not at all ([`crate::Publish`]'s `send`
//!   in its `Async` mode says how to know); a dropped [`Consumer`] returns the deliveries it held,
//!   handed out and unacknowledged ones included, to their queue (its channel is closed).
//! - Back-pressure: a consumer holds at most its prefetch window (default [`DEFAULT_PREFETCH`]) of
//!   messages that were not handed out; a slow stream slows the broker's deliveries, not memory.
//!
//! The runtime must have its I/O and time drivers enabled (`#[tokio::main]` does;
//! `Builder::enable_all()` otherwise).

mod connection;
mod consumer;
mod engine;
mod inbox;
mod message;
mod producer;
mod simple;

pub use connection::{Channel, Connection, ConnectionBuilder};
pub use consumer::{Consumer, ConsumerBuilder, DEFAULT_PREFETCH};
pub use message::Message;
pub use producer::{Producer, Publish};
pub use simple::SimpleQueue;

pub use crate::producer::Async;

use crate::error::{Error, Result};

/// Runs a call that may block on tokio's blocking pool (marked as coming from the async API, see
/// [`from_async_api`](crate::transport::from_async_api)) and awaits it. Dropping the future does not
/// stop the call: it runs to its end, once.
pub(crate) async fn blocking<T: Send + 'static>(call: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(move || crate::transport::as_async_api(call)).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(Error::state(format!("a blocking call panicked: {e}"))),
        Err(e) => Err(Error::state(format!("a blocking call was cancelled (is the runtime shutting down?): {e}"))),
    }
}

/// Holds something whose drop may block (a connection's close, a channel's flush, a producer's
/// connection), and drops it on tokio's blocking pool when dropped on a runtime thread: a backend that
/// runs on the caller's runtime (lapin) could not answer a close that blocks that runtime's thread.
pub(crate) struct DropOff<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> DropOff<T> {
    pub(crate) fn new(value: T) -> DropOff<T> {
        DropOff(Some(value))
    }

    /// The value, taken out (it is then dropped wherever the caller drops it).
    pub(crate) fn take(&mut self) -> T {
        self.0.take().unwrap_or_else(|| unreachable!("DropOff is emptied once"))
    }
}

impl<T: Send + 'static> std::ops::Deref for DropOff<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Only `drop` takes the value out.
        self.0.as_ref().unwrap_or_else(|| unreachable!("DropOff is emptied only by drop"))
    }
}

impl<T: Send + std::fmt::Debug + 'static> std::fmt::Debug for DropOff<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Send + 'static> Drop for DropOff<T> {
    fn drop(&mut self) {
        let Some(value) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || crate::transport::as_async_api(|| drop(value)))),
            Err(_) => drop(value),
        }
    }
}

/// The runtime the async API runs on: the caller's.
pub(crate) fn runtime() -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|_| {
        Error::state("the async API needs a tokio runtime: call it from within one (for example under #[tokio::main])")
    })
}
