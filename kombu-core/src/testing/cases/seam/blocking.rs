//! The seam over the blocking API: channels called directly; a consumer's callback fills a buffer that
//! `next` empties, running `drain_events` while it is empty.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Body, Consume, Delivery, Sending};
use crate::connection::Connection;
use crate::consumer::Subscription;
use crate::entity::{Exchange, Queue, QueueInfo};
use crate::error::{ErrorKind, Result};
use crate::fields::FieldTable;
use crate::message::Message;
use crate::transport::{Channel, PublishOptions};

pub(super) struct Conn(pub(super) Connection);

impl super::Conn for Conn {
    fn channel(&self) -> Result<Box<dyn super::Chan>> {
        Ok(Box::new(Chan(self.0.channel()?)))
    }

    fn consume(&self, queues: Vec<Queue>, how: Consume) -> Result<Box<dyn super::Stream>> {
        let channel = self.0.channel()?;
        let buffer: Arc<Mutex<VecDeque<Message>>> = Arc::default();
        let b = buffer.clone();
        let mut c = crate::Consumer::new(&self.0, queues)
            .channel(channel.clone())
            .on_message(move |m| b.lock().unwrap_or_else(|e| e.into_inner()).push_back(m));
        if let Some(n) = how.prefetch {
            c = c.prefetch(n);
        }
        if let Some(accept) = how.accept {
            c = c.accept(accept);
        }
        if let Some(policy) = how.poison {
            c = c.poison_policy(policy);
        }
        let subscription = c.consume()?;
        Ok(Box::new(Stream { conn: self.0.clone(), channel, subscription: Some(subscription), buffer }))
    }

    fn producer(&self, serializer: Option<&str>, compression: Option<&str>) -> Result<Box<dyn super::Prod>> {
        let mut p = crate::Producer::new(&self.0)?;
        if let Some(s) = serializer {
            p = p.serializer(s);
        }
        if let Some(c) = compression {
            p = p.compression(c);
        }
        Ok(Box::new(Prod(p)))
    }

    fn close(&self) -> Result<()> {
        self.0.close()
    }
}

struct Chan(Arc<dyn Channel>);

impl super::Chan for Chan {
    fn declare(&self, queue: &Queue) -> Result<QueueInfo> {
        self.0.declare(queue)
    }
    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        self.0.declare_queue(queue, passive)
    }
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        self.0.declare_exchange(exchange, passive)
    }
    fn bind_queue(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        self.0.bind_queue(queue, exchange, key, &FieldTable::new())
    }
    fn unbind_queue(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        self.0.unbind_queue(queue, exchange, key, &FieldTable::new())
    }
    fn delete_queue(&self, name: &str) -> Result<u64> {
        self.0.delete_queue(name, false, false)
    }
    fn delete_exchange(&self, name: &str) -> Result<()> {
        self.0.delete_exchange(name, false)
    }
    fn purge_queue(&self, name: &str) -> Result<u64> {
        self.0.purge_queue(name)
    }
    fn publish(&self, message: Message, exchange: &str, key: &str) -> Result<()> {
        self.0.publish(message, exchange, key, &PublishOptions::default())
    }
    fn get(&self, queue: &str) -> Result<Option<Delivery>> {
        Ok(self.0.get(queue, false)?.map(|m| Delivery::Blocking(Box::new(m))))
    }
    fn close(&self) -> Result<()> {
        self.0.close()
    }
}

struct Stream {
    conn: Connection,
    channel: Arc<dyn Channel>,
    subscription: Option<Subscription>,
    buffer: Arc<Mutex<VecDeque<Message>>>,
}

impl Stream {
    fn pop(&self) -> Option<Message> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}

impl super::Stream for Stream {
    fn next(&mut self, wait: Duration) -> Result<Option<Delivery>> {
        let end = Instant::now() + wait;
        loop {
            if let Some(m) = self.pop() {
                return Ok(Some(Delivery::Blocking(Box::new(m))));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.conn.drain_events(Some(left.min(Duration::from_millis(100)))) {
                Err(e) if e.kind() != ErrorKind::Timeout => return Err(e),
                _ => {}
            }
        }
    }

    fn cancel(&mut self) -> Result<()> {
        if let Some(s) = self.subscription.take() {
            s.cancel()?;
        }
        while let Some(m) = self.pop() {
            m.reject(true)?;
        }
        Ok(())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        drop(self.subscription.take());
        // Closing the channel returns what the consumer held unacknowledged, as the async consumer's drop.
        let _ = self.channel.close();
    }
}

struct Prod(crate::Producer);

impl super::Prod for Prod {
    fn send(&self, body: Body<'_>, how: &Sending<'_>) -> Result<()> {
        match body {
            Body::Value(v) => how.dress(self.0.publish(v)).send(),
            Body::Bytes(b) => how.dress(self.0.publish_bytes(b)).send(),
            Body::Forward(m) => how.dress(self.0.forward(m)).send(),
        }
    }
}
