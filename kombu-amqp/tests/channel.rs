//! Channel operations against a real RabbitMQ: declarations, routing, publish/get round trips, settling,
//! and the broker's refusals mapped to kombu error kinds with the broker's own text.

mod common;

use std::time::Duration;

use common::{connect, get_within, unique, url};
use kombu_core::{
    Binding, Connection, Decimal, DeliveryMode, ErrorKind, Exchange, FieldTable, FieldValue, Message, PublishOptions,
    Queue, RetryPolicy,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

fn temp_queue(name: &str) -> Queue {
    Queue::new(name).durable(false).expires(Duration::from_secs(120))
}

fn confirmed() -> PublishOptions {
    let mut o = PublishOptions::default();
    o.confirm_timeout = Some(Duration::from_secs(10));
    o
}

#[test]
fn publish_get_round_trip_keeps_body_headers_and_properties() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let ex = Exchange::direct(unique("ex")).durable(false).auto_delete(true);
    let q = temp_queue(&unique("q")).bind(ex.clone(), "rk");
    ch.declare(&q).unwrap();

    let mut m = Message::new(&b"\x00\xffbinary"[..])
        .content_type("application/x-test")
        .content_encoding("binary")
        .header("s", "v")
        .header("i", 42)
        .header("big", 1i64 << 40)
        .header("f", 2.5)
        .header("b", true)
        .header("null", serde_json::Value::Null)
        .header("nested", json!({"list": [1, "two", {"three": 3.0}], "empty": {}}))
        // Every AMQP field kind, read back as the kind it was sent as.
        .header("i8", FieldValue::I8(-8))
        .header("u8", FieldValue::U8(200))
        .header("i16", FieldValue::I16(-30_000))
        .header("u16", FieldValue::U16(60_000))
        .header("u32", FieldValue::U32(u32::MAX))
        .header("i64", FieldValue::I64(i64::MIN))
        .header("f32", FieldValue::F32(0.5))
        .header("decimal", Decimal::new(-35, 1))
        .header("tiny", Decimal::new(1, 3))
        .header("timestamp", FieldValue::Timestamp(1_700_000_000))
        .header("bytes", vec![0u8, 0xff, 0x80])
        .header("void", FieldValue::Void)
        .header(
            "table",
            [
                ("d", FieldValue::from(Decimal::new(7, 2))),
                ("a", [FieldValue::Timestamp(0), vec![1u8].into()].into_iter().collect()),
            ]
            .into_iter()
            .collect::<FieldTable>(),
        )
        .priority(4);
    m.properties.delivery_mode = Some(DeliveryMode::Transient);
    m.properties.correlation_id = Some("corr-1".into());
    m.properties.reply_to = Some("reply-q".into());
    m.properties.message_id = Some("msg-1".into());
    m.properties.timestamp = Some(1_700_000_000);
    m.properties.expiration = Some(Duration::from_secs(60));
    m.properties.message_type = Some("kind-1".into());
    m.properties.app_id = Some("kombu-rs-tests".into());
    // RabbitMQ refuses a user id that is not the connection's user.
    m.properties.user_id = Some("guest".into());
    m.properties.cluster_id = Some("cluster-1".into());
    ch.publish(m.clone(), &ex.name, "rk", &PublishOptions::default()).unwrap();

    let got = get_within(ch.as_ref(), &q.name, WAIT).unwrap().expect("message");
    assert_eq!(got.body, m.body);
    assert_eq!(got.content_type, m.content_type);
    assert_eq!(got.content_encoding, m.content_encoding);
    assert_eq!(got.headers, m.headers);
    assert_eq!(got.properties, m.properties);
    assert_eq!(&*got.delivery_info.exchange, ex.name.as_str());
    assert_eq!(&*got.delivery_info.routing_key, "rk");
    assert!(!got.delivery_info.redelivered);
    got.ack().unwrap();
    assert!(ch.get(&q.name, false).unwrap().is_none());

    // Empty, UTF-8 and 1 MiB bodies, byte for byte.
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    for body in [Vec::new(), "héllo ✓".as_bytes().to_vec(), big] {
        ch.publish(Message::new(body.clone()), &ex.name, "rk", &confirmed()).unwrap();
        let got = get_within(ch.as_ref(), &q.name, WAIT).unwrap().expect("message");
        assert_eq!(&got.body[..], &body[..]);
        got.ack().unwrap();
    }
    ch.delete_queue(&q.name, false, false).unwrap();
    ch.delete_exchange(&ex.name, false).unwrap();
}

