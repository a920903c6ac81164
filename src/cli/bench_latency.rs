//! `kombu bench --rate R`: latency at a fixed rate. After the workload, messages are published at R a
//! second (unconfirmed, as the workload's, to its queues in turn) while a consumer on a connection of
//! its own acks them; each message's latency runs from the instant its publish began until its
//! consumer has it. (Not from the instant it was due: the publisher's timer wakes late by up to a
//! millisecond on tokio and by tens of microseconds on a thread, which is not the library's time.)

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use kombu_core::{Accept, Consumer, Error, ErrorKind, Producer};
use serde::{Deserialize, Serialize};

use super::args::BenchArgs;
use super::bench::{prefetch, Entities};
use super::bench_consumers::Progress;
use super::connect;

/// How long the latency run publishes: R messages a second for this long (fewer for large bodies).
const SPAN: Duration = Duration::from_secs(2);

/// Most body bytes the latency run publishes.
const MOST_BYTES: u64 = 64 << 20;

/// Latencies at a fixed rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Messages published a second.
    pub rate: u32,
    /// Messages measured.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Highest.
    pub max: Duration,
}

/// A message of the latency run: the workload's body with the instant its publish began, in
/// nanoseconds since the run began.
#[derive(Serialize)]
struct Stamped<'a> {
    i: u64,
    p: &'a str,
    due: u64,
}

/// The body of a received message (owned).
#[derive(Deserialize)]
struct Due {
    due: u64,
}

/// Messages for a run at `rate`: [`SPAN`] of them, at most `--count` and [`MOST_BYTES`] of bodies, at
/// least 10.
pub(super) fn count_for(rate: u32, count: u64, size: usize) -> u64 {
    let span = u64::from(rate) * SPAN.as_secs();
    let bytes = MOST_BYTES / u64::try_from(size.max(1)).unwrap_or(u64::MAX);
    span.min(count).min(bytes).max(10)
}

/// The percentiles of these latencies, in nanoseconds.
pub(super) fn percentiles(rate: u32, mut nanos: Vec<u64>) -> Result<Latency, Error> {
    nanos.sort_unstable();
    let last = nanos.len().checked_sub(1).ok_or_else(|| Error::state("bench: no latency measured"))?;
    let at = |per_cent: usize| Duration::from_nanos(nanos[(nanos.len() * per_cent / 100).min(last)]);
    Ok(Latency { rate, count: nanos.len() as u64, p50: at(50), p99: at(99), max: Duration::from_nanos(nanos[last]) })
}

/// How many messages a run at `rate` publishes, and the time between two of them.
fn schedule(args: &BenchArgs, rate: u32) -> (u64, Duration) {
    (count_for(rate, args.count, args.size), Duration::from_secs(1) / rate.max(1))
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The latency run of the blocking API: the producer on `conn`, the consumer in a thread of its own.
pub(super) fn blocking(
    conn: &crate::Connection,
    args: &BenchArgs,
    ents: &Entities,
    rate: u32,
) -> Result<Latency, Error> {
    let (n, period) = schedule(args, rate);
    let epoch = Instant::now();
    let samples: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::with_capacity(usize::try_from(n).unwrap_or(0))));
    let progress = Progress::new(n, args.idle_timeout);
    let ready = Barrier::new(2);
    let producer = Producer::new(conn)?.exchange(ents.exchange.clone()).confirm_timeout(None).auto_declare(false);
    let payload = "x".repeat(args.size);
    std::thread::scope(|scope| {
        let consumer = scope.spawn(|| {
            let subscribed = (|| {
                let conn = connect(&args.url)?;
                let (seen, acked) = (samples.clone(), progress.clone());
                let mut consumer = Consumer::new(&conn, ents.queues.clone()).accept(Accept::new(["json"])?);
                if let Some(window) = prefetch(args) {
                    consumer = consumer.prefetch(window);
                }
                let consumer = consumer.callback(move |body: Due, message| {
                    let latency = nanos_since(epoch).saturating_sub(body.due);
                    seen.lock().unwrap_or_else(|p| p.into_inner()).push(latency);
                    if message.ack().is_ok() {
                        acked.acked();
                    }
                });
                let subscription = consumer.consume()?;
                Ok::<_, Error>((conn, subscription))
            })();
            ready.wait();
            let (conn, subscription) = subscribed?;
            while !progress.done()? {
                match conn.drain_events(Some(Duration::from_millis(50))) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Timeout => {}
                    Err(e) => return Err(e),
                }
            }
            subscription.cancel()?;
            conn.close()
        });
        ready.wait();
        let start = Instant::now();
        for i in 0..n {
            let due = start + period * u32::try_from(i).unwrap_or(u32::MAX);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let due = nanos_since(epoch);
            producer.publish(&Stamped { i, p: &payload, due }).routing_key(ents.key(i)).send()?;
        }
        consumer.join().map_err(|_| Error::state("bench: the latency consumer panicked"))?
    })?;
    let nanos = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    percentiles(rate, nanos)
}

