//! A plugin whose objects panic on request: its channel keeps messages in memory, and panics in
//! `publish` to the routing key `panic`, in `get` from the queue `panic` and in `ack` of a message
//! published with the header `panic-on-ack`; its transport panics in `connect` to the host `panic`. The
//! loader's guards must turn each panic into an error and let the program go on. Built as a `cdylib` for
//! the loader's tests (with the default `panic = "unwind"`). It logs each `connect` with `tracing`, for the
//! test that a plugin's logs reach the program's subscriber.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use kombu_core::transport::{BrokerConnection, Capabilities, Channel, Poller, PublishOptions, Transport};
use kombu_core::{BrokerUrl, DeliveryTag, Error, Exchange, FieldTable, Message, Queue, QueueInfo, Result};

/// The transport `panicky`.
#[derive(Debug, Default)]
pub struct PanickyTransport;

impl Transport for PanickyTransport {
    fn name(&self) -> &str {
        "panicky"
    }
    fn aliases(&self) -> Vec<String> {
        vec!["panicky".to_owned()]
    }
    fn default_port(&self) -> Option<u16> {
        None
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }
    fn connect(&self, url: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
        if url.hostname.as_deref() == Some("panic") {
            panic!("connect was told to panic");
        }
        // The loader's tests look for this in the program's subscriber.
        tracing::info!(host = url.hostname.as_deref().unwrap_or(""), "panicky connects");
        Ok(Box::new(PanickyConnection))
    }
}

struct PanickyConnection;

impl BrokerConnection for PanickyConnection {
    fn channel(&self) -> Result<Arc<dyn Channel>> {
        let ch: Arc<dyn Channel> = Arc::new_cyclic(|me: &Weak<PanickyChannel>| PanickyChannel {
            me: me.clone(),
            queue: Mutex::new(VecDeque::new()),
            panic_on_ack: Mutex::new(HashSet::new()),
            next_tag: Mutex::new(0),
        });
        Ok(ch)
    }
    fn poller(&self) -> Result<Box<dyn Poller>> {
        Err(Error::unsupported("panicky has no poller"))
    }
    fn is_open(&self) -> bool {
        true
    }
    fn close(&self) -> Result<()> {
        Ok(())
    }
}

struct PanickyChannel {
    me: Weak<PanickyChannel>,
    queue: Mutex<VecDeque<Message>>,
    panic_on_ack: Mutex<HashSet<u64>>,
    next_tag: Mutex<u64>,
}

impl Channel for PanickyChannel {
    fn declare_exchange(&self, _: &Exchange, _: bool) -> Result<()> {
        Ok(())
    }
    fn delete_exchange(&self, _: &str, _: bool) -> Result<()> {
        Ok(())
    }
    fn declare_queue(&self, queue: &Queue, _: bool) -> Result<QueueInfo> {
        Ok(QueueInfo::new(queue.name.clone(), 0, 0))
    }
    fn delete_queue(&self, _: &str, _: bool, _: bool) -> Result<u64> {
        Ok(0)
    }
    fn bind_queue(&self, _: &str, _: &str, _: &str, _: &FieldTable) -> Result<()> {
        Ok(())
    }
    fn unbind_queue(&self, _: &str, _: &str, _: &str, _: &FieldTable) -> Result<()> {
        Ok(())
    }
    fn purge_queue(&self, _: &str) -> Result<u64> {
        Ok(0)
    }
    fn publish(&self, message: Message, _: &str, routing_key: &str, _: &PublishOptions) -> Result<()> {
        if routing_key == "panic" {
            panic!("publish was told to panic");
        }
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push_back(message);
        Ok(())
    }
    fn get(&self, queue: &str, _: bool) -> Result<Option<Message>> {
        if queue == "panic" {
            panic!("get was told to panic");
        }
        let Some(mut m) = self.queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
            return Ok(None);
        };
        let mut next = self.next_tag.lock().unwrap_or_else(|e| e.into_inner());
        *next += 1;
        if m.headers.contains_key("panic-on-ack") {
            self.panic_on_ack.lock().unwrap_or_else(|e| e.into_inner()).insert(*next);
        }
        m.delivery_info.delivery_tag = DeliveryTag::Number(*next);
        if let Some(me) = self.me.upgrade() {
            m.bind_channel(me);
        }
        Ok(Some(m))
    }
    fn consume(&self, _: &str, _: &str, _: bool) -> Result<()> {
        Err(Error::unsupported("panicky does not consume"))
    }
    fn cancel(&self, _: &str) -> Result<()> {
        Ok(())
    }
    fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        if let DeliveryTag::Number(n) = tag {
            if self.panic_on_ack.lock().unwrap_or_else(|e| e.into_inner()).contains(n) {
                panic!("ack of {n} was told to panic");
            }
        }
        Ok(())
    }
    fn reject(&self, _: &DeliveryTag, _: bool) -> Result<()> {
        Ok(())
    }
    fn recover(&self, _: bool) -> Result<()> {
        Ok(())
    }
    fn qos(&self, _: u16) -> Result<()> {
        Ok(())
    }
    fn close(&self) -> Result<()> {
        Ok(())
    }
    fn is_open(&self) -> bool {
        true
    }
}

kombu_core::export_plugin!(PanickyTransport);
