//! Kombu's layout options against the real server, with Python Kombu on the other side where it matters:
//! `sep` (Celery's `sep=':'`) in binding members and priority queue names, shared `priority_steps`, and
//! `queue_order_strategy` deciding which of a consumer's queues is served first.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kombu_core::transport::PublishOptions;
use kombu_core::{Connection, Consumer, ErrorKind, Exchange, Message, Queue};
use serde_json::{json, Value};

kombu_core::register_transport!(kombu_redis::DESCRIPTOR);

const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py_helper.py");

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Runs the Python Kombu helper to completion; returns its JSON lines.
fn python(spec: Value) -> Vec<Value> {
    let out = Command::new("python3").arg(HELPER).arg(spec.to_string()).output().expect("python3");
    assert!(out.status.success(), "helper failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn members(set: &str) -> Vec<String> {
    let mut r = raw();
    let mut m: Vec<String> = redis::cmd("SMEMBERS").arg(set).query(&mut r).unwrap();
    m.sort();
    m
}

fn llen(key: &str) -> u64 {
    redis::cmd("LLEN").arg(key).query(&mut raw()).unwrap()
}

/// Consumes `n` messages from `queues` on `conn`, acking each; returns (queue, body) in delivery order.
fn consume(conn: &Connection, queues: Vec<Queue>, n: usize) -> Vec<(String, String)> {
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let s = seen.clone();
    let consumer = Consumer::new(conn, queues).on_message(move |m| {
        s.lock().unwrap().push((m.delivery_info.routing_key.to_string(), text(&m)));
        m.ack().unwrap();
    });
    let _subscription = consumer.consume().unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < n && Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(100)));
    }
    drop(consumer);
    let got = seen.lock().unwrap().clone();
    got
}

#[test]
fn a_python_binding_with_sep_colon_is_routed_by_a_rust_publisher_with_sep_colon() {
    let (ex, q) = (unique("sep.ex"), unique("sep.q"));
    // Python Kombu declares and binds with Celery's sep=':'.
    python(json!({"op": "publish", "url": URL, "exchange": ex, "type": "direct", "queue": q, "binding": "k",
        "transport_options": {"sep": ":"}, "messages": []}));
    assert_eq!(members(&format!("_kombu.binding.{ex}")), vec![format!("k::{q}")]);

    // A Rust publisher with the default separator does not understand that member: nothing is routed.
    let plain = open(URL);
    let ch = plain.channel().unwrap();
    ch.publish(Message::new("lost").content_type("text/plain"), &ex, "k", &PublishOptions::default()).unwrap();
    ch.close().unwrap();
    assert_eq!(llen(&q), 0, "the default separator must not match a ':' member");

    // With ?sep=: it routes (server-side, through the ROUTE script), and Python consumes the message.
    let url = format!("{URL}?sep=:");
    let conn = open(&url);
    let ch = conn.channel().unwrap();
    let m = Message::new("via colon").content_type("text/plain").content_encoding("utf-8");
    ch.publish(m, &ex, "k", &PublishOptions::default()).unwrap();
    let got = python(json!({"op": "consume", "url": URL, "exchange": ex, "type": "direct", "queue": q,
        "binding": "k", "transport_options": {"sep": ":"}, "count": 1, "timeout": 10}));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["body_b64"], b64(b"via colon"));

    // A Rust binding with ?sep=: is written as Python writes it, and a batch (routed client-side from
    // the binding set) and a topic exchange route through ':' members too.
    let (tex, tq) = (Exchange::topic(unique("sep.tex")), unique("sep.tq"));
    ch.declare(&Queue::with_exchange(&tq, tex.clone(), "a.*")).unwrap();
    assert_eq!(members(&format!("_kombu.binding.{}", tex.name)), vec![format!("a.*:^a\\.[^\\.]+$:{tq}")]);
    ch.publish(Message::new("t1").content_type("text/plain"), &tex.name, "a.b", &PublishOptions::default()).unwrap();
    let batch = vec![kombu_core::Outgoing {
        message: Message::new("t2").content_type("text/plain"),
        exchange: tex.name.clone(),
        routing_key: "a.c".into(),
    }];
    ch.publish_batch(batch, &PublishOptions::default()).unwrap();
    let got = python(json!({"op": "consume", "url": URL, "exchange": tex.name, "type": "topic", "queue": tq,
        "binding": "a.*", "transport_options": {"sep": ":"}, "count": 2, "timeout": 10}));
    let bodies: Vec<&Value> = got.iter().map(|v| &v["body_b64"]).collect();
    assert_eq!(bodies, vec![&json!(b64(b"t1")), &json!(b64(b"t2"))]);
    // Deleting the queue removes its ':' bindings.
    ch.delete_queue(&tq, false, false).unwrap();
    assert!(members(&format!("_kombu.binding.{}", tex.name)).is_empty());
}

