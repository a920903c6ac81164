//! The async API's pipelined link (`wire.rs`): 64 sends at once on a fresh connection share one Redis
//! connection (they once made one each, dropping all but one); unconfirmed sends land in order and the
//! channel's next operation sees them; a refused unconfirmed send is reported by the next call; a link
//! killed by the server sends what was unanswered again.

mod common;

use std::future::Future;

use common::kill_named;
use kombu_core::aio::{Connection, Producer};
use kombu_core::Queue;

/// How many connections the server has accepted since it started.
fn connections_received() -> u64 {
    let client = redis::Client::open("redis://127.0.0.1:6379/0").expect("client");
    let mut con = client.get_connection().expect("connection");
    let info: String = redis::cmd("INFO").arg("stats").query(&mut con).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_connections_received")
}

#[test]
fn concurrent_first_sends_share_one_connection() {
    let name = format!("kombu-aio-link-{}", std::process::id());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let conn = Connection::open(&format!("redis://127.0.0.1:6379/0?client_name={name}")).expect("open");
        let queue = Queue::new(format!("{name}.q")).durable(false);
        let ch = conn.channel().await.expect("channel");
        ch.declare(&queue).await.expect("declare");
        let producer =
            std::sync::Arc::new(Producer::new(&conn).await.expect("producer").routing_key(queue.name.clone()));
        let before = connections_received();
        // All 64 polled in turn on one task, so that each reaches the connecting step before any is done.
        let mut sends: Vec<_> = (0..64)
            .map(|i| {
                let p = producer.clone();
                Some(Box::pin(async move { p.publish_bytes(i.to_string()).send().await }))
            })
            .collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for slot in sends.iter_mut() {
                if let Some(fut) = slot {
                    match fut.as_mut().poll(cx) {
                        std::task::Poll::Ready(sent) => {
                            sent.expect("send");
                            *slot = None;
                        }
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        // One for the link, one for each count; a few to spare for anything else on the shared server.
        let opened = connections_received() - before;
        assert!(opened < 10, "64 first sends opened {opened} connections");
        let ready = ch.declare_queue(&queue, true).await.expect("count").message_count;
        assert_eq!(ready, 64);
        ch.delete_queue(&queue.name, false, false).await.expect("delete");
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// The bodies in `queue`, taken one by one, oldest first.
async fn drain(ch: &kombu_core::aio::Channel, queue: &str) -> Vec<u32> {
    let mut out = Vec::new();
    while let Some(m) = ch.get(queue, true).await.expect("get") {
        out.push(String::from_utf8_lossy(&m.body).parse().expect("a number"));
    }
    out
}

#[test]
fn unconfirmed_sends_land_in_order_and_the_channel_reads_them() {
    let name = format!("kombu-aio-order-{}", std::process::id());
    runtime().block_on(async {
        let conn = Connection::open("redis://127.0.0.1:6379/0").expect("open");
        let queue = Queue::new(format!("{name}.q")).durable(false);
        let ch = conn.channel().await.expect("channel");
        ch.declare(&queue).await.expect("declare");
        let producer = Producer::on_channel(&ch).routing_key(queue.name.clone()).confirm_timeout(None);
        let n = 2000u32;
        for i in 0..n {
            producer.publish_bytes(i.to_string()).send().await.expect("send");
        }
        // The channel's next operation waits for every publish before it.
        let ready = ch.declare_queue(&queue, true).await.expect("count").message_count;
        assert_eq!(ready, u64::from(n));
        assert_eq!(drain(&ch, &queue.name).await, (0..n).collect::<Vec<_>>(), "in the order sent");
        ch.delete_queue(&queue.name, false, false).await.expect("delete");
    });
}

#[test]
fn a_refused_unconfirmed_send_is_reported_by_the_next_call() {
    let name = format!("kombu-aio-refused-{}", std::process::id());
    runtime().block_on(async {
        let conn = Connection::open("redis://127.0.0.1:6379/0").expect("open");
        let ch = conn.channel().await.expect("channel");
        let other = Queue::new(format!("{name}.ok")).durable(false);
        ch.declare(&other).await.expect("declare");
        // A key of another type where the queue's list would be: LPUSH is refused (WRONGTYPE).
        let client = redis::Client::open("redis://127.0.0.1:6379/0").expect("client");
        let mut raw = client.get_connection().expect("connection");
        let bad = format!("{name}.bad");
        let _: () = redis::cmd("SET").arg(&bad).arg("not a list").query(&mut raw).expect("SET");
        let producer = Producer::on_channel(&ch).confirm_timeout(None);
        producer.publish_bytes("lost?").routing_key(bad.clone()).send().await.expect("an unconfirmed send resolves");
        let err = producer.flush().await.expect_err("the refusal, reported by the flush");
        assert!(err.to_string().contains("WRONGTYPE"), "{err}");
        assert!(!err.may_have_reached_broker(), "a refused publish did not run: {err:?}");
        producer.flush().await.expect("reported once");
        producer.publish_bytes("lost?").routing_key(bad.clone()).send().await.expect("an unconfirmed send resolves");
        let err = ch.declare(&other).await.expect_err("the refusal, reported by the channel's next call");
        assert!(err.to_string().contains("WRONGTYPE"), "{err}");
        // Reported once: the channel goes on.
        ch.declare(&other).await.expect("the call after");
        producer.publish_bytes("7").routing_key(other.name.clone()).send().await.expect("send");
        assert_eq!(ch.declare_queue(&other, true).await.expect("count").message_count, 1);
        let _: () = redis::cmd("DEL").arg(&bad).query(&mut raw).expect("DEL");
        ch.delete_queue(&other.name, false, false).await.expect("delete");
    });
}

#[test]
fn a_killed_link_sends_what_was_unanswered_again() {
    let name = format!("kombu_aio_kill_{}", std::process::id());
    runtime().block_on(async {
        let conn = Connection::open(&format!("redis://127.0.0.1:6379/0?client_name={name}")).expect("open");
        let queue = Queue::new(format!("{name}.q")).durable(false);
        let ch = conn.channel().await.expect("channel");
        ch.declare(&queue).await.expect("declare");
        let producer = Producer::on_channel(&ch).routing_key(queue.name.clone()).confirm_timeout(None);
        let n = 3000u32;
        let mut killed = 0;
        for i in 0..n {
            producer.publish_bytes(i.to_string()).send().await.expect("an unconfirmed send");
            if i % 1000 == 500 {
                // Mid-stream, with replies unread: every connection of this kombu connection.
                killed += kill_named(&name);
            }
        }
        assert!(killed >= 3, "the link was killed each time ({killed} connections)");
        // A confirmed send after the kills: the link connects again.
        let confirmed = Producer::on_channel(&ch).routing_key(queue.name.clone());
        confirmed.publish_bytes(n.to_string()).send().await.expect("a confirmed send after the kills");
        let mut got = drain(&ch, &queue.name).await;
        got.sort_unstable();
        let len = got.len();
        got.dedup();
        assert_eq!(got, (0..=n).collect::<Vec<_>>(), "every message at least once");
        // At least once: a request sent again may have run before the kill.
        assert!(len - got.len() <= 3 * UNANSWERED, "{} duplicates", len - got.len());
        ch.delete_queue(&queue.name, false, false).await.expect("delete");
    });
}

/// Most requests the link leaves unanswered (its window and one more), so most a kill sends twice.
const UNANSWERED: usize = 129;
