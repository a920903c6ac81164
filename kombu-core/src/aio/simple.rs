//! The async [`SimpleQueue`]: Kombu's queue-like interface (put, get, qsize, clear) over one queue.

use std::time::Duration;

use serde::Serialize;

use super::{Channel, Connection, Consumer, Message, Producer};
use crate::entity::{Exchange, Queue};
use crate::error::{Error, Result};

/// One queue, used like a queue: `put` publishes to it, `get` waits for its next message.
#[derive(Debug)]
pub struct SimpleQueue {
    connection: Connection,
    channel: Channel,
    queue: Queue,
    producer: Producer,
    consumer: Option<Consumer>,
}

impl SimpleQueue {
    /// The queue `name`, bound to a direct exchange of the same name with the name as routing key, as
    /// Kombu's `SimpleQueue`; declared now.
    pub async fn new(connection: &Connection, name: &str) -> Result<SimpleQueue> {
        SimpleQueue::with_queue(connection, Queue::with_exchange(name, Exchange::direct(name), name)).await
    }

    /// A simple queue over `queue` (declared now, with its bindings).
    pub async fn with_queue(connection: &Connection, queue: Queue) -> Result<SimpleQueue> {
        let channel = connection.channel().await?;
        channel.declare(&queue).await?;
        let (exchange, key) = match queue.bindings.first() {
            Some(b) => (b.exchange.clone(), b.routing_key.clone()),
            None => (Exchange::default_exchange(), queue.name.clone()),
        };
        let producer = Producer::on_channel(&channel).exchange(exchange).routing_key(key);
        Ok(SimpleQueue { connection: connection.clone(), channel, queue, producer, consumer: None })
    }

    /// The producer `put` uses.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Publishes `body` to the queue.
    pub async fn put<T: Serialize + ?Sized>(&self, body: &T) -> Result<()> {
        self.producer.publish(body).send().await
    }

    /// The next message, waiting at most `timeout` (`None`: until one comes); a `Timeout` error if none
    /// came. Acknowledge it (or reject it) when done: the queue holds at most
    /// [`DEFAULT_PREFETCH`](super::DEFAULT_PREFETCH) unacknowledged messages.
    pub async fn get(&mut self, timeout: Option<Duration>) -> Result<Message> {
        if self.consumer.is_none() {
            let consumer =
                Consumer::builder(&self.connection, [self.queue.clone()]).auto_declare(false).consume().await?;
            self.consumer = Some(consumer);
        }
        let name = &self.queue.name;
        let consumer = self.consumer.as_mut().ok_or_else(|| Error::state("no consumer"))?;
        let next = match timeout {
            Some(t) => tokio::time::timeout(t, consumer.next())
                .await
                .map_err(|_| Error::timeout(format!("queue '{name}' is empty")))?,
            None => consumer.next().await,
        };
        next.unwrap_or_else(|| Err(Error::state(format!("the consumer of queue '{name}' ended"))))
    }

    /// How many messages are ready in the queue.
    pub async fn qsize(&self) -> Result<u64> {
        Ok(self.channel.declare_queue(&self.queue, true).await?.message_count)
    }

    /// Removes every ready message; returns how many.
    pub async fn clear(&self) -> Result<u64> {
        self.channel.purge_queue(&self.queue.name).await
    }

    /// Cancels the consumer (messages not handed out go back to the queue) and closes the channel.
    pub async fn close(mut self) -> Result<()> {
        if let Some(mut consumer) = self.consumer.take() {
            consumer.cancel().await?;
        }
        self.channel.close().await
    }
}
