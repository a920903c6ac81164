//! End-to-end tests of the `kombu` command-line tool: the built binary against every enabled broker, the
//! same commands in-process against the memory broker (which lives inside one process), error paths, and
//! interop with Python Kombu.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The outcome of one run of the tool.
#[derive(Debug)]
struct Run {
    /// The command line, for failure messages.
    args: Vec<String>,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "`kombu {}` failed: {self:?}", self.args.join(" "));
        self
    }

    /// A failure reported as exactly one `error: ...` line on stderr, nothing on stdout, no panic.
    fn one_line_error(self) -> Run {
        assert_eq!(self.code, 1, "`kombu {}`: expected exit status 1: {self:?}", self.args.join(" "));
        assert!(self.stdout.is_empty(), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "expected one line: {self:?}");
        assert!(self.stderr.starts_with("error: "), "{self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
        self
    }

    fn json_lines(&self) -> Vec<Value> {
        self.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
    }
}

/// Runs the built binary.
fn kombu_with_stdin(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kombu"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the kombu binary");
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    let out = child.wait_with_output().expect("run the kombu binary");
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kombu(args: &[&str]) -> Run {
    kombu_with_stdin(args, b"")
}

/// Runs the same entry point as the binary inside this process (so that `memory://` is shared between runs).
fn kombu_in_process(args: &[&str], stdin: &[u8]) -> Run {
    let mut input = stdin;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut io = kombu::cli::Io { stdin: &mut input, stdout: &mut out, stderr: &mut err };
    let code = kombu::cli::run(std::iter::once("kombu").chain(args.iter().copied()), &mut io);
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("cli_{prefix}_{}_{nanos}", std::process::id())
}

/// The external brokers the tests run against: one line per enabled backend.
#[cfg(any(feature = "redis", feature = "amqp"))]
const BROKERS: &[&str] = &[
    #[cfg(feature = "redis")]
    "redis://127.0.0.1:6379/0",
    #[cfg(feature = "amqp")]
    "amqp://guest:guest@127.0.0.1:5672//",
];

