//! Interoperability with Python Kombu 5.x on the same server, both directions, driven from Rust through
//! `tests/py_helper.py`: direct, topic and fanout exchanges, headers, priorities, binary bodies, and
//! restores of unacknowledged messages after the visibility timeout.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::python::*;
use common::*;
use kombu_core::transport::PublishOptions;
use kombu_core::{Consumer, Decimal, Exchange, FieldTable, FieldValue, Message, Queue};
use serde_json::{json, Value};

#[test]
fn python_publishes_rust_consumes_direct_topic_priorities_binary() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    // Topic exchange declared and bound by Python, with headers and a binary body.
    let (tex, tq) = (unique("py.tex"), unique("py.tq"));
    let body = b"\x00\x01\xfe\xffbinary";
    python(json!({"op": "publish", "url": URL, "exchange": tex, "type": "topic", "queue": tq, "binding": "a.*",
        "messages": [{"body_b64": b64(body), "routing_key": "a.b", "headers": {"h": "v", "n": 3}},
                     {"body_b64": b64(b"skipped"), "routing_key": "b.c"}]}));
    let m = ch.get(&tq, false).unwrap().expect("python's message");
    assert_eq!(&m.body[..], body);
    assert_eq!(m.headers["h"], "v");
    assert_eq!(m.headers["n"], 3);
    assert_eq!(m.content_type.as_deref(), Some("application/octet-stream"));
    assert_eq!(&*m.delivery_info.routing_key, "a.b");
    m.ack().unwrap();
    assert!(ch.get(&tq, false).unwrap().is_none());

    // Priorities on a direct exchange: Kombu's bands, 0 first.
    let (dex, dq) = (unique("py.dex"), unique("py.dq"));
    let prios = [0u8, 2, 5, 9, 3, 0, 9];
    let messages: Vec<Value> = prios
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"body_b64": b64(format!("{i}").as_bytes()), "routing_key": "k", "priority": p}))
        .collect();
    python(json!({"op": "publish", "url": URL, "exchange": dex, "type": "direct", "queue": dq, "binding": "k",
        "messages": messages}));
    let mut got = Vec::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let consumer =
        Consumer::new(&conn, [Queue::with_exchange(&dq, Exchange::direct(&dex), "k")]).on_message(move |m| {
            s.lock().unwrap().push(m.properties.priority.unwrap_or(0));
            m.ack().unwrap();
        });
    let _subscription = consumer.consume().unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < prios.len() && Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(200)));
    }
    got.extend(seen.lock().unwrap().iter().copied());
    assert_eq!(got, vec![0, 2, 0, 5, 3, 9, 9]);
}

#[test]
fn rust_publishes_python_consumes_topic_headers_priorities_binary() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let ex = Exchange::topic(unique("rs.tex"));
    let q = unique("rs.tq");
    ch.declare(&Queue::with_exchange(&q, ex.clone(), "a.#")).unwrap();
    let body = b"\xff\x00rust\x01".to_vec();
    for (i, p) in [9u8, 0, 4].iter().enumerate() {
        let m = Message::new(body.clone())
            .content_type("application/octet-stream")
            .content_encoding("binary")
            .header("i", i as i64)
            .priority(*p);
        ch.publish(m, &ex.name, "a.b.c", &PublishOptions::default()).unwrap();
    }
    let got = python(json!({"op": "consume", "url": URL, "exchange": ex.name, "type": "topic", "queue": q,
        "binding": "a.#", "count": 3, "timeout": 10}));
    assert_eq!(got.len(), 3, "{got:?}");
    let prios: Vec<u64> = got.iter().map(|v| v["priority"].as_u64().unwrap()).collect();
    assert_eq!(prios, vec![0, 4, 9]);
    for v in &got {
        assert_eq!(v["body_b64"], b64(&body));
        assert_eq!(v["routing_key"], "a.b.c");
        assert_eq!(v["content_type"], "application/octet-stream");
        assert!(v["headers"]["i"].is_u64());
    }
    let mut r = raw();
    let left: Option<String> = redis::cmd("RPOP").arg(&q).query(&mut r).unwrap();
    assert!(left.is_none());
}

#[test]
fn fanout_both_ways() {
    // Rust publishes, Python's subscribed consumer receives.
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let ex = Exchange::fanout(unique("fx"));
    let pq = unique("fx.pyq");
    let (child, out) = python_consumer(json!({"op": "consume", "url": URL, "exchange": ex.name, "type": "fanout",
        "queue": pq, "binding": "", "count": 1, "timeout": 10}));
    ch.declare_exchange(&ex, false).unwrap();
    // The helper says READY after its first poll, which is when Python Kombu subscribes.
    ch.publish(Message::new("to python").content_type("text/plain"), &ex.name, "", &PublishOptions::default()).unwrap();
    let got = finish(child, out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["body_b64"], b64(b"to python"));

    // Python publishes (with a routing key), Rust's subscribed consumer receives.
    let rq = unique("fx.rsq");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [Queue::with_exchange(&rq, ex.clone(), "")]).on_message(move |m| {
        s.lock().unwrap().push(text(&m));
        m.ack().unwrap();
    });
    let _subscription = consumer.consume().unwrap();
    let _ = conn.drain_events(Some(Duration::from_millis(300)));
    python(json!({"op": "publish", "url": URL, "exchange": ex.name, "type": "fanout", "queue": unique("fx.other"),
        "binding": "", "messages": [{"body_b64": b64(b"to rust"), "routing_key": "some.key",
        "content_type": "text/plain", "content_encoding": "utf-8"}]}));
    let end = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() && Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(200)));
    }
    assert_eq!(*seen.lock().unwrap(), vec!["to rust".to_string()]);
}