/// The latency run of the async API: the producer on `conn`, the consumer stream in a task of its own.
#[cfg(feature = "tokio")]
pub(super) async fn tasks(
    conn: &kombu_core::aio::Connection,
    args: &BenchArgs,
    ents: &Entities,
    rate: u32,
) -> Result<Latency, Error> {
    use kombu_core::aio;

    let (n, period) = schedule(args, rate);
    let epoch = Instant::now();
    let ready = Arc::new(tokio::sync::Barrier::new(2));
    let progress = Progress::new(n, args.idle_timeout);
    let (url, queues, window) = (args.url.clone(), ents.queues.clone(), prefetch(args).unwrap_or(0));
    let consumer = {
        let (ready, progress) = (ready.clone(), progress.clone());
        tokio::spawn(async move {
            let subscribed = async {
                let conn = aio::Connection::open(&url)?;
                let consumer = aio::Consumer::builder(&conn, queues).accept(Accept::new(["json"])?);
                let stream = consumer.prefetch(window).consume().await?;
                Ok::<_, Error>((conn, stream))
            };
            let subscribed = subscribed.await;
            ready.wait().await;
            let (conn, mut stream) = subscribed?;
            let mut nanos = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            while !progress.done()? {
                if let Ok(next) = tokio::time::timeout(Duration::from_millis(50), stream.next()).await {
                    let message = next.ok_or_else(|| Error::channel("bench: the latency consumer ended"))??;
                    let body: Due = message.decode()?;
                    nanos.push(nanos_since(epoch).saturating_sub(body.due));
                    message.ack().await?;
                    progress.acked();
                }
            }
            stream.cancel().await?;
            conn.close().await?;
            Ok::<_, Error>(nanos)
        })
    };
    ready.wait().await;
    let producer =
        aio::Producer::new(conn).await?.exchange(ents.exchange.clone()).confirm_timeout(None).auto_declare(false);
    let payload = "x".repeat(args.size);
    let start = tokio::time::Instant::now();
    for i in 0..n {
        let due = start + period * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        let due = nanos_since(epoch);
        producer.publish(&Stamped { i, p: &payload, due }).routing_key(ents.key(i)).send().await?;
    }
    let nanos = consumer.await.map_err(|e| Error::state(format!("bench: the latency consumer failed: {e}")))??;
    percentiles(rate, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_two_seconds_of_messages_within_the_bounds() {
        assert_eq!(count_for(500, 20_000, 100), 1000);
        assert_eq!(count_for(500, 300, 100), 300, "never more than --count");
        assert_eq!(count_for(500, 20_000, 1 << 20), 64, "64 MiB of 1 MiB bodies");
        assert_eq!(count_for(1, 20_000, 100), 10, "at least 10");
    }

    #[test]
    fn percentiles_are_of_the_sorted_latencies() {
        let l = percentiles(100, (1..=100).rev().map(|us| us * 1000).collect()).expect("latencies");
        assert_eq!(
            (l.count, l.p50, l.p99, l.max),
            (100, Duration::from_micros(51), Duration::from_micros(100), Duration::from_micros(100))
        );
        let one = percentiles(1, vec![7]).expect("one latency");
        assert_eq!(
            (one.p50, one.p99, one.max),
            (Duration::from_nanos(7), Duration::from_nanos(7), Duration::from_nanos(7))
        );
        assert!(percentiles(1, Vec::new()).is_err());
    }
}
