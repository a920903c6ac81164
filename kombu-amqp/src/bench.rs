//! The BENCH.md workload on raw lapin, without kombu-rs: the ceiling that `cargo xtask bench` (through
//! the `amqp_ceiling` example) sets beside `kombu bench` and the Python Kombu anchor.
//!
//! Workload: declare a direct exchange `bench_ex` and a queue `bench_q` bound with `bench` (both
//! non-durable, as in the Python anchor), purge, publish N JSON messages `{"i": i, "p": "x" * SIZE}` one
//! publish call each, then consume all N with a consumer (prefetch 100) that acks each one.
//!
//! [`RawStyle::Confirmed`] publishes with publisher confirms, a window of confirms outstanding: the
//! ceiling for confirmed `send()` futures in flight on kombu-amqp's async API.
//!
//! The publish figure stops the clock after a passive `queue.declare` on the publishing channel has been
//! answered, so every publish has reached the broker, not just a local buffer.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use kombu_core::{Error, Result};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable as AmqpTable;
use lapin::BasicProperties;
use serde_json::json;

use crate::errors::from_lapin;
use crate::options;
use crate::runtime::{block_on, poll_once, runtime};

/// Exchange of the workload.
pub const EXCHANGE: &str = "bench_ex";
/// Queue of the workload.
pub const QUEUE: &str = "bench_q";
/// Routing key of the workload.
pub const ROUTING_KEY: &str = "bench";
/// Prefetch of the consumer.
pub const PREFETCH: u16 = 100;

/// Figures of one run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BenchResult {
    /// What was measured (`kombu-rs amqp`, `raw lapin`).
    pub label: String,
    /// Messages.
    pub n: usize,
    /// Body padding size.
    pub size: usize,
    /// Publish rate, one publish call per message.
    pub publish_per_sec: f64,
    /// Consume-with-ack rate.
    pub consume_per_sec: f64,
}

impl std::fmt::Display for BenchResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} n={} size={} publish={:.0} msg/s consume={:.0} msg/s",
            self.label, self.n, self.size, self.publish_per_sec, self.consume_per_sec
        )
    }
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn body(i: usize, payload: &str) -> serde_json::Value {
    json!({"i": i, "p": payload})
}

/// How the raw lapin loop waits for lapin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RawStyle {
    /// Each publish and each ack awaited until lapin has written its frame (lapin's examples' style).
    AwaitEach,
    /// Publishes started without waiting, at most 512 outstanding, and acks only started (what kombu-amqp
    /// does): the ceiling for kombu-amqp.
    Pipelined,
    /// Publisher confirms on, each publish finished when its confirm came, at most this many outstanding;
    /// acks as `Pipelined`.
    Confirmed(usize),
}

/// An outstanding publish.
type Op = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Outstanding publishes, started and not yet finished, at most `depth`.
struct Window {
    ops: VecDeque<Op>,
    depth: usize,
}

impl Window {
    fn push(&mut self, mut op: Op) -> Result<()> {
        while let Some(front) = self.ops.front_mut() {
            match poll_once(front) {
                Poll::Ready(r) => {
                    self.ops.pop_front();
                    r?;
                }
                Poll::Pending => break,
            }
        }
        if self.ops.len() >= self.depth {
            if let Some(front) = self.ops.pop_front() {
                block_on(front, None).unwrap_or(Ok(()))?;
            }
        }
        if poll_once(&mut op).is_pending() {
            self.ops.push_back(op);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        while let Some(front) = self.ops.pop_front() {
            block_on(front, None).unwrap_or(Ok(()))?;
        }
        Ok(())
    }
}

/// The same work on raw lapin, without kombu: bodies serialized with serde_json as kombu does, the
/// consumer read as a lapin stream, each message acked.
pub fn raw_lapin(url: &str, n: usize, size: usize, style: RawStyle) -> Result<BenchResult> {
    let params = options::parse(&url.parse()?)?;
    let rt = runtime()?;
    let payload = "x".repeat(size);
    let wait = |what: &str, r: Option<lapin::Result<()>>| match r {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(from_lapin(e, what)),
        None => Err(Error::timeout(what.to_owned())),
    };
    let conn =
        match block_on(lapin::Connection::connect_uri_with_runtime(params.uri.clone(), Default::default(), rt), None) {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Err(from_lapin(e, "connect")),
            None => return Err(Error::timeout("connect")),
        };
    let ch = match block_on(conn.create_channel(), None) {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Err(from_lapin(e, "channel")),
        None => return Err(Error::timeout("channel")),
    };
    let setup = async {
        let not_durable = ExchangeDeclareOptions::default();
        ch.exchange_declare(EXCHANGE.into(), lapin::ExchangeKind::Direct, not_durable, AmqpTable::default()).await?;
        ch.queue_declare(QUEUE.into(), QueueDeclareOptions::default(), AmqpTable::default()).await?;
        let bind = QueueBindOptions::default();
        ch.queue_bind(QUEUE.into(), EXCHANGE.into(), ROUTING_KEY.into(), bind, AmqpTable::default()).await?;
        ch.queue_purge(QUEUE.into(), QueuePurgeOptions::default()).await?;
        if let RawStyle::Confirmed(_) = style {
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
        }
        Ok(())
    };
    wait("setup", block_on(setup, None))?;
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2);
    let depth = match style {
        RawStyle::Confirmed(depth) => depth.max(1),
        _ => 512,
    };
    let mut window = Window { ops: VecDeque::new(), depth };

