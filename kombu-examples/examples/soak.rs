//! A soak run: every backend (memory, Redis, AMQP) in one Hub, a publisher per backend at a steady rate
//! (with confirms), consumers acking; one line every few seconds with what was sent, received,
//! duplicated and lost, and the process's resident memory. Exits non-zero if a confirmed message was
//! lost or memory grew by more than a margin after warm-up. `cargo xtask soak --seconds N` runs it.
//!
//! ```sh
//! cargo run --release -p kombu-examples --example soak --features redis,amqp -- --seconds 60
//! ```

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use kombu::{Connection, Consumer, Hub, Producer, Queue, RetryPolicy};

#[derive(Parser)]
#[command(about = "Soak test: every backend in one Hub, steady publishers, acking consumers")]
struct Args {
    /// How long to publish, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Messages per second per backend.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Seconds between report lines.
    #[arg(long, default_value_t = 5)]
    report: u64,
    /// Seconds after the start before the memory baseline is taken.
    #[arg(long, default_value_t = 30)]
    warmup: u64,
    /// Largest RSS growth after warm-up allowed, in MiB.
    #[arg(long, default_value_t = 32)]
    max_rss_growth_mb: u64,
    /// Seconds a confirmed message may take to arrive (at the end, and to count as lost on the way).
    #[arg(long, default_value_t = 15)]
    grace: u64,
    /// Broker URLs, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = ["memory://soak".to_string(), "redis://127.0.0.1:6379/0".to_string(),
            "amqp://guest:guest@127.0.0.1:5672//".to_string()]
    )]
    urls: Vec<String>,
}

/// One backend's books: confirmed messages not yet received (with their send time), ids whose publish
/// failed (they may still arrive), and the counts.
#[derive(Default)]
struct Books {
    pending: HashMap<u64, Instant>,
    failed: HashSet<u64>,
    /// The next id the publisher will send: an id below it, neither pending nor failed, was received.
    next: u64,
    sent: u64,
    send_errors: u64,
    received: u64,
    duplicated: u64,
}

impl Books {
    fn on_message(&mut self, id: u64) {
        if self.pending.remove(&id).is_some() || self.failed.remove(&id) {
            self.received += 1;
        } else if id < self.next {
            self.duplicated += 1;
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches("kB").trim().to_owned()))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> kombu::Result<bool> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let tag = format!("soak.{}.{nanos}", std::process::id());
    let retry = RetryPolicy::default().max_retries(None).intervals(
        Duration::from_millis(100),
        Duration::from_millis(200),
        Duration::from_secs(2),
    );
    let mut hub = Hub::new()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut books = Vec::new();
    let mut consumers = Vec::new();
    let mut publishers = Vec::new();
    for (i, url) in args.urls.iter().enumerate() {
        let name = format!("{tag}.{i}");
        let queue = Queue::new(name.clone()).durable(false);
        let conn = Connection::builder(url).retry(retry.clone()).open()?;
        conn.register_with_event_loop(&mut hub)?;
        let b: Arc<Mutex<Books>> = Arc::default();
        let bc = b.clone();
        let consumer = Consumer::new(&conn, [queue.clone()]).prefetch(100).on_message(move |m| {
            match std::str::from_utf8(&m.body).ok().and_then(|s| s.parse().ok()) {
                Some(id) => bc.lock().unwrap_or_else(|e| e.into_inner()).on_message(id),
                None => eprintln!("soak: a message that is not ours: {:?}", m.body),
            }
            if let Err(e) = m.ack() {
                eprintln!("soak: ack: {e}");
            }
        });
        let subscription = consumer.consume()?;
        let (pb, stop, rate, url, retry) = (b.clone(), stop.clone(), args.rate.max(1), url.clone(), retry.clone());
        let publisher = std::thread::Builder::new().name(format!("publish-{i}")).spawn(move || -> kombu::Result<()> {
            let conn = Connection::builder(&url).retry(retry).open()?;
            let producer = Producer::new(&conn)?.routing_key(name.clone());
            let start = Instant::now();
            let mut id = 0u64;
            while !stop.load(Ordering::Acquire) {
                let at = start + Duration::from_micros(id * 1_000_000 / rate);
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                {
                    let mut b = pb.lock().unwrap_or_else(|e| e.into_inner());
                    b.pending.insert(id, Instant::now());
                    b.next = id + 1;
                }
                let sent = producer.publish_bytes(id.to_string()).send();
                let mut b = pb.lock().unwrap_or_else(|e| e.into_inner());
                match sent {
                    Ok(()) => b.sent += 1,
                    Err(e) => {
                        // Not confirmed: not counted as lost if it never arrives.
                        if b.pending.remove(&id).is_some() {
                            b.failed.insert(id);
                        }
                        b.send_errors += 1;
                        drop(b);
                        eprintln!("soak: publish to {url}: {e}");
                    }
                }
                id += 1;
            }
            conn.close()
        });
        publishers.push(publisher.map_err(|e| kombu::Error::state(format!("cannot start a publisher: {e}")))?);
        books.push(b);
        consumers.push((conn, subscription, queue));
    }

