//! The BENCH.md workload on RabbitMQ, side by side in one run: raw lapin (the ceiling), kombu-rs, and
//! Python Kombu over py-amqp (the anchor), alternating for several rounds, with medians and ratios.
//!
//! `cargo run --release -p kombu-amqp --example amqp_bench -- [URL] [N] [SIZE] [ROUNDS]`
//! (defaults: `amqp://guest:guest@127.0.0.1:5672//`, 20000, 100, 3). `KOMBU_PY_ANCHOR` names the anchor
//! script (default `/work/shared/anchors/kombu_py_bench.py`); without python3 and kombu the anchor is skipped.

use std::process::Command;

use kombu_amqp::bench::{self, RawStyle};

fn python_anchor(url: &str, n: usize, size: usize) -> Option<(f64, f64)> {
    let script =
        std::env::var("KOMBU_PY_ANCHOR").unwrap_or_else(|_| "/work/shared/anchors/kombu_py_bench.py".to_owned());
    let out = Command::new("python3").arg(&script).arg(url).arg(n.to_string()).arg(size.to_string()).output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("python anchor failed: {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Err(e) => {
            eprintln!("python anchor not run: {e}");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("  {text}");
    let field = |name: &str| -> Option<f64> {
        let start = text.find(name)? + name.len();
        text[start..].split_whitespace().next()?.parse().ok()
    };
    Some((field("publish=")?, field("consume=")?))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[derive(Default)]
struct Series {
    publish: Vec<f64>,
    consume: Vec<f64>,
}

impl Series {
    fn push(&mut self, publish: f64, consume: f64) {
        self.publish.push(publish);
        self.consume.push(consume);
    }
    fn medians(&self) -> (f64, f64) {
        (median(self.publish.clone()), median(self.consume.clone()))
    }
}

fn exit_with(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("{what} failed: {e}");
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args.first().cloned().unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672//".to_owned());
    let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let size = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let rounds = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3usize).max(1);
    // A fifth argument `kombu` runs only the kombu-rs side (for profiling).
    let only_kombu = args.get(4).is_some_and(|s| s == "kombu");

    let (mut await_each, mut pipelined, mut kombu, mut python) =
        (Series::default(), Series::default(), Series::default(), Series::default());
    let (mut batch, mut each) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        println!("round {round}/{rounds}");
        for (style, series) in [(RawStyle::AwaitEach, &mut await_each), (RawStyle::Pipelined, &mut pipelined)] {
            if only_kombu {
                break;
            }
            let r = bench::raw_lapin(&url, n, size, style).unwrap_or_else(|e| exit_with("raw lapin bench", e));
            println!("  {r}");
            series.push(r.publish_per_sec, r.consume_per_sec);
        }
        let k = bench::kombu(&url, n, size).unwrap_or_else(|e| exit_with("kombu-rs bench", e));
        println!("  {k}");
        kombu.push(k.publish_per_sec, k.consume_per_sec);
        batch.extend(k.confirmed_batch_per_sec);
        each.extend(k.confirmed_each_per_sec);
        if only_kombu {
            continue;
        }
        if let Some((p, c)) = python_anchor(&url, n, size) {
            python.push(p, c);
        }
    }

    println!("\nmedians of {rounds} rounds, n={n} size={size}:");
    let (ap, ac) = await_each.medians();
    let (rp, rc) = pipelined.medians();
    let (kp, kc) = kombu.medians();
    println!("  raw lapin (await each) publish {ap:>8.0} msg/s  consume+ack {ac:>8.0} msg/s");
    println!("  raw lapin (pipelined)  publish {rp:>8.0} msg/s  consume+ack {rc:>8.0} msg/s");
    println!("  kombu-rs amqp          publish {kp:>8.0} msg/s  consume+ack {kc:>8.0} msg/s");
    println!("  kombu-rs confirmed     batch of 1000 {:>8.0} msg/s  each {:>8.0} msg/s", median(batch), median(each));
    println!("  kombu-rs / raw lapin (pipelined): publish {:.2}x consume {:.2}x", kp / rp, kc / rc);
    if !python.publish.is_empty() {
        let (pp, pc) = python.medians();
        println!("  python kombu           publish {pp:>8.0} msg/s  consume+ack {pc:>8.0} msg/s");
        println!("  kombu-rs / python kombu: publish {:.2}x consume {:.2}x", kp / pp, kc / pc);
    }
}
