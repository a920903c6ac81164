//! The BENCH.md workload on this backend, for `cargo xtask bench` and the `redis_bench` example.
//!
//! Workload (the same as the Python anchor `kombu_py_bench.py`): declare a direct exchange `bench_ex` and
//! a queue `bench_q` bound with `bench` (non-durable), purge, publish N JSON messages
//! `{"i": i, "p": "x" * SIZE}` with one `Producer::publish` call each, then consume all N with a consumer
//! (prefetch 100) that acks each one. Then the batched path: the same N messages through
//! `Producer::send_batch` (pipelined `Channel::publish_batch`), and purge.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kombu_core::{Connection, Consumer, Error, Exchange, Message, Outgoing, Producer, Queue, Result};
use serde_json::json;

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
    /// Messages.
    pub n: usize,
    /// Body padding size.
    pub size: usize,
    /// Publish rate, one publish call per message.
    pub publish_per_sec: f64,
    /// Consume-with-ack rate.
    pub consume_per_sec: f64,
    /// Publish rate through `Channel::publish_batch` (pipelined).
    pub batch_publish_per_sec: f64,
}

impl std::fmt::Display for BenchResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kombu-rs redis n={} size={} publish={:.0} msg/s consume={:.0} msg/s batch_publish={:.0} msg/s",
            self.n, self.size, self.publish_per_sec, self.consume_per_sec, self.batch_publish_per_sec
        )
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Runs the workload against `url` with `n` messages padded to `size` bytes.
pub fn run(url: &str, n: usize, size: usize) -> Result<BenchResult> {
    crate::link();
    let conn = Connection::open(url)?;
    let ch = conn.channel()?;
    let ex = Exchange::direct(EXCHANGE).durable(false);
    let q = Queue::with_exchange(QUEUE, ex.clone(), ROUTING_KEY).durable(false);
    ch.declare(&q)?;
    ch.purge_queue(QUEUE)?;
    let pad = "x".repeat(size);

    let producer = Producer::new(&conn)?.exchange(ex.clone()).routing_key(ROUTING_KEY);
    let t0 = Instant::now();
    for i in 0..n {
        producer.publish(&json!({"i": i, "p": pad})).send()?;
    }
    let publish = t0.elapsed();

    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    let mut consumer = Consumer::new(&conn, [q.clone()]).prefetch(PREFETCH).on_message(move |m| {
        if m.ack().is_ok() {
            g.fetch_add(1, Ordering::Relaxed);
        }
    });
    let t1 = Instant::now();
    consumer.consume()?;
    while got.load(Ordering::Relaxed) < n {
        conn.drain_events(Some(Duration::from_secs(5)))?;
    }
    let consume = t1.elapsed();
    consumer.cancel()?;

    let batch: Vec<Outgoing> = (0..n)
        .map(|i| {
            let body = serde_json::to_vec(&json!({"i": i, "p": pad})).unwrap_or_default();
            Outgoing {
                message: Message::new(body).content_type("application/json").content_encoding("utf-8"),
                exchange: EXCHANGE.into(),
                routing_key: ROUTING_KEY.into(),
            }
        })
        .collect();
    let t2 = Instant::now();
    ch.publish_batch(batch, &kombu_core::PublishOptions::default())?;
    let batched = t2.elapsed();
    let left = ch.purge_queue(QUEUE)?;
    if left != n as u64 {
        return Err(Error::precondition(format!("batched publish left {left} messages, expected {n}")));
    }
    conn.close()?;
    Ok(BenchResult {
        n,
        size,
        publish_per_sec: rate(n, publish),
        consume_per_sec: rate(n, consume),
        batch_publish_per_sec: rate(n, batched),
    })
}
