//! The channel's non-blocking side ([`kombu_core::AsyncChannel`]), for the async API: publishes and acks
//! pipelined on the connection's async link (`wire.rs`), in the order they were made. The commands are
//! the blocking path's (the ROUTE script or LPUSH of `publish`; `acks::forget_pipe`), so the data on
//! the server is the same; publishes to one place made while others are in flight share one command.
//!
//! A confirmed publish (`confirm_timeout` set, or `mandatory`) and an ack resolve when the server has
//! answered them (a confirmed publish gives up after its `confirm_timeout`, saying it may have
//! arrived: one timer per call, for that and the `socket_timeout` option); an unconfirmed publish
//! resolves once it is queued (waiting only while 128 requests are unanswered), and a refusal of one
//! is reported by the next call. [`AsyncChannel::flush`] (which the
//! async channel's other operations await first) waits until every earlier publish is answered.
//!
//! On the blocking pool instead: every call with `wait_for_replicas`, a publish through a headers exchange (whose binding set is read first), a batch
//! (one round trip for the binding sets) and a reject (which restores the message).

use kombu_core::{AsyncChannel, DeliveryTag, Error, ExchangeKind, Message, Outgoing, PublishOptions, Result};

use crate::channel::RedisChannel;
use crate::options::RedisOptions;
use crate::publish;
use crate::wire::Reply;

/// Whether the async link serves these options: any socket (plain or TLS, dialed directly or through
/// Sentinel), without a wait for replicas (`WAIT` after each confirmed publish, on the blocking path).
fn direct(o: &RedisOptions) -> bool {
    o.wait_for_replicas == 0
}

impl RedisChannel {
    /// Runs a blocking call of this channel on tokio's blocking pool.
    async fn on_blocking_pool(&self, call: impl FnOnce(&RedisChannel) -> Result<()> + Send + 'static) -> Result<()> {
        let me = self.arc()?;
        match tokio::task::spawn_blocking(move || call(&me)).await {
            Ok(done) => done,
            Err(e) => Err(Error::state(format!("a blocking redis call failed to run: {e}"))),
        }
    }
}

#[async_trait::async_trait]
impl AsyncChannel for RedisChannel {
    async fn publish(
        &self,
        message: Message,
        exchange: &str,
        routing_key: &str,
        options: &PublishOptions,
    ) -> Result<()> {
        if !kombu_core::Channel::is_open(self) {
            return Err(Error::state("redis channel is closed"));
        }
        let kind = self.shared.exchange_kind(exchange);
        if kind == ExchangeKind::Headers || !direct(&self.shared.opts) {
            let (ex, key, options) = (exchange.to_owned(), routing_key.to_owned(), options.clone());
            // Boxed: the rare path's future does not enlarge every publish's.
            return Box::pin(
                self.on_blocking_pool(move |ch| kombu_core::Channel::publish(ch, message, &ex, &key, &options)),
            )
            .await;
        }
        let dest = publish::destination(&self.shared, &message, exchange, routing_key, kind, None)?;
        let reply = if options.confirm_timeout.is_some() || options.mandatory {
            Reply::Awaited(options.confirm_timeout)
        } else {
            Reply::NotAwaited
        };
        let link = &self.shared.aio;
        if dest.joinable() {
            return match publish::joinable(&self.shared, dest, &message, exchange, routing_key)? {
                Some(one) => link.call_joinable(&self.shared, one, reply).await,
                // A list of no queues (a joinable destination has one): dropped, as AMQP drops it.
                None => Ok(()),
            };
        }
        let commands = publish::commands_to(&self.shared, dest, &message, exchange, routing_key)?;
        if commands.is_empty() {
            return Ok(());
        }
        let mut packed = Vec::new();
        for c in &commands {
            c.write_packed_command(&mut packed);
        }
        link.call(&self.shared, "publish", packed, commands.len(), reply).await
    }

    async fn publish_batch(&self, batch: Vec<Outgoing>, options: &PublishOptions) -> Result<()> {
        // One round trip for the binding sets, then runs of up to 1,000 per command: the blocking path's.
        self.flush().await?;
        let options = options.clone();
        self.on_blocking_pool(move |ch| kombu_core::Channel::publish_batch(ch, batch, &options)).await
    }

    async fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        if !direct(&self.shared.opts) {
            let tag = tag.clone();
            return self.on_blocking_pool(move |ch| kombu_core::Channel::ack(ch, &tag)).await;
        }
        let ack = self.begin_ack(tag)?;
        let res = if ack.recorded {
            let pipe = crate::acks::forget_pipe(&self.shared, &[ack.key.as_str()]);
            // MULTI, the commands, EXEC: a reply each.
            let replies = pipe.len() + 2;
            self.shared.aio.call(&self.shared, "ack", pipe.get_packed_pipeline(), replies, Reply::Awaited(None)).await
        } else {
            Ok(())
        };
        self.end_ack(ack, &res);
        res
    }

    async fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()> {
        self.flush().await?;
        let tag = tag.clone();
        self.on_blocking_pool(move |ch| kombu_core::Channel::reject(ch, &tag, requeue)).await
    }

    async fn flush(&self) -> Result<()> {
        self.shared.aio.flush(&self.shared).await
    }
}
