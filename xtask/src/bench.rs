//! `cargo xtask bench`: the BENCH.md workload on each backend, Rust (the `kombu bench` command) and the
//! Python Kombu anchor back to back on the same broker, several rounds, medians and ratios; plus the
//! broker's own ceiling where one can be measured. The async API (`kombu bench --async`) runs in the
//! same rounds: its rates beside the blocking ones, and confirmed publishes with `IN_FLIGHT` sends
//! outstanding beside the broker's pipelined ceiling (redis-benchmark -P 64, raw lapin with as many
//! confirms outstanding).

use std::process::Command;

use crate::{cargo, root, run_checked, services};

/// Confirmed publishes in flight at once on one producer (`kombu bench --async --in-flight`), as deep as
/// redis-benchmark's pipeline (`-P 64`).
const IN_FLIGHT: usize = 64;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Messages per run.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) n: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    pub(crate) size: u64,
    /// Rounds per side (the median is reported). Single runs drift by 10-25% on a shared machine.
    #[arg(long, default_value_t = 5)]
    pub(crate) rounds: usize,
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_values_t = ["memory".to_string(), "redis".to_string(), "amqp".to_string()])]
    pub(crate) backends: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<std::path::PathBuf>,
    /// Instead of the BENCH.md workload, how the rates change as the queues per consumer and the body
    /// size grow (`scale.rs`; JSON under target/bench/).
    #[arg(long, conflicts_with = "json")]
    scale: bool,
    /// With --scale, only these dimensions (queues, size, producers, consumers; all by default).
    #[arg(long, value_delimiter = ',', requires = "scale")]
    pub(crate) dimensions: Vec<String>,
}

/// Publish and consume rates, msg/s.
#[derive(Clone, Copy, Debug, Default)]
struct Rates {
    publish: f64,
    consume: f64,
    batch: Option<f64>,
    /// Confirmed publishes, `IN_FLIGHT` outstanding.
    confirmed: Option<f64>,
}

pub(crate) fn url(backend: &str) -> Result<&'static str, String> {
    match backend {
        "memory" => Ok("memory://"),
        "redis" => Ok("redis://127.0.0.1:6379/0"),
        "amqp" => Ok("amqp://guest:guest@127.0.0.1:5672//"),
        other => Err(format!("unknown backend '{other}' (memory, redis, amqp)")),
    }
}

/// The number after `key=` or `key: ` in a line of output.
fn field(text: &str, key: &str) -> Option<f64> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')).and_then(|v| v.parse().ok()))
}

