//! Redis Sentinel (`sentinel://`) on a deployment of the test's own (a master, a replica, three
//! sentinels): a confirmed publisher and an acking Hub consumer go on through `SENTINEL FAILOVER`, and
//! every publish that returned Ok is consumed; Python Kombu and kombu-rs share queues through one
//! `sentinel://` URL; a missing `master_name` and an unknown one are clear errors.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::python::*;
use common::sentinel::{client, Deployment, MASTER};
use common::*;
use kombu_core::{Connection, Consumer, ErrorKind, Hub, Producer, Queue, RetryPolicy};
use serde_json::json;

fn retry() -> RetryPolicy {
    RetryPolicy::default().max_retries(None).intervals(
        Duration::from_millis(50),
        Duration::from_millis(100),
        Duration::from_millis(500),
    )
}

/// The longest time between two instants of `times` (sorted here), within `[from, to]`.
fn longest_gap(mut times: Vec<Instant>, from: Instant, to: Instant) -> Duration {
    times.retain(|t| *t >= from && *t <= to);
    times.sort();
    let mut edges = vec![from];
    edges.extend(times);
    edges.push(to);
    edges.windows(2).map(|w| w[1].saturating_duration_since(w[0])).max().unwrap_or_default()
}

#[test]
fn a_failover_under_a_publisher_and_a_hub_consumer_loses_no_confirmed_publish() {
    const PUBLISHING: Duration = Duration::from_secs(12);
    // Two replicas: after the failover the new master has the other one at once (the old master rejoins
    // only when the sentinels next look at it, seconds later), so confirmed publishes go on.
    let d = Deployment::start(2);
    // Confirmed publishes wait for the replica: replication is asynchronous, and what only the old
    // master had is dropped when it rejoins as a replica.
    let url = d.url("wait_for_replicas=1&wait_for_replicas_timeout=0.5&socket_connect_timeout=1&socket_timeout=2");
    let q = Queue::new(unique("sentinel"));
    let conn = Connection::builder(&url).retry(retry()).open().unwrap();
    let mut hub = Hub::new().unwrap();
    hub.on_error(|e| eprintln!("hub: {e:#}"));
    conn.register_with_event_loop(&mut hub).unwrap();
    let seen: Arc<Mutex<HashMap<u64, usize>>> = Arc::default();
    let consumed_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let ack_errors = Arc::new(AtomicUsize::new(0));
    let (s, c, a) = (seen.clone(), consumed_at.clone(), ack_errors.clone());
    let _sub = Consumer::new(&conn, [q.clone()])
        .prefetch(20)
        .on_message(move |m| {
            let n: u64 = text(&m).parse().unwrap();
            *s.lock().unwrap().entry(n).or_default() += 1;
            c.lock().unwrap().push(Instant::now());
            // An ack lost in the failover only means a redelivery.
            if m.ack().is_err() {
                a.fetch_add(1, Ordering::Relaxed);
            }
        })
        .consume()
        .unwrap();

    let start = Instant::now();
    let publishing = AtomicBool::new(true);
    let failover = Mutex::new(None);
    let (published, failed, first_errors) = std::thread::scope(|scope| {
        let publisher = scope.spawn(|| {
            let pconn = Connection::builder(&url).retry(retry()).open().unwrap();
            let producer = Producer::new(&pconn).unwrap();
            let (mut ok, mut failed, mut errors) = (Vec::new(), 0usize, Vec::new());
            let mut n = 0u64;
            while start.elapsed() < PUBLISHING {
                n += 1;
                match producer.publish_bytes(n.to_string()).routing_key(q.name.clone()).declare(&q).send() {
                    Ok(()) => ok.push((n, Instant::now())),
                    Err(e) => {
                        failed += 1;
                        if errors.len() < 5 {
                            errors.push(format!("{:.2}s: {e:#}", start.elapsed().as_secs_f64()));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            publishing.store(false, Ordering::Release);
            (ok, failed, errors)
        });
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(3));
            let t = Instant::now();
            let old = d.master();
            let new = d.failover();
            *failover.lock().unwrap() = Some((old, new, t.elapsed()));
        });
        while publishing.load(Ordering::Acquire) {
            hub.run_for(Duration::from_millis(20)).unwrap();
        }
        publisher.join().unwrap()
    });
    let end_publishing = Instant::now();
    // Everything confirmed must come; allow the consumer to catch up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = |seen: &HashMap<u64, usize>| published.iter().filter(|(n, _)| !seen.contains_key(n)).count();
    while missing(&seen.lock().unwrap()) > 0 && Instant::now() < deadline {
        hub.run_for(Duration::from_millis(50)).unwrap();
    }
    let seen = seen.lock().unwrap();
    let lost: Vec<u64> = published.iter().map(|(n, _)| *n).filter(|n| !seen.contains_key(n)).collect();
    let duplicated: usize = seen.values().map(|c| c - 1).sum();
    let publish_gap = longest_gap(published.iter().map(|(_, t)| *t).collect(), start, end_publishing);
    let consume_gap = longest_gap(consumed_at.lock().unwrap().clone(), start + Duration::from_secs(1), end_publishing);
    let (old, new, took) = failover.lock().unwrap().expect("the failover ran");
    println!(
        "sentinel failover {old} -> {new} (sentinels agreed after {took:.2?}): published {} (confirmed; {failed} publishes \
         failed), consumed {} distinct, lost {}, duplicated {duplicated}, ack errors {}; longest without service: \
         publishing {:.2}s, consuming {:.2}s",
        published.len(),
        seen.len(),
        lost.len(),
        ack_errors.load(Ordering::Relaxed),
        publish_gap.as_secs_f64(),
        consume_gap.as_secs_f64(),
    );
    for e in &first_errors {
        println!("  publish error {e}");
    }
    assert_ne!(old, new, "the master moved");
    assert!(published.len() > 500, "the publisher published: {}", published.len());
    assert!(lost.is_empty(), "{} confirmed publishes never consumed: {:?}", lost.len(), &lost[..lost.len().min(10)]);
    assert!(duplicated <= 200, "duplicates are bounded by what was in flight: {duplicated}");
}

#[test]
fn python_kombu_and_kombu_rs_share_queues_through_one_sentinel_url() {
    let d = Deployment::start(1);
    let url = d.url("");
    let options = json!({"master_name": MASTER});
    // Python publishes, Rust consumes.
    let q = unique("sentinel.py");
    python(json!({"op": "publish", "url": url, "transport_options": options, "exchange": q, "queue": q,
        "binding": q, "messages": [{"body_b64": b64(b"from python"), "routing_key": q}]}));
    let conn = open(&url);
    let ch = conn.channel().unwrap();
    let m = get_wait(&ch, &q, Duration::from_secs(10)).expect("python's message through sentinel://");
    assert_eq!(&m.body[..], b"from python");
    m.ack().unwrap();
    // Rust publishes, Python consumes.
    let q2 = unique("sentinel.rs");
    let (child, out) = python_consumer(json!({"op": "consume", "url": url, "transport_options": options,
        "exchange": q2, "queue": q2, "binding": q2, "count": 1, "timeout": 20}));
    let producer = Producer::new(&conn).unwrap().exchange(kombu_core::Exchange::direct(&q2));
    producer.publish_bytes(&b"from rust"[..]).routing_key(q2.clone()).send().unwrap();
    let lines = finish(child, out);
    assert_eq!(lines.len(), 1, "python got {lines:?}");
    assert_eq!(lines[0]["body_b64"], b64(b"from rust"));
    // Both went to the master the sentinels name.
    let master = d.master();
    let mut raw = client(master).unwrap();
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut raw).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
}

#[test]
fn master_name_is_required_and_an_unknown_one_is_refused() {
    let e = Connection::open("sentinel://127.0.0.1:26379").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e:#}");
    assert!(e.to_string().contains("needs the master_name option"), "{e}");
    let e = Connection::open("redis://127.0.0.1:6379/0?master_name=x").unwrap_err();
    assert!(e.to_string().contains("is for Redis Sentinel"), "{e}");
    let d = Deployment::start(1);
    let wrong = d.url("").replace(MASTER, "no-such-master");
    let conn = Connection::builder(&wrong).retry(RetryPolicy::none()).open().unwrap();
    let e = conn.connect().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e:#}");
    assert!(format!("{e:#}").contains("monitors no master named 'no-such-master'"), "{e:#}");
}
