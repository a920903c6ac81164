//! Redis over TLS (`rediss://`) on redis-servers of the test's own serving TLS only, with certificates
//! made by the test: publish, consume, ack and restore through a Hub and through `drain_events`, fanout
//! (the pub/sub socket), a subset of the conformance suite; a wrong CA, an expired certificate, a
//! certificate for another host and a refused client certificate are clear errors a retry cannot help;
//! `ssl_cert_reqs=none` connects without the CA.
// Built with the `tls` feature (a default one); without it `rediss://` is an `Unsupported` error.
#![cfg(feature = "tls")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tls::{ca_query, client_query, Pki, TlsRedis};
use common::*;
use kombu_core::testing::Suite;
use kombu_core::{Connection, Consumer, ErrorKind, Exchange, ExchangeKind, Hub, Producer, Queue, RetryPolicy};

type Seen = Arc<Mutex<HashMap<String, usize>>>;

/// Publishes confirmed messages numbered by `range`, of about `size` bytes, to `queue`.
fn publish(conn: &Connection, queue: &Queue, range: std::ops::Range<usize>, size: usize) {
    let producer = Producer::new(conn).unwrap();
    for i in range {
        let body = format!("{i:06}{}", "x".repeat(size));
        producer.publish_bytes(body).routing_key(queue.name.clone()).declare(queue).send().unwrap();
    }
}

/// Consumes until every one of `n` messages came, acking all but those whose number `keep` selects.
fn consume(conn: &Connection, queue: &Queue, n: usize, hub: Option<&mut Hub>, keep: fn(usize) -> bool) -> Seen {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let held: Arc<Mutex<Vec<kombu_core::Message>>> = Arc::default();
    let h = held.clone();
    let sub = Consumer::new(conn, [queue.clone()])
        .prefetch(50)
        .on_message(move |m| {
            let body = text(&m);
            let i: usize = body[..6].parse().unwrap();
            *s.lock().unwrap().entry(body[..6].to_owned()).or_default() += 1;
            if keep(i) {
                h.lock().unwrap().push(m);
            } else {
                m.ack().unwrap();
            }
        })
        .consume()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let mut hub = hub;
    while seen.lock().unwrap().len() < n {
        assert!(Instant::now() < end, "only {} of {n} messages arrived over TLS", seen.lock().unwrap().len());
        match hub.as_deref_mut() {
            Some(hub) => hub.run_for(Duration::from_millis(20)).unwrap(),
            None => {
                let _ = conn.drain_events(Some(Duration::from_millis(20)));
            }
        }
    }
    sub.cancel().unwrap();
    held.lock().unwrap().clear();
    seen
}

fn round_trip(use_hub: bool) {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, &pki.server, "optional");
    // A short visibility timeout: what was held unacknowledged comes back after it.
    let url = server.url(&format!("{}&visibility_timeout=1&unacked_restore_interval=0.2", ca_query(&pki.ca)));
    let conn = Connection::open(&url).unwrap();
    let mut hub = Hub::new().unwrap();
    if use_hub {
        conn.register_with_event_loop(&mut hub).unwrap();
    }
    let q = Queue::new(unique("tls"));
    // Small messages, and big ones that span many TLS records and socket reads.
    publish(&conn, &q, 0..200, 100);
    publish(&conn, &q, 1000..1020, 300_000);
    let seen = consume(&conn, &q, 220, use_hub.then_some(&mut hub), |i| i % 50 == 7);
    assert_eq!(seen.lock().unwrap().values().sum::<usize>(), 220, "each once");
    // The 5 held back were never acked: restored after the visibility timeout and delivered again.
    let again = consume(&conn, &q, 5, use_hub.then_some(&mut hub), |_| false);
    let mut numbers: Vec<String> = again.lock().unwrap().keys().cloned().collect();
    numbers.sort();
    assert_eq!(numbers, ["000007", "000057", "000107", "000157", "001007"], "the held messages came back");
    // recover() on a channel puts back what it holds at once.
    let ch = conn.channel().unwrap();
    let m = get_wait(&ch, &q.name, Duration::from_secs(5));
    assert!(m.is_none(), "the queue is empty after the restores were acked");
    publish(&conn, &q, 0..1, 10);
    let m = get_wait(&ch, &q.name, Duration::from_secs(5)).expect("a message");
    ch.recover(true).unwrap();
    let back = get_wait(&ch, &q.name, Duration::from_secs(5)).expect("recovered");
    assert!(back.delivery_info.redelivered && back.body == m.body);
    back.ack().unwrap();
    drop(m);
    conn.close().unwrap();
}

