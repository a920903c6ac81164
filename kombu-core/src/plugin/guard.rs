//! Guards around a plugin's objects: every call into the plugin's [`Transport`], and into the
//! [`BrokerConnection`], [`Channel`] and [`Poller`] objects it returns, runs under
//! [`catch_unwind`](std::panic::catch_unwind), so that a panic in the plugin becomes an [`Error`] of kind
//! [`ErrorKind::Plugin`] carrying the panic message, and the program goes on.
//!
//! The guards must run *in the plugin*, not in the program: a `cdylib` links its own copy of the standard
//! library, and a `catch_unwind` of the program's copy does not recognise a panic raised by the plugin's
//! copy (it sees a "foreign exception" and aborts the process; tried, and seen). So the plugin's
//! registration ([`__run_registration`](super::__run_registration), compiled into the plugin by
//! `export_plugin!`) wraps each transport in a [`GuardedTransport`]: its code, and so its `catch_unwind`,
//! is the plugin's copy of kombu-core and std, and every object it hands out is wrapped the same way
//! before it crosses to the program. Calls are Rust-ABI trait-object calls into those wrappers.
//!
//! This needs the plugin built with `panic = "unwind"` (the default). A plugin built with
//! `panic = "abort"` aborts the whole process on a panic: no guard can catch that.
//!
//! Messages a guarded channel returns or a guarded poller delivers are re-bound to a guarded channel, so
//! that settling them (ack, reject, dead-letter) is guarded too. Dropping a plugin object is guarded as
//! well (a panic in its `Drop` is logged and swallowed).

use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::entity::{Exchange, Queue, QueueInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::fields::FieldTable;
use crate::hub::{Event, Sources};
use crate::message::{DeliveryTag, Message};
use crate::options::OptionSpec;
use crate::transport::{
    BrokerConnection, Capabilities, Channel, DeadLetter, Delivery, Outgoing, Poller, PublishOptions, Transport,
};
use crate::url::BrokerUrl;

/// The text of a panic payload (`&str` or `String`, as `panic!` makes them).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// The error a panic in `plugin`'s `what` becomes.
fn panicked(plugin: &str, what: &str, panic: &(dyn std::any::Any + Send)) -> Error {
    Error::new(ErrorKind::Plugin, format!("plugin {plugin}: {what} panicked: {}", panic_message(panic)))
}

/// Runs `f` (a call into the plugin) and turns a panic into a plugin error.
fn call<T>(plugin: &str, what: &str, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let e = panicked(plugin, what, p.as_ref());
        tracing::error!("{e}");
        e
    })
}

/// [`call`] for a call that returns a `Result` itself.
fn guarded<T>(plugin: &str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    call(plugin, what, f).and_then(|r| r)
}

/// Drops a plugin object, swallowing (and logging) a panic in its `Drop`.
fn drop_guarded<T>(plugin: &str, what: &str, value: T) {
    let _ = call(plugin, what, move || drop(value));
}

/// A plugin's transport, its plain answers read once (under the guard) when it is loaded.
pub(crate) struct GuardedTransport {
    inner: ManuallyDrop<Arc<dyn Transport>>,
    plugin: Arc<str>,
    name: String,
    aliases: Vec<String>,
    default_port: Option<u16>,
    capabilities: Capabilities,
    options: Option<&'static [OptionSpec]>,
}

impl GuardedTransport {
    /// Wraps a transport of the plugin `plugin` (its path), asking it its name, aliases, port, capabilities
    /// and options now; an error if any of them panics.
    pub(crate) fn wrap(inner: Arc<dyn Transport>, plugin: Arc<str>) -> Result<Arc<dyn Transport>> {
        let p = &*plugin;
        let name = call(p, "Transport::name", || inner.name().to_owned())?;
        let aliases = call(p, "Transport::aliases", || inner.aliases())?;
        let default_port = call(p, "Transport::default_port", || inner.default_port())?;
        let capabilities = call(p, "Transport::capabilities", || inner.capabilities())?;
        let options = call(p, "Transport::options", || inner.options())?;
        Ok(Arc::new(GuardedTransport {
            inner: ManuallyDrop::new(inner),
            plugin,
            name,
            aliases,
            default_port,
            capabilities,
            options,
        }))
    }
}

