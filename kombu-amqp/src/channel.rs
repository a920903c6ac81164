//! [`AmqpChannel`]: kombu's `Channel` on a lapin channel. Declarations, bindings, gets and consumes are
//! AMQP methods the caller waits for; publishes, acks and rejects are pipelined.
//!
//! Pipelining: lapin queues a method's frames when its future is first polled. A publish without a
//! confirm is started that way and kept in a small in-flight window that is checked on the next call: an
//! error (the channel or connection failed) is reported then, and when the window is full the caller
//! waits for the oldest entry, which bounds memory. lapin sends other methods ahead of queued publishes,
//! so every method the caller waits for (and closing or dropping the channel) first waits for the
//! window: a publish then a `get` on one channel finds the message. Acks and rejects are only started.
//!
//! A publish with `confirm_timeout` (or `mandatory`, or on a `confirm_publish` connection) puts the
//! channel in confirm mode and waits for the broker's confirm; in confirm mode the pipelined publishes
//! wait for their confirms in the window too, so a broker's refusal (`NOT_FOUND - no exchange ...`) is
//! reported with the broker's text on a later call. Without confirm mode, the broker's reason for closing
//! the channel is added from the connection's events (see `reasons`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Poll;
use std::time::Duration;

use kombu_core::transport::dead_letter_by_copy;
use kombu_core::{
    Channel, DeadLetter, DeliveryTag, Error, Exchange, ExchangeKind, FieldTable, Message, Outgoing, PublishOptions,
    Queue, QueueInfo, Result,
};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    BasicRecoverOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::ShortString;
use lapin::{BasicProperties, Confirmation};

use crate::errors::{from_lapin, kind_of_amqp};
use crate::fields::{short_string, to_amqp_table};
use crate::outcome::{confirmed, earlier, lost_or_refused, nacked, not_sent, unconfirmed};
use crate::poller::{Deliveries, Entry};
use crate::properties::{to_basic_properties, to_message, Envelope, SharedNames};
use crate::reasons::CloseReasons;
use crate::runtime::{block_on, join_all, poll_once, start};

/// Started publishes not known to be sent (or confirmed) yet.
pub(crate) type InFlight = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// How many pipelined operations a channel keeps before the caller waits for the oldest.
pub(crate) const WINDOW: usize = 512;

/// How long an error on a channel the broker closed waits for the broker's reason to be reported.
const REASON_WAIT: Duration = Duration::from_millis(250);

/// How long closing a channel waits for the broker's answer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long closing or dropping a channel waits for its pipelined operations to be sent.
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a `mandatory` (or `confirm_publish`) publish without a `confirm_timeout` waits for the broker.
pub(crate) const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// A kombu channel on a lapin channel.
pub struct AmqpChannel {
    pub(crate) ch: Arc<lapin::Channel>,
    deliveries: Arc<Deliveries>,
    me: Weak<AmqpChannel>,
    pub(crate) confirms: AtomicBool,
    pub(crate) confirm_publish: bool,
    inflight: Mutex<VecDeque<InFlight>>,
    reasons: Arc<CloseReasons>,
    /// Why the broker closed this channel, once known.
    reason: Mutex<Option<lapin::protocol::AMQPError>>,
    /// The program closed this channel (or its connection): operations are then `State` errors, as on
    /// every backend, not the `Channel` errors of a channel the broker closed.
    closed_by_us: AtomicBool,
    /// Queues this channel declared with a dead-letter exchange: dead-lettering from them is the
    /// broker's (reject without requeue).
    dead_lettering: Mutex<std::collections::HashSet<String>>,
}

/// How long an ack or reject may wait for lapin to write it.
pub(crate) const SETTLE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl std::fmt::Debug for AmqpChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpChannel").field("id", &self.ch.id()).field("open", &self.is_open()).finish()
    }
}

fn kind(kind: ExchangeKind) -> lapin::ExchangeKind {
    match kind {
        ExchangeKind::Direct => lapin::ExchangeKind::Direct,
        ExchangeKind::Topic => lapin::ExchangeKind::Topic,
        ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
        ExchangeKind::Headers => lapin::ExchangeKind::Headers,
        other => lapin::ExchangeKind::Custom(other.as_str().to_owned()),
    }
}

