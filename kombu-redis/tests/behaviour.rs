//! Behaviour of the redis transport against the real server: wire layout, routing, priorities,
//! settling, consumers through the Hub, restores.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kombu_core::transport::PublishOptions;
use kombu_core::{Consumer, Exchange, Message, Queue};
use redis::Commands;

fn publish(ch: &Arc<dyn kombu_core::Channel>, ex: &str, rk: &str, body: &str) {
    ch.publish(Message::new(body.to_owned()).content_type("text/plain"), ex, rk, &PublishOptions::default())
        .expect("publish");
}

#[test]
fn stores_and_settles_as_kombu_does() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let (ex, q) = (unique("ex"), unique("q"));
    ch.declare(&Queue::with_exchange(&q, Exchange::direct(&ex), "k")).unwrap();
    let mut r = raw();
    let members: Vec<Vec<u8>> = r.smembers(format!("_kombu.binding.{ex}")).unwrap();
    assert_eq!(members, vec![format!("k\x06\x16\x06\x16{q}").into_bytes()]);
    let permanent: Vec<Vec<u8>> = r.smembers(format!("_kombu.binding_permanent.{ex}")).unwrap();
    assert_eq!(permanent, members);

    let m = Message::new(&b"\x00\xffbin"[..]).content_type("application/octet-stream").header("h", "v").priority(4);
    ch.publish(m, &ex, "k", &PublishOptions::default()).unwrap();
    publish(&ch, &ex, "other", "dropped");
    let stored: Vec<String> = r.lrange(format!("{q}\x06\x163"), 0, -1).unwrap();
    assert_eq!(stored.len(), 1);
    let env: serde_json::Value = serde_json::from_str(&stored[0]).unwrap();
    assert_eq!(env["properties"]["body_encoding"], "base64");
    assert_eq!(env["properties"]["priority"], 4);
    assert_eq!(env["properties"]["delivery_info"]["exchange"], ex.as_str());
    assert_eq!(env["headers"]["h"], "v");
    let tag = env["properties"]["delivery_tag"].as_str().unwrap().to_owned();

    let got = ch.get(&q, false).unwrap().expect("message");
    assert_eq!(&got.body[..], b"\x00\xffbin");
    assert_eq!(got.delivery_info.delivery_tag.to_string(), tag);
    let entry: String = r.hget("unacked", &tag).unwrap();
    let entry: serde_json::Value = serde_json::from_str(&entry).unwrap();
    assert_eq!(entry[0], env);
    assert_eq!(entry[1], ex.as_str());
    assert_eq!(entry[2], "k");
    let score: Option<f64> = r.zscore("unacked_index", &tag).unwrap();
    assert!(score.is_some());
    got.ack().unwrap();
    let gone: Option<String> = r.hget("unacked", &tag).unwrap();
    assert!(gone.is_none());
    assert!(ch.get(&q, false).unwrap().is_none());
    ch.delete_queue(&q, false, false).unwrap();
    let members: Vec<Vec<u8>> = r.smembers(format!("_kombu.binding.{ex}")).unwrap();
    assert!(members.is_empty());
}

#[test]
fn topic_routes_by_amqp_rules_with_kombu_patterns() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let ex = Exchange::topic(unique("tex"));
    let (qa, qs) = (unique("qa"), unique("qs"));
    ch.declare(&Queue::with_exchange(&qa, ex.clone(), "a.#")).unwrap();
    ch.declare(&Queue::with_exchange(&qs, ex.clone(), "a.*")).unwrap();
    let mut r = raw();
    let members: Vec<String> = r.smembers(format!("_kombu.binding.{}", ex.name)).unwrap();
    assert!(members.contains(&format!("a.#\x06\x16^a\\..*?$\x06\x16{qa}")), "{members:?}");
    for k in ["a", "a.b", "a.b.c", "b"] {
        publish(&ch, &ex.name, k, k);
    }
    let bodies = |q: &str| {
        let mut v = Vec::new();
        while let Some(m) = ch.get(q, true).unwrap() {
            v.push(text(&m));
        }
        v
    };
    assert_eq!(bodies(&qa), vec!["a", "a.b", "a.b.c"]);
    assert_eq!(bodies(&qs), vec!["a.b"]);
}

