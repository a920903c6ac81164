//! `kombu bench`: the BENCH.md workload (publish N JSON messages one by one, then consume them all with
//! acks) on any broker, with a progress bar on stderr, printing publish and consume rates. `--async`
//! runs the same workload through `kombu::aio` (`bench_async.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use kombu_core::{Accept, Consumer, Error, ErrorKind, Exchange, Producer, Queue};
use serde::{Deserialize, Serialize};

use super::args::BenchArgs;
use super::bench_allocations::Phase;
use super::{connect, Io, Outcome, EXIT_OK};

/// Unacknowledged messages in flight while consuming, as the Python Kombu anchor sets it (for every
/// transport but memory, where the anchor sets none).
const PREFETCH: u16 = 100;

/// The body of each benchmark message: `{"i": i, "p": "x" * SIZE}`.
#[derive(Serialize)]
pub(super) struct BenchBody<'a> {
    pub(super) i: u64,
    pub(super) p: &'a str,
}

/// The body as the consumer decodes it (owned, as Python Kombu decodes it into a dict).
#[derive(Deserialize)]
pub(super) struct Received {
    #[allow(dead_code)]
    i: u64,
    #[allow(dead_code)]
    p: String,
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// Messages published and consumed.
    pub count: u64,
    /// Time taken to publish them all.
    pub publish: Duration,
    /// Time taken to consume and acknowledge them all.
    pub consume: Duration,
    /// Time taken to publish them all in batches, when asked.
    pub batch: Option<Duration>,
    /// Time taken to publish them all with confirms, several in flight (`--async --in-flight`), when asked.
    pub confirmed: Option<Duration>,
    /// Time taken to publish them all with confirms from `--producers` threads or tasks, when asked.
    pub producers: Option<Producers>,
    /// Latencies at the `--rate`, when asked.
    pub latency: Option<super::bench_latency::Latency>,
    /// Allocations per message of the publish and the consume phases, when counted.
    pub allocations: [Option<super::bench_allocations::PerMessage>; 2],
}

/// Confirmed publishes from several threads (or tasks), each awaiting its own sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Producers {
    /// How many threads or tasks.
    pub count: u16,
    /// Time taken with every producer on the run's one connection (and its default channel).
    pub shared: Duration,
    /// Time taken with a connection per producer.
    pub own: Duration,
}