#[test]
fn a_user_id_other_than_the_connections_user_is_refused() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let q = temp_queue(&unique("q"));
    ch.declare(&q).unwrap();
    let mut m = Message::new("x");
    m.properties.user_id = Some("not-guest".into());
    let err = ch.publish(m, "", &q.name, &confirmed()).unwrap_err();
    assert!(err.message().contains("user_id") && err.message().contains("not-guest"), "{err}");
    let ch = conn.channel().unwrap();
    assert!(ch.get(&q.name, false).unwrap().is_none());
    ch.delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn a_new_channel_does_not_see_an_acked_message_and_reject_requeue_redelivers() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let q = temp_queue(&unique("q"));
    ch.declare_queue(&q, false).unwrap();
    ch.publish(Message::new("a"), "", &q.name, &confirmed()).unwrap();

    let first = get_within(ch.as_ref(), &q.name, WAIT).unwrap().expect("message");
    first.reject(true).unwrap();
    let again = get_within(ch.as_ref(), &q.name, WAIT).unwrap().expect("requeued message");
    assert!(again.delivery_info.redelivered);
    again.ack().unwrap();
    let other = conn.channel().unwrap();
    assert!(other.get(&q.name, false).unwrap().is_none());

    ch.publish(Message::new("b"), "", &q.name, &confirmed()).unwrap();
    let m = get_within(ch.as_ref(), &q.name, WAIT).unwrap().expect("message");
    m.reject(false).unwrap();
    assert!(other.get(&q.name, false).unwrap().is_none());

    // Unacked messages come back when their channel closes; recover hands them out again.
    ch.publish(Message::new("c"), "", &q.name, &confirmed()).unwrap();
    let held = get_within(ch.as_ref(), &q.name, WAIT).unwrap().expect("message");
    assert!(!held.delivery_info.redelivered);
    ch.close().unwrap();
    let back = get_within(other.as_ref(), &q.name, WAIT).unwrap().expect("redelivered after close");
    assert!(back.delivery_info.redelivered);
    other.recover(true).unwrap();
    let recovered = get_within(other.as_ref(), &q.name, WAIT).unwrap().expect("redelivered after recover");
    assert!(recovered.delivery_info.redelivered);
    recovered.ack().unwrap();
    other.delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn broker_refusals_carry_the_broker_text_and_a_new_channel_goes_on() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let missing = unique("missing");
    let err = ch.declare_queue(&temp_queue(&missing), true).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("NOT_FOUND") && err.message().contains(&missing), "{err}");
    assert!(!ch.is_open());
    assert_eq!(ch.get("anything", false).unwrap_err().kind(), ErrorKind::Channel);

    let ch = conn.default_channel().unwrap();
    let err = ch.declare_exchange(&Exchange::topic(unique("missing-ex")), true).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    let ch = conn.default_channel().unwrap();
    assert!(ch.is_open());
    let q = temp_queue(&unique("q"));
    ch.declare_queue(&q, false).unwrap();
    assert_eq!(ch.declare_queue(&q, true).unwrap().name, q.name);
    let err = ch.declare_queue(&q.clone().max_priority(5), false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Precondition, "{err}");
    assert!(err.message().contains("PRECONDITION_FAILED"), "{err}");

    let ch = conn.channel().unwrap();
    let ex = Exchange::direct(unique("ex")).durable(false);
    ch.declare_exchange(&ex, false).unwrap();
    let err = ch.declare_exchange(&Exchange::fanout(ex.name.clone()).durable(false), false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Precondition, "{err}");

    let ch = conn.channel().unwrap();
    let err = ch.bind_queue(&q.name, &unique("no-such-ex"), "k", &Default::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(conn.is_connected());
    let ch = conn.channel().unwrap();
    ch.delete_exchange(&ex.name, false).unwrap();
    ch.delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn publish_to_a_missing_exchange_closes_the_channel_and_the_connection_goes_on() {
    let conn = connect();
    let ch = conn.default_channel().unwrap();
    let missing = unique("no-exchange");
    // Without confirms the publish itself succeeds (as with py-amqp); the broker's close shows on a later call.
    ch.publish(Message::new("lost"), &missing, "k", &PublishOptions::default()).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let err = loop {
        match ch.declare_queue(&temp_queue(&unique("probe")), false) {
            Err(e) => break e,
            Ok(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(_) => panic!("the broker did not close the channel"),
        }
    };
    // NotFound when the broker's close answers the call itself, Channel when the channel was already closed.
    assert!(matches!(err.kind(), ErrorKind::Channel | ErrorKind::NotFound), "{err}");
    // Either way the broker's reason comes along.
    assert!(err.message().contains("NOT_FOUND") && err.message().contains(&missing), "{err}");
    assert!(!ch.is_open());
    let later = ch.get("anything", false).unwrap_err();
    assert_eq!(later.kind(), ErrorKind::Channel, "{later}");
    assert!(later.message().contains("NOT_FOUND") && later.message().contains(&missing), "{later}");
    assert!(conn.is_connected());

    // With a confirm timeout the publish itself reports the broker's refusal.
    let ch = conn.default_channel().unwrap();
    assert!(ch.is_open());
    let err = ch.publish(Message::new("lost"), &missing, "k", &confirmed()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains(&missing), "{err}");

    // And the connection goes on.
    let ch = conn.default_channel().unwrap();
    let q = temp_queue(&unique("after"));
    ch.declare_queue(&q, false).unwrap();
    ch.publish(Message::new("ok"), "", &q.name, &confirmed()).unwrap();
    assert_eq!(&get_within(ch.as_ref(), &q.name, WAIT).unwrap().expect("message").body[..], b"ok");
    ch.delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn mandatory_publish_reports_a_returned_message() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let ex = Exchange::direct(unique("ex")).durable(false);
    ch.declare_exchange(&ex, false).unwrap();
    let mut mandatory = PublishOptions::default();
    mandatory.mandatory = true;
    let err = ch.publish(Message::new("nobody"), &ex.name, "unbound", &mandatory).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("NO_ROUTE"), "{err}");
    // Not mandatory: dropped quietly.
    ch.publish(Message::new("nobody"), &ex.name, "unbound", &confirmed()).unwrap();
    assert!(ch.is_open());
    ch.delete_exchange(&ex.name, false).unwrap();
}

#[test]
fn credentials_and_vhosts_the_broker_refuses_are_access_refused() {
    let _ = url();
    let bad_password = Connection::builder("amqp://guest:wrong@127.0.0.1:5672//").retry(RetryPolicy::none()).open();
    let err = bad_password.unwrap().connect().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccessRefused, "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");
    let bad_vhost = Connection::builder("amqp://guest:guest@127.0.0.1:5672/no-such-vhost").retry(RetryPolicy::none());
    let err = bad_vhost.open().unwrap().connect().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccessRefused, "{err}");
    let refused = Connection::builder("amqp://127.0.0.1:1//?connect_timeout=2").retry(RetryPolicy::none());
    let err = refused.open().unwrap().connect().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
}

