//! The memory backend against the shared conformance suite.

use kombu_core::testing::Suite;

#[test]
fn memory_passes_the_conformance_suite() {
    kombu_memory::link();
    Suite::new("memory://conformance").peer("memory://conformance-peer").assert_passes();
}