    let t0 = Instant::now();
    for i in 0..n {
        let data = serde_json::to_vec(&body(i, &payload)).map_err(|e| Error::serialization(e.to_string()))?;
        let ch2 = ch.clone();
        let p = props.clone();
        let publish = async move {
            let opts = BasicPublishOptions::default();
            let confirm = ch2.basic_publish(EXCHANGE.into(), ROUTING_KEY.into(), opts, &data, p).await?;
            // Without confirm.select this is `NotRequested` at once.
            Ok(confirm.await?.is_nack())
        };
        let publish = async move {
            match publish.await {
                Ok(false) => Ok(()),
                Ok(true) => Err(Error::channel("raw lapin bench: the broker nacked a publish")),
                Err(e) => Err(from_lapin(e, "publish")),
            }
        };
        match style {
            RawStyle::AwaitEach => block_on(publish, None).unwrap_or(Ok(()))?,
            _ => window.push(Box::pin(publish))?,
        }
    }
    window.finish()?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let flushed = async { ch.queue_declare(QUEUE.into(), passive, AmqpTable::default()).await.map(|_| ()) };
    wait("flush", block_on(flushed, None))?;
    let publish = t0.elapsed();

    wait("qos", block_on(ch.basic_qos(PREFETCH, BasicQosOptions::default()), None))?;
    let consume =
        ch.basic_consume(QUEUE.into(), "raw-bench".into(), BasicConsumeOptions::default(), AmqpTable::default());
    let mut consumer = match block_on(consume, None) {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Err(from_lapin(e, "consume")),
        None => return Err(Error::timeout("consume")),
    };
    let t2 = Instant::now();
    let mut got = 0;
    while got < n {
        let d = match block_on(consumer.next(), Some(Duration::from_secs(30))) {
            Some(Some(Ok(d))) => d,
            Some(Some(Err(e))) => return Err(from_lapin(e, "consume")),
            Some(None) | None => break,
        };
        let _: serde_json::Value = serde_json::from_slice(&d.data).map_err(|e| Error::serialization(e.to_string()))?;
        let ack = ch.basic_ack(d.delivery_tag, BasicAckOptions::default());
        match style {
            RawStyle::AwaitEach => wait("ack", block_on(ack, None))?,
            _ => {
                // Started, not waited for: lapin writes it ahead of publishes, and refuses at once on a closed channel.
                let mut ack = std::pin::pin!(ack);
                if let Poll::Ready(Err(e)) = poll_once(&mut ack) {
                    return Err(from_lapin(e, "ack"));
                }
            }
        }
        got += 1;
    }
    let consume = t2.elapsed();
    wait("close", block_on(conn.close(200, "OK".into()), Some(Duration::from_secs(10))))?;
    if got < n {
        return Err(Error::channel(format!("raw lapin bench: consumer ended after {got} of {n} messages")));
    }
    let label = match style {
        RawStyle::AwaitEach => "raw lapin (await each)".to_owned(),
        RawStyle::Confirmed(depth) => format!("raw lapin ({depth} confirms outstanding)"),
        _ => "raw lapin (pipelined)".to_owned(),
    };
    Ok(BenchResult { label, n, size, publish_per_sec: rate(n, publish), consume_per_sec: rate(n, consume) })
}