#[test]
fn url_options_reach_the_broker() {
    let conn =
        Connection::open(&format!("{}?heartbeat=7&channel_max=9&frame_max=65536&connection_name=kombu-rs-test", url()))
            .unwrap();
    conn.connect().unwrap();
    let ch = conn.channel().unwrap();
    let q = temp_queue(&unique("q"));
    ch.declare_queue(&q, false).unwrap();
    // A body larger than frame_max is split into frames and arrives whole.
    let body = vec![7u8; 200_000];
    ch.publish(Message::new(body.clone()), "", &q.name, &confirmed()).unwrap();
    assert_eq!(get_within(ch.as_ref(), &q.name, WAIT).unwrap().expect("message").body.len(), body.len());
    ch.delete_queue(&q.name, false, false).unwrap();
    // The broker agreed to the limits asked for.
    let params =
        kombu_amqp::options::parse(&format!("{}?heartbeat=7&channel_max=9&frame_max=65536", url()).parse().unwrap())
            .unwrap();
    let amqp = kombu_amqp::AmqpConnection::open(&params).unwrap();
    let negotiated = amqp.lapin().configuration();
    assert_eq!((negotiated.heartbeat(), negotiated.channel_max(), negotiated.frame_max()), (7, 9, 65536));
    let pyamqp = Connection::open("pyamqp://guest:guest@127.0.0.1:5672/%2F").unwrap();
    pyamqp.connect().unwrap();
    assert!(pyamqp.is_connected());
}

