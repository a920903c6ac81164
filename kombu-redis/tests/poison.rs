//! Bad input on the real server: payloads that are not Kombu envelopes, unreadable `unacked` entries,
//! and acks that must be on the server when `ack()` returns.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kombu_core::{Consumer, ErrorKind, Queue};
use redis::Commands;

use common::{open, own_unacked, raw, unique, URL};

const VALID: &str = r#"{"body": "eyJ4IjogMX0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "QUEUE"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "TAG"}}"#;

/// Drains `conn` until `done` holds or `wait` passes; every call must succeed or time out.
fn drain_until(conn: &kombu_core::Connection, wait: Duration, done: impl Fn() -> bool) {
    let end = Instant::now() + wait;
    while !done() {
        assert!(Instant::now() < end, "timed out");
        match conn.drain_events(Some(Duration::from_millis(50))) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            Err(e) => panic!("drain_events returned an error for a bad message: {e}"),
        }
    }
}

#[test]
fn payloads_that_are_not_envelopes_are_dead_lettered_byte_for_byte() {
    let q = unique("junk");
    let prefix = unique("pfx") + ":";
    let url = format!("{URL}?global_keyprefix={prefix}");
    let conn = open(&url);
    let mut r = raw();
    let bad_b64 = VALID.replace("eyJ4IjogMX0=", "!!!not base64!!!").replace("TAG", &unique("t1"));
    let bad_enc = VALID.replace("\"base64\"", "\"rot13\"").replace("TAG", &unique("t2"));
    let good = VALID.replace("TAG", &unique("t3")).replace("QUEUE", &q);
    let junk: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        b"{}".to_vec(),
        b"[1,2,3]".to_vec(),
        b"\xff\xfe\x00binary\"junk\\".to_vec(),
        bad_b64.into_bytes(),
        bad_enc.into_bytes(),
    ];
    let key = format!("{prefix}{q}");
    for j in &junk {
        let _: () = r.lpush(&key, j.as_slice()).unwrap();
    }
    let _: () = r.lpush(&key, good.as_bytes()).unwrap();
    let got = Arc::new(Mutex::new(0));
    let g = got.clone();
    let c = Consumer::new(&conn, [Queue::new(q.clone())]).on_message(move |m| {
        *g.lock().unwrap() += 1;
        m.ack().unwrap();
    });
    let sub = c.consume().unwrap();
    let dlq = format!("{prefix}{q}.dlq");
    drain_until(&conn, Duration::from_secs(10), || {
        *got.lock().unwrap() == 1 && raw().llen::<_, usize>(&dlq).unwrap() == junk.len()
    });
    // Oldest first (RPOP order), exactly the bytes pushed.
    let mut dead: Vec<Vec<u8>> = r.lrange(&dlq, 0, -1).unwrap();
    dead.reverse();
    assert_eq!(dead, junk);
    let empty: usize = r.llen(&prefix).unwrap();
    assert_eq!(empty, 0, "nothing goes to a list named after the empty routing key");
    let unacked: usize = r.hlen(format!("{prefix}unacked")).unwrap();
    assert_eq!(unacked, 0, "nothing is left in unacked");
    sub.cancel().unwrap();
    let _: () = r.del(&[&dlq, &key]).unwrap();
}

