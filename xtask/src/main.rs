//! `cargo xtask`: the one entry point for the project's automation (see `cargo xtask --help`).

mod bench;
mod cluster;
mod fuzz;
mod lint;
mod plot;
mod scale;
mod services;
mod soak;
mod test;
mod tidy;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "kombu-rs automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the brokers the tests need (or check that they run), then run every test with a summary.
    Test {
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// cargo fmt --check, clippy -D warnings on everything, rustdoc -D warnings, and the tidy checks.
    Lint,
    /// The BENCH.md workload for each backend, side by side with Python Kombu, with ratios (`--scale`:
    /// how the rates change as queues per consumer and body sizes grow).
    Bench(bench::Args),
    /// Find, start or install Redis, RabbitMQ and Python Kombu; print what runs where.
    Services,
    /// Run each cargo-fuzz target in fuzz/ for a bounded time (stable toolchain); fail on any crash.
    Fuzz(fuzz::Args),
    /// Every backend in one Hub for `--seconds`: steady publishers, acking consumers, a line every 5 s;
    /// fails if a confirmed message is lost or memory grows after warm-up.
    Soak(soak::Args),
    /// Three throwaway RabbitMQ nodes in one cluster, a quorum queue, a confirmed publisher and an acking
    /// consumer (failover URLs) while their nodes are stopped and started; fails if a confirmed message is
    /// lost. Run by hand, not in CI.
    Cluster(cluster::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Test { cargo_args } => test::run(&cargo_args),
        Command::Lint => lint::run(),
        Command::Bench(args) => bench::run(&args),
        Command::Services => services::ensure_all().map(|s| println!("{s}")),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::Soak(args) => soak::run(&args),
        Command::Cluster(args) => cluster::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command, failing with its name if it cannot start or exits non-zero.
pub(crate) fn run_checked(cmd: &mut std::process::Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// The cargo that runs us (so `cargo xtask` uses the same toolchain).
pub(crate) fn cargo() -> std::process::Command {
    std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The workspace root.
pub(crate) fn root() -> std::path::PathBuf {
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(|p| p.to_path_buf()).unwrap_or(manifest)
}