#[test]
fn rust_takes_without_ack_and_python_gets_it_after_the_visibility_timeout() {
    let (ex, q) = (unique("vt.ex"), unique("vt.q"));
    let keys = unique("vt.keys");
    {
        let conn = open(&format!("{URL}?{}", own_unacked(&keys)));
        let ch = conn.channel().unwrap();
        ch.declare(&Queue::with_exchange(&q, Exchange::direct(&ex), "k")).unwrap();
        ch.publish(Message::new("once").content_type("text/plain"), &ex, "k", &PublishOptions::default()).unwrap();
        let m = ch.get(&q, false).unwrap().expect("taken");
        assert_eq!(text(&m), "once");
        // The Rust consumer dies here without acknowledging or closing.
        std::mem::forget(m);
        std::mem::forget(ch);
        std::mem::forget(conn);
    }
    std::thread::sleep(Duration::from_millis(1100));
    let got = python(json!({"op": "consume", "url": URL, "exchange": ex, "type": "direct", "queue": q,
        "binding": "k", "count": 1, "timeout": 10,
        "transport_options": with(own_unacked_py(&keys), json!({"visibility_timeout": 1, "unacked_restore_throttle": 1}))}));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["body_b64"], b64(b"once"));
    assert_eq!(got[0]["redelivered"], true);
}

#[test]
fn python_takes_without_ack_and_rust_gets_it_after_the_visibility_timeout() {
    let (ex, q) = (unique("vt2.ex"), unique("vt2.q"));
    let keys = unique("vt2.keys");
    python(json!({"op": "publish", "url": URL, "exchange": ex, "type": "direct", "queue": q, "binding": "k",
        "messages": [{"body_b64": b64(b"from python"), "routing_key": "k"}]}));
    let taken = python(json!({"op": "take_and_die", "url": URL, "exchange": ex, "type": "direct", "queue": q,
        "binding": "k", "transport_options": own_unacked_py(&keys)}));
    assert_eq!(taken[0]["body_b64"], b64(b"from python"));
    let conn = open(&format!("{URL}?visibility_timeout=1&unacked_restore_interval=0.2&{}", own_unacked(&keys)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [Queue::with_exchange(&q, Exchange::direct(&ex), "k")]).on_message(move |m| {
        s.lock().unwrap().push((m.body.to_vec(), m.delivery_info.redelivered));
        m.ack().unwrap();
    });
    let _subscription = consumer.consume().unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() && Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(200)));
    }
    assert_eq!(*seen.lock().unwrap(), vec![(b"from python".to_vec(), true)]);
}

#[test]
fn global_keyprefix_is_shared_with_python() {
    let prefix = format!("{}:", unique("pfx"));
    let url = format!("{URL}?global_keyprefix={prefix}");
    let (ex, q) = (unique("gp.ex"), unique("gp.q"));
    // Python publishes with the prefix; Rust with the same prefix takes it and leaves it unacked.
    python(json!({"op": "publish", "url": URL, "exchange": ex, "type": "direct", "queue": q, "binding": "k",
        "transport_options": {"global_keyprefix": prefix},
        "messages": [{"body_b64": b64(b"prefixed"), "routing_key": "k"}]}));
    let mut r = raw();
    let members: Vec<String> =
        redis::cmd("SMEMBERS").arg(format!("{prefix}_kombu.binding.{ex}")).query(&mut r).unwrap();
    assert_eq!(members.len(), 1);
    let conn = open(&url);
    let ch = conn.channel().unwrap();
    let m = ch.get(&q, false).unwrap().expect("python's prefixed message");
    assert_eq!(text(&m), "prefixed");
    let tag = m.delivery_info.delivery_tag.to_string();
    let recorded: bool = redis::cmd("HEXISTS").arg(format!("{prefix}unacked")).arg(&tag).query(&mut r).unwrap();
    assert!(recorded, "the delivery is recorded in the prefixed unacked hash");
    m.ack().unwrap();
    // Rust publishes with the prefix; Python with the prefix consumes it.
    ch.publish(Message::new("back").content_type("text/plain"), &ex, "k", &PublishOptions::default()).unwrap();
    let len: i64 = redis::cmd("LLEN").arg(format!("{prefix}{q}")).query(&mut r).unwrap();
    assert_eq!(len, 1);
    let got = python(json!({"op": "consume", "url": URL, "exchange": ex, "type": "direct", "queue": q,
        "binding": "k", "count": 1, "timeout": 10, "transport_options": {"global_keyprefix": prefix}}));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["body_b64"], b64(b"back"));
}

