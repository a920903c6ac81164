//! Helpers shared by the kombu-redis integration tests: unique names, connections to the test server, a
//! raw client to look at what is stored.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kombu_core::{Channel, Connection, Message};

pub mod python;
pub mod sentinel;
pub mod tls;

kombu_core::register_transport!(kombu_redis::DESCRIPTOR);

/// The server the tests use (never flushed: every test uses its own names).
pub const URL: &str = "redis://127.0.0.1:6379/0";

/// A name no other test or run uses.
pub fn unique(what: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("krt.{what}.{}.{nanos}.{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// URL options that give a test its own `unacked`, `unacked_index` and `unacked_mutex` keys, so that a
/// short visibility timeout restores only that test's messages on the shared server.
pub fn own_unacked(tag: &str) -> String {
    format!("unacked_key={tag}.unacked&unacked_index_key={tag}.unacked_index&unacked_mutex_key={tag}.unacked_mutex")
}

/// The same keys as Python Kombu transport options.
pub fn own_unacked_py(tag: &str) -> serde_json::Value {
    serde_json::json!({"unacked_key": format!("{tag}.unacked"), "unacked_index_key": format!("{tag}.unacked_index"),
        "unacked_mutex_key": format!("{tag}.unacked_mutex")})
}

/// A connected connection to `url`.
pub fn open(url: &str) -> Connection {
    let c = Connection::open(url).expect("open");
    c.connect().expect("connect");
    c
}

/// A raw client on the test server.
pub fn raw() -> redis::Connection {
    redis::Client::open("redis://127.0.0.1:6379/0").and_then(|c| c.get_connection()).expect("raw redis")
}

/// Gets a message, waiting up to `wait`.
pub fn get_wait(ch: &Arc<dyn Channel>, queue: &str, wait: Duration) -> Option<Message> {
    let end = Instant::now() + wait;
    loop {
        if let Some(m) = ch.get(queue, false).expect("get") {
            return Some(m);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The body as text.
pub fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

/// A redis-server of the test's own on a free loopback port, in a temporary directory, with an
/// append-only file so that a restart keeps the data. Stopped when dropped.
pub struct PrivateRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts one.
    pub fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut r = PrivateRedis { port, dir, child: None };
        r.spawn();
        r
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it again after `stop` (same port and directory).
    pub fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < end, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Accepting connections is not enough while it loads the append-only file.
        let url = self.url();
        while redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(Instant::now() < end, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends the server a signal (`STOP` freezes it: it keeps its sockets open and answers nothing).
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            let sent = std::process::Command::new("kill").arg(format!("-{name}")).arg(c.id().to_string()).status();
            assert!(sent.is_ok_and(|s| s.success()), "kill -{name}");
        }
    }

    /// Stops it (SIGTERM: it writes its data) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// Stops and starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills every connection named `name`; returns how many.
pub fn kill_named(name: &str) -> usize {
    let mut r = raw();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut r).unwrap();
    let ids: Vec<String> = list
        .lines()
        .filter(|l| l.split(' ').any(|f| f == format!("name={name}")))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")).map(str::to_owned))
        .collect();
    for id in &ids {
        let _: redis::RedisResult<i64> = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query(&mut r);
    }
    ids.len()
}
