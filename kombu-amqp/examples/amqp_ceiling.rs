//! The ceiling for the BENCH.md workload on RabbitMQ: the same work on raw lapin, without kombu-rs
//! (publishes pipelined, acks started without waiting, as kombu-amqp does). `cargo xtask bench` runs it
//! beside `kombu bench` and the Python Kombu anchor.
//!
//! `cargo run --release -p kombu-amqp --example amqp_ceiling -- [URL] [N] [SIZE] [CONFIRMS]`
//! (defaults: `amqp://guest:guest@127.0.0.1:5672//`, 20000, 100). With CONFIRMS (a number above 0) the
//! publishes are confirmed, that many confirms outstanding at a time: the ceiling for as many confirmed
//! `send()` futures in flight on kombu-amqp's async API.

use kombu_amqp::bench::{raw_lapin, RawStyle};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args.first().cloned().unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672//".to_owned());
    let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let size = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let style = match args.get(3).and_then(|s| s.parse().ok()) {
        Some(depth) if depth > 0 => RawStyle::Confirmed(depth),
        _ => RawStyle::Pipelined,
    };
    match raw_lapin(&url, n, size, style) {
        Ok(r) => println!("{r}"),
        Err(e) => {
            eprintln!("raw lapin bench failed: {e}");
            std::process::exit(1);
        }
    }
}
