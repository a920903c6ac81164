//! The shared conformance suite (kombu-core's `testing` feature) against Redis: every case on the
//! shared test server, and the broker-restart case on a private server this test starts and restarts.

mod common;

use std::sync::{Arc, Mutex};

use kombu_core::testing::Suite;

#[test]
fn conformance_on_the_test_server() {
    kombu_redis::link();
    // Every case but 26 (the restart, below), including cases added after 26.
    let all_but_restart: Vec<u32> = (1..=999).filter(|&n| n != 26).collect();
    // A second redis server database stands in for the second backend of case 19.
    Suite::new(common::URL).peer("redis://127.0.0.1:6379/1").only(&all_but_restart).assert_passes();
}

#[test]
fn conformance_broker_restart() {
    kombu_redis::link();
    let server = Arc::new(Mutex::new(common::PrivateRedis::start()));
    let url = server.lock().unwrap().url();
    let s = server.clone();
    let hook = Arc::new(move || {
        s.lock().unwrap_or_else(|e| e.into_inner()).restart();
        Ok(())
    });
    Suite::new(url).only(&[26]).restart_hook(hook).assert_passes();
}
