//! Interoperability with Python Kombu over py-amqp on the same RabbitMQ, both directions: body, headers
//! (typed ones too: `Decimal`, `datetime`, `bytes`) and properties arrive intact, and a message Rust
//! passes on reaches Python with the types it left with. Needs `python3` with `kombu` (`pip install kombu`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{connect, get_within, unique, url};
use kombu_core::{Decimal, DeliveryMode, Exchange, FieldTable, FieldValue, Producer, PublishOptions, Queue};
use serde_json::{json, Value};

fn python(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop.py");
    let out = Command::new("python3").arg(script).args(args).output().expect("python3 runs");
    assert!(out.status.success(), "interop.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn headers() -> Value {
    json!({
        "s": "v", "i": 42, "big": 1u64 << 40, "neg": -7, "f": 2.5, "t": true, "null": null,
        "nested": {"list": [1, "two", {"three": 3.0}], "empty": {}}
    })
}

/// The headers Python printed (Kombu's JSON, so its datetimes, decimals and bytes read typed).
fn python_headers(got: &Value) -> FieldTable {
    FieldTable::from(got["headers"].as_object().cloned().expect("headers are an object"))
}

/// What a table reads as once written in Kombu's JSON (integers of every width become Python ints).
fn as_python_reads(t: &FieldTable) -> FieldTable {
    serde_json::from_value(Value::from(t)).unwrap()
}

/// The typed headers Python's `publish` sends (its `TYPED`), as kombu-rs reads them from py-amqp.
fn python_typed() -> FieldTable {
    let deep: FieldTable =
        [("when", FieldValue::Array(vec![FieldValue::Timestamp(0)])), ("price", Decimal::new(1250, 2).into())]
            .into_iter()
            .collect();
    [
        ("dec_neg", FieldValue::Decimal(Decimal::new(-35, 1))),
        ("dec_zero", Decimal::new(0, 0).into()),
        ("dec_pos", Decimal::new(125, 2).into()),
        ("tiny", Decimal::new(1, 3).into()),
        ("at", FieldValue::Timestamp(1_700_000_000)),
        ("raw", FieldValue::Bytes(vec![0, 0xff])),
        ("deep", deep.into()),
    ]
    .into_iter()
    .collect()
}

fn declare(conn: &kombu_core::Connection) -> (Exchange, Queue) {
    let ex = Exchange::direct(unique("interop-ex")).durable(false);
    let q = Queue::with_exchange(unique("interop-q"), ex.clone(), "interop")
        .durable(false)
        .expires(Duration::from_secs(120));
    conn.default_channel().unwrap().declare(&q).unwrap();
    (ex, q)
}

#[test]
fn rust_publishes_python_kombu_consumes() {
    let conn = connect();
    let (ex, q) = declare(&conn);
    let body = json!({"text": "héllo ✓", "n": 1, "list": [1, 2.5, null, true]});
    let Value::Object(h) = headers() else { unreachable!("headers() is an object") };
    let mut h = FieldTable::from(h);
    // Every AMQP kind, as py-amqp hands it to Python.
    h.insert("i8", FieldValue::I8(-8));
    h.insert("u16", FieldValue::U16(60_000));
    h.insert("u32", FieldValue::U32(u32::MAX));
    h.insert("f32", FieldValue::F32(0.5));
    h.insert("decimal", Decimal::new(-35, 1));
    h.insert("tiny", Decimal::new(1, 3));
    h.insert("at", FieldValue::Timestamp(1_700_000_000));
    h.insert("raw", vec![0u8, 0xff, b'a']);
    h.insert("nested_typed", [("d", FieldValue::from(Decimal::new(7, 2)))].into_iter().collect::<FieldTable>());
    let producer = Producer::new(&conn).unwrap().exchange(ex.clone());
    let mut publish = producer
        .publish(&body)
        .routing_key("interop")
        .headers(h.clone())
        .priority(5)
        .message_type("kind-rs")
        .app_id("app-rs")
        .user_id("guest")
        .cluster_id("cluster-rs")
        .correlation_id("corr-rs")
        .reply_to("reply-rs")
        .expiration(Duration::from_secs(60))
        .message_id("mid-rs")
        .timestamp(1_700_000_000)
        .confirm_timeout(Some(Duration::from_secs(10)));
    publish = publish.delivery_mode(DeliveryMode::Persistent);
    publish.send().unwrap();

    let out = python(&["consume", &url(), &q.name]);
    let got: Value = serde_json::from_str(out.trim()).expect("interop.py prints JSON");
    assert_eq!(got["body"], body);
    assert_eq!(got["content_type"], "application/json");
    assert_eq!(got["content_encoding"], "utf-8");
    let theirs = python_headers(&got);
    assert_eq!(theirs, as_python_reads(&h));
    assert_eq!(theirs["tiny"], FieldValue::Decimal(Decimal::new(1, 3)), "a Python Decimal");
    assert_eq!(theirs["at"], FieldValue::Timestamp(1_700_000_000), "a Python datetime");
    assert_eq!(theirs["raw"], FieldValue::Bytes(vec![0, 0xff, b'a']), "Python bytes");
    let p = &got["properties"];
    assert_eq!(p["type"], "kind-rs");
    assert_eq!(p["app_id"], "app-rs");
    assert_eq!(p["user_id"], "guest");
    assert_eq!(p["cluster_id"], "cluster-rs");
    assert_eq!(p["delivery_mode"], 2);
    assert_eq!(p["priority"], 5);
    assert_eq!(p["correlation_id"], "corr-rs");
    assert_eq!(p["reply_to"], "reply-rs");
    assert_eq!(p["expiration"], "60000");
    assert_eq!(p["message_id"], "mid-rs");
    assert_eq!(p["timestamp"], 1_700_000_000);
    assert_eq!(got["delivery_info"]["exchange"], ex.name.as_str());
    assert_eq!(got["delivery_info"]["routing_key"], "interop");
    assert_eq!(got["delivery_info"]["redelivered"], false);
    let ch = conn.default_channel().unwrap();
    ch.delete_queue(&q.name, false, false).unwrap();
    ch.delete_exchange(&ex.name, false).unwrap();
}

#[test]
fn python_kombu_publishes_rust_consumes() {
    let conn = connect();
    let (ex, q) = declare(&conn);
    python(&["publish", &url(), &ex.name, "interop"]);

    let ch = conn.channel().unwrap();
    let m = get_within(ch.as_ref(), &q.name, Duration::from_secs(5)).unwrap().expect("python's message");
    let body: Value = m.decode().unwrap();
    assert_eq!(body, json!({"text": "héllo ✓", "n": 1, "list": [1, 2.5, null, true]}));
    assert_eq!(m.content_type.as_deref(), Some("application/json"));
    assert_eq!(m.content_encoding.as_deref(), Some("utf-8"));
    // Python's Decimals, datetimes and bytes arrive as AMQP decimals (signed: -3.5 once read as
    // 429496726.1), timestamps and bytes; its ints as py-amqp writes them (`I`, or `L` past 32 bits).
    let Value::Object(plain) = headers() else { unreachable!("headers() is an object") };
    let mut want = FieldTable::from(plain);
    want.extend(python_typed());
    assert_eq!(m.headers, want);
    let p = &m.properties;
    assert_eq!(p.delivery_mode, Some(DeliveryMode::Persistent));
    assert_eq!(p.priority, Some(3));
    assert_eq!(p.correlation_id.as_deref(), Some("corr-py"));
    assert_eq!(p.reply_to.as_deref(), Some("reply-py"));
    assert_eq!(p.expiration, Some(Duration::from_secs(60)));
    assert_eq!(p.message_id.as_deref(), Some("mid-py"));
    assert_eq!(p.timestamp, Some(1_700_000_000));
    assert_eq!(p.message_type.as_deref(), Some("kind-py"));
    assert_eq!(p.app_id.as_deref(), Some("app-py"));
    assert_eq!(p.user_id.as_deref(), Some("guest"));
    assert_eq!(p.cluster_id.as_deref(), Some("cluster-py"));
    assert!(p.extra.is_empty(), "{:?}", p.extra);
    assert_eq!(&*m.delivery_info.exchange, ex.name.as_str());
    assert_eq!(&*m.delivery_info.routing_key, "interop");
    m.ack().unwrap();
    ch.delete_queue(&q.name, false, false).unwrap();
    ch.delete_exchange(&ex.name, false).unwrap();
}

#[test]
fn a_python_message_passed_on_by_rust_keeps_its_types() {
    let conn = connect();
    let (ex, q) = declare(&conn);
    let onward = Queue::new(unique("interop-onward")).durable(false).expires(Duration::from_secs(120));
    let ch = conn.channel().unwrap();
    ch.declare(&onward).unwrap();
    python(&["publish", &url(), &ex.name, "interop"]);
    let m = get_within(ch.as_ref(), &q.name, Duration::from_secs(5)).unwrap().expect("python's message");
    assert_eq!(m.headers["tiny"], FieldValue::Decimal(Decimal::new(1, 3)));
    assert_eq!(m.headers["at"], FieldValue::Timestamp(1_700_000_000));
    let mut options = PublishOptions::default();
    options.confirm_timeout = Some(Duration::from_secs(10));
    ch.publish(m.detached(), "", &onward.name, &options).unwrap();
    m.ack().unwrap();

    let got: Value = serde_json::from_str(python(&["consume", &url(), &onward.name]).trim()).unwrap();
    let theirs = python_headers(&got);
    // Python reads the Decimal, datetime and bytes it sent, not floats and integers. py-amqp reads a
    // decimal as Decimal(value) / Decimal(10 ** scale), which drops trailing zeros: the 12.50 that
    // came (scale 2, value 1250) and went on unchanged reads in Python as Decimal('12.5').
    let mut want = python_typed();
    if let Some(FieldValue::Table(deep)) = want.get_mut("deep") {
        deep.insert("price", Decimal::new(125, 1));
    }
    for (k, v) in &want {
        assert_eq!(&theirs[k], v, "header {k}");
    }
    assert_eq!(got["properties"]["type"], "kind-py");
    assert_eq!(got["properties"]["user_id"], "guest");
    ch.delete_queue(&q.name, false, false).unwrap();
    ch.delete_queue(&onward.name, false, false).unwrap();
    ch.delete_exchange(&ex.name, false).unwrap();
}