    let start = Instant::now();
    let grace = Duration::from_secs(args.grace);
    let rss_start = rss_kib();
    let mut rss_warm: Option<u64> = None;
    let mut rss_last = rss_start;
    let line = |books: &[Arc<Mutex<Books>>], end: bool| {
        let (mut sent, mut received, mut duplicated, mut lost, mut errors) = (0, 0, 0, 0, 0);
        for b in books {
            let b = b.lock().unwrap_or_else(|e| e.into_inner());
            sent += b.sent;
            received += b.received;
            duplicated += b.duplicated;
            errors += b.send_errors;
            lost += if end { b.pending.len() } else { b.pending.values().filter(|t| t.elapsed() > grace).count() };
        }
        let rss = rss_kib();
        println!(
            "elapsed={:.0}s sent={sent} received={received} duplicated={duplicated} lost={lost} send_errors={errors} \
             rss={:.1}MiB",
            start.elapsed().as_secs_f64(),
            rss as f64 / 1024.0
        );
        (lost, rss)
    };
    println!(
        "soak: {} backends ({}), {} msg/s each, {} s; rss at start {:.1}MiB",
        args.urls.len(),
        args.urls.join(" "),
        args.rate,
        args.seconds,
        rss_start as f64 / 1024.0
    );
    let run_end = start + Duration::from_secs(args.seconds);
    let mut next_report = start + Duration::from_secs(args.report.max(1));
    while Instant::now() < run_end {
        hub.run_for(Duration::from_millis(200).min(run_end.saturating_duration_since(Instant::now())))?;
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(args.report.max(1));
            let (_, rss) = line(&books, false);
            rss_last = rss;
            if rss_warm.is_none() && start.elapsed() >= Duration::from_secs(args.warmup) {
                rss_warm = Some(rss);
            }
        }
        if publishers.iter().any(|p| p.is_finished()) {
            eprintln!("soak: a publisher stopped early");
            break;
        }
    }
    stop.store(true, Ordering::Release);
    for p in publishers {
        match p.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("soak: publisher: {e}"),
            Err(_) => eprintln!("soak: a publisher panicked"),
        }
    }
    // The grace period: what was confirmed has this long to arrive.
    let settle = Instant::now() + grace;
    let outstanding = |books: &[Arc<Mutex<Books>>]| {
        books.iter().map(|b| b.lock().unwrap_or_else(|e| e.into_inner()).pending.len()).sum::<usize>()
    };
    while outstanding(&books) > 0 && Instant::now() < settle {
        hub.run_for(Duration::from_millis(100))?;
    }
    hub.run_for(Duration::from_millis(500))?;
    let (lost, rss_end) = line(&books, true);
    for (url, b) in args.urls.iter().zip(&books) {
        let b = b.lock().unwrap_or_else(|e| e.into_inner());
        println!(
            "  {url}: sent={} received={} duplicated={} lost={} send_errors={}",
            b.sent,
            b.received,
            b.duplicated,
            b.pending.len(),
            b.send_errors
        );
    }
    for (conn, subscription, queue) in consumers {
        if let Err(e) = subscription.cancel() {
            eprintln!("soak: cancel: {e}");
        }
        if let Err(e) = conn.default_channel().and_then(|ch| ch.delete_queue(&queue.name, false, false)) {
            eprintln!("soak: deleting {}: {e}", queue.name);
        }
    }
    let warm = rss_warm.unwrap_or(rss_start);
    // The last reading while publishing, or the end if higher (the publishers' threads are gone by then).
    let growth = rss_last.max(rss_end).saturating_sub(warm);
    println!(
        "rss: start {:.1}MiB, after warm-up {:.1}MiB, end {:.1}MiB (growth {:.1}MiB, allowed {}MiB)",
        rss_start as f64 / 1024.0,
        warm as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        growth as f64 / 1024.0,
        args.max_rss_growth_mb
    );
    let ok = lost == 0 && growth <= args.max_rss_growth_mb * 1024;
    println!("{}", if ok { "soak: ok" } else { "soak: FAILED" });
    Ok(ok)
}
