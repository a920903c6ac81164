//! The async API across backends in one program: memory, Redis and AMQP connections on one multi-thread
//! tokio runtime, each with concurrent publishers and a consumer stream; and AMQP through the async API
//! runs lapin on the caller's runtime, with no runtime of kombu's own.

use std::collections::BTreeSet;
use std::time::Duration;

use kombu::aio::{Connection, Consumer, Producer};
use kombu::Queue;

const URLS: [&str; 3] = ["memory://aio-facade", "redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1:5672//"];

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("aio-facade.{}.{nanos}.{what}", std::process::id())
}

/// Publishes `n` messages from 4 tasks and reads them back from one stream; returns the bodies read.
async fn round(url: &'static str, n: usize) -> kombu::Result<BTreeSet<String>> {
    let conn = Connection::open(url)?;
    let queue = Queue::new(unique("q")).durable(false);
    conn.declare(&queue).await?;
    let producer = std::sync::Arc::new(Producer::new(&conn).await?.routing_key(queue.name.clone()));
    let mut consumer = Consumer::builder(&conn, [queue.clone()]).prefetch(50).consume().await?;
    let mut sends: tokio::task::JoinSet<kombu::Result<()>> = tokio::task::JoinSet::new();
    for t in 0..4 {
        let producer = producer.clone();
        sends.spawn(async move {
            for i in 0..n / 4 {
                producer.publish_bytes(format!("{t}-{i}")).send().await?;
            }
            kombu::Result::Ok(())
        });
    }
    let mut seen = BTreeSet::new();
    while seen.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .map_err(|_| kombu::Error::timeout(format!("{url}: {} of {n} messages", seen.len())))?;
        let message = next.ok_or_else(|| kombu::Error::state("stream ended"))??;
        seen.insert(String::from_utf8_lossy(&message.body).into_owned());
        message.ack().await?;
    }
    while let Some(sent) = sends.join_next().await {
        sent.map_err(|e| kombu::Error::state(e.to_string()))??;
    }
    consumer.cancel().await?;
    conn.default_channel().await?.delete_queue(&queue.name, false, false).await?;
    conn.close().await?;
    Ok(seen)
}

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| t.ok())
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn three_backends_on_one_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let results = rt.block_on(async {
        let rounds: Vec<_> = URLS.iter().map(|url| tokio::spawn(round(url, 400))).collect();
        let mut out = Vec::new();
        for r in rounds {
            out.push(r.await.expect("task"));
        }
        out
    });
    for (url, seen) in URLS.iter().zip(results) {
        let seen = seen.unwrap_or_else(|e| panic!("{url}: {e:#}"));
        assert_eq!(seen.len(), 400, "{url}");
    }
    // lapin ran on this runtime: kombu-amqp's own runtime (its thread "kombu-amqp") was never started.
    let names = thread_names();
    assert!(!names.is_empty(), "cannot read this process's threads");
    assert!(!names.iter().any(|n| n == "kombu-amqp"), "kombu-amqp started a runtime of its own: {names:?}");
}
