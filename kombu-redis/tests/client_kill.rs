//! A consumer whose connections are killed by the server (CLIENT KILL) at arbitrary instants goes on
//! consuming, and no message is lost.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kombu_core::transport::PublishOptions;
use kombu_core::{Consumer, Message, Queue};

#[test]
fn consumer_survives_client_kill_without_losing_messages() {
    const N: usize = 3000;
    let q = unique("kill");
    let name = unique("killme").replace('.', "_");
    // The default visibility timeout (an hour): whatever comes back here came back by the in-flight record.
    let url = format!("{URL}?client_name={name}");
    let conn = open(&url);
    conn.channel().unwrap().declare(&Queue::new(&q)).unwrap();

    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [Queue::new(&q)]).prefetch(50).on_message(move |m| {
        *s.lock().unwrap().entry(text(&m)).or_default() += 1;
        // An ack cut off by a kill is retried (removing a record twice is harmless).
        for _ in 0..5 {
            match m.ack() {
                Ok(()) => break,
                Err(e) if e.is_recoverable() => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("ack: {e}"),
            }
        }
    });
    let _subscription = consumer.consume().unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let q = q.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let p = open(URL);
            let ch = p.channel().unwrap();
            for i in 0..N {
                ch.publish(Message::new(i.to_string()), "", &q, &PublishOptions::default()).unwrap();
                if i % 500 == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let killer = {
        let name = name.clone();
        std::thread::spawn(move || {
            // Until 12 connections are killed: a round may find none (the consumer reconnecting), and
            // the consumer keeps draining, so reconnecting, until the killer is done.
            let mut kills = 0;
            let end = Instant::now() + Duration::from_secs(20);
            while kills < 12 && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(40));
                kills += kill_named(&name);
            }
            kills
        })
    };
    let end = Instant::now() + Duration::from_secs(40);
    while (seen.lock().unwrap().len() < N || !killer.is_finished()) && Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(200)));
    }
    producer.join().unwrap();
    let kills = killer.join().unwrap();
    assert!(kills >= 12, "the test killed only {kills} connections");
    let seen = seen.lock().unwrap();
    let missing: Vec<usize> = (0..N).filter(|i| !seen.contains_key(&i.to_string())).collect();
    assert!(
        missing.is_empty(),
        "lost {} messages after {kills} kills: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(done.load(Ordering::Acquire));
    let duplicates = seen.values().filter(|n| **n > 1).count();
    println!("{N} messages, {kills} connections killed, {duplicates} delivered twice");
}

#[test]
fn publisher_survives_client_kill_without_losing_messages() {
    const N: usize = 3000;
    let q = unique("pkill");
    let name = unique("pkillme").replace('.', "_");
    let conn = open(&format!("{URL}?client_name={name}"));
    let ch = conn.channel().unwrap();
    ch.declare(&Queue::new(&q)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (name, stop) = (name.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut kills = 0;
            while !stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(15));
                kills += kill_named(&name);
            }
            kills
        })
    };
    let mut failures = 0;
    for i in 0..N {
        // A publish may report a connection error when even the retry failed; publish it again then.
        while let Err(e) = ch.publish(Message::new(i.to_string()), "", &q, &PublishOptions::default()) {
            assert!(e.is_recoverable(), "{e}");
            failures += 1;
            assert!(failures < 1000, "too many failures: {e}");
        }
    }
    stop.store(true, Ordering::Release);
    let kills = killer.join().unwrap();
    // Publishes are pipelined: their replies are read (and those a kill cut off sent again) by the
    // channel's next operation. Settle now, after the last kill, before another connection looks.
    ch.close().unwrap();
    let reader_conn = open(URL);
    let reader = reader_conn.channel().unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    while let Some(m) = reader.get(&q, true).unwrap() {
        *seen.entry(text(&m)).or_default() += 1;
    }
    let missing = (0..N).filter(|i| !seen.contains_key(&i.to_string())).count();
    assert!(kills > 0, "nothing was killed");
    assert_eq!(missing, 0, "lost {missing} of {N} publishes after {kills} kills");
    println!("{N} publishes, {kills} connections killed, {failures} retried by the caller");
}
