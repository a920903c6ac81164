//! A consumer on a failover list `redis://A;redis://B` follows the servers: with A down it consumes from
//! B, and when B goes down (and A is back) it fails back to A; every message whose publish returned Ok
//! is received. Once under a Hub, once under `drain_events`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kombu_core::{Connection, Consumer, Hub, Producer, Queue, RetryPolicy};

kombu_core::register_transport!(kombu_redis::DESCRIPTOR);

type Seen = Arc<Mutex<HashMap<String, usize>>>;

/// Publishes `range` to `url` with confirms; returns the bodies whose publish returned Ok.
fn publish(url: &str, q: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let conn = open(url);
    let producer = Producer::new(&conn).unwrap().routing_key(q);
    let queue = Queue::new(q);
    let mut ok = Vec::new();
    for i in range {
        let body = i.to_string();
        if producer.publish_bytes(body.clone()).declare(&queue).send().is_ok() {
            ok.push(body);
        }
    }
    conn.close().unwrap();
    ok
}

/// Runs `drive` until every body of `want` was seen (at most `limit`); returns the bodies still missing.
fn wait_for(seen: &Seen, want: &[String], limit: Duration, drive: &mut dyn FnMut()) -> Vec<String> {
    let end = Instant::now() + limit;
    loop {
        let missing: Vec<String> = {
            let seen = seen.lock().unwrap();
            want.iter().filter(|b| !seen.contains_key(*b)).cloned().collect()
        };
        if missing.is_empty() || Instant::now() > end {
            return missing;
        }
        drive();
    }
}

fn failover(use_hub: bool) {
    const N: usize = 300;
    let mut a = PrivateRedis::start();
    let mut b = PrivateRedis::start();
    a.stop();
    let q = unique("failover");
    let retry = RetryPolicy::default().max_retries(None).intervals(
        Duration::from_millis(50),
        Duration::from_millis(50),
        Duration::from_millis(200),
    );
    let conn = Connection::builder(&format!("{};{}", a.url(), b.url())).retry(retry).open().unwrap();
    let mut hub = Hub::new().unwrap();
    if use_hub {
        conn.register_with_event_loop(&mut hub).unwrap();
    }
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [Queue::new(&q)]).prefetch(20).on_message(move |m| {
        *s.lock().unwrap().entry(text(&m)).or_default() += 1;
        m.ack().unwrap();
    });
    // A is down: consuming connects to B.
    let subscription = consumer.consume().unwrap();
    assert_eq!(conn.url(), b.url(), "with the first URL dead, the consumer is on the second");
    let mut drive = || {
        if use_hub {
            hub.run_for(Duration::from_millis(50)).unwrap();
        } else {
            let _ = conn.drain_events(Some(Duration::from_millis(50)));
        }
    };

    let on_b = publish(&b.url(), &q, 0..N);
    assert_eq!(on_b.len(), N, "publishes to B while B is up");
    let missing = wait_for(&seen, &on_b, Duration::from_secs(15), &mut drive);
    assert!(
        missing.is_empty(),
        "{} of B's messages not received: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );

    // A comes back, B goes away: publish to A while the consumer fails over.
    let t = Instant::now();
    a.restart();
    b.stop();
    let on_a = publish(&a.url(), &q, N..2 * N);
    assert_eq!(on_a.len(), N, "publishes to A while A is up");
    let missing = wait_for(&seen, &on_a, Duration::from_secs(30), &mut drive);
    assert!(
        missing.is_empty(),
        "{} of A's messages not received: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(conn.url(), a.url(), "after B went down the consumer is on A");
    let duplicates = seen.lock().unwrap().values().filter(|n| **n > 1).count();
    println!(
        "{} messages via B then A ({}), all received, failed over in {:?}, {duplicates} duplicates",
        2 * N,
        if use_hub { "hub" } else { "drain_events" },
        t.elapsed()
    );
    subscription.cancel().unwrap();
}

#[test]
fn hub_consumer_fails_over_and_back() {
    failover(true);
}

#[test]
fn drain_events_consumer_fails_over_and_back() {
    failover(false);
}
