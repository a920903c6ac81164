//! The quickstart in async form, on tokio: a consumer stream prints each message it receives and acks it,
//! a producer publishes "hello world", and a `tokio::time::interval` prints " kombu " every 3 seconds.
//!
//! ```text
//! cargo run -p kombu-examples --example async_quickstart -- --exit-after 3.5
//! cargo run -p kombu-examples --example async_quickstart -- memory:// --count 5
//! cargo run -p kombu-examples --features redis --example async_quickstart -- redis://localhost:6379
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kombu::aio::{Connection, Consumer, Producer};
use kombu::{Exchange, Queue};

/// Publishes "hello world" and prints what the consumer receives, with a timer ticking beside it.
#[derive(Parser, Debug)]
#[command(after_help = "Runs until interrupted, unless --count or --exit-after is given.")]
struct Args {
    /// Broker URL.
    #[arg(default_value = "memory://")]
    url: String,
    /// Publish this many messages and stop once all are received.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    exit_after: Option<f64>,
    /// Seconds between timer lines.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    interval: f64,
}

fn seconds(name: &str, secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|e| format!("--{name} {secs}: {e}"))
}

async fn run(args: Args) -> Result<(), String> {
    let interval = seconds("interval", args.interval)?;
    if interval.is_zero() {
        return Err("--interval must be more than 0".into());
    }
    let exit_after = args.exit_after.map(|s| seconds("exit-after", s)).transpose()?;
    let exchange = Exchange::direct("asynt_exchange");
    let queue = Queue::with_exchange("asynt_queue", exchange.clone(), "asynt_routing_key");

    let conn = Connection::open(&args.url).map_err(|e| e.to_string())?;
    let mut consumer = Consumer::builder(&conn, [queue]).consume().await.map_err(|e| e.to_string())?;

    let producer = Producer::new(&conn).await.map_err(|e| e.to_string())?;
    for _ in 0..args.count.unwrap_or(1) {
        producer
            .publish("hello world")
            .exchange(&exchange)
            .routing_key("asynt_routing_key")
            .send()
            .await
            .map_err(|e| e.to_string())?;
    }

    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let deadline = async {
        match exit_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut received = 0;
    loop {
        tokio::select! {
            next = consumer.next() => {
                let message = match next {
                    Some(m) => m.map_err(|e| e.to_string())?,
                    None => break,
                };
                let body: serde_json::Value = message.decode().map_err(|e| e.to_string())?;
                match body.as_str() {
                    Some(text) => println!("received: {text}"),
                    None => println!("received: {body}"),
                }
                message.ack().await.map_err(|e| e.to_string())?;
                received += 1;
                if args.count.is_some_and(|c| received >= c) {
                    break;
                }
            }
            _ = ticker.tick() => println!(" kombu "),
            () = &mut deadline => break,
        }
    }
    consumer.cancel().await.map_err(|e| e.to_string())?;
    conn.close().await.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("async_quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}
