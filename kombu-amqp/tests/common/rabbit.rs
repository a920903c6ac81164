//! A throwaway RabbitMQ node of a test's own: its own node name, ports, data, logs, config, plugins file
//! and Erlang cookie under a temporary directory, never the shared server. Stopped by pid when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released: good enough for a test's own server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// Where RabbitMQ's scripts are: Debian's `/usr/sbin` wrappers switch to the `rabbitmq` user (and its
/// cookie), so the real scripts are used when they are there; else those on `PATH`.
fn script(name: &str) -> PathBuf {
    let debian = Path::new("/usr/lib/rabbitmq/bin").join(name);
    if debian.exists() {
        debian
    } else {
        PathBuf::from(name)
    }
}

/// One running node.
pub struct RabbitNode {
    /// `kombu-<tag>-<pid>@localhost`.
    pub name: String,
    /// The plain AMQP port.
    pub port: u16,
    dist_port: u16,
    /// How long it took from spawning to `await_startup` returning.
    pub started_in: Duration,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RabbitNode {
    /// Starts a node whose `rabbitmq.conf` gets `extra_conf` after its plain listener, with `plugins`
    /// enabled (none: no management or Prometheus listener), and waits until it has booted.
    pub fn start(tag: &str, extra_conf: &str, plugins: &[&str]) -> Result<RabbitNode, String> {
        let dir = tempfile::Builder::new().prefix("kombu-rabbit-").tempdir().map_err(|e| e.to_string())?;
        let name = format!("kombu-{tag}-{}@localhost", std::process::id());
        let port = free_port();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
        let cookie = home.join(".erlang.cookie");
        std::fs::write(&cookie, format!("KOMBUTEST{}{}", std::process::id(), port)).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400)).map_err(|e| e.to_string())?;
        let conf = format!("listeners.tcp.default = 127.0.0.1:{port}\n{extra_conf}\n");
        std::fs::write(dir.path().join("rabbitmq.conf"), conf).map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("enabled_plugins"), format!("[{}].\n", plugins.join(",")))
            .map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("rabbitmq-env.conf"), "").map_err(|e| e.to_string())?;
        let mut node = RabbitNode { name, port, dist_port: free_port(), started_in: Duration::ZERO, dir, child: None };
        let began = Instant::now();
        let log = std::fs::File::create(node.dir.path().join("server.out")).map_err(|e| e.to_string())?;
        let child = node
            .command("rabbitmq-server")
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run rabbitmq-server: {e}"))?;
        node.child = Some(child);
        node.await_startup(Duration::from_secs(120))?;
        node.started_in = began.elapsed();
        Ok(node)
    }

    /// The node's directory (config, certificates a test writes there, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A RabbitMQ script with this node's environment.
    fn command(&self, name: &str) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new(script(name));
        cmd.env("HOME", d.join("home"))
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

    /// `rabbitmqctl -n <node> args...`: its output, or an error with its stderr.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .command("rabbitmqctl")
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
                "rabbitmqctl {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn await_startup(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            // Fails at once while the node has not registered its name yet, then waits for the boot.
            let err = match self.ctl(&["await_startup", "--timeout", "60"]) {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(self.dir.path().join("server.out")).unwrap_or_default();
                return Err(format!("rabbitmq-server {} exited ({status}):\n{log}", self.name));
            }
            if Instant::now() >= deadline {
                return Err(format!("{} did not start within {within:?}: {err}", self.name));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the node (`rabbitmqctl stop`), then makes sure by pid: the Erlang VM, then the script.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = self.ctl(&["stop"]);
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("beam.pid")) {
            let pid = pid.trim();
            if !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").arg("-9").arg(pid).status();
            }
        }
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

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.stop();
    }
}