pub(crate) fn tag_number(tag: &DeliveryTag) -> Result<u64> {
    match tag {
        DeliveryTag::Number(n) => Ok(*n),
        other => Err(Error::invalid(format!("delivery tag '{other}' is not an AMQP delivery tag (a number)"))),
    }
}

impl AmqpChannel {
    pub(crate) fn new(
        ch: lapin::Channel,
        deliveries: Arc<Deliveries>,
        reasons: Arc<CloseReasons>,
        confirm_publish: bool,
    ) -> Arc<AmqpChannel> {
        Arc::new_cyclic(|me| AmqpChannel {
            ch: Arc::new(ch),
            deliveries,
            me: me.clone(),
            confirms: AtomicBool::new(false),
            confirm_publish,
            inflight: Mutex::new(VecDeque::new()),
            reasons,
            reason: Mutex::new(None),
            closed_by_us: AtomicBool::new(false),
            dead_lettering: Mutex::default(),
        })
    }

    /// The lapin channel underneath.
    pub fn lapin(&self) -> &lapin::Channel {
        &self.ch
    }

    fn arc(&self) -> Result<Arc<dyn Channel>> {
        let me: Arc<dyn Channel> = self.me.upgrade().ok_or_else(|| Error::state("the channel was dropped"))?;
        Ok(me)
    }