#[test]
fn an_error_handler_gets_unreadable_payloads() {
    let q = unique("junk-h");
    let conn = open(URL);
    let mut r = raw();
    let _: () = r.lpush(&q, "garbage").unwrap();
    type Seen = Vec<(ErrorKind, Vec<u8>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = seen.clone();
    let c =
        Consumer::new(&conn, [Queue::new(q.clone())]).on_message(|_| panic!("callback ran")).on_error(move |e, m| {
            s.lock().unwrap().push((e.kind(), m.body.to_vec()));
            m.ack().unwrap();
        });
    let sub = c.consume().unwrap();
    drain_until(&conn, Duration::from_secs(10), || !seen.lock().unwrap().is_empty());
    assert_eq!(*seen.lock().unwrap(), vec![(ErrorKind::Serialization, b"garbage".to_vec())]);
    let left: usize = r.llen(&q).unwrap();
    assert_eq!(left, 0);
    sub.cancel().unwrap();
}

#[test]
fn unreadable_unacked_entries_do_not_starve_the_restore_sweep() {
    let tag = unique("starve");
    let q = unique("starve-q");
    let url = format!("{URL}?{}&visibility_timeout=1&unacked_restore_interval=0.05", own_unacked(&tag));
    let mut r = raw();
    let (unacked, index) = (format!("{tag}.unacked"), format!("{tag}.unacked_index"));
    // 150 entries nobody can read, older than the one good entry behind them.
    for i in 0..150 {
        let t = format!("junk-{i}");
        let _: () = r.hset(&unacked, &t, format!("not an entry {i}")).unwrap();
        let _: () = r.zadd(&index, &t, 1000.0 + f64::from(i)).unwrap();
    }
    let good_tag = unique("good");
    let payload = VALID.replace("TAG", &good_tag).replace("QUEUE", &q);
    let _: () = r.hset(&unacked, &good_tag, format!(r#"[{payload}, "", "{q}"]"#)).unwrap();
    let _: () = r.zadd(&index, &good_tag, 2000.0).unwrap();
    let conn = open(&url);
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let c = Consumer::new(&conn, [Queue::new(q.clone())]).on_message(move |m| {
        g.lock().unwrap().push(m.delivery_info.delivery_tag.to_string());
        assert!(m.delivery_info.redelivered);
        assert_eq!(m.delivery_info.redeliveries, Some(1));
        m.ack().unwrap();
    });
    let sub = c.consume().unwrap();
    drain_until(&conn, Duration::from_secs(15), || !got.lock().unwrap().is_empty());
    assert_eq!(*got.lock().unwrap(), vec![good_tag]);
    let dlq = format!("{unacked}.dlq");
    let end = Instant::now() + Duration::from_secs(10);
    while r.llen::<_, usize>(&dlq).unwrap() < 150 {
        assert!(Instant::now() < end, "unreadable entries were not moved to {dlq}");
        conn.drain_events(Some(Duration::from_millis(50))).ok();
    }
    let left: usize = r.zcard(&index).unwrap();
    assert_eq!(left, 0);
    let first: Vec<u8> = r.lindex(&dlq, -1).unwrap();
    assert!(first.starts_with(b"not an entry "), "moved byte for byte");
    sub.cancel().unwrap();
    let _: () = r.del(&[&dlq, &unacked, &index]).unwrap();
}

#[test]
fn ack_is_on_the_server_when_it_returns() {
    let tag = unique("ack");
    let q = unique("ack-q");
    let url = format!("{URL}?{}", own_unacked(&tag));
    let conn = open(&url);
    let ch = conn.channel().unwrap();
    ch.declare(&Queue::new(q.clone())).unwrap();
    ch.publish(kombu_core::Message::new("x"), "", &q, &Default::default()).unwrap();
    let checked: Arc<Mutex<Option<usize>>> = Arc::default();
    let k = checked.clone();
    let unacked = format!("{tag}.unacked");
    let c = Consumer::new(&conn, [Queue::new(q.clone())]).on_message(move |m| {
        m.ack().unwrap();
        // Right after ack() returns, still inside the callback: the server has forgotten it.
        *k.lock().unwrap() = Some(raw().hlen(&unacked).unwrap());
    });
    let sub = c.consume().unwrap();
    drain_until(&conn, Duration::from_secs(10), || checked.lock().unwrap().is_some());
    assert_eq!(*checked.lock().unwrap(), Some(0));
    sub.cancel().unwrap();
}

#[test]
fn deferred_acks_reach_the_server_without_draining_and_on_close() {
    let tag = unique("ack-deferred");
    let q = unique("ack-deferred-q");
    let url = format!("{URL}?{}", own_unacked(&tag));
    let unacked = format!("{tag}.unacked");
    for close_at_once in [false, true] {
        let conn = open(&url);
        let ch = conn.channel().unwrap();
        ch.declare(&Queue::new(q.clone())).unwrap();
        for i in 0..50 {
            ch.publish(kombu_core::Message::new(format!("m{i}")), "", &q, &Default::default()).unwrap();
        }
        let acked = Arc::new(Mutex::new(0));
        let a = acked.clone();
        let c = Consumer::new(&conn, [Queue::new(q.clone())]).on_message(move |m| {
            m.ack_deferred().unwrap();
            *a.lock().unwrap() += 1;
        });
        let sub = c.consume().unwrap();
        drain_until(&conn, Duration::from_secs(10), || *acked.lock().unwrap() == 50);
        if close_at_once {
            conn.close().unwrap();
            assert_eq!(raw().hlen::<_, usize>(&unacked).unwrap(), 0, "close sends the deferred acks first");
        } else {
            // No more draining: the acks still reach the server, within about a round trip.
            let end = Instant::now() + Duration::from_secs(2);
            while raw().hlen::<_, usize>(&unacked).unwrap() > 0 {
                assert!(Instant::now() < end, "deferred acks were not sent without draining");
                std::thread::sleep(Duration::from_millis(5));
            }
            sub.cancel().unwrap();
        }
    }
}