impl BenchResult {
    /// Messages published per second.
    pub fn publish_rate(&self) -> f64 {
        rate(self.count, self.publish)
    }
    /// Messages consumed (and acknowledged) per second.
    pub fn consume_rate(&self) -> f64 {
        rate(self.count, self.consume)
    }
    /// Messages published per second in batches, when measured.
    pub fn batch_rate(&self) -> Option<f64> {
        self.batch.map(|d| rate(self.count, d))
    }
    /// Confirmed messages published per second with several in flight, when measured.
    pub fn confirmed_rate(&self) -> Option<f64> {
        self.confirmed.map(|d| rate(self.count, d))
    }
    /// Confirmed messages published per second by several producers on one connection, and with a
    /// connection each, when measured.
    pub fn producer_rates(&self) -> Option<(f64, f64)> {
        self.producers.as_ref().map(|p| (rate(self.count, p.shared), rate(self.count, p.own)))
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Runs `kombu bench`.
pub(crate) fn run(args: &BenchArgs, io: &mut Io<'_>) -> Outcome {
    if args.asynchronous {
        #[cfg(feature = "tokio")]
        return super::bench_async::run(args, io);
        #[cfg(not(feature = "tokio"))]
        return Err(Error::invalid("kombu bench --async needs the `tokio` feature of the kombu crate").into());
    }
    let conn = connect(&args.url)?;
    let result = workload(&conn, args)?;
    report(args, &conn.url(), &result, io)?;
    conn.close()?;
    Ok(EXIT_OK)
}

/// Prints what a run measured: one line of text, or one JSON object.
pub(super) fn report(args: &BenchArgs, url: &str, result: &BenchResult, io: &mut Io<'_>) -> std::io::Result<()> {
    let transport = args.url.split_once("://").map_or(args.url.as_str(), |(scheme, _)| scheme);
    let mode = if args.asynchronous { " async" } else { "" };
    if args.json {
        let line = serde_json::json!({
            "transport": transport,
            "async": args.asynchronous,
            "url": url,
            "count": result.count,
            "size": args.size,
            "queues": args.queues,
            "consumers": args.consumers,
            "publish_secs": result.publish.as_secs_f64(),
            "consume_secs": result.consume.as_secs_f64(),
            "publish_per_sec": result.publish_rate(),
            "consume_per_sec": result.consume_rate(),
            "batch_publish_per_sec": result.batch_rate(),
            "in_flight": args.in_flight,
            "confirmed_publish_per_sec": result.confirmed_rate(),
            "producers": args.producers,
            "producers_shared_per_sec": result.producer_rates().map(|r| r.0),
            "producers_own_per_sec": result.producer_rates().map(|r| r.1),
            "latency_rate": args.rate,
            "latency_p50_us": result.latency.as_ref().map(|l| micros(l.p50)),
            "latency_p99_us": result.latency.as_ref().map(|l| micros(l.p99)),
            "latency_max_us": result.latency.as_ref().map(|l| micros(l.max)),
            "publish_allocations_per_msg": result.allocations[0].map(|a| a.allocations),
            "publish_alloc_bytes_per_msg": result.allocations[0].map(|a| a.bytes),
            "consume_allocations_per_msg": result.allocations[1].map(|a| a.allocations),
            "consume_alloc_bytes_per_msg": result.allocations[1].map(|a| a.bytes),
        });
        writeln!(io.stdout, "{line}")
    } else {
        let batch = result.batch_rate().map(|r| format!(" batch={r:.0} msg/s")).unwrap_or_default();
        let mut queues = if args.queues > 1 { format!(" queues={}", args.queues) } else { String::new() };
        if args.consumers > 1 {
            queues += &format!(" consumers={}", args.consumers);
        }
        let confirmed = match (result.confirmed_rate(), args.in_flight) {
            (Some(r), Some(k)) => format!(" confirmed={r:.0} msg/s ({k} in flight)"),
            _ => String::new(),
        };
        let producers = match (result.producer_rates(), args.producers) {
            (Some((shared, own)), Some(k)) => {
                format!(" producers={k} one_connection={shared:.0} msg/s a_connection_each={own:.0} msg/s")
            }
            _ => String::new(),
        };
        let latency = match &result.latency {
            Some(l) => format!(
                " latency@{}/s p50={:.0}us p99={:.0}us max={:.0}us",
                l.rate,
                micros(l.p50),
                micros(l.p99),
                micros(l.max)
            ),
            None => String::new(),
        };
        let latency = match result.allocations {
            [Some(p), Some(c)] => format!(
                "{latency} allocations/msg publish={:.1} ({:.0} B) consume={:.1} ({:.0} B)",
                p.allocations, p.bytes, c.allocations, c.bytes
            ),
            _ => latency,
        };
        writeln!(
            io.stdout,
            "kombu-rs {transport}{mode} n={} size={}{queues} publish={:.0} msg/s consume={:.0} msg/s{batch}{confirmed}{producers}{latency}",
            result.count,
            args.size,
            result.publish_rate(),
            result.consume_rate()
        )
    }
}

/// The exchange and queues of the workload, all transient: one queue bound with the key `bench` (the
/// anchor's), or with `--queues N`, queues `<queue>-0` … `<queue>-(N-1)` bound with keys `bench-0` …,
/// the messages published to them in turn and consumed by one consumer of them all.
#[derive(Clone)]
pub(super) struct Entities {
    pub(super) exchange: Exchange,
    pub(super) queues: Vec<Queue>,
    keys: Vec<String>,
}

impl Entities {
    pub(super) fn new(args: &BenchArgs) -> Entities {
        let exchange = Exchange::direct(args.exchange.as_str()).durable(false);
        let n = usize::from(args.queues);
        let (names, keys): (Vec<String>, Vec<String>) = if n == 1 {
            (vec![args.queue.clone()], vec!["bench".to_owned()])
        } else {
            (0..n).map(|k| (format!("{}-{k}", args.queue), format!("bench-{k}"))).unzip()
        };
        let queues = names
            .iter()
            .zip(&keys)
            .map(|(name, key)| Queue::with_exchange(name.as_str(), exchange.clone(), key.as_str()).durable(false))
            .collect();
        Entities { exchange, queues, keys }
    }

    /// The routing key of message `i`: the queues take turns.
    pub(super) fn key(&self, i: u64) -> &str {
        let at = usize::try_from(i % self.keys.len() as u64).unwrap_or(0);
        &self.keys[at]
    }

    /// Whether the run made queues of its own (`--queues` above 1), deleted when it ends.
    pub(super) fn own_queues(&self) -> bool {
        self.queues.len() > 1
    }
}

/// The consumer's prefetch window: the anchor's, none on memory (where the anchor sets none).
pub(super) fn prefetch(args: &BenchArgs) -> Option<u16> {
    (!args.url.starts_with("memory:")).then_some(PREFETCH)
}

fn workload(conn: &crate::Connection, args: &BenchArgs) -> Result<BenchResult, Error> {
    let n = args.count;
    let ents = Entities::new(args);
    let channel = conn.default_channel()?;
    for queue in &ents.queues {
        channel.declare(queue)?;
        channel.purge_queue(&queue.name)?;
    }

    // Unconfirmed publishes, as the Python Kombu anchor makes them.
    let producer = Producer::new(conn)?.exchange(ents.exchange.clone()).routing_key("bench").confirm_timeout(None);
    let payload = "x".repeat(args.size);
    let bar = progress_bar(args, n, "publish");
    let counted = Phase::start();
    let started = Instant::now();
    for i in 0..n {
        producer.publish(&BenchBody { i, p: &payload }).routing_key(ents.key(i)).send()?;
        if i % 256 == 0 {
            bar.set_position(i);
        }
    }
    // One answered round trip on the same channel: every publish before it has reached the broker.
    channel.declare_queue(&ents.queues[0], true)?;
    let publish = started.elapsed();
    let publish_allocations = counted.per_message(n);
    bar.finish_and_clear();

    let counted = Phase::start();
    let consume = match args.consumers {
        1 => consume_one(conn, args, &ents)?,
        k => super::bench_consumers::blocking(args, &ents, k)?,
    };
    let allocations = [publish_allocations, counted.per_message(n)];
    let batch = match args.batch {
        Some(size) => Some(batched(&producer, &payload, n, size, &ents, &channel)?),
        None => None,
    };
    let producers = match args.producers {
        Some(k) => Some(Producers {
            count: k,
            shared: from_threads(conn, args, &ents, &payload, k, &channel, false)?,
            own: from_threads(conn, args, &ents, &payload, k, &channel, true)?,
        }),
        None => None,
    };
    let latency = match args.rate {
        Some(rate) => Some(super::bench_latency::blocking(conn, args, &ents, rate)?),
        None => None,
    };
    if ents.own_queues() {
        for queue in &ents.queues {
            channel.delete_queue(&queue.name, false, false)?;
        }
    }
    Ok(BenchResult { count: n, publish, consume, batch, confirmed: None, producers, latency, allocations })
}

/// Publishes the N messages again with confirms from `k` threads, message `i` from thread `i % k`, each
/// with a producer of its own on `conn` (so on its default channel, as `Producer::new` makes them) or,
/// with `own`, on a connection of its own; then purges them. The time from when every thread is ready
/// until the last publish returned.
fn from_threads(
    conn: &crate::Connection,
    args: &BenchArgs,
    ents: &Entities,
    payload: &str,
    k: u16,
    channel: &std::sync::Arc<dyn kombu_core::Channel>,
    own: bool,
) -> Result<Duration, Error> {
    let n = args.count;
    let ready = std::sync::Barrier::new(usize::from(k) + 1);
    let took = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..u64::from(k))
            .map(|t| {
                let ready = &ready;
                scope.spawn(move || {
                    let made = (|| {
                        let conn = if own { connect(&args.url)? } else { conn.clone() };
                        conn.connect()?;
                        let producer = Producer::new(&conn)?.exchange(ents.exchange.clone()).auto_declare(false);
                        Ok::<_, Error>((conn, producer))
                    })();
                    ready.wait();
                    let (conn, producer) = made?;
                    for i in (t..n).step_by(usize::from(k)) {
                        producer.publish(&BenchBody { i, p: payload }).routing_key(ents.key(i)).send()?;
                    }
                    if own {
                        conn.close()?;
                    }
                    Ok::<_, Error>(())
                })
            })
            .collect();
        ready.wait();
        let started = Instant::now();
        for thread in threads {
            thread.join().map_err(|_| Error::state("bench: a producer thread panicked"))??;
        }
        Ok::<_, Error>(started.elapsed())
    })?;
    purged_all(ents, channel, n, "confirmed publishes from several producers")?;
    Ok(took)
}

