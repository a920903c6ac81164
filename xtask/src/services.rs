//! Brokers and tools the tests and benchmarks need: found running, started from the installed binaries,
//! or installed (Debian packages, pip) — so a fresh machine works with the README's commands.

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::run_checked;

/// What is available after [`ensure_all`].
pub(crate) struct Services {
    pub(crate) redis: String,
    pub(crate) rabbitmq: String,
    pub(crate) python_kombu: String,
}

impl fmt::Display for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "redis:        {}", self.redis)?;
        writeln!(f, "rabbitmq:     {}", self.rabbitmq)?;
        write!(f, "python kombu: {}", self.python_kombu)
    }
}

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn wait_for_port(port: u16, what: &str, limit: Duration) -> Result<(), String> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if port_open(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!("{what} did not start listening on 127.0.0.1:{port} within {}s", limit.as_secs()))
}

fn have(binary: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {binary}")]).output().is_ok_and(|o| o.status.success())
}

fn apt_install(packages: &[&str]) -> Result<(), String> {
    if !have("apt-get") {
        return Err(format!("{} not installed and apt-get is not available; install it by hand", packages.join(" ")));
    }
    eprintln!("xtask: installing {} with apt-get", packages.join(" "));
    run_checked(Command::new("apt-get").args(["update", "-qq"]))?;
    run_checked(
        Command::new("apt-get").args(["install", "-y", "-qq"]).args(packages).env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Redis on 127.0.0.1:6379.
pub(crate) fn ensure_redis() -> Result<String, String> {
    if port_open(6379) {
        return Ok("running on 127.0.0.1:6379".into());
    }
    if !have("redis-server") {
        apt_install(&["redis-server"])?;
    }
    let dir = std::env::temp_dir().join("kombu-rs-redis");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    eprintln!("xtask: starting redis-server on 127.0.0.1:6379");
    run_checked(
        Command::new("redis-server").args(["--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379"]).args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.to_string_lossy(),
            "--logfile",
            &dir.join("redis.log").to_string_lossy(),
        ]),
    )?;
    wait_for_port(6379, "redis-server", Duration::from_secs(20))?;
    Ok("started on 127.0.0.1:6379".into())
}

/// RabbitMQ on 127.0.0.1:5672 (guest/guest).
pub(crate) fn ensure_rabbitmq() -> Result<String, String> {
    if port_open(5672) {
        return Ok("running on 127.0.0.1:5672".into());
    }
    if !have("rabbitmq-server") {
        apt_install(&["rabbitmq-server"])?;
    }
    eprintln!("xtask: starting rabbitmq-server (this takes a few seconds)");
    run_checked(Command::new("rabbitmq-server").arg("-detached"))?;
    wait_for_port(5672, "rabbitmq-server", Duration::from_secs(120))?;
    Ok("started on 127.0.0.1:5672".into())
}

/// Python Kombu and Celery (with redis-py, and the optional packages behind Kombu's msgpack, yaml, brotli and zstd
/// codecs), for the interoperability tests and the benchmark anchor.
pub(crate) fn ensure_python_kombu() -> Result<String, String> {
    let probe = || {
        Command::new("python3")
            .args([
                "-c",
                "import kombu, redis, amqp, celery, msgpack, yaml, brotli; from backports import zstd; print(kombu.__version__)",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    if let Some(v) = probe() {
        return Ok(format!("kombu {v}"));
    }
    eprintln!("xtask: installing Python Kombu and its codecs' packages with pip");
    let packages = ["kombu", "celery", "redis", "packaging", "msgpack", "PyYAML", "brotli", "backports.zstd"];
    run_checked(Command::new("python3").args(["-m", "pip", "install", "-q"]).args(packages))?;
    probe().map(|v| format!("kombu {v} (installed)")).ok_or_else(|| "Python Kombu still cannot be imported".into())
}

/// Everything: brokers and Python Kombu.
pub(crate) fn ensure_all() -> Result<Services, String> {
    Ok(Services { redis: ensure_redis()?, rabbitmq: ensure_rabbitmq()?, python_kombu: ensure_python_kombu()? })
}
