//! A Redis consumer process SIGKILLed at random instants while a publisher runs loses nothing: the
//! messages it held come back after the visibility timeout, and a final consumer drains everything.
//! Duplicates are bounded by what a killed consumer can hold unacknowledged (its prefetch) per kill.
//!
//! The consumer is this test binary run again as a child (`KRT_SIGKILL_CHILD` set): it prints each body
//! on a line of its own, then acknowledges it. `harness = false`: `main` is the test.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kombu_core::{Connection, Consumer, ErrorKind, Producer, Queue};

kombu_core::register_transport!(kombu_redis::DESCRIPTOR);

const PREFETCH: u16 = 10;
const KILLS: usize = 15;
const N: usize = 4000;

fn main() {
    if let (Ok(url), Ok(queue)) = (std::env::var("KRT_SIGKILL_CHILD"), std::env::var("KRT_SIGKILL_QUEUE")) {
        let idle = std::env::var("KRT_SIGKILL_IDLE").ok().and_then(|s| s.parse().ok()).map(Duration::from_secs_f64);
        child(&url, &queue, idle);
        return;
    }
    println!("\nrunning 1 test");
    consumer_sigkilled_at_random_loses_nothing();
    println!("test consumer_sigkilled_at_random_loses_nothing ... ok\n");
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n");
}

/// The child: consumes, printing then acking each message; stops after `idle` without a message (or
/// after 90 s in any case).
fn child(url: &str, queue: &str, idle: Option<Duration>) {
    let conn = Connection::open(url).unwrap();
    let last = Arc::new(Mutex::new(Instant::now()));
    let l = last.clone();
    let consumer = Consumer::new(&conn, [Queue::new(queue)]).prefetch(PREFETCH).on_message(move |m| {
        let mut out = std::io::stdout().lock();
        out.write_all(&m.body).unwrap();
        out.write_all(b"\n").unwrap();
        out.flush().unwrap();
        m.ack().unwrap();
        *l.lock().unwrap() = Instant::now();
    });
    let _subscription = consumer.consume().unwrap();
    let end = Instant::now() + Duration::from_secs(90);
    while Instant::now() < end && idle.is_none_or(|i| last.lock().unwrap().elapsed() < i) {
        match conn.drain_events(Some(Duration::from_millis(100))) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            Err(e) => panic!("child: {e}"),
        }
    }
}

/// A small xorshift: random kill instants without a dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

type Seen = Arc<Mutex<HashMap<String, usize>>>;

/// Starts a consumer child; a thread records what it prints.
fn spawn_child(url: &str, queue: &str, idle: Option<f64>, seen: &Seen) -> (Child, std::thread::JoinHandle<()>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("KRT_SIGKILL_CHILD", url).env("KRT_SIGKILL_QUEUE", queue).stdout(Stdio::piped());
    if let Some(i) = idle {
        cmd.env("KRT_SIGKILL_IDLE", i.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let seen = seen.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            *seen.lock().unwrap().entry(line).or_default() += 1;
        }
    });
    (child, reader)
}

fn consumer_sigkilled_at_random_loses_nothing() {
    let server = PrivateRedis::start();
    let url = format!("{}?visibility_timeout=2&unacked_restore_interval=0.2", server.url());
    let q = unique("sigkill");
    let setup = open(&url);
    setup.channel().unwrap().declare(&Queue::new(&q)).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (url, q, stop) = (url.clone(), q.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = open(&url);
            let producer = Producer::new(&conn).unwrap().routing_key(q);
            let mut ok = Vec::new();
            for i in 0..N {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                if producer.publish_bytes(i.to_string()).send().is_ok() {
                    ok.push(i.to_string());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            ok
        })
    };

    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
            | 1;
    let mut rng = Rng(seed);
    let seen: Seen = Arc::default();
    let start = Instant::now();
    for _ in 0..KILLS {
        let (mut child, reader) = spawn_child(&url, &q, None, &seen);
        std::thread::sleep(Duration::from_millis(100 + rng.below(600)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
    }
    let killing = start.elapsed();
    stop.store(true, Ordering::Release);
    let ok = publisher.join().unwrap();
    let before_final = seen.lock().unwrap().len();

    // The final consumer: what the killed ones held comes back after the visibility timeout (2 s).
    let (mut last, reader) = spawn_child(&url, &q, Some(4.0), &seen);
    let end = Instant::now() + Duration::from_secs(30);
    while ok.iter().any(|b| !seen.lock().unwrap().contains_key(b)) && Instant::now() < end {
        if last.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = last.kill();
    last.wait().unwrap();
    reader.join().unwrap();

    let seen = seen.lock().unwrap();
    let missing: Vec<&String> = ok.iter().filter(|b| !seen.contains_key(*b)).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    let bound = KILLS * usize::from(PREFETCH);
    println!(
        "{} confirmed publishes, {KILLS} SIGKILLs in {killing:?} (seed {seed}), {before_final} received before the final \
         consumer, {} in all, {} lost, {duplicates} duplicate deliveries (bound {bound})",
        ok.len(),
        seen.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "lost {} confirmed messages: {:?}", missing.len(), &missing[..missing.len().min(10)]);
    assert!(duplicates <= bound, "{duplicates} duplicates: more than prefetch {PREFETCH} x {KILLS} kills");
    assert!(before_final > 0, "the killed consumers received nothing: the kills tested nothing");
}
