//! A Redis Sentinel deployment of the test's own: a master, replicas (`--replicaof`) and three sentinels
//! (`redis-server <conf> --sentinel`, quorum 2, short down-after and failover timeouts), all on free
//! loopback ports in a temporary directory, stopped by pid when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tls::free_port;

/// The name the sentinels monitor the master under.
pub const MASTER: &str = "kombu-rs-master";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// The servers, their sentinels, and where they keep their files.
pub struct Deployment {
    /// Ports of the master and the replicas, as started (a failover changes their roles).
    pub servers: Vec<u16>,
    /// Ports of the sentinels.
    pub sentinels: Vec<u16>,
    procs: Vec<Proc>,
    dir: tempfile::TempDir,
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A raw client on `127.0.0.1:port` (a server or a sentinel).
pub fn client(port: u16) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))?.get_connection_with_timeout(Duration::from_secs(2))
}

impl Deployment {
    /// Starts a master, `replicas` replicas and three sentinels, and waits until the sentinels know each
    /// other and the replicas.
    pub fn start(replicas: usize) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Deployment { servers: Vec::new(), sentinels: Vec::new(), procs: Vec::new(), dir };
        let master = d.server(None);
        for _ in 0..replicas {
            let port = d.server(Some(master));
            wait_for("a replica's link to the master", 20, || {
                let info: String = redis::cmd("INFO").arg("replication").query(&mut client(port).ok()?).ok()?;
                info.contains("master_link_status:up").then_some(())
            });
        }
        let replicas = replicas.to_string();
        for _ in 0..3 {
            d.sentinel(master);
        }
        for &s in &d.sentinels {
            wait_for("a sentinel that knows the replica and the other sentinels", 30, || {
                let state: Vec<String> =
                    redis::cmd("SENTINEL").arg("MASTER").arg(MASTER).query(&mut client(s).ok()?).ok()?;
                let field = |name: &str| state.iter().position(|f| f == name).and_then(|i| state.get(i + 1)).cloned();
                (field("num-slaves")? == replicas && field("num-other-sentinels")?.as_str() == "2").then_some(())
            });
        }
        d
    }

    fn server(&mut self, replica_of: Option<u16>) -> u16 {
        let port = free_port();
        let dir = self.dir.path().join(format!("server-{port}"));
        std::fs::create_dir(&dir).unwrap();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        cmd.arg("--dir").arg(&dir);
        if let Some(master) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &master.to_string()]);
        }
        self.procs.push(Proc(cmd.stdout(Stdio::null()).spawn().expect("redis-server")));
        wait_for("redis-server", 10, || client(port).ok());
        self.servers.push(port);
        port
    }

    fn sentinel(&mut self, master: u16) {
        let port = free_port();
        let conf = self.dir.path().join(format!("sentinel-{port}.conf"));
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {MASTER} 127.0.0.1 {master} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n\
             sentinel parallel-syncs {MASTER} 1\n",
            self.dir.path().display()
        );
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("redis-server").arg(&conf).arg("--sentinel").stdout(Stdio::null()).spawn();
        self.procs.push(Proc(child.expect("redis-server --sentinel")));
        wait_for("a sentinel", 10, || client(port).ok());
        self.sentinels.push(port);
    }

    /// `sentinel://127.0.0.1:<s1>;sentinel://127.0.0.1:<s2>;...?<query>` (the query once, on the last).
    pub fn url(&self, query: &str) -> String {
        let list: Vec<String> = self.sentinels.iter().map(|p| format!("sentinel://127.0.0.1:{p}")).collect();
        format!("{}/0?master_name={MASTER}{}{query}", list.join(";"), if query.is_empty() { "" } else { "&" })
    }

    /// The master's port, as the first sentinel says.
    pub fn master(&self) -> u16 {
        let addr: Vec<String> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER)
            .query(&mut client(self.sentinels[0]).unwrap())
            .unwrap();
        addr[1].parse().unwrap()
    }

    /// Asks a sentinel to fail over, and waits until every sentinel names one new master and it says it
    /// is the master. Returns its port.
    pub fn failover(&self) -> u16 {
        let old = self.master();
        let _: () =
            redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER).query(&mut client(self.sentinels[0]).unwrap()).unwrap();
        wait_for("the failover", 30, || {
            let named: Vec<Option<String>> = self
                .sentinels
                .iter()
                .map(|&s| {
                    let mut c = client(s).ok()?;
                    let a: Vec<String> =
                        redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(MASTER).query(&mut c).ok()?;
                    a.get(1).cloned()
                })
                .collect();
            let new: u16 = named[0].as_ref()?.parse().ok()?;
            let agreed = new != old && named.iter().all(|n| n.as_deref() == Some(new.to_string().as_str()));
            let role: Option<Vec<redis::Value>> =
                client(new).ok().and_then(|mut c| redis::cmd("ROLE").query(&mut c).ok());
            let is_master = role
                .and_then(|r| r.into_iter().next())
                .is_some_and(|v| v == redis::Value::BulkString(b"master".to_vec()));
            (agreed && is_master).then_some(new)
        })
    }
}