/// Purges the workload's queues, which must have held the `n` messages just published.
pub(super) fn purged_all(
    ents: &Entities,
    channel: &std::sync::Arc<dyn kombu_core::Channel>,
    n: u64,
    what: &str,
) -> Result<(), Error> {
    let mut left = 0;
    for queue in &ents.queues {
        left += channel.purge_queue(&queue.name)?;
    }
    if left != n {
        return Err(Error::precondition(format!("bench: {what} left {left} of {n} messages in the queue")));
    }
    Ok(())
}

/// Consumes the N messages with one consumer on `conn`, acking each: the time it took.
fn consume_one(conn: &crate::Connection, args: &BenchArgs, ents: &Entities) -> Result<Duration, Error> {
    let n = args.count;
    let got = Arc::new(AtomicU64::new(0));
    let ack_error: Arc<Mutex<Option<Error>>> = Arc::default();
    let (seen, failed) = (got.clone(), ack_error.clone());
    let mut consumer = Consumer::new(conn, ents.queues.clone()).accept(Accept::new(["json"])?);
    if let Some(window) = prefetch(args) {
        consumer = consumer.prefetch(window);
    }
    let deferred = args.ack_deferred;
    let consumer = consumer.callback(move |_: Received, message| {
        match if deferred { message.ack_deferred() } else { message.ack() } {
            Ok(()) => {
                seen.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            }
        }
    });
    let bar = progress_bar(args, n, "consume");
    let started = Instant::now();
    let subscription = consumer.consume()?;
    while got.load(Ordering::Relaxed) < n {
        if let Err(e) = conn.drain_events(Some(args.idle_timeout)) {
            if e.kind() == ErrorKind::Timeout {
                return Err(Error::timeout(format!(
                    "bench: only {} of {n} messages came back (none for {:?})",
                    got.load(Ordering::Relaxed),
                    args.idle_timeout
                )));
            }
            return Err(e);
        }
        if let Some(e) = ack_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        bar.set_position(got.load(Ordering::Relaxed));
    }
    let consume = started.elapsed();
    bar.finish_and_clear();
    subscription.cancel()?;
    Ok(consume)
}

