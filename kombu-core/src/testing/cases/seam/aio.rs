//! The seam over `kombu_core::aio`: each call awaited with `block_on` on a multi-thread runtime of the
//! connection's own, whose workers run the connection's engine (and lapin) in the background meanwhile.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Body, Check, Consume, Context, Delivery, Sending};
use crate::aio;
use crate::connection::RetryPolicy;
use crate::entity::{Exchange, ExchangeKind, Queue, QueueInfo};
use crate::error::Result;
use crate::fields::FieldTable;
use crate::message::Message;

/// A runtime, shut down (waiting at most a second for what runs on its blocking pool) when dropped.
pub(crate) struct Rt(Option<tokio::runtime::Runtime>);

impl Rt {
    fn new() -> Check<Arc<Rt>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        Ok(Arc::new(Rt(Some(rt))))
    }

    pub(super) fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0.as_ref().unwrap_or_else(|| unreachable!("the runtime is taken only by drop")).block_on(f)
    }

    /// Drops `value` within the runtime, where the async API's drops hand their blocking part to its pool.
    fn drop_within<T>(&self, value: T) {
        let _entered = self.0.as_ref().map(|rt| rt.enter());
        drop(value);
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

// Each holder of the runtime declares it last: its async objects are dropped while the runtime runs (a
// connection or channel on the test thread, where its close may wait for lapin on the runtime's workers).

pub(super) struct Conn {
    conn: aio::Connection,
    rt: Arc<Rt>,
}

impl Conn {
    pub(super) fn open(url: &str) -> Check<Conn> {
        let rt = Rt::new()?;
        let conn = aio::Connection::open(url).ctx("open")?;
        rt.block_on(conn.connect()).ctx("connect")?;
        Ok(Conn { conn, rt })
    }
}

impl super::Conn for Conn {
    fn channel(&self) -> Result<Box<dyn super::Chan>> {
        let ch = self.rt.block_on(self.conn.channel())?;
        Ok(Box::new(Chan { ch, rt: self.rt.clone() }))
    }

    fn consume(&self, queues: Vec<Queue>, how: Consume) -> Result<Box<dyn super::Stream>> {
        let mut b = aio::Consumer::builder(&self.conn, queues);
        if let Some(n) = how.prefetch {
            b = b.prefetch(n);
        }
        if let Some(accept) = how.accept {
            b = b.accept(accept);
        }
        if let Some(policy) = how.poison {
            b = b.poison_policy(policy);
        }
        let consumer = self.rt.block_on(b.consume())?;
        Ok(Box::new(Stream { consumer: Some(consumer), rt: self.rt.clone() }))
    }

    fn producer(&self, serializer: Option<&str>, compression: Option<&str>) -> Result<Box<dyn super::Prod>> {
        let mut p = self.rt.block_on(aio::Producer::new(&self.conn))?;
        if let Some(s) = serializer {
            p = p.serializer(s);
        }
        if let Some(c) = compression {
            p = p.compression(c);
        }
        Ok(Box::new(Prod { p: Some(p), rt: self.rt.clone() }))
    }

    fn close(&self) -> Result<()> {
        self.rt.block_on(self.conn.close())
    }
}

/// Connects once to `url`, with no retries, on a runtime of its own.
pub(super) fn connect_once(url: &str) -> Check<Result<()>> {
    let rt = Rt::new()?;
    let conn = aio::Connection::builder(url).retry(RetryPolicy::none()).open().ctx("open")?;
    Ok(rt.block_on(conn.connect()))
}

struct Chan {
    ch: aio::Channel,
    rt: Arc<Rt>,
}

impl super::Chan for Chan {
    fn declare(&self, queue: &Queue) -> Result<QueueInfo> {
        self.rt.block_on(self.ch.declare(queue))
    }
    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        self.rt.block_on(self.ch.declare_queue(queue, passive))
    }
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        self.rt.block_on(self.ch.declare_exchange(exchange, passive))
    }
    fn bind_queue(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        self.rt.block_on(self.ch.bind_queue(queue, exchange, key, &FieldTable::new()))
    }
    fn unbind_queue(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        self.rt.block_on(self.ch.unbind_queue(queue, exchange, key, &FieldTable::new()))
    }
    fn delete_queue(&self, name: &str) -> Result<u64> {
        self.rt.block_on(self.ch.delete_queue(name, false, false))
    }
    fn delete_exchange(&self, name: &str) -> Result<()> {
        self.rt.block_on(self.ch.delete_exchange(name, false))
    }
    fn purge_queue(&self, name: &str) -> Result<u64> {
        self.rt.block_on(self.ch.purge_queue(name))
    }
    /// Through a producer on this channel that declares nothing, as `forward` sends a message as it is.
    fn publish(&self, message: Message, exchange: &str, key: &str) -> Result<()> {
        self.rt.block_on(async {
            let to = Exchange::new(exchange, ExchangeKind::Direct);
            let producer = aio::Producer::on_channel(&self.ch).exchange(to).auto_declare(false).routing_key(key);
            producer.forward(&message).send().await
        })
    }
    fn get(&self, queue: &str) -> Result<Option<Delivery>> {
        let got = self.rt.block_on(self.ch.get(queue, false))?;
        Ok(got.map(|m| Delivery::Async(m, self.rt.clone())))
    }
    fn close(&self) -> Result<()> {
        self.rt.block_on(self.ch.close())
    }
}

struct Stream {
    consumer: Option<aio::Consumer>,
    rt: Arc<Rt>,
}

impl super::Stream for Stream {
    fn next(&mut self, wait: Duration) -> Result<Option<Delivery>> {
        let Some(consumer) = self.consumer.as_mut() else { return Ok(None) };
        match self.rt.block_on(async { tokio::time::timeout(wait, consumer.next()).await }) {
            Err(_) | Ok(None) => Ok(None),
            Ok(Some(m)) => Ok(Some(Delivery::Async(m?, self.rt.clone()))),
        }
    }

    fn cancel(&mut self) -> Result<()> {
        match self.consumer.as_mut() {
            Some(c) => self.rt.block_on(c.cancel()),
            None => Ok(()),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let consumer = self.consumer.take();
        self.rt.drop_within(consumer);
    }
}

struct Prod {
    p: Option<aio::Producer>,
    rt: Arc<Rt>,
}

impl super::Prod for Prod {
    fn send(&self, body: Body<'_>, how: &Sending<'_>) -> Result<()> {
        let Some(p) = self.p.as_ref() else { return Ok(()) };
        self.rt.block_on(async {
            match body {
                Body::Value(v) => how.dress(p.publish(v)).send().await,
                Body::Bytes(b) => how.dress(p.publish_bytes(b)).send().await,
                Body::Forward(m) => how.dress(p.forward(m)).send().await,
            }
        })
    }
}

impl Drop for Prod {
    fn drop(&mut self) {
        let p = self.p.take();
        self.rt.drop_within(p);
    }
}
