//! The BENCH.md workload on Redis: `cargo run --release -p kombu-redis --example redis_bench -- [URL] [N] [SIZE]`.
//! Prints one line of figures; run the Python anchor right before or after it for the ratio.

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    let n = args.next().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let size = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    match kombu_redis::bench::run(&url, n, size) {
        Ok(r) => println!("{r}"),
        Err(e) => {
            eprintln!("redis bench failed: {e}");
            std::process::exit(1);
        }
    }
}