pub(crate) fn output(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{shown} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The publish and consume rates (and the optional ones) of a line of `kombu bench`, the anchor or
/// `amqp_ceiling`.
fn rates(text: &str) -> Result<Rates, String> {
    Ok(Rates {
        publish: field(text, "publish").ok_or_else(|| format!("no publish rate in: {text}"))?,
        consume: field(text, "consume").ok_or_else(|| format!("no consume rate in: {text}"))?,
        batch: field(text, "batch"),
        confirmed: field(text, "confirmed"),
    })
}

fn rust_side(kombu: &std::path::Path, url: &str, a: &Args) -> Result<Rates, String> {
    let (n, size) = (a.n.to_string(), a.size.to_string());
    let args = ["bench", url, "--count", &n, "--size", &size, "--batch", "5000", "--no-progress"];
    rates(&output(Command::new(kombu).args(args))?)
}

/// `kombu bench --async`: the same workload through `kombu::aio`, then confirmed publishes with
/// `IN_FLIGHT` outstanding.
fn async_side(kombu: &std::path::Path, url: &str, a: &Args) -> Result<Rates, String> {
    let (n, size, depth) = (a.n.to_string(), a.size.to_string(), IN_FLIGHT.to_string());
    let args = ["bench", url, "--count", &n, "--size", &size, "--async", "--in-flight", &depth, "--no-progress"];
    let r = rates(&output(Command::new(kombu).args(args))?)?;
    r.confirmed.map(|_| r).ok_or_else(|| format!("no confirmed rate from kombu bench --async on {url}"))
}

fn python_side(url: &str, a: &Args) -> Result<Rates, String> {
    let anchor = root().join("../shared/anchors/kombu_py_bench.py");
    rates(&output(Command::new("python3").arg(&anchor).args([url, &a.n.to_string(), &a.size.to_string()]))?)
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The same work on raw lapin (the `amqp_ceiling` example): what kombu-amqp could reach at most; with
/// `confirms`, publishes confirmed with that many confirms outstanding.
fn amqp_ceiling(url: &str, a: &Args, confirms: usize) -> Result<Rates, String> {
    let target = target_dir();
    let (n, size, confirms) = (a.n.to_string(), a.size.to_string(), confirms.to_string());
    rates(&output(Command::new(target.join("release/examples/amqp_ceiling")).args([url, &n, &size, &confirms]))?)
}

pub(crate) fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// `redis-benchmark -P 64 -t lpush,rpop`: what Redis itself takes here, as (LPUSH, RPOP) requests per
/// second; `None` when redis-benchmark is missing or prints no result.
fn redis_ceiling() -> Option<(f64, f64)> {
    let text =
        output(Command::new("redis-benchmark").args(["-P", "64", "-t", "lpush,rpop", "-n", "400000", "-q"])).ok()?;
    Some((requests_per_second(&text, "LPUSH")?, requests_per_second(&text, "RPOP")?))
}

/// The rate redis-benchmark printed for `test` (`LPUSH: 2116402.25 requests per second, ...`).
fn requests_per_second(text: &str, test: &str) -> Option<f64> {
    // `-q` still draws progress with carriage returns: keep each line's last part, the result.
    text.lines().filter_map(|l| l.rsplit('\r').next()).find_map(|l| {
        let rest = l.trim().strip_prefix(test)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok().filter(|_| rest.contains("requests per second"))
    })
}

pub(crate) fn run(a: &Args) -> Result<(), String> {
    let services = services::ensure_all()?;
    println!("{services}");
    let mut features = vec!["cli", "tokio"];
    features.extend(a.backends.iter().filter(|b| *b != "memory").map(String::as_str));
    if a.scale {
        // Allocations per message; not for the BENCH.md runs, whose rates the counting would slow.
        features.push("count-allocations");
    }
    run_checked(
        cargo()
            .current_dir(root())
            .args(["build", "--release", "-p", "kombu", "--bin", "kombu", "--features"])
            .arg(features.join(",")),
    )?;
    let kombu = target_dir().join("release/kombu");
    if a.scale {
        return crate::scale::run(&kombu, a);
    }
    if a.backends.iter().any(|b| b == "amqp") {
        run_checked(cargo().current_dir(root()).args([
            "build",
            "--release",
            "-p",
            "kombu-amqp",
            "--example",
            "amqp_ceiling",
        ]))?;
    }
    let mut json = Vec::new();
    println!(
        "\nBENCH.md workload: n={} size={} rounds={} (medians; Rust and Python alternate on the same broker)",
        a.n, a.size, a.rounds
    );
    for backend in &a.backends {
        let url = url(backend)?;
        let (mut rp, mut rc, mut rb, mut pp, mut pc) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut cp, mut cc) = (vec![], vec![]);
        let (mut lpush, mut rpop) = (vec![], vec![]);
        let (mut ap, mut ac, mut aq, mut lq) = (vec![], vec![], vec![], vec![]);
        for _ in 0..a.rounds.max(1) {
            let r = rust_side(&kombu, url, a)?;
            let s = async_side(&kombu, url, a)?;
            let p = python_side(url, a)?;
            if backend == "redis" {
                if let Some((l, r)) = redis_ceiling() {
                    lpush.push(l);
                    rpop.push(r);
                }
            }
            if backend == "amqp" {
                let c = amqp_ceiling(url, a, 0)?;
                cp.push(c.publish);
                cc.push(c.consume);
                lq.push(amqp_ceiling(url, a, IN_FLIGHT)?.publish);
            }
            ap.push(s.publish);
            ac.push(s.consume);
            aq.extend(s.confirmed);
            rp.push(r.publish);
            rc.push(r.consume);
            if let Some(b) = r.batch {
                rb.push(b);
            }
            pp.push(p.publish);
            pc.push(p.consume);
        }
        let (rp, rc, pp, pc) = (median(rp), median(rc), median(pp), median(pc));
        let rb = (!rb.is_empty()).then(|| median(rb));
        let mut line = format!(
            "{backend:<7} publish: kombu-rs {rp:>10.0} msg/s  python {pp:>8.0} msg/s  ratio {:>5.1}x | consume+ack: kombu-rs {rc:>10.0} msg/s  python {pc:>8.0} msg/s  ratio {:>5.1}x",
            rp / pp,
            rc / pc
        );
        if let Some(b) = rb {
            line.push_str(&format!(" | batched publish {b:.0} msg/s"));
        }
        println!("{line}");
        json.push(serde_json::json!({
            "backend": backend, "url": url, "n": a.n, "size": a.size,
            "kombu_rs": {"publish": rp, "consume": rc, "batch_publish": rb},
            "python_kombu": {"publish": pp, "consume": pc},
            "ratio": {"publish": rp / pp, "consume": rc / pc},
        }));
        let lpush = (!lpush.is_empty()).then(|| median(lpush));
        if let Some(lpush) = lpush {
            let rpop = median(rpop);
            let share =
                rb.map(|b| format!("; batched publish is {:.0}% of LPUSH", 100.0 * b / lpush)).unwrap_or_default();
            println!("        ceiling (redis-benchmark -P 64): LPUSH {lpush:.0}/s RPOP {rpop:.0}/s{share}");
            if let Some(last) = json.last_mut() {
                last["redis_benchmark"] = serde_json::json!({"lpush": lpush, "rpop": rpop});
            }
        }
        if !cp.is_empty() {
            let (cp, cc) = (median(cp), median(cc));
            println!(
                "        ceiling (raw lapin, pipelined): publish {cp:.0} msg/s consume+ack {cc:.0} msg/s; kombu-rs is {:.2}x and {:.2}x of it",
                rp / cp,
                rc / cc
            );
            if let Some(last) = json.last_mut() {
                last["raw_lapin"] = serde_json::json!({"publish": cp, "consume": cc});
            }
        }
        let (ap, ac, aq) = (median(ap), median(ac), median(aq));
        println!(
            "        async (kombu::aio): publish {ap:.0} msg/s ({:.2}x blocking) consume+ack {ac:.0} msg/s ({:.2}x blocking)",
            ap / rp,
            ac / rc
        );
        // What the confirmed publishes in flight are set against: redis-benchmark's LPUSH 64 deep, raw lapin
        // with as many confirms outstanding (targets of issue 15: 25% and 80%).
        let ceiling = match backend.as_str() {
            "redis" => lpush.map(|l| ("LPUSH -P 64", l, 0.25)),
            "amqp" => Some(("raw lapin", median(lq), 0.80)),
            _ => None,
        };
        let versus = ceiling
            .map(|(what, c, target)| format!("  {what} {c:.0}/s  ratio {:.2}x (target {target:.2}x)", aq / c))
            .unwrap_or_default();
        println!("        confirmed publish, {IN_FLIGHT} in flight: kombu-rs {aq:.0} msg/s{versus}");
        if let Some(last) = json.last_mut() {
            last["kombu_rs_async"] = serde_json::json!({"publish": ap, "consume": ac, "confirmed_in_flight": aq});
            last["ratio_async_blocking"] = serde_json::json!({"publish": ap / rp, "consume": ac / rc});
            last["in_flight"] = serde_json::json!(IN_FLIGHT);
            if let Some((what, c, target)) = ceiling {
                last["confirmed_ceiling"] =
                    serde_json::json!({"what": what, "rate": c, "ratio": aq / c, "target": target});
            }
        }
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redis_benchmark_rates() {
        let text =
            "LPUSH: rps=0.0 (overall: 0.0) avg_msec=-nan\r LPUSH: 2116402.25 requests per second, p50=1.359 msec\n\
                    RPOP: 2272727.25 requests per second, p50=1.351 msec\n";
        assert_eq!(requests_per_second(text, "LPUSH"), Some(2116402.25));
        assert_eq!(requests_per_second(text, "RPOP"), Some(2272727.25));
        assert_eq!(requests_per_second(text, "SET"), None);
    }

    #[test]
    fn reads_rates_from_both_sides() {
        let py = "python-kombu memory n=20000 size=100 publish=76100 msg/s consume=93723 msg/s";
        assert_eq!(field(py, "publish"), Some(76100.0));
        assert_eq!(field(py, "consume"), Some(93723.0));
        assert_eq!(field(py, "batch"), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn reads_async_and_confirmed_rates() {
        let line = "kombu-rs redis async n=20000 size=100 publish=15000 msg/s consume=9000 msg/s \
                    confirmed=52000 msg/s (64 in flight)";
        let r = rates(line).unwrap();
        assert_eq!((r.publish, r.consume, r.batch, r.confirmed), (15000.0, 9000.0, None, Some(52000.0)));
        let raw = "raw lapin (64 confirms outstanding) n=20000 size=100 publish=34688 msg/s consume=29720 msg/s";
        assert_eq!(rates(raw).unwrap().publish, 34688.0);
        assert_eq!(rates(raw).unwrap().confirmed, None);
        assert!(rates("kombu-rs memory n=1 size=100 consume=5 msg/s").unwrap_err().contains("no publish rate"));
    }
}
