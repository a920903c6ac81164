//! The conformance suite is shown to catch misbehaving backends: memory channels wrapped with one
//! deliberate defect each must fail the case that checks that behaviour, and pass it without the defect.

use std::sync::{Arc, Weak};

use kombu_core::testing::{Outcome, Suite};
use kombu_core::transport::{BrokerConnection, Capabilities, Channel, Poller, PublishOptions, Transport};
use kombu_core::{BrokerUrl, DeliveryTag, Exchange, FieldTable, Message, Queue, QueueInfo, Registry, Result};
use kombu_memory::MemoryTransport;

kombu_core::register_transport!(kombu_memory::DESCRIPTOR);

#[derive(Clone, Copy, PartialEq, Debug)]
enum Defect {
    None,
    /// ack does nothing.
    AckIgnored,
    /// reject(requeue=true) drops the message.
    RequeueDrops,
    /// qos is ignored.
    PrefetchIgnored,
    /// get hands out messages without the redelivered flag.
    NoRedeliveredFlag,
    /// unbind does nothing.
    UnbindIgnored,
    /// purge reports 0.
    PurgeMiscounts,
}

struct BrokenTransport {
    alias: String,
    defect: Defect,
}

impl Transport for BrokenTransport {
    fn name(&self) -> &str {
        &self.alias
    }
    fn aliases(&self) -> Vec<String> {
        vec![self.alias.clone()]
    }
    fn default_port(&self) -> Option<u16> {
        None
    }
    fn capabilities(&self) -> Capabilities {
        MemoryTransport.capabilities()
    }
    fn connect(&self, url: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
        let mut inner_url = url.clone();
        inner_url.scheme = "memory".into();
        Ok(Box::new(BrokenConnection { inner: MemoryTransport.connect(&inner_url)?, defect: self.defect }))
    }
}

struct BrokenConnection {
    inner: Box<dyn BrokerConnection>,
    defect: Defect,
}

impl BrokerConnection for BrokenConnection {
    fn channel(&self) -> Result<Arc<dyn Channel>> {
        let inner = self.inner.channel()?;
        let defect = self.defect;
        Ok(Arc::new_cyclic(|me: &Weak<BrokenChannel>| BrokenChannel { me: me.clone(), inner, defect }))
    }
    fn poller(&self) -> Result<Box<dyn Poller>> {
        self.inner.poller()
    }
    fn is_open(&self) -> bool {
        self.inner.is_open()
    }
    fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

struct BrokenChannel {
    me: Weak<BrokenChannel>,
    inner: Arc<dyn Channel>,
    defect: Defect,
}

impl Channel for BrokenChannel {
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        self.inner.declare_exchange(exchange, passive)
    }
    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        self.inner.delete_exchange(name, if_unused)
    }
    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        self.inner.declare_queue(queue, passive)
    }
    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        self.inner.delete_queue(name, if_unused, if_empty)
    }
    fn bind_queue(&self, queue: &str, exchange: &str, key: &str, args: &FieldTable) -> Result<()> {
        self.inner.bind_queue(queue, exchange, key, args)
    }
    fn unbind_queue(&self, queue: &str, exchange: &str, key: &str, args: &FieldTable) -> Result<()> {
        if self.defect == Defect::UnbindIgnored {
            return Ok(());
        }
        self.inner.unbind_queue(queue, exchange, key, args)
    }
    fn purge_queue(&self, name: &str) -> Result<u64> {
        let n = self.inner.purge_queue(name)?;
        Ok(if self.defect == Defect::PurgeMiscounts { 0 } else { n })
    }
    fn publish(&self, message: Message, exchange: &str, key: &str, options: &PublishOptions) -> Result<()> {
        self.inner.publish(message, exchange, key, options)
    }
    fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Message>> {
        let Some(mut m) = self.inner.get(queue, no_ack)? else { return Ok(None) };
        if self.defect == Defect::NoRedeliveredFlag {
            m.delivery_info.redelivered = false;
        }
        if !no_ack {
            if let Some(me) = self.me.upgrade() {
                m.bind_channel(me);
            }
        }
        Ok(Some(m))
    }
    fn consume(&self, queue: &str, tag: &str, no_ack: bool) -> Result<()> {
        self.inner.consume(queue, tag, no_ack)
    }
    fn cancel(&self, tag: &str) -> Result<()> {
        self.inner.cancel(tag)
    }
    fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        if self.defect == Defect::AckIgnored {
            return Ok(());
        }
        self.inner.ack(tag)
    }
    fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()> {
        if self.defect == Defect::RequeueDrops {
            return self.inner.reject(tag, false);
        }
        self.inner.reject(tag, requeue)
    }
    fn recover(&self, requeue: bool) -> Result<()> {
        self.inner.recover(requeue)
    }
    fn qos(&self, prefetch_count: u16) -> Result<()> {
        if self.defect == Defect::PrefetchIgnored {
            return Ok(());
        }
        self.inner.qos(prefetch_count)
    }
    fn close(&self) -> Result<()> {
        self.inner.close()
    }
    fn is_open(&self) -> bool {
        self.inner.is_open()
    }
}

fn suite_with(defect: Defect, case: u32) -> Outcome {
    let alias = format!("broken-{defect:?}-{case}").to_lowercase();
    Registry::global()
        .register(Arc::new(BrokenTransport { alias: alias.clone(), defect }))
        .expect("register broken transport");
    let report = Suite::new(format!("{alias}://broken-{case}")).only(&[case]).run();
    report.case(case).expect("case ran").outcome.clone()
}

#[test]
fn suite_catches_each_defect_and_passes_without_it() {
    let checks = [
        (Defect::AckIgnored, 9),
        (Defect::RequeueDrops, 10),
        (Defect::NoRedeliveredFlag, 11),
        (Defect::PrefetchIgnored, 12),
        (Defect::UnbindIgnored, 6),
        (Defect::PurgeMiscounts, 15),
    ];
    // Each case through the blocking API, and through the async API (its number + 100).
    for (defect, case) in checks.into_iter().flat_map(|(d, c)| [(d, c), (d, c + 100)]) {
        let broken = suite_with(defect, case);
        assert!(matches!(broken, Outcome::Failed(_)), "{defect:?}: case {case} should fail, got {broken:?}");
        let healthy = suite_with(Defect::None, case);
        assert_eq!(healthy, Outcome::Passed, "the wrapper without a defect should pass case {case}");
    }
}
