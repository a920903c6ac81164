//! The client side of `cargo xtask cluster`: a publisher with confirms and an acking consumer on one
//! quorum queue, both through a failover list of RabbitMQ cluster nodes, while xtask stops and starts the
//! nodes under them. Prints a `status` line every half second (what was published, confirmed and consumed,
//! and the URL each side is connected to, which xtask reads to pick the node to stop), then a `result`
//! line; exits 1 if a message whose confirmed publish returned `Ok` was never consumed.
//!
//! ```sh
//! cargo run --release -p kombu-examples --example cluster --features amqp -- \
//!     --urls 'amqp://guest:guest@127.0.0.1:5672//;amqp://guest:guest@127.0.0.1:5673//' --messages 20000
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use kombu::{Connection, Consumer, Producer, Queue, RetryPolicy};

#[derive(Parser)]
#[command(about = "A confirmed publisher and an acking consumer on a quorum queue, across cluster nodes")]
struct Args {
    /// The nodes as a failover list (`url1;url2;url3`); the consumer starts on the first, the publisher
    /// on the second.
    #[arg(long)]
    urls: String,
    /// How many messages to publish.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Messages per second.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Seconds the consumer may take, after the last publish, to get every confirmed message.
    #[arg(long, default_value_t = 60)]
    grace: u64,
}

/// What the consumer got: how many times each id, and the longest time without a delivery.
#[derive(Default)]
struct Seen {
    counts: HashMap<u64, u32>,
    last: Option<Instant>,
    longest_gap: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cluster: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> kombu::Result<bool> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let queue = Queue::quorum(format!("kombu-cluster.{}.{nanos}", std::process::id()));
    // Patient: a node that is going away is sought again, over the list, for as long as the run lasts.
    let retry = RetryPolicy::default().max_retries(None).intervals(
        Duration::from_millis(100),
        Duration::from_millis(200),
        Duration::from_secs(1),
    );
    let urls: Vec<&str> = args.urls.split(';').collect();
    // The publisher starts on the second node, so stopping the consumer's node leaves it be.
    let publisher_urls = urls.iter().cycle().skip(1).take(urls.len()).copied().collect::<Vec<_>>().join(";");

    let conn = Connection::builder(&args.urls).retry(retry.clone()).open()?;
    conn.connect()?;
    conn.channel()?.declare(&queue)?;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [queue.clone()]).prefetch(100).on_message(move |m| {
        match std::str::from_utf8(&m.body).ok().and_then(|t| t.parse::<u64>().ok()) {
            Some(id) => {
                let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                *s.counts.entry(id).or_default() += 1;
                let now = Instant::now();
                if let Some(last) = s.last {
                    s.longest_gap = s.longest_gap.max(now - last);
                }
                s.last = Some(now);
            }
            None => eprintln!("cluster: a message that is not ours: {:?}", m.body),
        }
        if let Err(e) = m.ack() {
            eprintln!("cluster: ack: {e:#}");
        }
    });
    let subscription = consumer.consume()?;

    let published = Arc::new(AtomicU64::new(0));
    let confirmed: Arc<Mutex<Vec<u64>>> = Arc::default();
    let publisher_url = Arc::new(Mutex::new(String::new()));
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (published, confirmed, publisher_url, done) =
            (published.clone(), confirmed.clone(), publisher_url.clone(), done.clone());
        let (queue, rate, n, retry) = (queue.clone(), args.rate.max(1), args.messages, retry.clone());
        std::thread::Builder::new().name("publisher".into()).spawn(move || -> kombu::Result<()> {
            let conn = Connection::builder(&publisher_urls).retry(retry).open()?;
            let producer = Producer::new(&conn)?.routing_key(queue.name.clone());
            let start = Instant::now();
            for id in 0..n {
                let at = start + Duration::from_micros(id * 1_000_000 / rate);
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                // Until it is confirmed: a publish that failed may still have reached the queue (a duplicate).
                loop {
                    published.fetch_add(1, Ordering::Relaxed);
                    let sent = producer.publish_bytes(id.to_string()).send();
                    *publisher_url.lock().unwrap_or_else(|e| e.into_inner()) = conn.url();
                    match sent {
                        Ok(()) => {
                            confirmed.lock().unwrap_or_else(|e| e.into_inner()).push(id);
                            break;
                        }
                        Err(e) => {
                            eprintln!("cluster: publish {id}: {e:#}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            }
            done.store(true, Ordering::Release);
            conn.close()
        })
    }
    .map_err(|e| kombu::Error::state(format!("cannot start the publisher: {e}")))?;

    let start = Instant::now();
    let status = |label: &str| {
        let s = seen.lock().unwrap_or_else(|e| e.into_inner());
        let c = confirmed.lock().unwrap_or_else(|e| e.into_inner());
        let duplicated: u64 = s.counts.values().map(|&k| u64::from(k.saturating_sub(1))).sum();
        let lost = c.iter().filter(|id| !s.counts.contains_key(id)).count();
        println!(
            "{label} elapsed={:.1} published={} confirmed={} consumed={} duplicated={duplicated} lost={lost} \
             longest_gap={:.2} consumer={} publisher={}",
            start.elapsed().as_secs_f64(),
            published.load(Ordering::Relaxed),
            c.len(),
            s.counts.len(),
            s.longest_gap.as_secs_f64(),
            conn.url(),
            publisher_url.lock().unwrap_or_else(|e| e.into_inner()),
        );
        lost
    };
    let mut next_status = Instant::now();
    let mut settle: Option<Instant> = None;
    loop {
        match conn.drain_events(Some(Duration::from_millis(100))) {
            Ok(_) => {}
            Err(e) if e.kind() == kombu::ErrorKind::Timeout => {}
            Err(e) => eprintln!("cluster: drain_events: {e:#}"),
        }
        if Instant::now() >= next_status {
            next_status += Duration::from_millis(500);
            status("status");
        }
        if publisher.is_finished() && settle.is_none() {
            settle = Some(Instant::now() + Duration::from_secs(args.grace));
        }
        if let Some(until) = settle {
            let all_in = {
                let s = seen.lock().unwrap_or_else(|e| e.into_inner());
                confirmed.lock().unwrap_or_else(|e| e.into_inner()).iter().all(|id| s.counts.contains_key(id))
            };
            if all_in || Instant::now() >= until {
                break;
            }
        }
    }
    // A moment more, for duplicates still on their way.
    let tail = Instant::now() + Duration::from_secs(1);
    while Instant::now() < tail {
        let _ = conn.drain_events(Some(Duration::from_millis(100)));
    }
    match publisher.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("cluster: publisher: {e:#}"),
        Err(_) => eprintln!("cluster: the publisher panicked"),
    }
    let finished = done.load(Ordering::Acquire);
    let lost = status("result");
    if let Err(e) = subscription.cancel() {
        eprintln!("cluster: cancel: {e:#}");
    }
    if let Err(e) = conn.channel().and_then(|ch| ch.delete_queue(&queue.name, false, false)) {
        eprintln!("cluster: deleting {}: {e:#}", queue.name);
    }
    Ok(lost == 0 && finished)
}