/// A direct exchange's ROUTE reads only its key's members (`SSCAN MATCH`): keys with glob characters
/// match themselves only, a key that is another's prefix only itself, and a set large enough to be a hash
/// table on the server (more than 128 members, scanned in several steps) loses none.
#[test]
fn direct_routing_takes_exactly_the_keys_members_among_many() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let ex = Exchange::direct(unique("dex"));
    let keys = ["a", "ab", "a*", "a?", "[a]", "a\\", "*", "a.b"];
    let queues: Vec<String> = keys.iter().map(|_| unique("dq")).collect();
    for (k, q) in keys.iter().zip(&queues) {
        ch.declare(&Queue::with_exchange(q, ex.clone(), *k)).unwrap();
    }
    // A second binding of the first queue, and one more queue on the key "a".
    ch.declare(&Queue::with_exchange(&queues[0], ex.clone(), "a")).unwrap();
    let also_a = unique("dq");
    ch.declare(&Queue::with_exchange(&also_a, ex.clone(), "a")).unwrap();
    let mut r = raw();
    let binding = format!("_kombu.binding.{}", ex.name);
    let fillers: Vec<String> = (0..300).map(|i| format!("k{i}\x06\x16\x06\x16filler-{i}")).collect();
    let _: () = r.sadd(&binding, &fillers).unwrap();
    for k in keys.iter().chain(&["b", "a\x06\x16"]) {
        publish(&ch, &ex.name, k, k);
    }
    let bodies = |q: &str| {
        let mut v = Vec::new();
        while let Some(m) = ch.get(q, true).unwrap() {
            v.push(text(&m));
        }
        v
    };
    for (k, q) in keys.iter().zip(&queues) {
        assert_eq!(bodies(q), vec![k.to_string()], "queue bound with {k:?}");
    }
    assert_eq!(bodies(&also_a), vec!["a"]);
    let pushed: Vec<String> = r.keys("filler-*").unwrap();
    assert!(pushed.is_empty(), "a message went to another key's queue: {pushed:?}");
    let _: () = r.del(&binding).unwrap();
}

#[test]
fn priorities_come_out_in_kombus_order() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let q = unique("pq");
    ch.declare(&Queue::new(&q).max_priority(9)).unwrap();
    for (i, p) in [0u8, 2, 5, 9, 3, 0, 9].iter().enumerate() {
        let m = Message::new(format!("{i}:{p}")).priority(*p);
        ch.publish(m, "", &q, &PublishOptions::default()).unwrap();
    }
    let mut got = Vec::new();
    while let Some(m) = ch.get(&q, true).unwrap() {
        got.push(m.properties.priority.unwrap_or(0));
    }
    assert_eq!(got, vec![0, 2, 0, 5, 3, 9, 9]);
}

#[test]
fn consumers_receive_through_drain_events_with_prefetch() {
    // A polling interval far above any wait below: a delivery within it can only come from a key
    // notification, however slow the machine.
    let conn = open(&format!("{URL}?polling_interval=60"));
    let ch = conn.channel().unwrap();
    let q = unique("cq");
    ch.declare(&Queue::new(&q)).unwrap();
    for i in 0..50 {
        publish(&ch, "", &q, &i.to_string());
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [Queue::new(&q)]).prefetch(5).on_message(move |m| {
        s.lock().unwrap().push(text(&m));
        m.ack().unwrap();
    });
    let _subscription = consumer.consume().unwrap();
    while seen.lock().unwrap().len() < 50 {
        conn.drain_events(Some(Duration::from_secs(5))).expect("messages");
    }
    let want: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    assert_eq!(*seen.lock().unwrap(), want);
    // Arriving later: woken by the server's key notifications, not by the (60 s) look.
    let p = conn.channel().unwrap();
    publish(&p, "", &q, "late");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 51 && std::time::Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(200)));
    }
    assert_eq!(seen.lock().unwrap().last().map(String::as_str), Some("late"), "no key notification woke the consumer");
    let unacked: Option<String> = raw().hget("unacked", "x").unwrap();
    assert!(unacked.is_none());
}