#[test]
fn publish_consume_ack_and_restore_over_tls_through_a_hub() {
    round_trip(true);
}

#[test]
fn publish_consume_ack_and_restore_over_tls_through_drain_events() {
    round_trip(false);
}

#[test]
fn fanout_over_tls_reaches_every_queue() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, &pki.server, "optional");
    let conn = Connection::open(&server.url(&ca_query(&pki.ca))).unwrap();
    let ex = Exchange::new(unique("tls.fan"), ExchangeKind::Fanout);
    let a = Queue::with_exchange(unique("tls.fa"), ex.clone(), "");
    let b = Queue::with_exchange(unique("tls.fb"), ex.clone(), "");
    // One consumer per queue: each must get its own copy.
    let got: Arc<Mutex<[usize; 2]>> = Arc::default();
    let subs: Vec<_> = [a, b]
        .into_iter()
        .enumerate()
        .map(|(i, q)| {
            let g = got.clone();
            Consumer::new(&conn, [q])
                .on_message(move |m| {
                    g.lock().unwrap()[i] += 1;
                    m.ack().unwrap();
                })
                .consume()
                .unwrap()
        })
        .collect();
    let producer = Producer::new(&conn).unwrap().exchange(ex);
    let end = Instant::now() + Duration::from_secs(10);
    // Fanout is pub/sub: publish until both subscriptions are in place and have each got a copy.
    while got.lock().unwrap().contains(&0) {
        assert!(Instant::now() < end, "fanout over TLS: {:?}", got.lock().unwrap());
        producer.publish("to all").send().unwrap();
        let _ = conn.drain_events(Some(Duration::from_millis(100)));
    }
    drop(subs);
}

#[test]
fn conformance_subset_over_tls() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, &pki.server, "optional");
    // Every case but those that need a second backend, a restart, or rewrite the URL (failover lists,
    // error kinds of made-up URLs, through either API, a silent broker).
    Suite::new(server.url(&ca_query(&pki.ca))).except(&[19, 24, 25, 26, 30, 130, 31, 32]).assert_passes();
}

/// The error of connecting once, without retries.
fn refused(url: &str) -> kombu_core::Error {
    let conn = Connection::builder(url).retry(RetryPolicy::none()).open().unwrap();
    let e = conn.connect().unwrap_err();
    assert!(!e.is_recoverable(), "a retry cannot help a certificate: {e:#}");
    e
}

#[test]
fn a_wrong_ca_an_expired_certificate_and_another_hosts_certificate_are_refused() {
    let pki = Pki::new();
    let good = TlsRedis::start(&pki, &pki.server, "optional");
    let e = refused(&good.url(&ca_query(&pki.other_ca)));
    assert_eq!(e.kind(), ErrorKind::AccessRefused, "{e:#}");
    let report = format!("{e:#}");
    assert!(report.contains("the server's certificate is not trusted (check ssl_ca_certs)"), "{report}");
    assert!(report.contains("UnknownIssuer"), "{report}");
    // No CA given: Mozilla's roots, which do not include the test's CA.
    let e = refused(&good.url(""));
    assert_eq!(e.kind(), ErrorKind::AccessRefused, "{e:#}");

    let expired = TlsRedis::start(&pki, &pki.expired, "optional");
    let e = refused(&expired.url(&ca_query(&pki.ca)));
    assert_eq!(e.kind(), ErrorKind::AccessRefused, "{e:#}");
    assert!(format!("{e:#}").contains("the server's certificate has expired"), "{e:#}");

    let other_host = TlsRedis::start(&pki, &pki.wrong_name, "optional");
    let e = refused(&other_host.url(&ca_query(&pki.ca)));
    assert_eq!(e.kind(), ErrorKind::AccessRefused, "{e:#}");
    assert!(format!("{e:#}").contains("the server's certificate is not for this host"), "{e:#}");
    // ssl_check_hostname=false takes a certificate of the right CA for any name.
    let conn = open(&other_host.url(&format!("{}&ssl_check_hostname=false", ca_query(&pki.ca))));
    assert!(conn.channel().unwrap().get(&unique("nothing"), true).unwrap().is_none());

    // A Hub's driver gives up at once rather than retrying for ever.
    let conn = Connection::open(&expired.url(&ca_query(&pki.ca))).unwrap();
    let mut hub = Hub::new().unwrap();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let errs = errors.clone();
    hub.on_error(move |e| errs.lock().unwrap().push(format!("{e:#}")));
    conn.register_with_event_loop(&mut hub).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while errors.lock().unwrap().is_empty() {
        assert!(Instant::now() < end, "the driver reported nothing");
        hub.run_for(Duration::from_millis(20)).unwrap();
    }
    let errors = errors.lock().unwrap();
    assert!(errors[0].contains("a retry cannot help") && errors[0].contains("expired"), "{errors:?}");
}