impl Drop for GuardedTransport {
    fn drop(&mut self) {
        // SAFETY: `inner` is not used after this.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        drop_guarded(&self.plugin, "dropping a Transport", inner);
    }
}

impl Transport for GuardedTransport {
    fn name(&self) -> &str {
        &self.name
    }
    fn aliases(&self) -> Vec<String> {
        self.aliases.clone()
    }
    fn default_port(&self) -> Option<u16> {
        self.default_port
    }
    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }
    fn options(&self) -> Option<&'static [OptionSpec]> {
        self.options
    }
    fn validate(&self, url: &BrokerUrl) -> Result<()> {
        guarded(&self.plugin, "Transport::validate", || self.inner.validate(url))
    }
    fn connect(&self, url: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
        let conn = guarded(&self.plugin, "Transport::connect", || self.inner.connect(url))?;
        Ok(Box::new(GuardedConnection { inner: ManuallyDrop::new(conn), plugin: self.plugin.clone() }))
    }
}

/// A plugin's connection.
struct GuardedConnection {
    inner: ManuallyDrop<Box<dyn BrokerConnection>>,
    plugin: Arc<str>,
}

impl Drop for GuardedConnection {
    fn drop(&mut self) {
        // SAFETY: `inner` is not used after this.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        drop_guarded(&self.plugin, "dropping a BrokerConnection", inner);
    }
}

impl BrokerConnection for GuardedConnection {
    fn channel(&self) -> Result<Arc<dyn Channel>> {
        let ch = guarded(&self.plugin, "BrokerConnection::channel", || self.inner.channel())?;
        Ok(GuardedChannel::wrap(ch, self.plugin.clone()))
    }
    fn poller(&self) -> Result<Box<dyn Poller>> {
        let poller = guarded(&self.plugin, "BrokerConnection::poller", || self.inner.poller())?;
        Ok(Box::new(GuardedPoller { inner: ManuallyDrop::new(poller), plugin: self.plugin.clone() }))
    }
    fn is_open(&self) -> bool {
        // A connection that panics when asked is not usable.
        call(&self.plugin, "BrokerConnection::is_open", || self.inner.is_open()).unwrap_or(false)
    }
    fn close(&self) -> Result<()> {
        guarded(&self.plugin, "BrokerConnection::close", || self.inner.close())
    }
}

/// A plugin's channel.
struct GuardedChannel {
    inner: ManuallyDrop<Arc<dyn Channel>>,
    plugin: Arc<str>,
}

impl GuardedChannel {
    fn wrap(inner: Arc<dyn Channel>, plugin: Arc<str>) -> Arc<dyn Channel> {
        Arc::new(GuardedChannel { inner: ManuallyDrop::new(inner), plugin })
    }

    fn guarded<T>(&self, what: &str, f: impl FnOnce(&dyn Channel) -> Result<T>) -> Result<T> {
        guarded(&self.plugin, what, || f(self.inner.as_ref()))
    }
}

/// Re-binds a message the plugin bound to one of its channels to a guarded channel around it.
fn rebind(message: &mut Message, plugin: &Arc<str>) {
    if let Some(ch) = message.channel() {
        let ch = GuardedChannel::wrap(ch.clone(), plugin.clone());
        message.bind_channel(ch);
    }
}

impl Drop for GuardedChannel {
    fn drop(&mut self) {
        // SAFETY: `inner` is not used after this.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        drop_guarded(&self.plugin, "dropping a Channel", inner);
    }
}

