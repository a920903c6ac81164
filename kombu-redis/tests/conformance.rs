//! The shared conformance suite (kombu-core's `testing` feature) against Redis, one test per case
//! (`cargo test -p kombu-redis --test conformance prefetch` runs one): every case on the shared test
//! server, and the broker-restart case (26) on a private server started when that case runs, and
//! restarted by it.

mod common;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use kombu_core::testing::{Suite, Tests};

kombu_core::register_transport!(kombu_redis::DESCRIPTOR);

const RESTART: u32 = 26;

fn main() -> ExitCode {
    Tests::new()
        // A second redis server database stands in for the second backend of case 19.
        .suite(Suite::new(common::URL).peer("redis://127.0.0.1:6379/1").except(&[RESTART]))
        .suite_with(&[RESTART], || {
            let server = Arc::new(Mutex::new(common::PrivateRedis::start()));
            let url = server.lock().unwrap().url();
            let hook = Arc::new(move || {
                server.lock().unwrap_or_else(|e| e.into_inner()).restart();
                Ok(())
            });
            Suite::new(url).restart_hook(hook)
        })
        .run()
}
