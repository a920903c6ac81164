//! RabbitMQ force-closes this test's own connections (`rabbitmqctl close_connection`, found by the
//! connection name the test's URLs set) under a publisher with confirms and a Hub consumer: both go on,
//! and every message whose publish returned Ok is consumed.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kombu_core::{Connection, Consumer, Hub, Producer, Queue, RetryPolicy};

/// Makes the broker close every connection whose client properties name `name`; returns how many.
fn close_named(name: &str) -> usize {
    let out = Command::new("rabbitmqctl").args(["list_connections", "-q", "pid", "client_properties"]).output();
    let Ok(out) = out else { return 0 };
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let pids: Vec<&str> =
        listing.lines().filter(|l| l.contains(name)).filter_map(|l| l.split_whitespace().next()).collect();
    let mut closed = 0;
    for pid in pids {
        let ok = Command::new("rabbitmqctl")
            .args(["close_connection", pid, "kombu-rs forced_close test"])
            .output()
            .is_ok_and(|o| o.status.success());
        closed += usize::from(ok);
    }
    closed
}

#[test]
fn publisher_and_hub_consumer_survive_forced_closes() {
    const MAX: usize = 20_000;
    const ROUNDS: usize = 3;
    let name = format!("kombu-rs-forced-close-{}", std::process::id());
    let url = format!("{}?connection_name={name}", common::url());
    let q = common::unique("forced-close");
    let retry = RetryPolicy::default().max_retries(None).intervals(
        Duration::from_millis(50),
        Duration::from_millis(100),
        Duration::from_millis(500),
    );
    let conn = Connection::builder(&url).retry(retry.clone()).open().unwrap();
    let mut hub = Hub::new().unwrap();
    conn.register_with_event_loop(&mut hub).unwrap();
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [Queue::new(&q)]).prefetch(50).on_message(move |m| {
        *s.lock().unwrap().entry(String::from_utf8_lossy(&m.body).into_owned()).or_default() += 1;
        // An ack on a closed channel fails; the broker redelivers that message.
        let _ = m.ack();
    });
    let subscription = consumer.consume().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (url, q, stop) = (url.clone(), q.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = Connection::builder(&url).retry(retry).open().unwrap();
            let producer = Producer::new(&conn).unwrap().routing_key(q);
            let (mut ok, mut failed) = (Vec::new(), 0);
            for i in 0..MAX {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                match producer.publish_bytes(i.to_string()).send() {
                    Ok(()) => ok.push(i.to_string()),
                    Err(_) => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (ok, failed)
        })
    };
    let closer = {
        let (name, stop) = (name.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut closes = Vec::new();
            let end = Instant::now() + Duration::from_secs(40);
            while closes.len() < ROUNDS && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(700));
                let n = close_named(&name);
                if n > 0 {
                    closes.push(n);
                }
            }
            // Publish a little longer after the last close.
            std::thread::sleep(Duration::from_millis(700));
            stop.store(true, Ordering::Release);
            closes
        })
    };
    let end = Instant::now() + Duration::from_secs(55);
    while !publisher.is_finished() && Instant::now() < end {
        hub.run_for(Duration::from_millis(50)).unwrap();
    }
    let (ok, failed) = publisher.join().unwrap();
    let closes = closer.join().unwrap();
    let missing_count = |seen: &HashMap<String, usize>| ok.iter().filter(|b| !seen.contains_key(*b)).count();
    while missing_count(&seen.lock().unwrap()) > 0 && Instant::now() < end {
        hub.run_for(Duration::from_millis(50)).unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let missing: Vec<&String> = ok.iter().filter(|b| !seen.contains_key(*b)).collect();
    let duplicates = seen.values().filter(|n| **n > 1).count();
    println!(
        "{} publishes confirmed, {failed} failed, connections closed per round {closes:?}, {} received, {duplicates} duplicates",
        ok.len(),
        seen.len()
    );
    subscription.cancel().ok();
    if let Ok(ch) = common::connect().channel() {
        let _ = ch.delete_queue(&q, false, false);
    }
    assert_eq!(closes.len(), ROUNDS, "the broker closed the test's connections {ROUNDS} times");
    assert!(ok.len() > 100, "only {} publishes confirmed", ok.len());
    assert!(missing.is_empty(), "lost {} confirmed messages: {:?}", missing.len(), &missing[..missing.len().min(10)]);
}
