//! `SimpleQueue`: Kombu's queue-like interface (put, get, qsize, clear) over one queue.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use crate::connection::Connection;
use crate::consumer::{Consumer, Subscription};
use crate::entity::{Exchange, Queue};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::producer::Producer;
use crate::transport::Channel;

/// A queue with `put` and `get`, like Python's `queue.Queue` (Kombu's `SimpleQueue`). It uses a channel
/// of its own; `get` consumes through the connection, so the connection must not be in a Hub.
pub struct SimpleQueue {
    connection: Connection,
    channel: Arc<dyn Channel>,
    queue: Queue,
    producer: Producer,
    buffer: Arc<Mutex<VecDeque<Message>>>,
    subscription: Option<Subscription>,
}

impl std::fmt::Debug for SimpleQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimpleQueue").field("queue", &self.queue.name).finish()
    }
}

impl SimpleQueue {
    /// A queue named `name`, bound to a direct exchange of the same name with routing key `name` (as Kombu).
    pub fn new(connection: &Connection, name: &str) -> Result<SimpleQueue> {
        SimpleQueue::with_queue(connection, Queue::with_exchange(name, Exchange::direct(name), name))
    }

    /// A simple interface over a given queue; messages are published to its first binding.
    pub fn with_queue(connection: &Connection, queue: Queue) -> Result<SimpleQueue> {
        let channel = connection.channel()?;
        channel.declare(&queue)?;
        Self::on(connection, channel, queue)
    }

    /// A simple interface over a queue that exists, declaring nothing (for a queue another program declared,
    /// whatever its durability or arguments): `get` takes from it, `put` publishes to it through the default
    /// exchange. A queue that does not exist shows when it is used.
    pub fn existing(connection: &Connection, name: &str) -> Result<SimpleQueue> {
        Self::on(connection, connection.channel()?, Queue::new(name))
    }

    fn on(connection: &Connection, channel: Arc<dyn Channel>, queue: Queue) -> Result<SimpleQueue> {
        let (exchange, key) = match queue.bindings.first() {
            Some(b) => (b.exchange.clone(), b.routing_key.clone()),
            None => (Exchange::default_exchange(), queue.name.clone()),
        };
        let producer = Producer::on_channel(channel.clone()).exchange(exchange).routing_key(key);
        Ok(SimpleQueue {
            connection: connection.clone(),
            channel,
            queue,
            producer,
            buffer: Arc::new(Mutex::new(VecDeque::new())),
            subscription: None,
        })
    }

    /// The producer used by `put`, to publish with options (`simple.producer().publish(..).priority(5)`).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Puts a value (serialized as JSON).
    pub fn put<T: Serialize + ?Sized>(&self, body: &T) -> Result<()> {
        self.producer.publish(body).send()
    }

    /// Puts an encoded body.
    pub fn put_bytes(&self, body: impl Into<Bytes>) -> Result<()> {
        self.producer.publish_bytes(body).send()
    }

    fn pop_buffered(&self) -> Option<Message> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }

    /// Takes the next message, waiting up to `timeout` (`None`: forever); a `Timeout` error if none came.
    /// The message must be acknowledged.
    pub fn get(&mut self, timeout: Option<Duration>) -> Result<Message> {
        if let Some(m) = self.pop_buffered() {
            return Ok(m);
        }
        if self.subscription.is_none() {
            let buffer = self.buffer.clone();
            let consumer = Consumer::new(&self.connection, [self.queue.clone()])
                .channel(self.channel.clone())
                .auto_declare(false)
                .on_message(move |m| buffer.lock().unwrap_or_else(|e| e.into_inner()).push_back(m));
            self.subscription = Some(consumer.consume()?);
        }
        let deadline = timeout.map(|t| crate::hub::after(Instant::now(), t));
        loop {
            if let Some(m) = self.pop_buffered() {
                return Ok(m);
            }
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if wait == Some(Duration::ZERO) {
                return Err(Error::timeout(format!("queue '{}' is empty", self.queue.name)));
            }
            match self.connection.drain_events(wait) {
                Ok(_) => {}
                Err(e) if e.kind() == crate::ErrorKind::Timeout => {
                    if let Some(m) = self.pop_buffered() {
                        return Ok(m);
                    }
                    return Err(Error::timeout(format!("queue '{}' is empty", self.queue.name)));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the next message if there is one, without waiting.
    pub fn get_nowait(&mut self) -> Result<Option<Message>> {
        if let Some(m) = self.pop_buffered() {
            return Ok(Some(m));
        }
        self.channel.get(&self.queue.name, false)
    }

    /// Messages ready in the queue (not counting ones already fetched but not acknowledged).
    pub fn qsize(&self) -> Result<u64> {
        Ok(self.channel.declare_queue(&self.queue, true)?.message_count)
    }

    /// Removes every ready message; returns how many.
    pub fn clear(&self) -> Result<u64> {
        self.channel.purge_queue(&self.queue.name)
    }

    /// Stops consuming and closes the channel; messages fetched but not acknowledged go back to the queue.
    pub fn close(mut self) -> Result<()> {
        if let Some(subscription) = self.subscription.take() {
            subscription.cancel()?;
        }
        self.buffer.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.channel.close()
    }
}