#[test]
fn priority_messages_in_colon_sub_queues_with_shared_priority_steps_cross_both_ways() {
    let (ex, q) = (unique("pri.ex"), unique("pri.q"));
    let py_opts = json!({"sep": ":", "priority_steps": [0, 5]});
    // Python publishes with sep ':' and steps [0, 5]: priorities 0-4 in q, 5-9 in q:5.
    let prios = [7u8, 0, 9, 3, 5];
    let messages: Vec<Value> = prios
        .iter()
        .map(|p| json!({"body_b64": b64(format!("p{p}").as_bytes()), "routing_key": "k", "priority": p}))
        .collect();
    python(json!({"op": "publish", "url": URL, "exchange": ex, "type": "direct", "queue": q, "binding": "k",
        "transport_options": py_opts, "messages": messages}));
    assert_eq!((llen(&q), llen(&format!("{q}:5"))), (2, 3), "Python's layout with sep ':' and steps [0, 5]");

    // Rust with the same sep and steps reads them all, band 0 first, FIFO within a band.
    let url = format!("{URL}?sep=:&priority_steps=0,5");
    let conn = open(&url);
    let got = consume(&conn, vec![Queue::with_exchange(&q, Exchange::direct(&ex), "k")], prios.len());
    let bodies: Vec<&str> = got.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(bodies, vec!["p0", "p3", "p7", "p9", "p5"]);

    // Rust publishes into the same layout, and Python reads it in its own order.
    let ch = conn.channel().unwrap();
    for p in [6u8, 1, 5] {
        let m = Message::new(format!("r{p}")).content_type("text/plain").priority(p);
        ch.publish(m, &ex, "k", &PublishOptions::default()).unwrap();
    }
    ch.close().unwrap();
    assert_eq!((llen(&q), llen(&format!("{q}:5"))), (1, 2));
    let got = python(json!({"op": "consume", "url": URL, "exchange": ex, "type": "direct", "queue": q,
        "binding": "k", "transport_options": py_opts, "count": 3, "timeout": 10}));
    let bodies: Vec<&Value> = got.iter().map(|v| &v["body_b64"]).collect();
    assert_eq!(bodies, vec![&json!(b64(b"r1")), &json!(b64(b"r6")), &json!(b64(b"r5"))]);
}

/// Publishes `n` messages to each queue (default exchange), `q1` first.
fn fill(url: &str, queues: &[&str], n: usize) {
    let conn = open(url);
    let ch = conn.channel().unwrap();
    for q in queues {
        ch.declare(&Queue::new(*q)).unwrap();
        for i in 0..n {
            ch.publish(Message::new(format!("{i}")).content_type("text/plain"), "", q, &PublishOptions::default())
                .unwrap();
        }
    }
    ch.close().unwrap();
}

fn order_of(url: &str, queues: &[&str], n: usize) -> Vec<String> {
    fill(URL, queues, n);
    let conn = open(url);
    let got = consume(&conn, queues.iter().map(|q| Queue::new(*q)).collect(), n * queues.len());
    assert_eq!(got.len(), n * queues.len(), "{got:?}");
    got.into_iter().map(|(q, _)| q).collect()
}

#[test]
fn queue_order_strategy_decides_which_queue_is_served_first() {
    let n = 5;
    // priority: the first queue the consumer names is drained before the second.
    let (a, b) = (unique("ord.p2"), unique("ord.p1"));
    let got = order_of(&format!("{URL}?queue_order_strategy=priority"), &[&a, &b], n);
    assert_eq!(got, [vec![a.clone(); n], vec![b.clone(); n]].concat());

    // sorted: the queue with the first name is drained first, whatever the consumer's order.
    let (a, b) = (unique("ord.s2"), unique("ord.s1"));
    let mut sorted = [a.clone(), b.clone()];
    sorted.sort();
    let got = order_of(&format!("{URL}?queue_order_strategy=sorted"), &[&a, &b], n);
    assert_eq!(got, [vec![sorted[0].clone(); n], vec![sorted[1].clone(); n]].concat());

    // round_robin (the default): the queues take turns.
    let (a, b) = (unique("ord.r1"), unique("ord.r2"));
    let got = order_of(URL, &[&a, &b], n);
    assert_eq!(&got[..4], &[a.clone(), b.clone(), a.clone(), b.clone()], "{got:?}");
}

#[test]
fn bad_options_fail_at_open_with_the_option_named() {
    let e = Connection::open("redis://127.0.0.1:6379/0?visiblity_timeout=5").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.to_string()
            .ends_with("unknown option 'visiblity_timeout' for transport redis: did you mean 'visibility_timeout'?"),
        "{e}"
    );
    for q in [
        "visibility_timeout=1e20",
        "socket_timeout=1e20",
        "polling_interval=1e19",
        "health_check_interval=1e19",
        "unacked_restore_interval=1e19",
        "queue_order_strategy=fifo",
        "sep=",
    ] {
        let e = Connection::open(&format!("redis://127.0.0.1:6379/0?{q}")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{q}");
        assert!(e.to_string().contains(&format!("'{q}' for transport redis")), "{e}");
    }
}
