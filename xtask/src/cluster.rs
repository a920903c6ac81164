//! `cargo xtask cluster` (by hand, not in CI): three throwaway RabbitMQ nodes joined into one cluster, a
//! quorum queue, a confirmed publisher and an acking consumer through kombu with a failover list (the
//! `cluster` example of kombu-examples), and nodes stopped and started under load: first the consumer's,
//! then the publisher's. Fails if a message whose confirmed publish returned `Ok` was never consumed.
//!
//! The nodes are this run's own: node names `kombu-cluster-<pid>-<n>@localhost`, free loopback ports, data,
//! logs, config and an Erlang cookie (one `HOME` for the three and for `rabbitmqctl`) under a temporary
//! directory, which `--keep` keeps. Every node is stopped by pid at the end, also on error (a guard).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::{cargo, root, run_checked};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// How many messages to publish.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Messages per second.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Keep the nodes' directory (data, logs, config) for debugging, and print where it is.
    #[arg(long)]
    keep: bool,
    /// Kill the nodes (SIGKILL to the Erlang VM) instead of stopping them with `rabbitmqctl stop`.
    #[arg(long)]
    kill: bool,
}

pub(crate) fn run(a: &Args) -> Result<(), String> {
    println!("cluster: building the client (kombu-examples --example cluster, release)");
    run_checked(cargo().current_dir(root()).args([
        "build",
        "--release",
        "-p",
        "kombu-examples",
        "--example",
        "cluster",
        "--features",
        "amqp",
    ]))?;
    let client = root().join("target/release/examples/cluster");
    let mut cluster = Cluster::new(a.keep)?;
    let began = Instant::now();
    for n in 1..=3 {
        cluster.add_node(n)?;
    }
    for node in &mut cluster.nodes {
        node.await_startup(&cluster.home, Duration::from_secs(120))?;
        println!("cluster: {} up on port {} after {:.1}s", node.name, node.port, began.elapsed().as_secs_f64());
    }
    let first = cluster.nodes[0].name.clone();
    for node in &cluster.nodes[1..] {
        node.ctl(&cluster.home, &["stop_app"])?;
        node.ctl(&cluster.home, &["join_cluster", &first])?;
        node.ctl(&cluster.home, &["start_app"])?;
    }
    let status = cluster.nodes[0].ctl(&cluster.home, &["cluster_status", "--formatter", "json"])?;
    let running = serde_json::from_str::<serde_json::Value>(&status)
        .ok()
        .and_then(|v| v["running_nodes"].as_array().map(Vec::len))
        .unwrap_or(0);
    if running != 3 {
        return Err(format!("the cluster did not form: {status}"));
    }
    println!("cluster: 3 nodes joined after {:.1}s", began.elapsed().as_secs_f64());

    let urls: Vec<String> =
        cluster.nodes.iter().map(|n| format!("amqp://guest:guest@127.0.0.1:{}//", n.port)).collect();
    let mut child = Command::new(&client)
        .args(["--urls", &urls.join(";"), "--messages", &a.messages.to_string(), "--rate", &a.rate.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", client.display()))?;
    let stdout = child.stdout.take().ok_or("the client's stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Lines { rx, shown: 0, result: None };
    let n = a.messages;
    let faults = faults(&mut cluster, &mut lines, n, a.kill);
    if lines.result.is_none() {
        lines.wait(Duration::from_secs(n / a.rate.max(1) + 180), |_| false)?;
    }
    let result = lines.result.take();
    let exit = child.wait().map_err(|e| format!("waiting for the client: {e}"))?;
    let result = result.ok_or("the client ended without a result line")?;
    println!(
        "cluster: published={} confirmed={} consumed={} lost={} duplicated={} seconds_without_service={:.2} ({:.0}s run)",
        result.get("published"),
        result.get("confirmed"),
        result.get("consumed"),
        result.get("lost"),
        result.get("duplicated"),
        result.float("longest_gap"),
        result.float("elapsed"),
    );
    faults?;
    if result.get("lost") > 0 || !exit.success() {
        return Err(format!("confirmed messages were lost, or the client failed ({exit})"));
    }
    Ok(())
}

/// Stops the consumer's node under load and starts it again once the consumer moved, then the publisher's.
fn faults(cluster: &mut Cluster, lines: &mut Lines, n: u64, kill: bool) -> Result<(), String> {
    for (round, side) in [(1u64, "consumer"), (3, "publisher")] {
        let Some(s) = lines.wait(Duration::from_secs(600), |s| s.get("consumed") >= n * round / 5)? else {
            println!("cluster: the run ended before the {side}'s node could be stopped");
            return Ok(());
        };
        let url = s.text(side);
        let i = cluster.nodes.iter().position(|node| url.contains(&format!(":{}/", node.port)));
        let i = i.ok_or_else(|| format!("the {side} is on no node of ours: '{url}'"))?;
        let (name, at) = (cluster.nodes[i].name.clone(), Instant::now());
        let how = if kill { "killing" } else { "stopping" };
        println!("cluster: {how} {name}, the {side}'s node, at consumed={}", s.get("consumed"));
        if kill {
            cluster.nodes[i].kill();
        }
        cluster.nodes[i].stop(&cluster.home);
        // Moved: on another node, and its count went on.
        let key = if side == "consumer" { "consumed" } else { "confirmed" };
        let before = s.get(key);
        let port = format!(":{}/", cluster.nodes[i].port);
        let moved =
            lines.wait(Duration::from_secs(120), |s| !s.text(side).contains(&port) && s.get(key) > before + 100)?;
        match moved {
            Some(s) => println!(
                "cluster: the {side} moved to {} and went on after {:.1}s",
                s.text(side),
                at.elapsed().as_secs_f64()
            ),
            None => return Err(format!("the {side} did not move off {name} within 120 s")),
        }
        let home = cluster.home.clone();
        let node = &mut cluster.nodes[i];
        let started = Instant::now();
        node.spawn(&home)?;
        node.await_startup(&home, Duration::from_secs(120))?;
        println!("cluster: {name} started again (in {:.1}s) and rejoined", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// One `status`/`result` line of the client: `label key=value ...`.
struct Status {
    label: String,
    fields: Vec<(String, String)>,
}

impl Status {
    fn parse(line: &str) -> Option<Status> {
        let mut words = line.split_whitespace();
        let label = words.next()?.to_owned();
        if label != "status" && label != "result" {
            return None;
        }
        let fields = words.filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        Some(Status { label, fields })
    }

    fn text(&self, key: &str) -> &str {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    fn get(&self, key: &str) -> u64 {
        self.text(key).parse().unwrap_or(0)
    }

    fn float(&self, key: &str) -> f64 {
        self.text(key).parse().unwrap_or(0.0)
    }
}

/// The client's lines, shown one in four (every two seconds), and its result line once it came.
struct Lines {
    rx: Receiver<String>,
    shown: u64,
    result: Option<Status>,
}

impl Lines {
    /// The first status line for which `done` holds; `None` if the run ended first (the result line is
    /// kept) or `within` passed.
    fn wait(&mut self, within: Duration, done: impl Fn(&Status) -> bool) -> Result<Option<Status>, String> {
        if self.result.is_some() {
            return Ok(None);
        }
        let deadline = Instant::now() + within;
        loop {
            let line = match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            };
            let Some(s) = Status::parse(&line) else {
                println!("client: {line}");
                continue;
            };
            if s.label == "result" {
                println!("client: {line}");
                self.result = Some(s);
                return Ok(None);
            }
            self.shown += 1;
            if self.shown.is_multiple_of(4) {
                println!("client: {line}");
            }
            if done(&s) {
                return Ok(Some(s));
            }
        }
    }
}

/// The nodes and their directory; stops every node when dropped.
struct Cluster {
    dir: Option<tempfile::TempDir>,
    home: PathBuf,
    nodes: Vec<Node>,
    keep: bool,
}

impl Cluster {
    fn new(keep: bool) -> Result<Cluster, String> {
        let dir = tempfile::Builder::new().prefix("kombu-cluster-").tempdir().map_err(|e| e.to_string())?;
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
        // One cookie for the three nodes and rabbitmqctl, this run's own.
        let cookie = home.join(".erlang.cookie");
        std::fs::write(&cookie, format!("KOMBUCLUSTER{}", std::process::id())).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400)).map_err(|e| e.to_string())?;
        Ok(Cluster { dir: Some(dir), home, nodes: Vec::new(), keep })
    }

    /// Writes node `n`'s files and spawns it (not waiting for its boot).
    fn add_node(&mut self, n: usize) -> Result<(), String> {
        let base = self.dir.as_ref().ok_or("no directory")?.path().join(format!("n{n}"));
        std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
        let mut node = Node {
            name: format!("kombu-cluster-{}-{n}@localhost", std::process::id()),
            port: free_port()?,
            dist_port: free_port()?,
            dir: base,
            child: None,
        };
        let conf =
            format!("listeners.tcp.default = 127.0.0.1:{}\ncluster_partition_handling = pause_minority\n", node.port);
        std::fs::write(node.dir.join("rabbitmq.conf"), conf).map_err(|e| e.to_string())?;
        // No plugins: no management or Prometheus listeners.
        std::fs::write(node.dir.join("enabled_plugins"), "[].\n").map_err(|e| e.to_string())?;
        std::fs::write(node.dir.join("rabbitmq-env.conf"), "").map_err(|e| e.to_string())?;
        node.spawn(&self.home)?;
        self.nodes.push(node);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop(&self.home);
        }
        if let Some(dir) = self.dir.take() {
            if self.keep {
                println!("cluster: kept {}", dir.keep().display());
            }
        }
    }
}

/// One node of the cluster.
struct Node {
    name: String,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// A RabbitMQ script with this node's environment (Debian's `/usr/sbin` wrappers switch to the
    /// `rabbitmq` user and its cookie, so the scripts behind them are used when they are there).
    fn command(&self, home: &Path, script: &str) -> Command {
        let debian = Path::new("/usr/lib/rabbitmq/bin").join(script);
        let mut cmd = Command::new(if debian.exists() { debian } else { PathBuf::from(script) });
        let d = &self.dir;
        cmd.env("HOME", home)
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_PID_FILE", d.join("beam.pid"))
            .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-kernel inet_dist_use_interface {127,0,0,1}");
        cmd
    }

    fn spawn(&mut self, home: &Path) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.out"))
            .map_err(|e| e.to_string())?;
        let child = self
            .command(home, "rabbitmq-server")
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run rabbitmq-server: {e}"))?;
        self.child = Some(child);
        Ok(())
    }

    fn ctl(&self, home: &Path, args: &[&str]) -> Result<String, String> {
        let out = self
            .command(home, "rabbitmqctl")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "rabbitmqctl -n {} {args:?}: {}{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn await_startup(&mut self, home: &Path, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            // Fails at once while the node has not registered its name, then waits for the boot.
            let err = match self.ctl(home, &["await_startup", "--timeout", "120"]) {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default();
                return Err(format!("{} exited ({status}):\n{log}", self.name));
            }
            if Instant::now() >= deadline {
                return Err(format!("{} did not start within {within:?}: {err}", self.name));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL to the Erlang VM (`stop` then reaps the script that started it).
    fn kill(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("beam.pid")) {
            let pid = pid.trim();
            if !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").arg("-9").arg(pid).status();
            }
        }
    }

    /// `rabbitmqctl stop`, then by pid: the Erlang VM (from its pid file), then the script that started it.
    fn stop(&mut self, home: &Path) {
        let Some(mut child) = self.child.take() else { return };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = self.ctl(home, &["stop"]);
        }
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}