/// Passes of the batched publish; the median is reported. A batched publish of N messages is over in
/// milliseconds, so one pass is at the mercy of the scheduler.
const BATCH_PASSES: usize = 3;

/// Publishes the N messages again in batches of `size`, then purges them, `BATCH_PASSES` times: the
/// median time of a pass.
fn batched(
    producer: &Producer,
    payload: &str,
    n: u64,
    size: u64,
    ents: &Entities,
    channel: &std::sync::Arc<dyn kombu_core::Channel>,
) -> Result<Duration, Error> {
    let mut passes = Vec::with_capacity(BATCH_PASSES);
    for _ in 0..BATCH_PASSES {
        let started = Instant::now();
        let mut i = 0;
        while i < n {
            let end = (i + size).min(n);
            let batch = (i..end)
                .map(|i| producer.publish(&BenchBody { i, p: payload }).routing_key(ents.key(i)).into_outgoing())
                .collect::<Result<_, _>>()?;
            producer.send_batch(batch)?;
            i = end;
        }
        passes.push(started.elapsed());
        purged_all(ents, channel, n, "batched publish")?;
    }
    passes.sort();
    Ok(passes[passes.len() / 2])
}

/// Largest `kombu bench --size`: 64 MiB.
const MAX_BODY_SIZE: usize = 64 << 20;

