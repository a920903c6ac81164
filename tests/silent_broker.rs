//! A broker that accepts connections and never answers does not stall the Hub: while a connection to it
//! hangs in its handshake, the same Hub delivers memory and Redis messages on time and its timer fires
//! on schedule.

use std::cell::RefCell;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kombu::{Connection, Consumer, Hub, Producer, Queue, RetryPolicy};

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("silent.{what}.{}.{nanos}", std::process::id())
}

/// A listener on a free loopback port that accepts and never writes (the sockets stay open until
/// `stop`, at most 60 s).
struct Silent {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            let end = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Acquire) && Instant::now() < end {
                match listener.accept() {
                    Ok((sock, _)) => held.push(sock),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            held.len()
        });
        Silent { port, stop, thread: Some(thread) }
    }

    /// Closes the held sockets and the listener; returns how many connections it accepted.
    fn stop(&mut self) -> usize {
        self.stop.store(true, Ordering::Release);
        self.thread.take().map(|t| t.join().unwrap()).unwrap_or(0)
    }
}

/// The `p`-th percentile of `v` (sorted in place).
fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

#[test]
fn a_silent_broker_does_not_stall_the_hub() {
    const RATE: u64 = 200; // per second and per backend
    const SECONDS: u64 = 5;
    const N: usize = (RATE * SECONDS) as usize;
    let mut silent = Silent::start();
    let base = Instant::now();
    let mut hub = Hub::new().unwrap();

    // The silent broker: its driver connects on a thread of its own and hangs in the handshake (3 s
    // each attempt, 4 attempts: longer than the run); the consumer's own connect blocks the thread it
    // runs on (and keeps the driver's attempt waiting for it).
    let silent_url = format!("redis://127.0.0.1:{}/0?socket_connect_timeout=3", silent.port);
    let retry = RetryPolicy::default().max_retries(Some(3)).intervals(
        Duration::from_millis(10),
        Duration::ZERO,
        Duration::from_millis(10),
    );
    let silent_conn = Connection::builder(&silent_url).retry(retry).open().unwrap();
    silent_conn.register_with_event_loop(&mut hub).unwrap();
    let silent_consumer = {
        let conn = silent_conn.clone();
        let q = unique("silent");
        std::thread::spawn(move || {
            let consumer = Consumer::new(&conn, [Queue::new(q)]).on_message(|m| {
                let _ = m.ack();
            });
            consumer.consume()
        })
    };

    // A memory and a Redis consumer on the same Hub, recording each message's latency.
    let urls = [format!("memory://{}", unique("mem")), "redis://127.0.0.1:6379/0".to_owned()];
    let latencies: Arc<Mutex<[Vec<Duration>; 2]>> = Arc::default();
    let mut keep = Vec::new();
    let mut targets = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let conn = Connection::open(url).unwrap();
        conn.register_with_event_loop(&mut hub).unwrap();
        let queue = Queue::new(unique("q")).durable(false);
        let l = latencies.clone();
        let consumer = Consumer::new(&conn, [queue.clone()]).on_message(move |m| {
            let sent: u64 = std::str::from_utf8(&m.body).unwrap().parse().unwrap();
            let now = base.elapsed();
            l.lock().unwrap()[i].push(now.saturating_sub(Duration::from_micros(sent)));
            m.ack().unwrap();
        });
        let subscription = consumer.consume().unwrap();
        targets.push((url.clone(), queue.name.clone()));
        keep.push((conn, subscription, queue));
    }
    let ticks: Rc<RefCell<Vec<Instant>>> = Rc::default();
    let t = ticks.clone();
    hub.call_repeatedly(Duration::from_millis(10), move || t.borrow_mut().push(Instant::now()));

    // The producer: both queues at a fixed rate, each message carrying its send time.
    let producer = std::thread::spawn(move || {
        let producers: Vec<Producer> = targets
            .iter()
            .map(|(url, q)| Producer::new(&Connection::open(url).unwrap()).unwrap().routing_key(q.clone()))
            .collect();
        let start = Instant::now();
        for k in 0..N as u64 {
            let at = start + Duration::from_micros(k * 1_000_000 / RATE);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            for p in &producers {
                p.publish_bytes(base.elapsed().as_micros().to_string()).send().unwrap();
            }
        }
    });

    let run_start = Instant::now();
    let end = run_start + Duration::from_secs(SECONDS + 10);
    while latencies.lock().unwrap().iter().any(|l| l.len() < N) && Instant::now() < end {
        hub.run_for(Duration::from_millis(100)).unwrap();
    }
    let run = run_start.elapsed();
    producer.join().unwrap();
    assert!(!silent_conn.is_connected(), "connected to a broker that never answers");

    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    let ticks = ticks.borrow().clone();
    let accepted = silent.stop();
    let silent_result = silent_consumer.join().unwrap();
    assert!(silent_result.is_err(), "the consumer on the silent broker could not have started");

    for (name, l) in ["memory", "redis"].iter().zip(latencies.iter_mut()) {
        assert_eq!(l.len(), N, "{name}: messages received");
        let p99 = percentile(l, 0.99);
        let max = percentile(l, 1.0);
        println!("{name}: {N} messages, p99 latency {p99:?}, max {max:?}");
        assert!(p99 < Duration::from_millis(50), "{name}: p99 latency {p99:?} with a silent broker on the Hub");
    }
    let expected = run.as_millis() as usize / 10;
    let gap = ticks.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    println!(
        "timer: {} of ~{expected} ticks in {run:?}, longest gap {gap:?}; silent broker accepted {accepted}",
        ticks.len()
    );
    assert!(ticks.len() * 10 >= expected * 8, "timer fired {} times, ~{expected} expected", ticks.len());
    assert!(gap < Duration::from_millis(100), "the timer stalled for {gap:?}");
    assert!(accepted >= 1, "the silent broker saw no connection: nothing hung on it");
    for (conn, subscription, queue) in keep {
        subscription.cancel().unwrap();
        let _ = conn.default_channel().and_then(|ch| ch.delete_queue(&queue.name, false, false));
    }
}
