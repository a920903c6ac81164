//! The quickstart: Python Kombu's hub example in Rust. A consumer prints each message it receives and
//! acks it, a producer publishes "hello world", and a timer prints " kombu " every 3 seconds, all driven
//! by one Hub.
//!
//! ```text
//! cargo run -p kombu-examples --example quickstart -- --exit-after 3.5
//! cargo run -p kombu-examples --example quickstart -- memory:// --count 5
//! cargo run -p kombu-examples --features redis --example quickstart -- redis://localhost:6379
//! ```

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kombu::{Connection, Consumer, Exchange, Hub, Message, Producer, Queue};

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

fn run(args: Args) -> Result<(), String> {
    let interval = seconds("interval", args.interval)?;
    if interval.is_zero() {
        return Err("--interval must be more than 0".into());
    }
    let mut hub = Hub::new().map_err(|e| e.to_string())?;
    let exchange = Exchange::direct("asynt_exchange");
    let queue = Queue::with_exchange("asynt_queue", exchange.clone(), "asynt_routing_key");

    let conn = Connection::open(&args.url).map_err(|e| e.to_string())?;
    conn.register_with_event_loop(&mut hub).map_err(|e| e.to_string())?;

    let stop = hub.stopper();
    let received = Arc::new(AtomicU64::new(0));
    let count = args.count;
    let seen = received.clone();
    let consumer = Consumer::new(&conn, [queue]).callback(move |body: serde_json::Value, message: Message| {
        match body.as_str() {
            Some(text) => println!("received: {text}"),
            None => println!("received: {body}"),
        }
        if let Err(e) = message.ack() {
            eprintln!("ack failed: {e}");
        }
        let n = seen.fetch_add(1, Ordering::AcqRel) + 1;
        if count.is_some_and(|c| n >= c) {
            stop.stop();
        }
    });
    let subscription = consumer.consume().map_err(|e| e.to_string())?;

    let producer = Producer::new(&conn).map_err(|e| e.to_string())?;
    for _ in 0..args.count.unwrap_or(1) {
        producer
            .publish("hello world")
            .exchange(&exchange)
            .routing_key("asynt_routing_key")
            .send()
            .map_err(|e| e.to_string())?;
    }

    hub.call_repeatedly(interval, || println!(" kombu "));
    if let Some(secs) = args.exit_after {
        let stop = hub.stopper();
        hub.call_later(seconds("exit-after", secs)?, move || stop.stop());
    }
    hub.run_forever().map_err(|e| e.to_string())?;
    subscription.cancel().map_err(|e| e.to_string())?;
    conn.close().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}
