//! The async API on a private redis-server that restarts under it: the async link connects again for
//! the producer's next send, the consumer stream goes on through the engine's reconnect, and no message
//! published is lost. And one that freezes: a confirmed send gives up within its confirm time-out.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use kombu_core::aio::{Connection, Consumer, Producer};
use kombu_core::Queue;

kombu_core::register_transport!(kombu_redis::DESCRIPTOR);

#[test]
fn async_producer_and_consumer_go_on_after_a_server_restart() {
    const N: u32 = 300;
    let mut server = PrivateRedis::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let conn = Connection::open(&server.url()).expect("open");
        let queue = Queue::new(unique("aio-restart")).durable(false);
        conn.channel().await.expect("channel").declare(&queue).await.expect("declare");
        let producer = Producer::new(&conn).await.expect("producer").routing_key(queue.name.clone());
        let mut consumer = Consumer::builder(&conn, [queue.clone()]).prefetch(10).consume().await.expect("consume");
        let mut seen = HashSet::new();
        let publish = |range: std::ops::Range<u32>| {
            let producer = &producer;
            async move {
                for i in range {
                    let end = Instant::now() + Duration::from_secs(15);
                    // A send cut off by the restart may fail; a recoverable error is sent again.
                    while let Err(e) = producer.publish_bytes(i.to_string()).send().await {
                        assert!(e.is_recoverable() && Instant::now() < end, "send {i}: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        };
        publish(0..N).await;
        while seen.len() < N as usize {
            let m = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .expect("a message before the restart")
                .expect("stream open")
                .expect("a message");
            seen.insert(String::from_utf8_lossy(&m.body).into_owned());
            m.ack().await.expect("ack");
        }

        // The append-only file keeps what was published before (and acked: nothing comes back).
        // The restart blocks: off the runtime's scheduling, as any blocking work in a test.
        tokio::task::block_in_place(|| server.restart());

        publish(N..2 * N).await;
        let end = Instant::now() + Duration::from_secs(30);
        while seen.len() < 2 * N as usize {
            assert!(Instant::now() < end, "only {} of {} after the restart", seen.len(), 2 * N);
            match tokio::time::timeout(Duration::from_secs(5), consumer.next()).await {
                Ok(Some(Ok(m))) => {
                    seen.insert(String::from_utf8_lossy(&m.body).into_owned());
                    // An ack cut off by the restart leaves the message to come back: at least once.
                    let _ = m.ack().await;
                }
                // The engine reports the lost link and goes on reconnecting.
                Ok(Some(Err(e))) => assert!(e.is_recoverable(), "the stream's error: {e}"),
                Ok(None) => panic!("the stream ended"),
                Err(_) => {}
            }
        }
        let all: HashSet<String> = (0..2 * N).map(|i| i.to_string()).collect();
        assert_eq!(seen, all);
        consumer.cancel().await.expect("cancel");
        conn.close().await.expect("close");
    });
}

#[test]
fn a_confirmed_send_to_a_frozen_server_gives_up_within_its_confirm_timeout() {
    let server = PrivateRedis::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let conn = Connection::open(&server.url()).expect("open");
        let queue = Queue::new(unique("aio-frozen")).durable(false);
        conn.channel().await.expect("channel").declare(&queue).await.expect("declare");
        let limit = Duration::from_millis(300);
        let producer =
            Producer::new(&conn).await.expect("producer").routing_key(queue.name.clone()).confirm_timeout(Some(limit));
        producer.publish_bytes("before").send().await.expect("a send to a live server");
        server.signal("STOP");
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(10), producer.publish_bytes("frozen").send())
            .await
            .expect("the send gave up by itself, well before 10 s");
        let took = started.elapsed();
        server.signal("CONT");
        let err = outcome.expect_err("no reply from a frozen server");
        assert_eq!(err.kind(), kombu_core::ErrorKind::Timeout, "{err}");
        assert!(err.may_have_reached_broker(), "the request was written: {err:?}");
        assert!(took >= limit && took < limit * 10, "gave up after {took:?}");
        // Thawed: the link goes on, and the message given up on arrives after all (at least once).
        producer.publish_bytes("after").send().await.expect("a send after the thaw");
        let ch = conn.channel().await.expect("channel");
        assert_eq!(ch.declare_queue(&queue, true).await.expect("count").message_count, 3);
    });
}

#[test]
fn a_confirmed_send_that_must_connect_to_a_frozen_server_gives_up_within_its_confirm_timeout() {
    // The async link connects on the first send: its confirm time-out covers connecting too (the
    // handshake would otherwise wait for the socket time-out, 30 s).
    let server = PrivateRedis::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let conn = Connection::open(&server.url()).expect("open");
        let queue = Queue::new(unique("aio-frozen-connect")).durable(false);
        conn.channel().await.expect("channel").declare(&queue).await.expect("declare");
        let limit = Duration::from_millis(300);
        let producer =
            Producer::new(&conn).await.expect("producer").routing_key(queue.name.clone()).confirm_timeout(Some(limit));
        server.signal("STOP");
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(10), producer.publish_bytes("frozen").send())
            .await
            .expect("the send gave up by itself, well before 10 s");
        let took = started.elapsed();
        server.signal("CONT");
        let err = outcome.expect_err("no connection to a frozen server");
        assert_eq!(err.kind(), kombu_core::ErrorKind::Timeout, "{err}");
        assert!(!err.may_have_reached_broker(), "nothing was sent: {err:?}");
        assert!(took >= limit && took < limit * 10, "gave up after {took:?}");
        producer.publish_bytes("after").send().await.expect("a send after the thaw");
        let ch = conn.channel().await.expect("channel");
        assert_eq!(ch.declare_queue(&queue, true).await.expect("count").message_count, 1);
    });
}
