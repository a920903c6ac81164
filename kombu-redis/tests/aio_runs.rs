//! Publishes that share one command on the async link (`wire/run.rs`): confirmed sends in flight to one
//! routing key go as far fewer ROUTE scripts than messages (counted by a private server's command
//! statistics), each message lands once in every bound queue, in order for one sender, and a refusal
//! of the shared command is the outcome of every send it carried.

mod common;

use std::collections::BTreeSet;

use common::PrivateRedis;
use futures_util::stream::{self, StreamExt};
use kombu_core::aio::{Channel, Connection, Producer};
use kombu_core::{Exchange, ExchangeKind, Queue};

kombu_core::register_transport!(kombu_redis::DESCRIPTOR);

/// Runs of `command` the server has counted since it started (`calls`, and `failed_calls` in case a
/// server counts those apart).
fn calls(url: &str, command: &str) -> u64 {
    let mut con = redis::Client::open(url).and_then(|c| c.get_connection()).expect("connection");
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut con).expect("INFO");
    let Some(fields) = info.lines().find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:"))) else { return 0 };
    fields
        .split(',')
        .filter_map(|f| f.split_once('='))
        .filter(|(k, _)| *k == "calls" || *k == "failed_calls")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// The bodies in `queue`, oldest first.
async fn drain(ch: &Channel, queue: &str) -> Vec<u32> {
    let mut out = Vec::new();
    while let Some(m) = ch.get(queue, true).await.expect("get") {
        out.push(String::from_utf8_lossy(&m.body).parse().expect("a number"));
    }
    out
}

/// Sends the bodies `0..n` with `producer`, 64 sends in flight at a time; their outcomes.
async fn send_in_flight(producer: &Producer, n: u32) -> Vec<kombu_core::Result<()>> {
    stream::iter(0..n)
        .map(|i| async move { producer.publish_bytes(i.to_string()).send().await })
        .buffer_unordered(64)
        .collect()
        .await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

#[test]
fn confirmed_sends_in_flight_share_scripts_and_each_lands_once() {
    const N: u32 = 2000;
    let server = PrivateRedis::start();
    let url = server.url();
    runtime().block_on(async {
        let conn = Connection::open(&url).expect("open");
        let ch = conn.channel().await.expect("channel");
        let exchange = Exchange::new("runs", ExchangeKind::Direct).durable(false);
        let queues = ["runs.a", "runs.b"].map(|q| Queue::with_exchange(q, exchange.clone(), "k").durable(false));
        for q in &queues {
            ch.declare(q).await.expect("declare");
        }
        let producer = Producer::new(&conn).await.expect("producer").exchange(exchange.clone()).routing_key("k");
        let before = calls(&url, "evalsha");
        let outcomes = send_in_flight(&producer, N).await;
        assert!(outcomes.iter().all(Result::is_ok), "every confirmed send: {:?}", outcomes.iter().find(|o| o.is_err()));
        let scripts = calls(&url, "evalsha") - before;
        // Without joining: one script per message. Runs are shorter on a busy machine.
        assert!(scripts <= u64::from(N) / 2, "{N} sends in flight ran {scripts} scripts");
        for q in &queues {
            let got = drain(&ch, &q.name).await;
            assert_eq!(got.len(), N as usize, "{}: every message once", q.name);
            assert_eq!(got.iter().copied().collect::<BTreeSet<_>>(), (0..N).collect(), "{}", q.name);
        }

        // One sender after the other: the order published.
        let sequential = Producer::new(&conn).await.expect("producer").exchange(exchange).routing_key("k");
        for i in 0..200u32 {
            sequential.publish_bytes(i.to_string()).send().await.expect("send");
        }
        assert_eq!(drain(&ch, &queues[0].name).await, (0..200).collect::<Vec<_>>());
    });
}

#[test]
fn a_refused_shared_command_fails_every_send_it_carried() {
    let server = PrivateRedis::start();
    let url = server.url();
    runtime().block_on(async {
        let conn = Connection::open(&url).expect("open");
        let ch = conn.channel().await.expect("channel");
        let queue = Queue::new("runs.bad").durable(false);
        ch.declare(&queue).await.expect("declare");
        // A key of another type where the queue's list is: LPUSH is refused (WRONGTYPE).
        let mut raw = redis::Client::open(url.as_str()).and_then(|c| c.get_connection()).expect("connection");
        let _: () = redis::cmd("SET").arg(&queue.name).arg("not a list").query(&mut raw).expect("SET");
        let producer = Producer::new(&conn).await.expect("producer").routing_key(queue.name.clone());
        let before = calls(&url, "lpush");
        let outcomes = send_in_flight(&producer, 256).await;
        for outcome in &outcomes {
            let err = outcome.as_ref().expect_err("refused");
            assert!(err.to_string().contains("WRONGTYPE"), "{err}");
            assert!(!err.may_have_reached_broker(), "a refused publish did not run: {err:?}");
        }
        let pushes = calls(&url, "lpush") - before;
        // Without joining: 256 (or twice that, should a server count a failed call in both fields).
        assert!(pushes <= 256 / 2, "256 sends in flight ran {pushes} LPUSHes");
        // The channel goes on once the key is a list again.
        let _: () = redis::cmd("DEL").arg(&queue.name).query(&mut raw).expect("DEL");
        producer.publish_bytes("7").send().await.expect("send");
        assert_eq!(drain(&ch, &queue.name).await, vec![7]);
    });
}

#[test]
fn confirmed_sends_in_flight_to_places_in_turn_all_go_at_once() {
    // Each send to another routing key than the one before closes the run it would have joined; every
    // closed run must go at once (not wait for its leader, nor for a time-out).
    const N: u32 = 600;
    let server = PrivateRedis::start();
    runtime().block_on(async {
        let conn = Connection::open(&server.url()).expect("open");
        let ch = conn.channel().await.expect("channel");
        let exchange = Exchange::new("turns", ExchangeKind::Direct).durable(false);
        let queues: Vec<Queue> = (0..3)
            .map(|k| Queue::with_exchange(format!("turns.{k}"), exchange.clone(), format!("k{k}")).durable(false))
            .collect();
        for q in &queues {
            ch.declare(q).await.expect("declare");
        }
        let producer = Producer::new(&conn)
            .await
            .expect("producer")
            .exchange(exchange)
            .confirm_timeout(Some(std::time::Duration::from_secs(5)));
        let started = std::time::Instant::now();
        let outcomes: Vec<_> = stream::iter(0..N)
            .map(|i| {
                let producer = &producer;
                async move { producer.publish_bytes(i.to_string()).routing_key(format!("k{}", i % 3)).send().await }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        assert!(outcomes.iter().all(Result::is_ok), "every send: {:?}", outcomes.iter().find(|o| o.is_err()));
        assert!(started.elapsed() < std::time::Duration::from_secs(4), "took {:?}", started.elapsed());
        for (k, q) in queues.iter().enumerate() {
            let got: BTreeSet<u32> = drain(&ch, &q.name).await.into_iter().collect();
            let k = u32::try_from(k).expect("k");
            assert_eq!(got, (0..N).filter(|i| i % 3 == k).collect(), "{}", q.name);
        }
    });
}