#[test]
fn a_server_that_requires_client_certificates() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, &pki.server, "yes");
    let url = server.url(&format!("{}&{}", ca_query(&pki.ca), client_query(&pki.client)));
    let conn = Connection::open(&url).unwrap();
    let q = Queue::new(unique("tls.mtls"));
    publish(&conn, &q, 0..30, 10);
    let seen = consume(&conn, &q, 30, None, |_| false);
    assert_eq!(seen.lock().unwrap().len(), 30);

    for (why, query) in [
        ("no client certificate", ca_query(&pki.ca)),
        ("another CA's client certificate", format!("{}&{}", ca_query(&pki.ca), client_query(&pki.other_client))),
    ] {
        let e = refused(&server.url(&query));
        assert_eq!(e.kind(), ErrorKind::AccessRefused, "{why}: {e:#}");
        assert!(format!("{e:#}").contains("the server refused the client certificate"), "{why}: {e:#}");
    }
    // The key in the certificate file (no ssl_keyfile), as Python's ssl module takes it.
    let both = server.dir().join("client-and-key.pem");
    let text = std::fs::read_to_string(&pki.client.cert).unwrap() + &std::fs::read_to_string(&pki.client.key).unwrap();
    std::fs::write(&both, text).unwrap();
    let conn = open(&server.url(&format!("{}&ssl_certfile={}", ca_query(&pki.ca), both.display())));
    assert!(conn.channel().unwrap().get(&unique("nothing"), true).unwrap().is_none());
}

#[test]
fn cert_reqs_none_connects_without_the_ca() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, &pki.wrong_name, "optional");
    for reqs in ["none", "CERT_NONE"] {
        let conn = open(&server.url(&format!("ssl_cert_reqs={reqs}")));
        let q = Queue::new(unique("tls.none"));
        publish(&conn, &q, 0..5, 10);
        assert_eq!(consume(&conn, &q, 5, None, |_| false).lock().unwrap().len(), 5);
    }
    let e = refused(&server.url("ssl_cert_reqs=CERT_REQUIRED"));
    assert_eq!(e.kind(), ErrorKind::AccessRefused, "{e:#}");
}

#[test]
fn missing_certificate_files_are_argument_errors_when_the_url_is_opened() {
    let pki = Pki::new();
    let missing = pki.dir.path().join("missing.pem");
    for query in [
        format!("ssl_ca_certs={}", missing.display()),
        format!("ssl_certfile={}&ssl_keyfile={}", missing.display(), pki.client.key.display()),
        format!("ssl_certfile={}&ssl_keyfile={}", pki.client.cert.display(), missing.display()),
        format!("ssl_certfile={}&ssl_keyfile={}", pki.client.cert.display(), pki.ca.display()),
    ] {
        let e = Connection::open(&format!("rediss://127.0.0.1:1/0?{query}")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{query}: {e:#}");
        assert!(e.to_string().contains(".pem'"), "{query}: names the file: {e}");
    }
    let e = Connection::open(&format!("redis://127.0.0.1:1/0?{}", ca_query(&pki.ca))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e:#}");
    assert!(e.to_string().contains("write rediss://"), "{e}");
}
