//! The memory backend against the shared conformance suite, one test per case
//! (`cargo test -p kombu-memory --test conformance prefetch` runs one).

use std::process::ExitCode;

use kombu_core::testing::Suite;

kombu_core::register_transport!(kombu_memory::DESCRIPTOR);

fn main() -> ExitCode {
    Suite::new("memory://conformance").peer("memory://conformance-peer").run_as_tests()
}