/// A benchmark body size in bytes (`--size`), at most [`MAX_BODY_SIZE`].
pub(super) fn parse_body_size(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("'{s}' is not a number of bytes"))?;
    if n > MAX_BODY_SIZE {
        return Err(format!("{n} bytes is more than the largest body, {MAX_BODY_SIZE} (64 MiB)"));
    }
    Ok(n)
}

pub(super) fn progress_bar(args: &BenchArgs, len: u64, what: &'static str) -> ProgressBar {
    if args.no_progress {
        return ProgressBar::hidden();
    }
    // Drawn only when stderr is a terminal.
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{prefix:>7} [{bar:40}] {pos}/{len} {rate} eta {eta}") {
        let style =
            style.progress_chars("=> ").with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} msg/s", state.per_sec());
            });
        bar.set_style(style);
    }
    bar.set_prefix(what);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_messages_per_second() {
        let r = BenchResult {
            count: 1000,
            publish: Duration::from_millis(500),
            consume: Duration::from_secs(2),
            batch: Some(Duration::from_millis(100)),
            confirmed: Some(Duration::from_millis(250)),
            producers: Some(Producers { count: 16, shared: Duration::from_millis(125), own: Duration::from_secs(1) }),
            latency: None,
            allocations: [None, None],
        };
        assert_eq!(r.producer_rates(), Some((8000.0, 1000.0)));
        assert_eq!(r.batch_rate(), Some(10_000.0));
        assert_eq!(r.confirmed_rate(), Some(4000.0));
        assert_eq!(r.publish_rate(), 2000.0);
        assert_eq!(r.consume_rate(), 500.0);
        // A run too fast to measure does not divide by zero.
        assert!(rate(1, Duration::ZERO).is_finite());
    }

    #[test]
    fn sizes_and_queue_counts_are_bounded() {
        use clap::Parser;
        assert_eq!(parse_body_size("1048576"), Ok(1 << 20));
        assert!(parse_body_size("67108865").is_err_and(|e| e.contains("64 MiB")));
        assert!(parse_body_size("-1").is_err());
        let parsed = |extra: &[&str]| {
            super::super::args::Cli::try_parse_from([&["kombu", "bench", "memory://"][..], extra].concat())
        };
        assert!(parsed(&["--queues", "1000"]).is_ok());
        assert!(parsed(&["--queues", "0"]).is_err());
        assert!(parsed(&["--queues", "10001"]).is_err());
        assert!(parsed(&["--size", "999999999999"]).is_err());
        assert!(parsed(&["--producers", "256"]).is_ok());
        assert!(parsed(&["--producers", "0"]).is_err());
        assert!(parsed(&["--producers", "257"]).is_err());
    }

    #[test]
    fn one_queue_is_the_anchors_and_more_take_turns() {
        use clap::Parser;
        let args = |extra: &[&str]| match super::super::args::Cli::try_parse_from(
            [&["kombu", "bench", "memory://"][..], extra].concat(),
        ) {
            Ok(super::super::args::Cli { command: super::super::args::Command::Bench(b), .. }) => b,
            other => panic!("not a bench command: {other:?}"),
        };
        let one = Entities::new(&args(&[]));
        assert_eq!((one.queues.len(), one.queues[0].name.as_str(), one.key(7)), (1, "bench_q", "bench"));
        assert!(!one.own_queues());
        let three = Entities::new(&args(&["--queues", "3", "--queue", "q"]));
        let names: Vec<&str> = three.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["q-0", "q-1", "q-2"]);
        assert_eq!(
            [three.key(0), three.key(1), three.key(2), three.key(3)],
            ["bench-0", "bench-1", "bench-2", "bench-0"]
        );
        assert!(three.own_queues());
    }

    #[test]
    fn body_is_the_bench_md_shape() {
        let body = serde_json::to_value(BenchBody { i: 7, p: "xx" }).unwrap();
        assert_eq!(body, serde_json::json!({"i": 7, "p": "xx"}));
    }
}
