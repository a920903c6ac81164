//! The shared conformance suite (CONFORMANCE.md) against the real RabbitMQ, one test per case
//! (`cargo test -p kombu-amqp --test conformance prefetch` runs one), with a memory peer for the
//! one-Hub-two-backends case.
//!
//! Case 26 ("after the broker restarts, a consumer reconnects") needs the broker to go away under the
//! client. The test broker is shared with other suites, so instead of restarting it the hook makes the
//! broker force-close this suite's connections (`rabbitmqctl close_connection`, found by the connection
//! name the suite's URL sets): from the client's side the same loss of connection, with the queues and
//! their messages kept.

mod common;

use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kombu_core::testing::Suite;
use kombu_core::{Error, Result};

kombu_core::register_transport!(kombu_memory::DESCRIPTOR);

fn rabbitmqctl(args: &[&str]) -> Result<String> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| Error::connection(format!("cannot run rabbitmqctl: {e}")))?;
    if !out.status.success() {
        return Err(Error::connection(format!("rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes the broker close every connection named `name`; returns once it closed at least one.
fn force_close(name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listing = rabbitmqctl(&["list_connections", "-q", "pid", "client_properties"])?;
        let pids: Vec<&str> =
            listing.lines().filter(|l| l.contains(name)).filter_map(|l| l.split_whitespace().next()).collect();
        for pid in &pids {
            rabbitmqctl(&["close_connection", pid, "kombu-rs conformance: connection lost"])?;
        }
        if !pids.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::connection(format!("no broker connection named {name} to close")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn main() -> ExitCode {
    let name = format!("kombu-rs-conformance-{}", std::process::id());
    let url = format!("{}?connection_name={name}", common::url());
    let hook_name = name.clone();
    Suite::new(url)
        .peer("memory://amqp-conformance-peer")
        .restart_hook(Arc::new(move || force_close(&hook_name)))
        .run_as_tests()
}