#[test]
fn reject_requeue_and_close_restore() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let q = unique("rq");
    ch.declare(&Queue::new(&q)).unwrap();
    publish(&ch, "", &q, "one");
    let m = ch.get(&q, false).unwrap().unwrap();
    assert!(!m.delivery_info.redelivered);
    m.reject(true).unwrap();
    let again = ch.get(&q, false).unwrap().unwrap();
    assert!(again.delivery_info.redelivered);
    assert_eq!(text(&again), "one");
    ch.close().unwrap();
    let ch2 = conn.channel().unwrap();
    let third = ch2.get(&q, false).unwrap().expect("restored on close");
    assert!(third.delivery_info.redelivered);
    third.reject(false).unwrap();
    assert!(ch2.get(&q, false).unwrap().is_none());
}

#[test]
fn recover_and_close_put_messages_back_in_delivery_order() {
    let conn = open(URL);
    let q = unique("order");
    let ch = conn.channel().unwrap();
    ch.declare(&Queue::new(&q)).unwrap();
    let bodies = ["m1", "m2", "m3", "m4", "m5"];
    for b in bodies {
        publish(&ch, "", &q, b);
    }
    let take = |ch: &Arc<dyn kombu_core::Channel>| -> Vec<String> {
        bodies.iter().map(|_| text(&ch.get(&q, false).unwrap().expect("message"))).collect()
    };
    assert_eq!(take(&ch), bodies);
    ch.recover(true).unwrap();
    assert_eq!(take(&ch), bodies, "after recover");
    ch.close().unwrap();
    let ch = conn.channel().unwrap();
    assert_eq!(take(&ch), bodies, "after close");
    ch.close().unwrap();
}

#[test]
fn fanout_and_headers_exchanges() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let fan = Exchange::fanout(unique("fan"));
    let (f1, f2) = (unique("f1"), unique("f2"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let consumer =
        Consumer::new(&conn, [Queue::with_exchange(&f1, fan.clone(), "x"), Queue::with_exchange(&f2, fan.clone(), "")])
            .on_message(move |m| {
                s.lock().unwrap().push((m.delivery_info.routing_key.to_string(), text(&m)));
                m.ack().unwrap();
            });
    let _subscription = consumer.consume().unwrap();
    // Let the subscription reach the server.
    let _ = conn.drain_events(Some(Duration::from_millis(300)));
    let p = conn.channel().unwrap();
    p.declare_exchange(&fan, false).unwrap();
    publish(&p, &fan.name, "any.key", "hello");
    while seen.lock().unwrap().len() < 2 {
        conn.drain_events(Some(Duration::from_secs(5))).expect("fanout copies");
    }
    assert_eq!(seen.lock().unwrap().len(), 2);

    let hx = Exchange::headers(unique("hx"));
    let hq = unique("hq");
    let binding = kombu_core::Binding::new(hx.clone(), "").argument("x-match", "all").argument("kind", "a");
    ch.declare(&Queue::new(&hq).binding(binding)).unwrap();
    ch.publish(Message::new("yes").header("kind", "a"), &hx.name, "", &PublishOptions::default()).unwrap();
    ch.publish(Message::new("no").header("kind", "b"), &hx.name, "", &PublishOptions::default()).unwrap();
    assert_eq!(text(&ch.get(&hq, true).unwrap().unwrap()), "yes");
    let extra = ch.get(&hq, true).unwrap();
    assert!(extra.is_none(), "{:?}", extra.map(|m| text(&m)));
}

#[test]
fn purge_counts_and_passive_declares() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let q = unique("purge");
    let missing = unique("missing");
    assert_eq!(ch.declare_queue(&Queue::new(&missing), true).unwrap_err().kind(), kombu_core::ErrorKind::NotFound);
    ch.declare(&Queue::new(&q)).unwrap();
    for p in [0u8, 9, 5] {
        ch.publish(Message::new("x").priority(p), "", &q, &PublishOptions::default()).unwrap();
    }
    assert_eq!(ch.declare_queue(&Queue::new(&q), true).unwrap().message_count, 3);
    assert_eq!(ch.purge_queue(&q).unwrap(), 3);
    assert!(ch.get(&q, true).unwrap().is_none());
}

