//! The async API's pipelined link: 64 sends at once on a fresh connection share one Redis connection
//! (they once made one each, dropping all but one), and every one of their messages is in the queue.

use std::future::Future;

use kombu_core::aio::{Connection, Producer};
use kombu_core::Queue;

kombu_core::register_transport!(kombu_redis::DESCRIPTOR);

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
