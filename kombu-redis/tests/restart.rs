//! A publisher and a consumer on a private redis-server that restarts under them: both go on, and no
//! message published is lost.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kombu_core::transport::PublishOptions;
use kombu_core::{Consumer, Message, Queue};

#[test]
fn publisher_and_consumer_go_on_after_a_server_restart() {
    const N: usize = 600;
    let mut server = PrivateRedis::start();
    let conn = open(&server.url());
    let ch = conn.channel().unwrap();
    let q = unique("restart");
    ch.declare(&Queue::new(&q)).unwrap();
    let publish_all = |range: std::ops::Range<usize>| {
        for i in range {
            let end = Instant::now() + Duration::from_secs(10);
            while let Err(e) = ch.publish(Message::new(i.to_string()), "", &q, &PublishOptions::default()) {
                assert!(e.is_recoverable() && Instant::now() < end, "publish {i}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let s = seen.clone();
    let mut consumer = Consumer::new(&conn, [Queue::new(&q)]).prefetch(10).on_message(move |m| {
        s.lock().unwrap().insert(text(&m));
        let _ = m.ack();
    });
    consumer.consume().unwrap();
    let drain_until = |n: usize| {
        let end = Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().len() < n && Instant::now() < end {
            let _ = conn.drain_events(Some(Duration::from_millis(200)));
        }
    };
    publish_all(0..N / 2);
    drain_until(N / 4);
    // Restart while the consumer is mid-way, with messages still in the queue.
    server.restart();
    publish_all(N / 2..N);
    drain_until(N);
    let seen = seen.lock().unwrap();
    let missing: Vec<usize> = (0..N).filter(|i| !seen.contains(&i.to_string())).collect();
    assert!(
        missing.is_empty(),
        "lost {} messages across the restart: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}
