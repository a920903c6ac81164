//! `cargo xtask soak`: every backend in one Hub for a while (the `soak` example of kombu-examples), steady
//! publishers with confirms and acking consumers, a line every few seconds; fails if a confirmed message
//! is lost or memory grows after warm-up.

use crate::{cargo, root, run_checked, services};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// How long to publish, in seconds.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
    /// Messages per second per backend.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Largest RSS growth after warm-up allowed, in MiB.
    #[arg(long, default_value_t = 32)]
    max_rss_growth_mb: u64,
}

pub(crate) fn run(a: &Args) -> Result<(), String> {
    println!("redis: {}", services::ensure_redis()?);
    println!("rabbitmq: {}", services::ensure_rabbitmq()?);
    let (seconds, rate, growth) = (a.seconds.to_string(), a.rate.to_string(), a.max_rss_growth_mb.to_string());
    // A warm-up of a tenth of the run, between 5 and 30 s.
    let warmup = (a.seconds / 10).clamp(5, 30).to_string();
    run_checked(cargo().current_dir(root()).args([
        "run",
        "--release",
        "-p",
        "kombu-examples",
        "--example",
        "soak",
        "--features",
        "redis,amqp",
        "--",
        "--seconds",
        &seconds,
        "--rate",
        &rate,
        "--warmup",
        &warmup,
        "--max-rss-growth-mb",
        &growth,
    ]))
}
