//! `kombu bench --async`: the BENCH.md workload through `kombu::aio` on a tokio runtime of its own
//! (multi-thread, as `#[tokio::main]` makes it): the same messages, entities, confirms setting and
//! prefetch as the blocking run, each publish and each ack awaited; with `--in-flight K`, also confirmed
//! publishes with K `send` futures of one producer outstanding at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use futures_util::FutureExt;
use kombu_core::aio::{Channel, Connection, Consumer, Producer};
use kombu_core::{Accept, Error, ErrorKind};

use super::args::BenchArgs;
use super::bench::{prefetch, progress_bar, report, BenchBody, BenchResult, Entities, Producers, Received};
use super::bench_allocations::Phase;
use super::{Io, Outcome, EXIT_OK};

/// Runs `kombu bench --async`.
pub(super) fn run(args: &BenchArgs, io: &mut Io<'_>) -> Outcome {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::with_source(ErrorKind::State, "bench: starting a tokio runtime", e))?;
    let (url, result) = runtime.block_on(async {
        let conn = Connection::open(&args.url)?;
        conn.connect().await?;
        let result = workload(&conn, args).await?;
        conn.close().await?;
        Ok::<_, Error>((conn.url(), result))
    })?;
    report(args, &url, &result, io)?;
    Ok(EXIT_OK)
}

async fn workload(conn: &Connection, args: &BenchArgs) -> Result<BenchResult, Error> {
    let n = args.count;
    let ents = Entities::new(args);
    let channel = conn.default_channel().await?;
    for queue in &ents.queues {
        channel.declare(queue).await?;
        channel.purge_queue(&queue.name).await?;
    }

    // Unconfirmed publishes, as the blocking run (and the Python Kombu anchor) makes them.
    let producer =
        Producer::new(conn).await?.exchange(ents.exchange.clone()).routing_key("bench").confirm_timeout(None);
    let payload = "x".repeat(args.size);
    let bar = progress_bar(args, n, "publish");
    let counted = Phase::start();
    let started = Instant::now();
    for i in 0..n {
        producer.publish(&BenchBody { i, p: &payload }).routing_key(ents.key(i)).send().await?;
        if i % 256 == 0 {
            bar.set_position(i);
        }
    }
    // One answered round trip on the same channel: every publish before it has reached the broker.
    channel.declare_queue(&ents.queues[0], true).await?;
    let publish = started.elapsed();
    let publish_allocations = counted.per_message(n);
    bar.finish_and_clear();

    let counted = Phase::start();
    let consume = match args.consumers {
        1 => consume_one(conn, args, &ents).await?,
        k => super::bench_consumers::tasks(args, &ents, k).await?,
    };
    let allocations = [publish_allocations, counted.per_message(n)];
    let confirmed = match args.in_flight {
        Some(k) => Some(in_flight(conn, &ents, &payload, n, usize::from(k), &channel).await?),
        None => None,
    };
    let producers = match args.producers {
        Some(k) => Some(Producers {
            count: k,
            shared: from_tasks(conn, args, &ents, &payload, k, &channel, false).await?,
            own: from_tasks(conn, args, &ents, &payload, k, &channel, true).await?,
        }),
        None => None,
    };
    let latency = match args.rate {
        Some(rate) => Some(super::bench_latency::tasks(conn, args, &ents, rate).await?),
        None => None,
    };
    if ents.own_queues() {
        for queue in &ents.queues {
            channel.delete_queue(&queue.name, false, false).await?;
        }
    }
    Ok(BenchResult { count: n, publish, consume, batch: None, confirmed, producers, latency, allocations })
}