#[test]
fn fanout_with_global_keyprefix_from_python() {
    let prefix = format!("{}:", unique("fpx"));
    let conn = open(&format!("{URL}?global_keyprefix={prefix}"));
    let ex = Exchange::fanout(unique("fpx.ex"));
    let q = unique("fpx.q");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [Queue::with_exchange(&q, ex.clone(), "")]).on_message(move |m| {
        s.lock().unwrap().push(text(&m));
        m.ack().unwrap();
    });
    let _subscription = consumer.consume().unwrap();
    let _ = conn.drain_events(Some(Duration::from_millis(300)));
    python(json!({"op": "publish", "url": URL, "exchange": ex.name, "type": "fanout", "queue": unique("fpx.other"),
        "binding": "", "transport_options": {"global_keyprefix": prefix},
        "messages": [{"body_b64": b64(b"prefixed fanout"), "routing_key": "rk",
        "content_type": "text/plain", "content_encoding": "utf-8"}]}));
    let end = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() && Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(200)));
    }
    assert_eq!(*seen.lock().unwrap(), vec!["prefixed fanout".to_string()]);
}

/// Typed headers Python Kombu gives its own types: `datetime`, `Decimal` and `bytes`, nested too.
fn typed_headers() -> FieldTable {
    let mut nested = FieldTable::new();
    nested.insert("when", FieldValue::Array(vec![FieldValue::Timestamp(0)]));
    nested.insert("price", Decimal::new(1250, 2));
    [
        ("tiny", FieldValue::Decimal(Decimal::new(1, 3))),
        ("neg", Decimal::new(-35, 1).into()),
        ("at", FieldValue::Timestamp(1_700_000_000)),
        ("raw", vec![0u8, 0xff].into()),
        ("text_bytes", b"abc".as_slice().into()),
        ("void", FieldValue::Void),
        ("big", i64::MIN.into()),
        ("nested", nested.into()),
    ]
    .into_iter()
    .collect()
}

#[test]
fn typed_headers_and_properties_keep_their_python_types_both_ways() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let ex = Exchange::direct(unique("rs.typed"));
    let q = unique("rs.typedq");
    ch.declare(&Queue::with_exchange(&q, ex.clone(), "k")).unwrap();
    let mut m = Message::new("typed").header("plain", "v");
    m.headers.extend(typed_headers());
    m.properties.message_type = Some("kind-rs".into());
    m.properties.app_id = Some("app-rs".into());
    m.properties.user_id = Some("user-rs".into());
    m.properties.cluster_id = Some("cluster-rs".into());
    ch.publish(m.clone(), &ex.name, "k", &PublishOptions::default()).unwrap();
    let got = python(json!({"op": "consume", "url": URL, "exchange": ex.name, "type": "direct", "queue": q,
        "binding": "k", "count": 1, "timeout": 10}));
    assert_eq!(got.len(), 1, "{got:?}");
    let types = &got[0]["header_types"];
    for (k, t) in [
        ("tiny", "Decimal"),
        ("neg", "Decimal"),
        ("at", "datetime"),
        ("raw", "bytes"),
        ("text_bytes", "bytes"),
        ("void", "NoneType"),
        ("big", "int"),
        ("nested", "dict"),
        ("plain", "str"),
    ] {
        assert_eq!(types[k], t, "Python's type of header {k}: {types}");
    }
    let theirs: FieldTable = serde_json::from_value(got[0]["headers"].clone()).unwrap();
    assert_eq!(theirs, m.headers);
    assert_eq!(
        got[0]["properties"],
        json!({"type": "kind-rs", "app_id": "app-rs", "user_id": "user-rs",
        "cluster_id": "cluster-rs"})
    );

    // Python publishes the same values as Python objects; Rust reads them typed.
    python(json!({"op": "publish", "url": URL, "exchange": ex.name, "type": "direct", "queue": q, "binding": "k",
        "messages": [{"body_b64": b64(b"from python"), "routing_key": "k", "headers": Value::from(&typed_headers()),
            "properties": {"type": "kind-py", "app_id": "app-py", "user_id": "user-py", "cluster_id": "cluster-py"}}]}));
    let back = ch.get(&q, false).unwrap().expect("python's message");
    assert_eq!(back.headers, typed_headers());
    let p = &back.properties;
    assert_eq!(
        (p.message_type.as_deref(), p.app_id.as_deref(), p.user_id.as_deref(), p.cluster_id.as_deref()),
        (Some("kind-py"), Some("app-py"), Some("user-py"), Some("cluster-py"))
    );
    assert!(p.extra.is_empty(), "{:?}", p.extra);
    back.ack().unwrap();
}
