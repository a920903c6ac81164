//! Every Kombu codec both ways with Python Kombu, on Redis and on RabbitMQ: each compression (zlib, bzip2,
//! lzma, brotli, zstd) and each serializer (json, msgpack, yaml) published by Python and decoded here, and
//! published here and decoded by Python (`tests/codecs.py`).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use kombu::{Connection, Exchange, Producer, Queue};
use serde_json::{json, Value};

const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/codecs.py");
const URLS: [&str; 2] = ["redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1:5672//"];
const COMPRESSIONS: [Option<&str>; 6] = [None, Some("zlib"), Some("bzip2"), Some("lzma"), Some("brotli"), Some("zstd")];
const SERIALIZERS: [&str; 3] = ["json", "msgpack", "yaml"];

fn python(spec: Value) -> String {
    let out = Command::new("python3").arg(HELPER).arg(spec.to_string()).output().expect("python3 runs");
    assert!(out.status.success(), "{spec}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("kombu-rs.codecs.{what}.{}.{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The queue `tests/codecs.py` uses: bound to a direct exchange of its name, by its name.
fn queue(name: &str) -> Queue {
    Queue::with_exchange(name, Exchange::direct(name), name)
}

fn body() -> Value {
    json!({"args": [1, -2, 3.5], "kwargs": {"text": "héllo ✓", "nested": [true, null]}, "pad": "x".repeat(2000)})
}

fn python_compression_header(name: Option<&str>) -> Option<&'static str> {
    name.map(|n| match n {
        "zlib" => "application/x-gzip",
        "bzip2" => "application/x-bz2",
        "lzma" => "application/x-lzma",
        "brotli" => "application/x-brotli",
        "zstd" => "application/zstd",
        other => panic!("no header known for {other}"),
    })
}

#[test]
fn python_publishes_every_codec_and_rust_decodes_it() {
    for url in URLS {
        let conn = Connection::open(url).unwrap();
        let ch = conn.channel().unwrap();
        for serializer in SERIALIZERS {
            for compression in COMPRESSIONS {
                let name = unique("py");
                python(json!({"op": "publish", "url": url, "queue": name, "serializer": serializer,
                              "compression": compression, "body": body()}));
                let what = format!("{url} {serializer} {compression:?}");
                let m = ch.get(&name, false).unwrap().unwrap_or_else(|| panic!("{what}: no message"));
                assert_eq!(
                    m.headers.get("compression").and_then(kombu::FieldValue::as_str),
                    python_compression_header(compression),
                    "{what}"
                );
                let got: Value = m.decode().unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(got, body(), "{what}");
                m.ack().unwrap();
                ch.delete_queue(&name, false, false).unwrap();
            }
        }
        conn.close().unwrap();
    }
}

#[test]
fn rust_publishes_every_codec_and_python_decodes_it() {
    for url in URLS {
        let conn = Connection::open(url).unwrap();
        let producer = Producer::new(&conn).unwrap();
        for serializer in SERIALIZERS {
            for compression in COMPRESSIONS {
                let name = unique("rs");
                let (q, exchange, value) = (queue(&name), Exchange::direct(&name), body());
                let mut p =
                    producer.publish(&value).exchange(&exchange).routing_key(&name).declare(&q).serializer(serializer);
                if let Some(c) = compression {
                    p = p.compression(c);
                }
                p.send().unwrap();
                let what = format!("{url} {serializer} {compression:?}");
                let line = python(json!({"op": "get", "url": url, "queue": name}));
                let got: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{what}: {e}: {line}"));
                assert_eq!(got["body"], body(), "{what}");
                assert_eq!(got["compression"].as_str(), python_compression_header(compression), "{what}");
                producer.channel().delete_queue(&name, false, false).unwrap();
            }
        }
        conn.close().unwrap();
    }
}
