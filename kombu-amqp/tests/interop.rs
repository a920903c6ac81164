//! Interoperability with Python Kombu over py-amqp on the same RabbitMQ, both directions: body, headers
//! and properties arrive intact. Needs `python3` with `kombu` (`pip install kombu`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{connect, get_within, unique, url};
use kombu_core::{DeliveryMode, Exchange, Producer, Queue};
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
    let producer = Producer::new(&conn).unwrap().exchange(ex.clone());
    let mut publish = producer
        .publish(&body)
        .routing_key("interop")
        .headers(h)
        .priority(5)
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
    assert_eq!(got["headers"], headers());
    let p = &got["properties"];
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
    // Python's Decimal('-3.5'), Decimal('0') and Decimal('1.25') arrive as AMQP decimals, read as floats
    // (the value is signed: -3.5 once read as 429496726.1).
    let mut want = headers();
    want["dec_neg"] = json!(-3.5);
    want["dec_zero"] = json!(0.0);
    want["dec_pos"] = json!(1.25);
    assert_eq!(Value::Object(m.headers.clone()), want);
    let p = &m.properties;
    assert_eq!(p.delivery_mode, Some(DeliveryMode::Persistent));
    assert_eq!(p.priority, Some(3));
    assert_eq!(p.correlation_id.as_deref(), Some("corr-py"));
    assert_eq!(p.reply_to.as_deref(), Some("reply-py"));
    assert_eq!(p.expiration, Some(Duration::from_secs(60)));
    assert_eq!(p.message_id.as_deref(), Some("mid-py"));
    assert_eq!(p.timestamp, Some(1_700_000_000));
    assert_eq!(p.extra["type"], "kind-py");
    assert_eq!(p.extra["app_id"], "app-py");
    assert_eq!(&*m.delivery_info.exchange, ex.name.as_str());
    assert_eq!(&*m.delivery_info.routing_key, "interop");
    m.ack().unwrap();
    ch.delete_queue(&q.name, false, false).unwrap();
    ch.delete_exchange(&ex.name, false).unwrap();
}