/// Publish, consume, declare, delete and purge on `url`, through `kombu` (the binary, or in-process).
fn round_trip(url: &str, kombu: &dyn Fn(&[&str], &[u8]) -> Run) {
    let (ex, q) = (unique("ex"), unique("q"));
    let queue_opts = ["--max-priority", "9"];

    let run = kombu(&["declare", "exchange", url, &ex, "--type", "direct"], b"").ok();
    assert_eq!(run.stdout, format!("declared exchange '{ex}' (direct)\n"));
    let mut args = vec!["declare", "queue", url, &q, "-e", &ex, "-k", "rk"];
    args.extend(queue_opts);
    let run = kombu(&args, b"").ok();
    assert_eq!(run.stdout, format!("declared queue '{q}' (0 messages, 0 consumers)\n"));
    // (After the binding: on Redis, as in Python Kombu, an exchange without bindings is not found.)
    let run = kombu(&["declare", "exchange", url, &ex, "--passive"], b"").ok();
    assert!(run.stdout.starts_with(&format!("exchange exists '{ex}'")), "{run:?}");

    // Publish twice, declaring the queue again on the way (as it is: no error).
    let mut args = vec!["publish", url, "-e", &ex, "-k", "rk", "--queue", &q];
    args.extend(queue_opts);
    args.extend(["--header", "h=v", "--header-json", "n=3", "--priority", "5", "-n", "2", r#"{"hello": "world"}"#]);
    let run = kombu(&args, b"").ok();
    assert!(run.stdout.contains("published 2 messages"), "{run:?}");

    let run = kombu(&["consume", url, "-q", &q, "--passive", "--count", "2", "--timeout", "10"], b"").ok();
    let messages = run.json_lines();
    assert_eq!(messages.len(), 2, "{run:?}");
    for m in &messages {
        assert_eq!(m["body"], r#"{"hello": "world"}"#, "{m}");
        assert_eq!(m["body_encoding"], "text", "{m}");
        assert_eq!(m["content_type"], "application/json", "{m}");
        assert_eq!(m["content_encoding"], "utf-8", "{m}");
        assert_eq!(m["headers"]["h"], "v", "{m}");
        assert_eq!(m["headers"]["n"], 3, "{m}");
        assert_eq!(m["properties"]["priority"], 5, "{m}");
        assert_eq!(m["properties"]["delivery_mode"], 2, "{m}");
        assert_eq!(m["delivery_info"]["exchange"], ex.as_str(), "{m}");
        assert_eq!(m["delivery_info"]["routing_key"], "rk", "{m}");
    }

    // A binary body from stdin comes back as base64; this consumer declares the queue as it found it.
    let run = kombu(&["publish", url, "-e", &ex, "-k", "rk", "--serializer", "raw", "-"], &[0xff, 0x00, 0x01]).ok();
    assert!(run.stdout.contains("published 1 message"), "{run:?}");
    let mut args = vec!["consume", url, "-q", &q, "-e", &ex, "-k", "rk", "-n", "1", "--timeout", "10"];
    args.extend(queue_opts);
    let m = &kombu(&args, b"").ok().json_lines()[0];
    assert_eq!(m["body"], "/wAB", "{m}");
    assert_eq!(m["body_encoding"], "base64", "{m}");
    assert_eq!(m["content_type"], "application/data", "{m}");

    // Nothing left: the consumer times out with its own exit status, having printed nothing. (Not with
    // --passive: on Redis, as in Python Kombu, an empty queue does not exist.)
    let started = Instant::now();
    let mut args = vec!["consume", url, "-q", &q, "-n", "1", "--timeout", "0.5"];
    args.extend(queue_opts);
    let run = kombu(&args, b"");
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.is_empty() && run.stderr.is_empty(), "{run:?}");
    assert!(started.elapsed().as_secs_f64() >= 0.5, "returned before the timeout");

    // Without the binding the message goes nowhere; with it again, it waits in the queue until purged.
    kombu(&["delete", "binding", url, "-q", &q, "-e", &ex, "-k", "rk"], b"").ok();
    kombu(&["publish", url, "-e", &ex, "-k", "rk", "-s", "text", "dropped"], b"").ok();
    let mut args = vec!["consume", url, "-q", &q, "--timeout", "0.5"];
    args.extend(queue_opts);
    let run = kombu(&args, b"");
    assert_eq!(run.code, 3, "{run:?}");
    kombu(&["declare", "binding", url, "-q", &q, "-e", &ex, "-k", "rk"], b"").ok();
    kombu(&["publish", url, "-e", &ex, "-k", "rk", "-s", "text", "-n", "3", "kept"], b"").ok();
    let run = kombu(&["consume", url, "-q", &q, "--passive", "-n", "1", "--no-ack", "--timeout", "10"], b"").ok();
    assert_eq!(run.json_lines()[0]["body"], "kept", "{run:?}");
    // The other two stayed in the queue, even if the broker handed them to the consumer.
    let run = kombu(&["purge", url, &q], b"").ok();
    assert!(run.stdout.contains("purged 2 messages"), "{run:?}");

    let run = kombu(&["delete", "queue", url, &q], b"").ok();
    assert!(run.stdout.contains(&format!("deleted queue '{q}'")), "{run:?}");
    kombu(&["delete", "exchange", url, &ex], b"").ok();
}

#[test]
fn memory_round_trip_in_one_process() {
    round_trip("memory://cli-round-trip", &kombu_in_process);
}

#[cfg(any(feature = "redis", feature = "amqp"))]
#[test]
fn broker_round_trips_through_the_binary() {
    for &url in BROKERS {
        round_trip(url, &kombu_with_stdin);
    }
}

#[test]
fn consume_on_an_empty_queue_times_out_with_status_3() {
    let run = kombu(&["consume", "memory://", "-q", "empty", "--timeout", "0.3"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.is_empty() && run.stderr.is_empty(), "{run:?}");
    let help = kombu(&["consume", "--help"]).ok();
    assert!(help.stdout.contains("3 when --timeout passed first"), "exit status not documented: {help:?}");
}

#[test]
fn bad_urls_and_unknown_schemes_fail_with_one_line() {
    let commands: [&[&str]; 6] = [
        &["publish", "URL", "-e", "ex", "{}"],
        &["consume", "URL", "-q", "q", "--timeout", "1"],
        &["declare", "queue", "URL", "q"],
        &["delete", "exchange", "URL", "ex"],
        &["purge", "URL", "q"],
        &["bench", "URL", "-n", "10"],
    ];
    let cases = [
        ("not a url", "invalid broker URL"),
        ("nosuchscheme://host", "unknown transport: 'nosuchscheme'"),
        ("memroy://", "did you mean 'memory'?"),
        ("memory://h:99999", "invalid port"),
        ("", "empty broker URL"),
    ];
    for command in commands {
        for (url, expected) in cases {
            let args: Vec<&str> = command.iter().map(|a| if *a == "URL" { url } else { a }).collect();
            let run = kombu(&args).one_line_error();
            assert!(run.stderr.contains(expected), "{args:?}: {run:?}");
        }
    }
}

#[cfg(not(feature = "redis"))]
#[test]
fn a_backend_not_compiled_in_names_its_feature() {
    let run = kombu(&["purge", "redis://127.0.0.1:6379/0", "q"]).one_line_error();
    assert!(run.stderr.contains("enable the `redis` feature"), "{run:?}");
}

#[cfg(any(feature = "redis", feature = "amqp"))]
#[test]
fn unreachable_brokers_fail_with_one_line() {
    let urls = [
        #[cfg(feature = "redis")]
        "redis://127.0.0.1:1/0",
        #[cfg(feature = "amqp")]
        "amqp://guest:guest@127.0.0.1:1//",
    ];
    for url in urls {
        let run = kombu(&["purge", url, "q"]).one_line_error();
        assert!(run.stderr.contains("connection"), "{url}: {run:?}");
    }
}

/// A loopback port with nothing listening: bound by the system, then released.
#[cfg(any(feature = "redis", feature = "amqp"))]
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("its address").port()
}

/// The error line says each thing once: no piece of its chain (split on ": ") longer than 10 characters
/// appears twice.
fn assert_says_each_thing_once(run: &Run) {
    let line = run.stderr.trim_end().strip_prefix("error: ").unwrap_or(&run.stderr);
    let pieces: Vec<&str> = line.split(": ").filter(|p| p.len() > 10).collect();
    for (i, piece) in pieces.iter().enumerate() {
        assert!(!pieces[i + 1..].contains(piece), "'{piece}' is said twice in: {}", run.stderr);
    }
}

#[cfg(any(feature = "redis", feature = "amqp"))]
#[test]
fn broker_errors_say_each_thing_once() {
    let port = refused_port();
    // The URL, how the line starts, and the cause it must tell (the system's, or the broker's reason).
    let cases: Vec<(String, &str, &str)> = vec![
        #[cfg(feature = "amqp")]
        (
            format!("amqp://guest:guest@127.0.0.1:{port}//"),
            "connection error: connecting to amqp://127.0.0.1:",
            "Connection refused",
        ),
        #[cfg(feature = "amqp")]
        ("amqp://guest:kombu-wrong-password@127.0.0.1:5672//".to_owned(), "access refused: ", "Login was refused"),
        #[cfg(feature = "redis")]
        (format!("redis://127.0.0.1:{port}/0"), "connection error: ", "Connection refused"),
        #[cfg(feature = "redis")]
        ("redis://:kombu-wrong-password@127.0.0.1:6379/0".to_owned(), "access refused: ", "authentication failed"),
    ];
    for (url, starts, cause) in &cases {
        for command in [&["consume", url, "-q", "q", "--timeout", "1"][..], &["purge", url, "q"]] {
            let run = kombu(command).one_line_error();
            assert!(run.stderr.starts_with(&format!("error: {starts}")), "{run:?}");
            assert_says_each_thing_once(&run);
            assert!(run.stderr.contains(cause), "the cause is missing: {run:?}");
        }
    }
}

#[cfg(feature = "plugins")]
#[test]
fn a_plugin_that_cannot_load_fails_with_one_line() {
    let run = kombu(&["--plugin", "/no/such/plugin.so", "transports"]).one_line_error();
    assert!(run.stderr.contains("/no/such/plugin.so"), "{run:?}");
}

/// Runs the built binary with `KOMBU_PLUGINS` set.
#[cfg(feature = "plugins")]
fn kombu_with_plugins(plugins: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kombu"))
        .args(args)
        .env("KOMBU_PLUGINS", plugins)
        .stdin(Stdio::null())
        .output()
        .expect("run the kombu binary");
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[cfg(feature = "plugins")]
#[test]
fn transports_names_the_plugins_that_failed_to_load() {
    let dir = std::env::temp_dir().join(unique("plugins"));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("libnot-a-plugin.so");
    std::fs::write(&text, "a text file, not a shared library\n").unwrap();
    let missing = dir.join("libmissing.so");
    let list = std::env::join_paths([&text, &missing]).unwrap();
    let list = list.to_str().unwrap();

    let run = kombu_with_plugins(list, &["transports"]).ok();
    assert!(run.stdout.contains("memory (built in)"), "the built-in transports are still listed: {run:?}");
    assert!(run.stdout.contains("plugins that failed to load (KOMBU_PLUGINS):"), "{run:?}");
    let line = format!("  {}: not a shared library (no ELF, Mach-O or PE header)", text.display());
    assert!(run.stdout.lines().any(|l| l == line), "expected {line:?} in {run:?}");
    let line = format!("  {}: no such file", missing.display());
    assert!(run.stdout.lines().any(|l| l == line), "expected {line:?} in {run:?}");
    assert!(run.stderr.contains("warning: 2 plugins failed to load"), "{run:?}");

    let run = kombu_with_plugins(list, &["transports", "--json"]).ok();
    let out = run.json_lines().remove(0);
    let failed = out["failed_plugins"].as_array().cloned().unwrap_or_default();
    assert_eq!(failed.len(), 2, "{out}");
    assert_eq!(failed[0]["path"], text.display().to_string(), "{out}");
    assert!(failed[0]["reason"].as_str().is_some_and(|r| r.contains("not a shared library")), "{out}");
    assert_eq!(failed[1]["path"], missing.display().to_string(), "{out}");
    assert_eq!(failed[1]["reason"], "no such file", "{out}");
    assert!(out["transports"].as_array().is_some_and(|t| t.iter().any(|t| t["name"] == "memory")), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_refused_without_a_panic() {
    let run = kombu(&["publish", "memory://", "-e", "ex", "not json"]).one_line_error();
    assert!(run.stderr.contains("--serializer text"), "{run:?}");
    let run = kombu_with_stdin(&["publish", "memory://", "-s", "text", "-"], &[0xff, 0xfe]).one_line_error();
    assert!(run.stderr.contains("not UTF-8"), "{run:?}");
    let run = kombu(&["publish", "memory://", "-e", "ex", "--header", "novalue", "{}"]).one_line_error();
    assert!(run.stderr.contains("KEY=VALUE"), "{run:?}");
    let run = kombu(&["publish", "memory://", "-e", "ex", "--header-json", "n=oops", "{}"]).one_line_error();
    assert!(run.stderr.contains("not JSON"), "{run:?}");
    let run = kombu(&["publish", "memory://", "--compression", "lz4", "{}"]).one_line_error();
    assert!(run.stderr.contains("unknown compression 'lz4'"), "{run:?}");
    let run = kombu(&["consume", "memory://", "-q", "missing", "--passive", "--timeout", "1"]).one_line_error();
    assert!(run.stderr.contains("not found"), "{run:?}");
    kombu(&["delete", "exchange", "memory://", ""]).one_line_error();

    // Command lines clap refuses: status 2, and never a panic.
    for args in [
        &["publish", "memory://"][..],
        &["publish", "memory://", "-p", "300", "{}"],
        &["publish", "memory://", "-n", "0", "{}"],
        &["consume", "memory://", "-q", "q", "--timeout", "-1"],
        &["consume", "memory://", "-q", "q", "--timeout", "NaN"],
        &["consume", "memory://", "-q", "q", "--type", "fan"],
        &["bench", "memory://", "--size", "many"],
        &["bench", "memory://", "--in-flight", "8"],
        &["bench", "memory://", "--async", "--in-flight", "0"],
        &["bench", "memory://", "--async", "--batch", "10"],
        &["bench", "memory://", "--rate", "0"],
        &["bench", "memory://", "--rate", "100001"],
        &["bench", "memory://", "--consumers", "65"],
        &["bench", "memory://", "--producers", "0"],
        &["frobnicate"],
    ] {
        let run = kombu(args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{args:?}: {run:?}");
    }
}

#[test]
fn every_command_has_help_with_examples() {
    for path in [
        &[][..],
        &["publish"],
        &["consume"],
        &["declare"],
        &["declare", "exchange"],
        &["declare", "queue"],
        &["declare", "binding"],
        &["delete"],
        &["delete", "exchange"],
        &["delete", "queue"],
        &["delete", "binding"],
        &["purge"],
        &["transports"],
        &["bench"],
    ] {
        let mut args = path.to_vec();
        args.push("--help");
        let run = kombu(&args).ok();
        assert!(run.stdout.contains("Examples:"), "{args:?}: {run:?}");
    }
}

#[test]
fn transports_lists_every_enabled_backend() {
    let run = kombu(&["transports"]).ok();
    assert!(run.stdout.contains("memory (built in)"), "{run:?}");
    assert!(run.stdout.contains("exchange types:  direct, topic, fanout, headers"), "{run:?}");

    let run = kombu(&["transports", "--json"]).ok();
    let out = run.json_lines().remove(0);
    assert_eq!(out["failed_plugins"], serde_json::json!([]), "{out}");
    let list = out["transports"].clone();
    let find =
        |name: &str| list.as_array().and_then(|l| l.iter().find(|t| t["name"] == name)).cloned().unwrap_or(Value::Null);
    let memory = find("memory");
    assert_eq!(memory["origin"], "built in", "{list}");
    assert_eq!(memory["aliases"], serde_json::json!(["memory"]), "{list}");
    assert_eq!(memory["capabilities"]["exchange_types"][0], "direct", "{list}");
    assert_eq!(memory["capabilities"]["priority"]["order"], "highest_first", "{list}");
    #[cfg(feature = "redis")]
    assert!(find("redis")["aliases"].as_array().is_some_and(|a| a.contains(&"rediss".into())), "{list}");
    #[cfg(feature = "amqp")]
    assert!(find("amqp")["aliases"].as_array().is_some_and(|a| a.contains(&"pyamqp".into())), "{list}");
}

/// Parses `publish=N msg/s consume=M msg/s` and checks both rates are positive.
fn assert_rates(line: &str, transport: &str, n: u64) {
    assert!(line.starts_with(&format!("kombu-rs {transport} n={n} size=100 ")), "{line}");
    assert_positive(line, &["publish=", "consume="]);
}

/// Checks that each `field=N` of `line` is a positive rate.
fn assert_positive(line: &str, fields: &[&str]) {
    for &field in fields {
        let rate: f64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(field))
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {line}"));
        assert!(rate > 0.0, "{line}");
    }
}

#[test]
fn bench_on_memory_prints_rates() {
    let run = kombu(&["bench", "memory://cli-bench", "-n", "2000"]).ok();
    assert_rates(run.stdout.trim(), "memory", 2000);

    let run = kombu(&["bench", "memory://cli-bench", "-n", "500", "--size", "10", "--json"]).ok();
    let j = &run.json_lines()[0];
    assert_eq!(j["count"], 500, "{j}");
    assert_eq!(j["size"], 10, "{j}");
    assert!(j["publish_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{j}");
    assert!(j["consume_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{j}");
}

/// `kombu bench --producers N --consumers M`: confirmed publishes from N threads (one connection, then a
/// connection each), and the consume phase with M consumers of a connection each; every message is
/// counted (the run fails if any is missing or left over).
#[test]
fn bench_with_several_producers_and_consumers_prints_their_rates() {
    let run = kombu(&["bench", "memory://cli-bench-many", "-n", "1000", "--producers", "4", "--consumers", "3"]).ok();
    let line = run.stdout.trim();
    assert!(line.starts_with("kombu-rs memory n=1000 size=100 consumers=3 "), "{line}");
    assert!(line.contains(" producers=4 one_connection="), "{line}");
    assert_positive(line, &["publish=", "consume=", "one_connection=", "a_connection_each="]);
    let run = kombu(&["bench", "memory://cli-bench-many", "-n", "300", "--producers", "2", "--json"]).ok();
    let j = &run.json_lines()[0];
    assert_eq!((&j["producers"], &j["consumers"]), (&serde_json::json!(2), &serde_json::json!(1)), "{j}");
    assert!(j["producers_shared_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{j}");
    assert!(j["producers_own_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{j}");
    // Counted only in a binary built with `count-allocations` (as `cargo xtask bench --scale` builds it).
    let counted = j["publish_allocations_per_msg"].as_f64().is_some();
    assert_eq!(counted, cfg!(feature = "count-allocations"), "{j}");
}

/// `kombu bench --rate R`: latency at a fixed rate, p50 <= p99 <= max, in both APIs.
#[test]
fn bench_with_a_rate_prints_latencies() {
    let apis: &[&[&str]] = if cfg!(feature = "tokio") { &[&[], &["--async"]] } else { &[&[]] };
    for api in apis {
        let run =
            kombu(&[&["bench", "memory://cli-bench-rate", "-n", "200", "--rate", "1000", "--json"][..], api].concat());
        let j = &run.ok().json_lines()[0];
        let us = |key: &str| j[key].as_f64().unwrap_or_else(|| panic!("no {key} in {j}"));
        assert_eq!(j["latency_rate"], 1000, "{j}");
        assert!(0.0 < us("latency_p50_us") && us("latency_p50_us") <= us("latency_p99_us"), "{j}");
        assert!(us("latency_p99_us") <= us("latency_max_us"), "{j}");
    }
    let run = kombu(&["bench", "memory://cli-bench-rate", "-n", "100", "--rate", "1000"]).ok();
    assert!(run.stdout.contains(" latency@1000/s p50="), "{}", run.stdout);
}

/// `kombu bench --async`: the workload through `kombu::aio`, then confirmed publishes 8 in flight.
#[cfg(feature = "tokio")]
#[test]
fn bench_async_on_memory_prints_rates() {
    let run = kombu(&["bench", "memory://cli-bench", "-n", "2000", "--async", "--in-flight", "8"]).ok();
    let line = run.stdout.trim();
    assert!(line.starts_with("kombu-rs memory async n=2000 size=100 "), "{line}");
    assert!(line.contains(" msg/s (8 in flight)"), "{line}");
    assert_positive(line, &["publish=", "consume=", "confirmed="]);

    let run = kombu(&["bench", "memory://cli-bench", "-n", "500", "--async", "--json"]).ok();
    let j = &run.json_lines()[0];
    assert_eq!((&j["async"], &j["count"]), (&serde_json::json!(true), &serde_json::json!(500)), "{j}");
    assert!(j["consume_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{j}");
    assert!(j["confirmed_publish_per_sec"].is_null(), "no --in-flight, no confirmed rate: {j}");
}

#[cfg(any(feature = "redis", feature = "amqp"))]
#[test]
fn bench_on_brokers_prints_rates() {
    for &url in BROKERS {
        // Names of its own: other programs may be running the BENCH.md workload on `bench_q` right now.
        let (ex, q) = (unique("benchex"), unique("benchq"));
        let run = kombu(&["bench", url, "-n", "300", "--exchange", &ex, "--queue", &q]).ok();
        let transport = url.split_once("://").map_or(url, |(s, _)| s);
        assert_rates(run.stdout.trim(), transport, 300);
        #[cfg(feature = "tokio")]
        {
            let run =
                kombu(&["bench", url, "-n", "300", "--exchange", &ex, "--queue", &q, "--async", "--in-flight", "16"]);
            let line = run.ok().stdout;
            assert!(line.starts_with(&format!("kombu-rs {transport} async n=300 ")), "{line}");
            assert_positive(&line, &["publish=", "consume=", "confirmed="]);
            let many = ["--async", "--producers", "4", "--consumers", "3"];
            let run = kombu(&[&["bench", url, "-n", "300", "--exchange", &ex, "--queue", &q][..], &many].concat());
            let line = run.ok().stdout;
            assert!(line.starts_with(&format!("kombu-rs {transport} async n=300 size=100 consumers=3 ")), "{line}");
            assert_positive(&line, &["consume=", "one_connection=", "a_connection_each="]);
        }
        let many = ["--producers", "4", "--consumers", "3"];
        let run = kombu(&[&["bench", url, "-n", "300", "--exchange", &ex, "--queue", &q][..], &many].concat()).ok();
        assert_positive(&run.stdout, &["consume=", "one_connection=", "a_connection_each="]);
        let run = kombu(&["delete", "queue", url, &q]).ok();
        assert!(run.stdout.contains("(0 messages)"), "bench left messages behind: {run:?}");
        kombu(&["delete", "exchange", url, &ex]).ok();
    }
}

/// Python Kombu publishes (with its own declarations, headers and priority); the CLI consumes.
#[cfg(any(feature = "redis", feature = "amqp"))]
#[test]
fn cli_consumes_what_python_kombu_publishes() {
    const SCRIPT: &str = r#"
import sys
from kombu import Connection, Exchange, Queue
url, ex, q = sys.argv[1:4]
exchange = Exchange(ex, type="direct")
queue = Queue(q, exchange, routing_key="interop")
with Connection(url) as conn:
    producer = conn.Producer(serializer="json")
    producer.publish({"from": "python", "n": [1, 2]}, exchange=exchange, routing_key="interop",
                     declare=[queue], headers={"h": "py"}, priority=4, correlation_id="c-1")
    producer.publish("plain text", exchange=exchange, routing_key="interop", serializer="raw",
                     content_type="text/plain", content_encoding="utf-8")
"#;
    for &url in BROKERS {
        let (ex, q) = (unique("pyex"), unique("pyq"));
        let py = Command::new("python3").args(["-c", SCRIPT, url, &ex, &q]).output().expect("run python3");
        assert!(py.status.success(), "Python Kombu failed on {url}: {}", String::from_utf8_lossy(&py.stderr));

        let run = kombu(&["consume", url, "-q", &q, "--passive", "-n", "2", "--timeout", "10", "--decode-json"]).ok();
        let mut messages = run.json_lines();
        assert_eq!(messages.len(), 2, "{url}: {run:?}");
        // Redis serves priority 0 before 4 (Kombu's bands), AMQP in publish order: compare in one order.
        messages.sort_by_key(|m| m["content_type"].to_string());
        let m = &messages[0];
        assert_eq!(m["body"], serde_json::json!({"from": "python", "n": [1, 2]}), "{url}: {m}");
        assert_eq!(m["body_encoding"], "json", "{url}: {m}");
        assert_eq!(m["content_type"], "application/json", "{url}: {m}");
        assert_eq!(m["headers"]["h"], "py", "{url}: {m}");
        assert_eq!(m["properties"]["priority"], 4, "{url}: {m}");
        assert_eq!(m["properties"]["correlation_id"], "c-1", "{url}: {m}");
        assert_eq!(m["delivery_info"]["exchange"], ex.as_str(), "{url}: {m}");
        assert_eq!(m["delivery_info"]["routing_key"], "interop", "{url}: {m}");
        let m = &messages[1];
        assert_eq!(m["body"], "plain text", "{url}: {m}");
        assert_eq!(m["content_type"], "text/plain", "{url}: {m}");

        kombu(&["delete", "queue", url, &q]).ok();
        kombu(&["delete", "exchange", url, &ex]).ok();
    }
}

/// Python Kombu declares a transient exchange and a transient queue with a TTL and a dead-letter exchange;
/// the CLI publishes to them and consumes from them without redeclaring them (RabbitMQ would refuse a
/// redeclaration with other arguments: PRECONDITION_FAILED).
#[cfg(feature = "amqp")]
#[test]
fn cli_uses_entities_python_declared_with_other_durability_and_arguments() {
    const SCRIPT: &str = r#"
import sys
from kombu import Connection, Exchange, Queue
url, ex, q = sys.argv[1:4]
exchange = Exchange(ex, type="topic", durable=False)
queue = Queue(q, exchange, routing_key="ops.#", durable=False, message_ttl=600,
              queue_arguments={"x-dead-letter-exchange": "kombu-rs.dlx"})
with Connection(url) as conn:
    queue(conn.default_channel).declare()
"#;
    let url = "amqp://guest:guest@127.0.0.1:5672//";
    let (ex, q) = (unique("pytransient.ex"), unique("pytransient.q"));
    let py = Command::new("python3").args(["-c", SCRIPT, url, &ex, &q]).output().expect("run python3");
    assert!(py.status.success(), "Python Kombu failed: {}", String::from_utf8_lossy(&py.stderr));

    kombu(&["publish", url, "-e", &ex, "-t", "topic", "-k", "ops.disk", "--queue", &q, r#"{"n": 1}"#]).ok();
    let run =
        kombu(&["consume", url, "-q", &q, "-e", &ex, "-t", "topic", "-k", "ops.#", "-n", "1", "--timeout", "10"]).ok();
    assert_eq!(run.json_lines()[0]["body"], r#"{"n": 1}"#, "{run:?}");
    // Asked for by a flag, the declaration is made as the flags say, and the broker's refusal is shown.
    let run = kombu(&["consume", url, "-q", &q, "--max-priority", "5", "-n", "1", "--timeout", "1"]).one_line_error();
    assert!(run.stderr.contains("PRECONDITION_FAILED"), "{run:?}");

    kombu(&["delete", "queue", url, &q]).ok();
    kombu(&["delete", "exchange", url, &ex]).ok();
}

/// `kombu get` takes one message without declaring the queue, acks it or puts it back, and says when the
/// queue is empty (exit status 3).
#[cfg(any(feature = "redis", feature = "amqp"))]
#[test]
fn get_takes_one_message_and_acks_or_requeues_it() {
    for &url in BROKERS {
        let q = unique("get");
        kombu(&["declare", "queue", url, &q]).ok();
        kombu(&["publish", url, "-k", &q, "--serializer", "msgpack", "--compression", "zstd", r#"{"n": 7}"#]).ok();
        let first = kombu(&["get", url, "-q", &q, "--requeue", "--decode-json", "--timeout", "5"]).ok();
        let m = &first.json_lines()[0];
        assert_eq!(m["body"], serde_json::json!({"n": 7}), "{url}: {m}");
        assert_eq!(m["content_type"], "application/x-msgpack", "{url}: {m}");
        // Put back, so it is there again; this time it is acknowledged.
        let again = kombu(&["get", url, "-q", &q, "--timeout", "5"]).ok();
        assert_eq!(again.json_lines().len(), 1, "{url}: {again:?}");
        let empty = kombu(&["get", url, "-q", &q, "--timeout", "0.2"]);
        assert_eq!(empty.code, 3, "{url}: {empty:?}");
        kombu(&["delete", "queue", url, &q]).ok();
    }
}

/// The CLI sends tasks a real Celery worker runs, results read from the Redis result backend (`celery result`,
/// and `send --wait --backend`).
#[cfg(all(feature = "celery", feature = "redis"))]
#[path = "../kombu-celery/tests/common/mod.rs"]
mod celery_worker;

#[cfg(all(feature = "celery", feature = "redis"))]
#[test]
fn celery_tasks_sent_from_the_cli_run_on_a_real_worker() {
    let redis = "redis://127.0.0.1:6379/0";
    let worker = celery_worker::Worker::start(redis, redis);
    let sent =
        kombu(&["celery", "send", redis, "kombu_rs.add", "2", "40", "-q", &worker.queue, "--countdown", "1"]).ok();
    let id = sent.stdout.trim().to_owned();
    let run = kombu(&["celery", "result", redis, &id, "--timeout", "30"]).ok();
    let r = &run.json_lines()[0];
    assert_eq!(
        (r["id"].as_str(), r["state"].as_str(), &r["result"]),
        (Some(id.as_str()), Some("SUCCESS"), &serde_json::json!(42)),
        "{run:?}"
    );
    let run = kombu(&[
        "celery",
        "send",
        redis,
        "kombu_rs.echo",
        "a",
        r#"{"n": 1}"#,
        "--kwargs",
        r#"{"k": true}"#,
        "-q",
        &worker.queue,
        "--wait",
        "30",
        "--backend",
        redis,
    ])
    .ok();
    let echoed = &run.json_lines()[0]["result"];
    assert_eq!(echoed["args"], serde_json::json!(["a", {"n": 1}]), "{run:?}");
    assert_eq!(echoed["kwargs"], serde_json::json!({"k": true}), "{run:?}");
    let none = kombu(&["celery", "result", redis, "no-such-task"]);
    assert_eq!(none.code, 3, "{none:?}");
    let bad = kombu(&["celery", "send", redis, "kombu_rs.add", "--kwargs", "[1]"]).one_line_error();
    assert!(bad.stderr.contains("kwargs must be an object"), "{bad:?}");
}
