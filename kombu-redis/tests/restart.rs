//! A publisher and a consumer on a private redis-server that restarts under them: both go on, and no
//! message published is lost.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kombu_core::transport::PublishOptions;
use kombu_core::{Consumer, Message, Queue};

kombu_core::register_transport!(kombu_redis::DESCRIPTOR);

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
    let consumer = Consumer::new(&conn, [Queue::new(&q)]).prefetch(10).on_message(move |m| {
        s.lock().unwrap().insert(text(&m));
        let _ = m.ack();
    });
    let _subscription = consumer.consume().unwrap();
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

#[test]
fn confirmed_publishes_survive_restarts_under_a_publisher_and_a_hub_consumer() {
    use kombu_core::{Connection, Hub, Producer, RetryPolicy};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};

    const N: usize = 3000;
    const RESTARTS: usize = 3;
    // The append-only file keeps the data across a restart (PrivateRedis stops it with SIGTERM).
    let server = PrivateRedis::start();
    let url = server.url();
    let q = unique("restarts");
    let retry = RetryPolicy::default().max_retries(None).intervals(
        Duration::from_millis(20),
        Duration::from_millis(50),
        Duration::from_millis(200),
    );
    let conn = Connection::builder(&url).retry(retry.clone()).open().unwrap();
    let mut hub = Hub::new().unwrap();
    conn.register_with_event_loop(&mut hub).unwrap();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let errs = errors.clone();
    hub.on_error(move |e| {
        let mut chain = vec![e.to_string()];
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        errs.lock().unwrap().push(chain.join(": "));
    });
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [Queue::new(&q)]).prefetch(20).on_message(move |m| {
        *s.lock().unwrap().entry(text(&m)).or_default() += 1;
        // An ack cut off by the restart leaves the message in flight; it was received all the same.
        if let Err(e) = m.ack() {
            assert!(e.is_recoverable(), "ack: {e}");
        }
    });
    let _subscription = consumer.consume().unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (url, q, retry, done) = (url.clone(), q.clone(), retry.clone(), done.clone());
        std::thread::spawn(move || {
            let conn = Connection::builder(&url).retry(retry).open().unwrap();
            let producer = Producer::new(&conn).unwrap().routing_key(q);
            let (mut ok, mut failed) = (Vec::new(), 0);
            for i in 0..N {
                match producer.publish_bytes(i.to_string()).send() {
                    Ok(()) => ok.push(i.to_string()),
                    Err(_) => failed += 1,
                }
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            done.store(true, Ordering::Release);
            (ok, failed)
        })
    };
    let restarter = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut server = server;
            let mut restarts = 0;
            while restarts < RESTARTS && !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1200));
                server.restart();
                restarts += 1;
            }
            (server, restarts)
        })
    };
    let end = Instant::now() + Duration::from_secs(50);
    while !(publisher.is_finished() && restarter.is_finished()) && Instant::now() < end {
        hub.run_for(Duration::from_millis(50)).unwrap();
    }
    let (ok, failed) = publisher.join().unwrap();
    let (_server, restarts) = restarter.join().unwrap();
    let missing_of = |seen: &HashMap<String, usize>| ok.iter().filter(|b| !seen.contains_key(*b)).count();
    while missing_of(&seen.lock().unwrap()) > 0 && Instant::now() < end {
        hub.run_for(Duration::from_millis(50)).unwrap();
    }
    let seen = seen.lock().unwrap();
    let missing: Vec<&String> = ok.iter().filter(|b| !seen.contains_key(*b)).collect();
    let duplicates = seen.values().filter(|n| **n > 1).count();
    println!(
        "{N} publishes, {} confirmed, {failed} failed, {restarts} restarts, {} received, {duplicates} duplicates",
        ok.len(),
        seen.len()
    );
    assert_eq!(restarts, RESTARTS, "the server restarted while the publisher ran");
    println!("hub errors: {:?}", errors.lock().unwrap());
    assert!(missing.is_empty(), "lost {} confirmed messages: {:?}", missing.len(), &missing[..missing.len().min(10)]);
}

/// A server away for longer than the default retry policy's first-connection retries: a consumer that
/// was connected keeps looking for it, and goes on when it is back.
#[test]
fn a_hub_consumer_outlasts_a_long_outage_with_the_default_retry_policy() {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use kombu_core::{Connection, Consumer, Hub, Message, Queue};
    let mut server = common::PrivateRedis::start();
    let conn = Connection::open(&server.url()).unwrap();
    let q = common::unique("outage");
    let mut hub = Hub::new().unwrap();
    conn.register_with_event_loop(&mut hub).unwrap();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let c = Consumer::new(&conn, [Queue::new(q.clone())]).on_message(move |m| {
        g.lock().unwrap().push(common::text(&m));
        m.ack().unwrap();
    });
    let _sub = c.consume().unwrap();
    let url = server.url();
    let publish = |body: &str| {
        let other = Connection::open(&url).unwrap();
        let ch = other.channel().unwrap();
        ch.publish(Message::new(body.to_owned()), "", &q, &Default::default()).unwrap();
    };
    publish("before");
    let run_until = |hub: &mut Hub, n: usize| {
        let end = Instant::now() + Duration::from_secs(30);
        while got.lock().unwrap().len() < n {
            assert!(Instant::now() < end, "consumer got {:?}", got.lock().unwrap());
            hub.run_for(Duration::from_millis(20)).unwrap();
        }
    };
    run_until(&mut hub, 1);
    server.stop();
    // Three seconds away: the default policy (2 retries, 0.1 s then 0.3 s) would be spent many times over.
    let away = Instant::now();
    while away.elapsed() < Duration::from_secs(3) {
        hub.run_for(Duration::from_millis(50)).unwrap();
    }
    server.spawn();
    publish("after");
    run_until(&mut hub, 2);
    assert_eq!(*got.lock().unwrap(), vec!["before".to_owned(), "after".to_owned()]);
}