#[test]
fn direct_topic_fanout_and_headers_routing() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let topic = Exchange::topic(unique("topic")).durable(false).auto_delete(true);
    let fanout = Exchange::fanout(unique("fanout")).durable(false).auto_delete(true);
    let headers = Exchange::headers(unique("headers")).durable(false).auto_delete(true);
    let a_hash = temp_queue(&unique("a-hash")).bind(topic.clone(), "a.#");
    let a_star = temp_queue(&unique("a-star")).bind(topic.clone(), "a.*");
    let f1 = temp_queue(&unique("f1")).bind(fanout.clone(), "ignored");
    let f2 = temp_queue(&unique("f2")).bind(fanout.clone(), "");
    let all = temp_queue(&unique("all"))
        .binding(Binding::new(headers.clone(), "").argument("x-match", "all").argument("k", "v").argument("n", 1));
    let any = temp_queue(&unique("any"))
        .binding(Binding::new(headers.clone(), "").argument("x-match", "any").argument("k", "v").argument("n", 1));
    for q in [&a_hash, &a_star, &f1, &f2, &all, &any] {
        ch.declare(q).unwrap();
    }
    let o = confirmed();
    for rk in ["a", "a.b", "a.b.c"] {
        ch.publish(Message::new(rk), &topic.name, rk, &o).unwrap();
    }
    ch.publish(Message::new("fan"), &fanout.name, "whatever", &o).unwrap();
    ch.publish(Message::new("both").header("k", "v").header("n", 1), &headers.name, "", &o).unwrap();
    ch.publish(Message::new("one").header("k", "v"), &headers.name, "", &o).unwrap();
    let drain = |q: &Queue| {
        let mut bodies = Vec::new();
        while let Some(m) = ch.get(&q.name, true).unwrap() {
            bodies.push(String::from_utf8_lossy(&m.body).into_owned());
        }
        bodies
    };
    assert_eq!(drain(&a_hash), ["a", "a.b", "a.b.c"]);
    assert_eq!(drain(&a_star), ["a.b"]);
    assert_eq!(drain(&f1), ["fan"]);
    assert_eq!(drain(&f2), ["fan"]);
    assert_eq!(drain(&all), ["both"]);
    assert_eq!(drain(&any), ["both", "one"]);

    ch.unbind_queue(&a_star.name, &topic.name, "a.*", &Default::default()).unwrap();
    ch.publish(Message::new("a.x"), &topic.name, "a.x", &o).unwrap();
    assert_eq!(drain(&a_hash), ["a.x"]);
    assert!(drain(&a_star).is_empty());
    for q in [&a_hash, &a_star, &f1, &f2, &all, &any] {
        ch.delete_queue(&q.name, false, false).unwrap();
    }
}

