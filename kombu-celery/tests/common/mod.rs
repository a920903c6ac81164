//! Test support: a real Celery worker (`tests/celery_app.py`, `--pool=solo`) on a queue of its own, killed by
//! its pid when dropped. Also used by the facade's CLI tests (`tests/cli.rs`, through `#[path]`).

// Each test file uses a part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The directory of `celery_app.py`, from kombu-celery's tests or the facade's.
pub fn app_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.ends_with("kombu-celery") {
        here.join("tests")
    } else {
        here.join("kombu-celery/tests")
    }
}

/// A fresh name, for queues.
pub fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("kombu-rs.celery.{what}.{}.{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A Celery worker on its own queue; killed (by its pid) when dropped.
pub struct Worker {
    child: Child,
    /// The queue it reads.
    pub queue: String,
}

impl Worker {
    /// Starts a worker and returns once it says it is ready.
    pub fn start(broker: &str, backend: &str) -> Worker {
        let queue = unique("q");
        let mut child = Command::new("python3")
            .args(["-m", "celery", "-A", "celery_app", "worker", "--pool=solo", "--loglevel=INFO"])
            .args(["--without-heartbeat", "--without-gossip", "--without-mingle", "-Q", &queue])
            .arg(format!("--hostname={queue}@localhost"))
            .current_dir(app_dir())
            .env("KOMBU_RS_BROKER", broker)
            .env("KOMBU_RS_BACKEND", backend)
            .env("KOMBU_RS_QUEUE", &queue)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 -m celery runs (pip install celery)");
        let stderr = child.stderr.take().expect("stderr");
        let (ready_tx, ready) = mpsc::channel();
        // The worker's log is read to its end (so it never blocks on a full pipe) and echoed for failures.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                eprintln!("[celery] {line}");
                if line.contains(" ready.") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let mut worker = Worker { child, queue };
        if ready.recv_timeout(Duration::from_secs(60)).is_err() {
            let status = worker.child.try_wait();
            panic!("the Celery worker did not get ready in 60 s (exit: {status:?})");
        }
        worker
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