impl Channel for GuardedChannel {
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        self.guarded("Channel::declare_exchange", |c| c.declare_exchange(exchange, passive))
    }
    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        self.guarded("Channel::delete_exchange", |c| c.delete_exchange(name, if_unused))
    }
    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        self.guarded("Channel::declare_queue", |c| c.declare_queue(queue, passive))
    }
    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        self.guarded("Channel::delete_queue", |c| c.delete_queue(name, if_unused, if_empty))
    }
    fn bind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.guarded("Channel::bind_queue", |c| c.bind_queue(queue, exchange, routing_key, arguments))
    }
    fn unbind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        self.guarded("Channel::unbind_queue", |c| c.unbind_queue(queue, exchange, routing_key, arguments))
    }
    fn purge_queue(&self, name: &str) -> Result<u64> {
        self.guarded("Channel::purge_queue", |c| c.purge_queue(name))
    }
    fn publish(&self, message: Message, exchange: &str, routing_key: &str, options: &PublishOptions) -> Result<()> {
        self.guarded("Channel::publish", |c| c.publish(message, exchange, routing_key, options))
    }
    fn publish_batch(&self, batch: Vec<Outgoing>, options: &PublishOptions) -> Result<()> {
        self.guarded("Channel::publish_batch", |c| c.publish_batch(batch, options))
    }
    fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Message>> {
        let mut got = self.guarded("Channel::get", |c| c.get(queue, no_ack))?;
        if let Some(m) = got.as_mut() {
            rebind(m, &self.plugin);
        }
        Ok(got)
    }
    fn consume(&self, queue: &str, consumer_tag: &str, no_ack: bool) -> Result<()> {
        self.guarded("Channel::consume", |c| c.consume(queue, consumer_tag, no_ack))
    }
    fn consume_with(&self, queue: &str, consumer_tag: &str, no_ack: bool, arguments: &FieldTable) -> Result<()> {
        self.guarded("Channel::consume_with", |c| c.consume_with(queue, consumer_tag, no_ack, arguments))
    }
    fn cancel(&self, consumer_tag: &str) -> Result<()> {
        self.guarded("Channel::cancel", |c| c.cancel(consumer_tag))
    }
    fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        self.guarded("Channel::ack", |c| c.ack(tag))
    }
    fn ack_deferred(&self, tag: &DeliveryTag) -> Result<()> {
        self.guarded("Channel::ack_deferred", |c| c.ack_deferred(tag))
    }
    fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()> {
        self.guarded("Channel::reject", |c| c.reject(tag, requeue))
    }
    fn dead_letter(&self, message: &Message, target: &DeadLetter<'_>) -> Result<()> {
        self.guarded("Channel::dead_letter", |c| c.dead_letter(message, target))
    }
    fn recover(&self, requeue: bool) -> Result<()> {
        self.guarded("Channel::recover", |c| c.recover(requeue))
    }
    fn qos(&self, prefetch_count: u16) -> Result<()> {
        self.guarded("Channel::qos", |c| c.qos(prefetch_count))
    }
    fn close(&self) -> Result<()> {
        self.guarded("Channel::close", |c| c.close())
    }
    fn is_open(&self) -> bool {
        call(&self.plugin, "Channel::is_open", || self.inner.is_open()).unwrap_or(false)
    }
    fn declare(&self, queue: &Queue) -> Result<QueueInfo> {
        self.guarded("Channel::declare", |c| c.declare(queue))
    }
}

/// A plugin's poller.
struct GuardedPoller {
    inner: ManuallyDrop<Box<dyn Poller>>,
    plugin: Arc<str>,
}

impl Drop for GuardedPoller {
    fn drop(&mut self) {
        // SAFETY: `inner` is not used after this.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        drop_guarded(&self.plugin, "dropping a Poller", inner);
    }
}

impl Poller for GuardedPoller {
    fn prepare(&mut self) -> Result<()> {
        guarded(&self.plugin, "Poller::prepare", || self.inner.prepare())
    }
    fn register(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        guarded(&self.plugin, "Poller::register", || self.inner.register(sources))
    }
    fn ready(&mut self, event: &Event, sources: &mut Sources<'_>, out: &mut Vec<Delivery>) -> Result<()> {
        let from = out.len();
        let result = guarded(&self.plugin, "Poller::ready", || self.inner.ready(event, sources, out));
        for d in out.iter_mut().skip(from) {
            rebind(&mut d.message, &self.plugin);
        }
        result
    }
    fn deregister(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        guarded(&self.plugin, "Poller::deregister", || self.inner.deregister(sources))
    }
}