/// Consumes the N messages with one consumer stream on `conn`, acking each: the time it took.
async fn consume_one(conn: &Connection, args: &BenchArgs, ents: &Entities) -> Result<Duration, Error> {
    let n = args.count;
    let mut consumer = Consumer::builder(conn, ents.queues.clone()).accept(Accept::new(["json"])?);
    consumer = consumer.prefetch(prefetch(args).unwrap_or(0));
    let bar = progress_bar(args, n, "consume");
    let started = Instant::now();
    let mut stream = consumer.consume().await?;
    for got in 0..n {
        // The idle time-out is armed only when no message is ready (a timer per message would cost the
        // loop what the blocking run's one wait per turn does not).
        let ready = stream.next().now_or_never();
        let next = match ready {
            Some(next) => Ok(next),
            None => tokio::time::timeout(args.idle_timeout, stream.next()).await,
        };
        let message = match next {
            Ok(Some(message)) => message?,
            Ok(None) => return Err(Error::channel(format!("bench: the consumer ended after {got} of {n} messages"))),
            Err(_) => {
                let wait = args.idle_timeout;
                return Err(Error::timeout(format!("bench: only {got} of {n} messages came back (none for {wait:?})")));
            }
        };
        let _: Received = message.decode()?;
        message.ack().await?;
        if got % 256 == 0 {
            bar.set_position(got);
        }
    }
    let consume = started.elapsed();
    bar.finish_and_clear();
    stream.cancel().await?;
    Ok(consume)
}

/// Publishes the N messages again with confirms (the producer's default), `depth` sends of one producer
/// in flight at a time on one task, then purges them: the time until the last was confirmed.
async fn in_flight(
    conn: &Connection,
    ents: &Entities,
    payload: &str,
    n: u64,
    depth: usize,
    channel: &Channel,
) -> Result<Duration, Error> {
    // The exchange was declared by the first pass.
    let producer = Producer::new(conn).await?.exchange(ents.exchange.clone()).routing_key("bench").auto_declare(false);
    let started = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let producer = &producer;
            async move { producer.publish(&BenchBody { i, p: payload }).routing_key(ents.key(i)).send().await }
        })
        .buffer_unordered(depth)
        .try_for_each(|()| std::future::ready(Ok(())))
        .await?;
    let took = started.elapsed();
    purged_all(ents, channel, n, "confirmed publishes in flight").await?;
    Ok(took)
}

/// Publishes the N messages again with confirms from `k` tasks, message `i` from task `i % k`, each with
/// a producer of its own on `conn` (so on its default channel) or, with `own`, on a connection of its
/// own, awaiting each send; then purges them. The time from when every task is ready until the last
/// publish returned.
async fn from_tasks(
    conn: &Connection,
    args: &BenchArgs,
    ents: &Entities,
    payload: &str,
    k: u16,
    channel: &Channel,
    own: bool,
) -> Result<Duration, Error> {
    let n = args.count;
    let ready = Arc::new(tokio::sync::Barrier::new(usize::from(k) + 1));
    let (ents, payload) = (Arc::new(ents.clone()), Arc::<str>::from(payload));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..u64::from(k) {
        let (ready, ents, payload, url) = (ready.clone(), ents.clone(), payload.clone(), args.url.clone());
        let conn = (!own).then(|| conn.clone());
        tasks.spawn(async move {
            let made = async {
                let conn = match conn {
                    Some(conn) => conn,
                    None => Connection::open(&url)?,
                };
                conn.connect().await?;
                let producer = Producer::new(&conn).await?.exchange(ents.exchange.clone()).auto_declare(false);
                Ok::<_, Error>((conn, producer))
            };
            let made = made.await;
            ready.wait().await;
            let (conn, producer) = made?;
            for i in (t..n).step_by(usize::from(k)) {
                producer.publish(&BenchBody { i, p: &payload }).routing_key(ents.key(i)).send().await?;
            }
            if own {
                conn.close().await?;
            }
            Ok::<_, Error>(())
        });
    }
    ready.wait().await;
    let started = Instant::now();
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| Error::state(format!("bench: a producer task failed: {e}")))??;
    }
    let took = started.elapsed();
    purged_all(&ents, channel, n, "confirmed publishes from several producers").await?;
    Ok(took)
}

/// Purges the workload's queues, which must have held the `n` messages just published.
async fn purged_all(ents: &Entities, channel: &Channel, n: u64, what: &str) -> Result<(), Error> {
    let mut left = 0;
    for queue in &ents.queues {
        left += channel.purge_queue(&queue.name).await?;
    }
    if left != n {
        return Err(Error::precondition(format!("bench: {what} left {left} of {n} messages in the queue")));
    }
    Ok(())
}