#[test]
fn priorities_ttl_dead_letters_purge_and_delete() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let o = confirmed();

    let prio = temp_queue(&unique("prio")).max_priority(9);
    ch.declare_queue(&prio, false).unwrap();
    for (i, p) in [1u8, 5, 9, 3, 5].into_iter().enumerate() {
        ch.publish(Message::new(format!("{p}-{i}")).priority(p), "", &prio.name, &o).unwrap();
    }
    let order: Vec<String> = std::iter::from_fn(|| ch.get(&prio.name, true).unwrap())
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(order, ["9-2", "5-1", "5-4", "3-3", "1-0"]);

    let dead = temp_queue(&unique("dead"));
    ch.declare_queue(&dead, false).unwrap();
    let ttl =
        temp_queue(&unique("ttl")).message_ttl(Duration::from_millis(50)).dead_letter("", Some(dead.name.clone()));
    ch.declare_queue(&ttl, false).unwrap();
    ch.publish(Message::new("expires"), "", &ttl.name, &o).unwrap();
    let mut short = Message::new("short");
    short.properties.expiration = Some(Duration::from_millis(1));
    ch.publish(short, "", &prio.name, &o).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(ch.get(&ttl.name, true).unwrap().is_none());
    assert!(ch.get(&prio.name, true).unwrap().is_none());
    let dl = get_within(ch.as_ref(), &dead.name, WAIT).unwrap().expect("dead-lettered");
    assert_eq!(&dl.body[..], b"expires");
    assert!(dl.headers.contains_key("x-death"), "{:?}", dl.headers);
    dl.ack().unwrap();

    for i in 0..3 {
        ch.publish(Message::new(format!("{i}")), "", &dead.name, &o).unwrap();
    }
    assert_eq!(ch.purge_queue(&dead.name).unwrap(), 3);
    assert!(ch.get(&dead.name, true).unwrap().is_none());
    for i in 0..2 {
        ch.publish(Message::new(format!("{i}")), "", &dead.name, &o).unwrap();
    }
    assert_eq!(ch.declare_queue(&dead, true).unwrap().message_count, 2);
    assert_eq!(ch.delete_queue(&dead.name, false, false).unwrap(), 2);
    ch.delete_queue(&ttl.name, false, false).unwrap();
    ch.delete_queue(&prio.name, false, false).unwrap();
}

