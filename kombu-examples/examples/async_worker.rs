//! A worker on tokio: it consumes tasks (`{"n": 12}`) from a queue, computes the sum 1..=n for each, and
//! publishes the result to the task's `reply_to` queue (or `results`), with the task's correlation id.
//! Tasks run side by side, at most `--concurrency` at a time (the prefetch window). On Ctrl-C (or after
//! `--exit-after`) it shuts down gracefully: the consumer is cancelled, so tasks received but not started
//! go back to the queue, tasks under way finish and are acknowledged, and the connection is closed.
//!
//! ```text
//! cargo run -p kombu-examples --example async_worker -- --seed 100 --exit-after 3
//! cargo run -p kombu-examples --features redis --example async_worker -- redis://localhost:6379 --seed 1000
//! ```

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kombu::aio::{Connection, Consumer, Message, Producer};
use kombu::Queue;
use serde_json::json;
use tokio::task::JoinSet;

/// Consumes tasks and publishes their results until interrupted.
#[derive(Parser, Debug)]
struct Args {
    /// Broker URL.
    #[arg(default_value = "memory://")]
    url: String,
    /// The queue tasks come from.
    #[arg(long, default_value = "tasks")]
    queue: String,
    /// How many tasks run at once (also the prefetch window).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Publish this many tasks first (for a demonstration without another program).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop (gracefully) after this many seconds.
    #[arg(long, value_name = "SECS")]
    exit_after: Option<f64>,
}

/// Runs one task and publishes its result; the task is acknowledged only once its result is on the broker.
async fn handle(producer: &Producer, task: Message) -> kombu::Result<()> {
    let body: serde_json::Value = match task.decode() {
        Ok(body) => body,
        Err(e) => {
            eprintln!("task {}: cannot decode ({e}); rejected", task.delivery_info.delivery_tag);
            return task.reject(false).await;
        }
    };
    let Some(n) = body.get("n").and_then(serde_json::Value::as_u64).filter(|n| *n <= 1_000_000) else {
        eprintln!("task {}: no \"n\" from 0 to 1000000 in {body}; rejected", task.delivery_info.delivery_tag);
        return task.reject(false).await;
    };
    let sum: u64 = (1..=n).sum();
    let reply_to = task.properties.reply_to.clone().unwrap_or_else(|| "results".to_owned());
    let result = json!({ "n": n, "sum": sum });
    let mut publish = producer.publish(&result).routing_key(reply_to);
    if let Some(id) = task.properties.correlation_id.clone() {
        publish = publish.correlation_id(id);
    }
    publish.send().await?;
    task.ack().await
}

async fn run(args: Args) -> Result<(), String> {
    let exit_after = args.exit_after.map(Duration::try_from_secs_f64).transpose().map_err(|e| e.to_string())?;
    let conn = Connection::open(&args.url).map_err(|e| e.to_string())?;
    let tasks = Queue::new(args.queue.as_str());
    conn.declare(&tasks).await.map_err(|e| e.to_string())?;
    conn.declare(&Queue::new("results")).await.map_err(|e| e.to_string())?;
    let producer = Arc::new(Producer::new(&conn).await.map_err(|e| e.to_string())?);
    for n in 0..args.seed {
        let task = json!({ "n": n });
        producer.publish(&task).routing_key(args.queue.as_str()).send().await.map_err(|e| e.to_string())?;
    }
    let mut consumer =
        Consumer::builder(&conn, [tasks]).prefetch(args.concurrency).consume().await.map_err(|e| e.to_string())?;
    println!("worker: consuming '{}' on {} (Ctrl-C stops)", args.queue, conn.url());

    let done = Arc::new(AtomicU64::new(0));
    let mut running = JoinSet::new();
    let shutdown = async {
        match exit_after {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                if let Err(e) = tokio::signal::ctrl_c().await {
                    eprintln!("worker: cannot watch Ctrl-C ({e}); running until the consumer ends");
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(task)) => {
                    let (producer, done) = (producer.clone(), done.clone());
                    running.spawn(async move {
                        match handle(&producer, task).await {
                            Ok(()) => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            // Not acknowledged: the broker delivers it again.
                            Err(e) => eprintln!("worker: a task failed: {e}"),
                        }
                    });
                }
                Some(Err(e)) => eprintln!("worker: {e}"),
                None => break,
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
            () = &mut shutdown => {
                println!("worker: stopping");
                break;
            }
        }
    }
    // Nothing new arrives; what was received and not started goes back to the queue.
    consumer.cancel().await.map_err(|e| e.to_string())?;
    while running.join_next().await.is_some() {}
    println!("worker: {} tasks done", done.load(Ordering::Relaxed));
    drop(consumer);
    conn.close().await.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("async_worker: {e}");
            ExitCode::FAILURE
        }
    }
}