#[test]
fn visibility_timeout_restores_a_lost_delivery() {
    let url = format!("{URL}?visibility_timeout=1&unacked_restore_interval=0.2&{}", own_unacked(&unique("vis")));
    let q = unique("vis");
    {
        let conn = open(&url);
        let ch = conn.channel().unwrap();
        ch.declare(&Queue::new(&q)).unwrap();
        publish(&ch, "", &q, "lost");
        let m = ch.get(&q, false).unwrap().unwrap();
        // A consumer that dies without closing: the delivery stays recorded in `unacked`.
        std::mem::forget(m);
        std::mem::forget(ch);
        std::mem::forget(conn);
    }
    let conn = open(&url);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [Queue::new(&q)]).on_message(move |m| {
        s.lock().unwrap().push((text(&m), m.delivery_info.redelivered));
        m.ack().unwrap();
    });
    let _subscription = consumer.consume().unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() && std::time::Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(500)));
    }
    assert_eq!(*seen.lock().unwrap(), vec![("lost".to_string(), true)]);
}

#[test]
fn batches_keep_order_and_route_like_single_publishes() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let ex = Exchange::topic(unique("bex"));
    let (qa, qb) = (unique("ba"), unique("bb"));
    ch.declare(&Queue::with_exchange(&qa, ex.clone(), "a.#")).unwrap();
    ch.declare(&Queue::with_exchange(&qb, ex.clone(), "*.b")).unwrap();
    let out = |body: String, rk: &str, exchange: &str| kombu_core::Outgoing {
        message: Message::new(body),
        exchange: exchange.into(),
        routing_key: rk.into(),
    };
    let mut batch = Vec::new();
    for i in 0..2500 {
        let rk = ["a", "a.b", "x.b", "none"][i % 4];
        batch.push(out(format!("{i}"), rk, &ex.name));
    }
    batch.push(out("direct-to-qa".into(), &qa, ""));
    ch.publish_batch(batch, &PublishOptions::default()).unwrap();
    let drain = |q: &str| {
        let mut v = Vec::new();
        while let Some(m) = ch.get(q, true).unwrap() {
            v.push(text(&m));
        }
        v
    };
    let want_a: Vec<String> = (0..2500)
        .filter(|i| i % 4 == 0 || i % 4 == 1)
        .map(|i| i.to_string())
        .chain(["direct-to-qa".to_string()])
        .collect();
    let want_b: Vec<String> = (0..2500).filter(|i| i % 4 == 1 || i % 4 == 2).map(|i| i.to_string()).collect();
    assert_eq!(drain(&qa), want_a);
    assert_eq!(drain(&qb), want_b);
}

#[test]
fn without_ack_emulation_nothing_is_recorded() {
    let conn = open(&format!("{URL}?ack_emulation=false"));
    let ch = conn.channel().unwrap();
    let q = unique("noack.q");
    ch.declare(&Queue::new(&q)).unwrap();
    ch.publish(Message::new("plain"), "", &q, &PublishOptions::default()).unwrap();
    let m = ch.get(&q, false).unwrap().expect("message");
    let tag = m.delivery_info.delivery_tag.to_string();
    let recorded: bool = redis::cmd("HEXISTS").arg("unacked").arg(&tag).query(&mut raw()).unwrap();
    assert!(!recorded);
    m.reject(true).unwrap();
    let again = ch.get(&q, false).unwrap().expect("requeued");
    assert!(again.delivery_info.redelivered);
    ch.close().unwrap();
    let ch = conn.channel().unwrap();
    assert_eq!(text(&ch.get(&q, false).unwrap().expect("restored at close")), "plain");
}