    /// Waits for an AMQP method; `context` names it in errors.
    ///
    /// lapin sends methods ahead of queued publishes, so the channel's pipelined operations are waited for
    /// first: a publish followed by a `get` (or a declare, or a close) on one channel reaches the broker first.
    fn call<T>(&self, fut: impl Future<Output = lapin::Result<T>>, context: impl FnOnce() -> String) -> Result<T> {
        self.check_not_closed_by_us()?;
        self.settle_inflight(true).map_err(|e| self.explain(earlier(e)))?;
        match block_on(fut, None) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => {
                if let lapin::ErrorKind::ProtocolError(amqp) = e.kind() {
                    // The broker closed the channel over this call, and the caller gets its reason now.
                    self.reasons.claim(amqp);
                    *self.reason() = Some(amqp.clone());
                }
                Err(self.explain(from_lapin(e, &context())))
            }
            None => Err(Error::timeout(context())),
        }
    }

    /// A `State` error once the program closed the channel.
    pub(crate) fn check_not_closed_by_us(&self) -> Result<()> {
        if self.closed_by_us.load(Ordering::Acquire) {
            return Err(Error::state(format!("channel {} is closed", self.ch.id())));
        }
        Ok(())
    }

    fn reason(&self) -> MutexGuard<'_, Option<lapin::protocol::AMQPError>> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An error met on a channel the broker closed gets the broker's reason (waiting up to 250 ms for it).
    pub(crate) fn explain(&self, err: Error) -> Error {
        if !self.needs_reason(&err) {
            return err;
        }
        if self.reason().is_none() {
            if let Some(came) = self.reasons.take(REASON_WAIT) {
                *self.reason() = Some(came);
            }
        }
        self.with_reason(err)
    }

    /// [`explain`](Self::explain) for async callers: the wait for the reason sleeps on `tokio::time`.
    pub(crate) async fn explain_async(&self, err: Error) -> Error {
        if !self.needs_reason(&err) {
            return err;
        }
        if self.reason().is_none() {
            if let Some(came) = self.reasons.take_async(REASON_WAIT).await {
                *self.reason() = Some(came);
            }
        }
        self.with_reason(err)
    }

    fn needs_reason(&self, err: &Error) -> bool {
        err.kind() == kombu_core::ErrorKind::Channel && !self.ch.status().connected()
    }

    fn with_reason(&self, err: Error) -> Error {
        match self.reason().as_ref() {
            Some(r) => {
                err.context(format_args!("the broker closed the channel: {} ({})", r.get_message(), kind_of_amqp(r)))
            }
            None => err,
        }
    }

    pub(crate) fn inflight(&self) -> MutexGuard<'_, VecDeque<InFlight>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops finished in-flight operations and reports the first that failed; with `all`, waits for every one.
    fn settle_inflight(&self, all: bool) -> Result<()> {
        let mut q = self.inflight();
        Self::settle(&mut q, if all { 0 } else { WINDOW })
    }

    /// Settles the front of the window until at most `keep` operations are in flight.
    fn settle(q: &mut VecDeque<InFlight>, keep: usize) -> Result<()> {
        loop {
            let over = q.len() > keep;
            let Some(front) = q.front_mut() else { return Ok(()) };
            let done = if over {
                block_on(front.as_mut(), None)
            } else {
                match poll_once(front) {
                    Poll::Ready(r) => Some(r),
                    Poll::Pending => return Ok(()),
                }
            };
            q.pop_front();
            if let Some(Err(e)) = done {
                return Err(e);
            }
        }
    }

    /// Waits (at most `timeout`) until every pipelined operation is done; errors are logged, not returned.
    pub(crate) fn flush(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        let mut q = self.inflight();
        while let Some(mut op) = q.pop_front() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match block_on(op.as_mut(), Some(left)) {
                Some(Ok(())) => {}
                Some(Err(e)) => tracing::debug!("channel {}: {e:#}", self.ch.id()),
                None => {
                    tracing::warn!("channel {}: {} operations not sent within {timeout:?}", self.ch.id(), q.len() + 1);
                    return;
                }
            }
        }
    }

    /// Sends a method that has no reply (ack, reject) and waits until lapin has written it to the socket
    /// (at most [`SETTLE_WRITE_TIMEOUT`]), so that `Ok` means it left this process. The broker answers a
    /// bad one by closing the channel, which the next call reports; lapin refuses at once (and this
    /// reports) a method on a channel that is not open. Such methods go ahead of queued publishes, so
    /// they need no place in the window.
    fn fire(&self, op: impl Future<Output = lapin::Result<()>>, what: &str) -> Result<()> {
        self.check_not_closed_by_us()?;
        let mut op = std::pin::pin!(op);
        let done = match poll_once(&mut op) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => block_on(op, Some(SETTLE_WRITE_TIMEOUT)),
        };
        match done {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(self.explain(from_lapin(e, what))),
            None => Err(Error::timeout(format!("{what} not written within {SETTLE_WRITE_TIMEOUT:?}"))),
        }
    }

    /// Hands a method that has no reply (a deferred ack) to lapin, which writes it at once, without
    /// waiting for the write.
    fn hand_over(&self, op: impl Future<Output = lapin::Result<()>>, what: &str) -> Result<()> {
        self.check_not_closed_by_us()?;
        let mut op = std::pin::pin!(op);
        match poll_once(&mut op) {
            Poll::Ready(Err(e)) => Err(self.explain(from_lapin(e, what))),
            Poll::Ready(Ok(())) | Poll::Pending => Ok(()),
        }
    }

    /// Starts a pipelined operation.
    fn start(&self, mut op: InFlight) -> Result<()> {
        self.check_not_closed_by_us()?;
        let mut q = self.inflight();
        Self::settle(&mut q, WINDOW).map_err(|e| self.explain(earlier(e)))?;
        // The first poll queues the frames, in call order (the lock is held).
        match poll_once(&mut op) {
            Poll::Ready(r) => r.map_err(|e| self.explain(e)),
            Poll::Pending => {
                q.push_back(op);
                Ok(())
            }
        }
    }

    fn ensure_confirms(&self) -> Result<()> {
        if !self.confirms.load(Ordering::Acquire) {
            self.call(self.ch.confirm_select(ConfirmSelectOptions::default()), || "confirm.select".into())?;
            self.confirms.store(true, Ordering::Release);
        }
        Ok(())
    }

    pub(crate) fn prepare(
        message: &Message,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(ShortString, ShortString, BasicProperties)> {
        Ok((
            short_string(exchange, "exchange name")?,
            short_string(routing_key, "routing key")?,
            to_basic_properties(message)?,
        ))
    }

    /// A publish that waits for nothing beyond its place in the window.
    fn publish_pipelined(&self, message: Message, exchange: &str, routing_key: &str) -> Result<()> {
        self.start(self.pipelined(message, exchange, routing_key)?)
    }

    /// The operation of a pipelined publish (not started: the first poll queues its frames).
    pub(crate) fn pipelined(&self, message: Message, exchange: &str, routing_key: &str) -> Result<InFlight> {
        let (ex, rk, props) = Self::prepare(&message, exchange, routing_key)?;
        let ch = self.ch.clone();
        let confirms = self.confirms.load(Ordering::Acquire);
        let body = message.body;
        Ok(Box::pin(async move {
            let confirm = ch
                .basic_publish(ex, rk, BasicPublishOptions::default(), &body, props)
                .await
                .map_err(|e| lost_or_refused(from_lapin(e, "basic.publish")))?;
            if confirms {
                match confirm.await.map_err(|e| lost_or_refused(from_lapin(e, "basic.publish")))? {
                    Confirmation::Nack(_) => return Err(nacked()),
                    Confirmation::Ack(_) | Confirmation::NotRequested => {}
                }
            }
            Ok(())
        }))
    }

    /// Starts a pipelined operation if the window has room, without waiting; gives it back otherwise
    /// (the async API then awaits the oldest, [`take_oldest`](Self::take_oldest), and tries again). An
    /// error is not explained yet: the caller awaits [`explain_async`](Self::explain_async).
    pub(crate) fn start_if_room(&self, mut op: InFlight) -> Result<Option<InFlight>> {
        self.check_not_closed_by_us()?;
        let mut q = self.inflight();
        // Drops what is done; never waits (the window holds at most WINDOW + 1).
        Self::settle(&mut q, WINDOW + 1).map_err(earlier)?;
        if q.len() >= WINDOW {
            return Ok(Some(op));
        }
        match poll_once(&mut op) {
            Poll::Ready(r) => r.map(|()| None),
            Poll::Pending => {
                q.push_back(op);
                Ok(None)
            }
        }
    }

    /// The oldest pipelined operation, taken out of the window for the caller to await.
    pub(crate) fn take_oldest(&self) -> Option<InFlight> {
        self.inflight().pop_front()
    }

    /// Publishes a batch and waits for all of the broker's confirms within `timeout`.
    ///
    /// An error says whether the batch may have reached the broker ([`Error::may_have_reached_broker`]):
    /// not when nothing was sent or the broker refused the one message (returned it, closed the channel
    /// over it); maybe when the connection failed after sending, no confirm came in time, the broker
    /// nacked, or other messages of a batch were sent.
    fn publish_confirmed(&self, batch: Vec<Outgoing>, mandatory: bool, timeout: Duration) -> Result<()> {
        self.check_not_closed_by_us()?;
        self.ensure_confirms()?;
        self.settle_inflight(true).map_err(earlier)?;
        let mut prepared = Vec::with_capacity(batch.len());
        for o in &batch {
            prepared.push(Self::prepare(&o.message, &o.exchange, &o.routing_key)?);
        }
        let opts = BasicPublishOptions { mandatory, immediate: false };
        let deadline = std::time::Instant::now() + timeout;
        let timed_out = || {
            Error::timeout(format!("no publisher confirm from the broker within {timeout:?}"))
                .with_may_have_reached_broker(true)
        };
        let several = batch.len() > 1;
        // Every publish is started (its frames queued) before any is waited for.
        let sends = batch
            .iter()
            .zip(prepared)
            .map(|(o, (ex, rk, props))| start(self.ch.basic_publish(ex, rk, opts, &o.message.body, props)))
            .collect();
        let sent = join_all(sends, Some(timeout)).ok_or_else(timed_out)?;
        // A message lapin refused to send (a closed channel) was not sent; others of the batch may have been.
        let any_sent = sent.iter().any(Result::is_ok);
        let confirms = sent
            .into_iter()
            .map(|r| r.map(start))
            .collect::<lapin::Result<Vec<_>>>()
            .map_err(|e| not_sent(e, any_sent))?;
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let results = join_all(confirms, Some(left))
            .ok_or_else(timed_out)?
            .into_iter()
            .collect::<lapin::Result<Vec<_>>>()
            .map_err(|e| unconfirmed(e, several))?;
        results.into_iter().try_for_each(|r| confirmed(r, several))
    }
}