#[test]
fn names_longer_than_amqp_allows_are_invalid_arguments() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let long = "q".repeat(300);
    assert_eq!(ch.declare_queue(&temp_queue(&long), false).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let err = ch.publish(Message::new("x"), "", &long, &PublishOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err =
        ch.publish(Message::new("x").header("h".repeat(256), 1), "", "q", &PublishOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(ch.is_open());
}

#[test]
fn confirm_publish_option_makes_every_publish_wait_for_the_broker() {
    let conn = Connection::open(&format!("{}?confirm_publish=true", url())).unwrap();
    let ch = conn.channel().unwrap();
    let missing = unique("no-exchange");
    let err = ch.publish(Message::new("x"), &missing, "k", &PublishOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains(&missing), "{err}");
    let ch = conn.channel().unwrap();
    let q = temp_queue(&unique("q"));
    ch.declare_queue(&q, false).unwrap();
    ch.publish(Message::new("ok"), "", &q.name, &PublishOptions::default()).unwrap();
    // Confirmed, so already in the queue: a passive declare on another channel counts it.
    assert_eq!(conn.channel().unwrap().declare_queue(&q, true).unwrap().message_count, 1);
    ch.delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn tls_to_a_plain_port_fails_cleanly() {
    let _ = url();
    let started = std::time::Instant::now();
    let conn = Connection::builder("amqps://guest:guest@127.0.0.1:5672//?connect_timeout=3").retry(RetryPolicy::none());
    let err = conn.open().unwrap().connect().unwrap_err();
    assert!(err.is_recoverable() || err.kind() == ErrorKind::AccessRefused, "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

#[test]
fn server_named_and_quorum_queues() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let named = ch.declare_queue(&Queue::new("").durable(false).exclusive(true).auto_delete(true), false).unwrap();
    assert!(named.name.starts_with("amq.gen-"), "{}", named.name);
    ch.publish(Message::new("to a generated name"), "", &named.name, &confirmed()).unwrap();
    assert!(get_within(ch.as_ref(), &named.name, WAIT).unwrap().is_some());

    let quorum = Queue::new(unique("quorum")).argument("x-queue-type", "quorum").expires(Duration::from_secs(120));
    let info = ch.declare_queue(&quorum, false).unwrap();
    assert_eq!(info.name, quorum.name);
    ch.publish(Message::new("q").header("h", 1), "", &quorum.name, &confirmed()).unwrap();
    let m = get_within(ch.as_ref(), &quorum.name, WAIT).unwrap().expect("message");
    assert_eq!(m.headers["h"], 1);
    m.ack().unwrap();
    // A classic declare of the same name is refused by the broker.
    let err = ch.declare_queue(&Queue::new(quorum.name.clone()), false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Precondition, "{err}");
    conn.channel().unwrap().delete_queue(&quorum.name, false, false).unwrap();
}

#[test]
fn confirmed_batches_are_in_the_queue_when_publish_batch_returns() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let q = temp_queue(&unique("q"));
    ch.declare_queue(&q, false).unwrap();
    let batch = (0..300)
        .map(|i| kombu_core::Outgoing {
            message: Message::new(format!("{i}")),
            exchange: String::new(),
            routing_key: q.name.clone(),
        })
        .collect();
    ch.publish_batch(batch, &confirmed()).unwrap();
    assert_eq!(conn.channel().unwrap().declare_queue(&q, true).unwrap().message_count, 300);
    let first = get_within(ch.as_ref(), &q.name, WAIT).unwrap().expect("message");
    assert_eq!(&first.body[..], b"0");

    let mut mandatory = confirmed();
    mandatory.mandatory = true;
    let mixed = vec![
        kombu_core::Outgoing { message: Message::new("routed"), exchange: String::new(), routing_key: q.name.clone() },
        kombu_core::Outgoing { message: Message::new("lost"), exchange: String::new(), routing_key: unique("nowhere") },
    ];
    let err = ch.publish_batch(mixed, &mandatory).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(ch.purge_queue(&q.name).unwrap(), 300);
    ch.delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn publishes_reach_the_broker_before_a_get_a_close_or_a_drop() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let q = temp_queue(&unique("q"));
    ch.declare_queue(&q, false).unwrap();
    // A get right after publishes on the same channel sees them (no waiting, no confirms).
    for i in 0..1000 {
        ch.publish(Message::new(format!("{i}")), "", &q.name, &PublishOptions::default()).unwrap();
    }
    let first = ch.get(&q.name, false).unwrap().expect("the first publish is in the queue");
    assert_eq!(&first.body[..], b"0");
    first.ack().unwrap();
    assert_eq!(ch.purge_queue(&q.name).unwrap(), 999);

    // A channel dropped, or a connection closed or dropped, right after publishing loses nothing.
    let count = || conn.channel().unwrap().declare_queue(&q, true).unwrap().message_count;
    for (round, how) in ["channel dropped", "connection closed", "connection dropped"].into_iter().enumerate() {
        let other = Connection::open(&url()).unwrap();
        let tmp = other.channel().unwrap();
        for i in 0..500 {
            tmp.publish(Message::new(format!("{i}")), "", &q.name, &PublishOptions::default()).unwrap();
        }
        match round {
            0 => drop(tmp),
            1 => other.close().unwrap(),
            _ => drop(other),
        }
        let expected = 500 * (round as u64 + 1);
        let deadline = std::time::Instant::now() + WAIT;
        while count() < expected && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(count(), expected, "{how}");
    }
    ch.delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn closing_connections_never_hangs() {
    let q = temp_queue(&unique("q"));
    for _ in 0..20 {
        let conn = connect();
        let ch = conn.channel().unwrap();
        ch.declare_queue(&q, false).unwrap();
        ch.publish(Message::new("x"), "", &q.name, &confirmed()).unwrap();
        let started = std::time::Instant::now();
        conn.close().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "close took {:?}", started.elapsed());
    }
    let conn = connect();
    assert_eq!(conn.channel().unwrap().delete_queue(&q.name, false, false).unwrap(), 20);
}

#[test]
fn heartbeats_keep_an_idle_connection_alive() {
    // With a 1 s heartbeat the broker drops a client silent for about 2 s; lapin beats on its own thread,
    // so a connection nobody drives for longer stays usable.
    let conn = Connection::open(&format!("{}?heartbeat=1", url())).unwrap();
    let ch = conn.channel().unwrap();
    let q = temp_queue(&unique("q"));
    ch.declare_queue(&q, false).unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    assert!(conn.is_connected());
    assert!(ch.is_open());
    ch.publish(Message::new("still here"), "", &q.name, &confirmed()).unwrap();
    assert!(get_within(ch.as_ref(), &q.name, WAIT).unwrap().is_some());
    ch.delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn recover_without_requeue_is_refused_as_unsupported_by_rabbitmq() {
    let conn = connect();
    let ch = conn.channel().unwrap();
    let err = ch.recover(false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.message().contains("NOT_IMPLEMENTED"), "{err}");
    // The broker closed the whole connection (a hard error); the next use connects again.
    let ch = conn.channel().unwrap();
    assert!(ch.is_open());
}