#[test]
fn consumers_poll_without_client_tracking() {
    let conn = open(&format!("{URL}?client_tracking=false"));
    let q = unique("poll");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [Queue::new(&q)]).on_message(move |m| {
        s.lock().unwrap().push(text(&m));
        m.ack().unwrap();
    });
    let _subscription = consumer.consume().unwrap();
    let _ = conn.drain_events(Some(Duration::from_millis(150)));
    let p = conn.channel().unwrap();
    for i in 0..3 {
        publish(&p, "", &q, &i.to_string());
    }
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < 3 && std::time::Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(200)));
    }
    assert_eq!(*seen.lock().unwrap(), vec!["0", "1", "2"]);
}

#[test]
fn server_side_topic_routing_agrees_with_the_rust_matcher() {
    let conn = open(URL);
    let ch = conn.channel().unwrap();
    let ex = Exchange::topic(unique("lua"));
    let patterns = ["#", "a.#", "#.a", "a.*", "*.a", "a.#.b", "*.*", "a", "#.b.#", "a.*.#", "", "*"];
    let keys = ["", "a", "b", "a.a", "a.b", "b.a", "a.b.b", "a.x.y.b", "x.b.y", "a..b"];
    let queues: Vec<String> = patterns
        .iter()
        .map(|p| {
            let q = unique("luaq");
            ch.declare(&Queue::with_exchange(&q, ex.clone(), *p)).unwrap();
            q
        })
        .collect();
    for k in keys {
        publish(&ch, &ex.name, k, k);
    }
    for (p, q) in patterns.iter().zip(&queues) {
        let mut got = Vec::new();
        while let Some(m) = ch.get(q, true).unwrap() {
            got.push(text(&m));
        }
        let want: Vec<String> =
            keys.iter().filter(|k| kombu_core::routing::topic_matches(p, k)).map(|k| k.to_string()).collect();
        assert_eq!(got, want, "pattern '{p}'");
    }
}

#[test]
fn the_pop_script_writes_unacked_entries_as_the_rust_builder_does() {
    use kombu_redis::payload::{parse_unacked, unacked_entry};
    use kombu_redis::scripts::{PopCall, POP};
    let own = unique("entry");
    let mut o = kombu_redis::RedisOptions::default();
    o.unacked_key = format!("{own}.unacked");
    o.unacked_index_key = format!("{own}.unacked_index");
    let q = unique("entry.q");
    let (ex, rk) = ("ex \"q\" \\ /", "a/b.\u{e9}\u{1}");
    let envelope = serde_json::json!({"body": "", "properties": {"delivery_tag": "t-envelope",
        "delivery_info": {"exchange": ex, "routing_key": rk}}})
    .to_string();
    let junk: &[u8] = b"\"quoted\" \\ / \xff\xfe\x01\x7f";
    let mut r = raw();
    let _: () = r.lpush(&q, &[envelope.as_bytes(), junk]).unwrap();
    let call = PopCall::new(&o, &format!("{own}.inflight"), std::slice::from_ref(&q), 10, 1.0, true, "");
    let script = redis::Script::new(POP);
    let mut inv = script.prepare_invoke();
    for k in &call.keys {
        inv.key(k);
    }
    for a in &call.args {
        inv.arg(a);
    }
    let reply: Vec<redis::Value> = inv.invoke(&mut r).unwrap();
    let mut seen = 0;
    for triple in reply.chunks(3) {
        let [_, redis::Value::BulkString(tag), redis::Value::BulkString(payload)] = triple else {
            panic!("unexpected reply {triple:?}")
        };
        let stored: Vec<u8> = r.hget(&o.unacked_key, tag).unwrap();
        let want = if payload == envelope.as_bytes() {
            assert_eq!(tag, b"t-envelope");
            unacked_entry(payload, ex, rk)
        } else {
            assert_eq!(payload, junk);
            unacked_entry(payload, "", &q)
        };
        assert_eq!(String::from_utf8_lossy(&stored), String::from_utf8_lossy(&want));
        assert_eq!(stored, want);
        assert_eq!(parse_unacked(&stored).unwrap().payload, *payload);
        seen += 1;
    }
    assert_eq!(seen, 2);
    let _: () = r.del(&[&o.unacked_key, &o.unacked_index_key]).unwrap();
}