impl Drop for AmqpChannel {
    /// Publishes already made reach the broker before lapin closes the channel (lapin sends the close
    /// ahead of queued publishes).
    fn drop(&mut self) {
        self.flush(FLUSH_TIMEOUT);
    }
}

impl Channel for AmqpChannel {
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        let name = short_string(&exchange.name, "exchange name")?;
        let args = to_amqp_table(&exchange.arguments)?;
        let options = ExchangeDeclareOptions {
            passive,
            durable: exchange.durable,
            auto_delete: exchange.auto_delete,
            internal: false,
            nowait: false,
        };
        self.call(self.ch.exchange_declare(name, kind(exchange.kind), options, args), || {
            format!("exchange.declare '{}'", exchange.name)
        })
    }

    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        let n = short_string(name, "exchange name")?;
        let options = ExchangeDeleteOptions { if_unused, nowait: false };
        self.call(self.ch.exchange_delete(n, options), || format!("exchange.delete '{name}'"))
    }

    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        let name = short_string(&queue.name, "queue name")?;
        let args = to_amqp_table(&queue.amqp_arguments())?;
        let options = QueueDeclareOptions {
            passive,
            durable: queue.durable,
            exclusive: queue.exclusive,
            auto_delete: queue.auto_delete,
            nowait: false,
        };
        let q = self.call(self.ch.queue_declare(name, options, args), || format!("queue.declare '{}'", queue.name))?;
        if queue.dead_letter_exchange.is_some() {
            self.dead_lettering.lock().unwrap_or_else(|e| e.into_inner()).insert(queue.name.clone());
        }
        Ok(QueueInfo::new(q.name().as_str(), u64::from(q.message_count()), q.consumer_count()))
    }

    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        let n = short_string(name, "queue name")?;
        let options = QueueDeleteOptions { if_unused, if_empty, nowait: false };
        let count = self.call(self.ch.queue_delete(n, options), || format!("queue.delete '{name}'"))?;
        Ok(u64::from(count))
    }

    fn bind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        let fut = self.ch.queue_bind(
            short_string(queue, "queue name")?,
            short_string(exchange, "exchange name")?,
            short_string(routing_key, "routing key")?,
            QueueBindOptions::default(),
            to_amqp_table(arguments)?,
        );
        self.call(fut, || format!("queue.bind '{queue}' to '{exchange}' with '{routing_key}'"))
    }

    fn unbind_queue(&self, queue: &str, exchange: &str, routing_key: &str, arguments: &FieldTable) -> Result<()> {
        let fut = self.ch.queue_unbind(
            short_string(queue, "queue name")?,
            short_string(exchange, "exchange name")?,
            short_string(routing_key, "routing key")?,
            to_amqp_table(arguments)?,
        );
        self.call(fut, || format!("queue.unbind '{queue}' from '{exchange}' with '{routing_key}'"))
    }

    fn purge_queue(&self, name: &str) -> Result<u64> {
        let n = short_string(name, "queue name")?;
        let count =
            self.call(self.ch.queue_purge(n, QueuePurgeOptions::default()), || format!("queue.purge '{name}'"))?;
        Ok(u64::from(count))
    }

    fn publish(&self, message: Message, exchange: &str, routing_key: &str, options: &PublishOptions) -> Result<()> {
        if options.confirm_timeout.is_some() || options.mandatory || self.confirm_publish {
            let timeout = options.confirm_timeout.unwrap_or(DEFAULT_CONFIRM_TIMEOUT);
            let out = Outgoing { message, exchange: exchange.to_owned(), routing_key: routing_key.to_owned() };
            return self.publish_confirmed(vec![out], options.mandatory, timeout);
        }
        self.publish_pipelined(message, exchange, routing_key)
    }

    fn publish_batch(&self, batch: Vec<Outgoing>, options: &PublishOptions) -> Result<()> {
        if options.confirm_timeout.is_some() || options.mandatory || self.confirm_publish {
            let timeout = options.confirm_timeout.unwrap_or(DEFAULT_CONFIRM_TIMEOUT);
            return self.publish_confirmed(batch, options.mandatory, timeout);
        }
        for o in batch {
            self.publish_pipelined(o.message, &o.exchange, &o.routing_key)?;
        }
        Ok(())
    }

    fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Message>> {
        let q = short_string(queue, "queue name")?;
        let got = self.call(self.ch.basic_get(q, BasicGetOptions { no_ack }), || format!("basic.get '{queue}'"))?;
        let Some(got) = got else { return Ok(None) };
        let lapin::message::Delivery { delivery_tag, exchange, routing_key, redelivered, properties, data, .. } =
            got.delivery;
        let envelope = Envelope {
            delivery_tag,
            exchange: exchange.as_str(),
            routing_key: routing_key.as_str(),
            redelivered,
            consumer_tag: None,
        };
        let mut message = to_message(data, &properties, envelope, &mut SharedNames::default());
        if !no_ack {
            message.bind_channel(self.arc()?);
        }
        Ok(Some(message))
    }

    fn consume(&self, queue: &str, consumer_tag: &str, no_ack: bool) -> Result<()> {
        self.consume_with(queue, consumer_tag, no_ack, &FieldTable::new())
    }

    fn consume_with(&self, queue: &str, consumer_tag: &str, no_ack: bool, arguments: &FieldTable) -> Result<()> {
        let q = short_string(queue, "queue name")?;
        let tag = short_string(consumer_tag, "consumer tag")?;
        let options = BasicConsumeOptions { no_ack, ..Default::default() };
        let fut = self.ch.basic_consume(q, tag, options, to_amqp_table(arguments)?);
        let stream = self.call(fut, || format!("basic.consume '{queue}'"))?;
        self.deliveries.add(Entry::new(Arc::from(consumer_tag), stream, self.arc()?, (*self.ch).clone(), no_ack));
        Ok(())
    }

    fn cancel(&self, consumer_tag: &str) -> Result<()> {
        let entry = self.deliveries.remove(consumer_tag);
        let tag = short_string(consumer_tag, "consumer tag")?;
        let res = if self.ch.status().connected() {
            self.call(self.ch.basic_cancel(tag, BasicCancelOptions::default()), || {
                format!("basic.cancel '{consumer_tag}'")
            })
        } else {
            Ok(())
        };
        if let Some(e) = entry {
            e.requeue_leftovers();
        }
        res
    }

    fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        let n = tag_number(tag)?;
        self.fire(self.ch.basic_ack(n, BasicAckOptions::default()), "basic.ack")
    }

    /// The queue's own dead-letter exchange when this channel declared it with one (reject without
    /// requeue: RabbitMQ routes it there, with its `x-death` header); otherwise a copy to `target.to`.
    fn dead_letter(&self, message: &Message, target: &DeadLetter<'_>) -> Result<()> {
        if self.dead_lettering.lock().unwrap_or_else(|e| e.into_inner()).contains(target.queue) {
            return self.reject(&message.delivery_info.delivery_tag, false);
        }
        dead_letter_by_copy(self, message, target)
    }

    fn ack_deferred(&self, tag: &DeliveryTag) -> Result<()> {
        let n = tag_number(tag)?;
        self.hand_over(self.ch.basic_ack(n, BasicAckOptions::default()), "basic.ack")
    }

    fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()> {
        let n = tag_number(tag)?;
        self.fire(self.ch.basic_reject(n, BasicRejectOptions { requeue }), "basic.reject")
    }

    fn recover(&self, requeue: bool) -> Result<()> {
        self.call(self.ch.basic_recover(BasicRecoverOptions { requeue }), || "basic.recover".into())
    }

    fn qos(&self, prefetch_count: u16) -> Result<()> {
        self.call(self.ch.basic_qos(prefetch_count, BasicQosOptions::default()), || "basic.qos".into())
    }

    fn close(&self) -> Result<()> {
        self.closed_by_us.store(true, Ordering::Release);
        // Deliveries lapin holds for this channel's consumers go back to their queues with the channel.
        drop(self.deliveries.remove_channel(self.ch.id()));
        if !self.ch.status().connected() {
            return Ok(());
        }
        let flushed = self.settle_inflight(true);
        // If the connection ends meanwhile, lapin may never answer the close: the channel's state tells.
        let mut close = std::pin::pin!(self.ch.close(200, "OK".into()));
        let deadline = std::time::Instant::now() + CLOSE_TIMEOUT;
        let status = self.ch.status();
        let closed = loop {
            match block_on(close.as_mut(), Some(Duration::from_millis(50))) {
                Some(Ok(())) => break Ok(()),
                Some(Err(e)) if !status.connected() => {
                    tracing::debug!("closing channel {}: {e}", self.ch.id());
                    break Ok(());
                }
                Some(Err(e)) => break Err(from_lapin(e, "channel.close")),
                None if !status.connected() && !status.closing() => break Ok(()),
                None if std::time::Instant::now() >= deadline => {
                    break Err(Error::timeout("channel.close: no answer from the broker"));
                }
                None => {}
            }
        };
        flushed.and(closed)
    }

    fn is_open(&self) -> bool {
        self.ch.status().connected()
    }

    /// lapin is async underneath: publishes, acks and rejects are awaited (see `nonblocking.rs`).
    fn nonblocking(&self) -> Option<&dyn kombu_core::AsyncChannel> {
        Some(self)
    }
}
