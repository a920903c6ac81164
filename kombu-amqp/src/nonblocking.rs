//! The channel's non-blocking side ([`kombu_core::AsyncChannel`]): lapin is async, so the async API
//! awaits its futures on the caller's runtime instead of parking a thread in `block_on`. The outcomes
//! mean what the blocking calls' mean (`channel.rs`), with the same error mapping.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kombu_core::{AsyncChannel, DeliveryTag, Error, Message, Outgoing, PublishOptions, Result};
use lapin::options::{BasicAckOptions, BasicPublishOptions, BasicRejectOptions, ConfirmSelectOptions};

use crate::channel::{tag_number, AmqpChannel, DEFAULT_CONFIRM_TIMEOUT, SETTLE_WRITE_TIMEOUT};
use crate::errors::from_lapin;
use crate::outcome::{confirmed, earlier, not_sent, unconfirmed};
use crate::runtime::{start, Started};

/// How long `confirm.select` may take.
const SELECT_TIMEOUT: Duration = Duration::from_secs(30);

impl AmqpChannel {
    /// A pipelined publish: waits only for room in the window (awaiting its oldest operation).
    async fn publish_pipelined_async(&self, message: Message, exchange: &str, routing_key: &str) -> Result<()> {
        let mut op = self.pipelined(message, exchange, routing_key)?;
        loop {
            match self.start_if_room(op) {
                Ok(None) => return Ok(()),
                Ok(Some(back)) => op = back,
                Err(e) => return Err(self.explain_async(e).await),
            }
            if let Some(oldest) = self.take_oldest() {
                if let Err(e) = oldest.await {
                    return Err(self.explain_async(earlier(e)).await);
                }
            }
        }
    }

    async fn ensure_confirms_async(&self) -> Result<()> {
        if !self.confirms.load(Ordering::Acquire) {
            match tokio::time::timeout(SELECT_TIMEOUT, self.ch.confirm_select(ConfirmSelectOptions::default())).await {
                Ok(Ok(())) => self.confirms.store(true, Ordering::Release),
                Ok(Err(e)) => return Err(self.explain_async(from_lapin(e, "confirm.select")).await),
                Err(_) => return Err(Error::timeout("confirm.select: no answer from the broker")),
            }
        }
        Ok(())
    }

    /// Publishes a batch and awaits every confirm within `timeout` (what an error says: see the blocking
    /// `publish_confirmed`). Every publish is started before any is awaited, and many callers' batches
    /// are in flight on one channel at once: lapin keeps the confirms apart.
    async fn publish_confirmed_async(&self, batch: Vec<Outgoing>, mandatory: bool, timeout: Duration) -> Result<()> {
        self.check_not_closed_by_us()?;
        self.ensure_confirms_async().await?;
        // Publishes pipelined earlier on this channel are reported first, as by the blocking call.
        while let Some(op) = self.take_oldest() {
            op.await.map_err(earlier)?;
        }
        let mut prepared = Vec::with_capacity(batch.len());
        for o in &batch {
            prepared.push(Self::prepare(&o.message, &o.exchange, &o.routing_key)?);
        }
        let opts = BasicPublishOptions { mandatory, immediate: false };
        let several = batch.len() > 1;
        let sends: Vec<_> = batch
            .iter()
            .zip(prepared)
            .map(|(o, (ex, rk, props))| start(self.ch.basic_publish(ex, rk, opts, &o.message.body, props)))
            .collect();
        let all = async {
            let mut confirms = Vec::with_capacity(sends.len());
            let mut any_sent = false;
            let mut failed = None;
            for s in sends {
                match finish(s).await {
                    Ok(confirm) => {
                        any_sent = true;
                        confirms.push(confirm);
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failed {
                return Err(not_sent(e, any_sent));
            }
            for c in confirms {
                confirmed(c.await.map_err(|e| unconfirmed(e, several))?, several)?;
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, all).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::timeout(format!("no publisher confirm from the broker within {timeout:?}"))
                .with_may_have_reached_broker(true)),
        }
    }

    /// A method with no reply (ack, reject), awaited until lapin has written it.
    async fn fire_async(&self, op: impl std::future::Future<Output = lapin::Result<()>>, what: &str) -> Result<()> {
        self.check_not_closed_by_us()?;
        match tokio::time::timeout(SETTLE_WRITE_TIMEOUT, op).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.explain_async(from_lapin(e, what)).await),
            Err(_) => Err(Error::timeout(format!("{what} not written within {SETTLE_WRITE_TIMEOUT:?}"))),
        }
    }

    fn confirmed_timeout(&self, options: &PublishOptions) -> Option<Duration> {
        let confirmed = options.confirm_timeout.is_some() || options.mandatory || self.confirm_publish;
        confirmed.then(|| options.confirm_timeout.unwrap_or(DEFAULT_CONFIRM_TIMEOUT))
    }
}

/// A started future, finished.
async fn finish<F: std::future::Future>(started: Started<F>) -> F::Output {
    match started {
        Started::Done(out) => out,
        Started::Running(fut) => fut.await,
    }
}

#[async_trait::async_trait]
impl AsyncChannel for AmqpChannel {
    async fn publish(
        &self,
        message: Message,
        exchange: &str,
        routing_key: &str,
        options: &PublishOptions,
    ) -> Result<()> {
        match self.confirmed_timeout(options) {
            Some(timeout) => {
                let out = Outgoing { message, exchange: exchange.to_owned(), routing_key: routing_key.to_owned() };
                self.publish_confirmed_async(vec![out], options.mandatory, timeout).await
            }
            None => self.publish_pipelined_async(message, exchange, routing_key).await,
        }
    }

    async fn publish_batch(&self, batch: Vec<Outgoing>, options: &PublishOptions) -> Result<()> {
        match self.confirmed_timeout(options) {
            Some(timeout) => self.publish_confirmed_async(batch, options.mandatory, timeout).await,
            None => {
                for o in batch {
                    self.publish_pipelined_async(o.message, &o.exchange, &o.routing_key).await?;
                }
                Ok(())
            }
        }
    }

    async fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        let n = tag_number(tag)?;
        self.fire_async(self.ch.basic_ack(n, BasicAckOptions::default()), "basic.ack").await
    }

    async fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()> {
        let n = tag_number(tag)?;
        self.fire_async(self.ch.basic_reject(n, BasicRejectOptions { requeue }), "basic.reject").await
    }
}
