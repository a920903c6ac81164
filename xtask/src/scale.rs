//! `cargo xtask bench --scale`: how the rates change as the work grows (issue 18), for each backend and
//! both APIs, the medians of `--rounds` runs of `kombu bench --json` per point:
//!
//! - `queues`: one consumer of 1, 10, 100 and 1,000 queues, the messages published to them in turn
//!   (`kombu bench --queues N`);
//! - `size`: bodies of 100 B, 10 KB and 1 MB (`--size`), as many messages as fit [`BYTES_PER_POINT`];
//! - `producers`: confirmed publishes from 1, 4, 16 and 64 threads (tasks with the async API), each
//!   awaiting its own sends, all on one connection and then with a connection each (`--producers N`);
//! - `consumers`: 1, 4 and 16 consumers of the one queue, a connection and a thread (task) each
//!   (`--consumers N`).
//!
//! The queues and size dimensions also measure latency (p50, p99, max) at [`RATE`] msg/s; every
//! kombu-rs point reports its heap allocations per message ([`ALLOCATIONS`]; the size dimension prints
//! them with the bytes allocated against the body's size, the copies a body costs). Python Kombu
//! runs every point beside (`xtask/python/kombu_scale.py`, at most [`PYTHON_COUNT`] messages) where it
//! can do the same. Each dimension is written to `target/bench/scale-<dimension>.json`, drawn in
//! `target/bench/scale-<dimension>.png` (and `-latency.png`; `plot.rs`), and printed as a table with
//! the change from its first point.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::bench::{median, output, target_dir, url, Args};

/// The queues per consumer measured.
const QUEUES: [u64; 4] = [1, 10, 100, 1000];

/// The body sizes measured, in bytes.
const SIZES: [u64; 3] = [100, 10_000, 1_000_000];

/// Most body bytes one point publishes (and the broker holds): bodies of 1 MB run 128 messages.
const BYTES_PER_POINT: u64 = 128 << 20;

/// The producer threads (or tasks) measured.
const PRODUCERS: [u64; 4] = [1, 4, 16, 64];

/// The consumers of one queue measured.
const CONSUMERS: [u64; 3] = [1, 4, 16];

/// One dimension: its name, the `kombu bench` flag it sets, its points, and the two rates of
/// `kombu bench --json` it reports, with the names they have in the table and the JSON file.
struct Dimension {
    name: &'static str,
    /// Whether each point also measures latency at [`RATE`] (`kombu bench --rate`).
    latency: bool,
    /// What its values are, for the plot.
    across: &'static str,
    flag: &'static str,
    points: &'static [u64],
    rates: [(&'static str, &'static str); 2],
}

/// The rate of the latency runs, msg/s.
const RATE: u32 = 500;

/// The latency figures of `kombu bench --json --rate`, µs.
const LATENCY: [(&str, &str); 3] = [("latency_p50_us", "p50"), ("latency_p99_us", "p99"), ("latency_max_us", "max")];

/// Heap allocations per message of `kombu bench --json` (the binary is built with its
/// `count-allocations` feature): allocations and bytes, of the publish and the consume phase.
const ALLOCATIONS: [(&str, &str); 4] = [
    ("publish_allocations_per_msg", "publish_allocations"),
    ("publish_alloc_bytes_per_msg", "publish_alloc_bytes"),
    ("consume_allocations_per_msg", "consume_allocations"),
    ("consume_alloc_bytes_per_msg", "consume_alloc_bytes"),
];

/// The rates of the BENCH.md workload.
const WORKLOAD: [(&str, &str); 2] = [("publish_per_sec", "publish"), ("consume_per_sec", "consume")];

const DIMENSIONS: [Dimension; 4] = [
    Dimension {
        name: "queues",
        latency: true,
        across: "queues per consumer",
        flag: "--queues",
        points: &QUEUES,
        rates: WORKLOAD,
    },
    Dimension { name: "size", latency: true, across: "body bytes", flag: "--size", points: &SIZES, rates: WORKLOAD },
    Dimension {
        name: "producers",
        latency: false,
        across: "producer threads (tasks), each awaiting its confirms",
        flag: "--producers",
        points: &PRODUCERS,
        rates: [("producers_shared_per_sec", "one_connection"), ("producers_own_per_sec", "a_connection_each")],
    },
    Dimension {
        name: "consumers",
        latency: false,
        across: "consumers of one queue, a connection each",
        flag: "--consumers",
        points: &CONSUMERS,
        rates: WORKLOAD,
    },
];

/// The two rates of one point (msg/s, medians), in the order of its dimension's `rates`, and its
/// latencies (µs, medians of each figure) where the dimension measures them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    value: u64,
    count: u64,
    rates: [f64; 2],
    latency: Option<[f64; 3]>,
    /// Allocations per message (medians, in the order of [`ALLOCATIONS`]) where counted.
    allocations: Option<[f64; 4]>,
}

/// Messages for one point: `--n`, fewer where the bodies would pass [`BYTES_PER_POINT`] (at least 64).
fn count_for(n: u64, size: u64) -> u64 {
    n.min((BYTES_PER_POINT / size.max(1)).max(64))
}

/// Figures of one line of `kombu bench --json` (or of the Python side), by their keys: `None` where
/// the key is missing or null.
fn json_rates(line: &str, keys: &[&str]) -> Result<Vec<Option<f64>>, String> {
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("kombu bench --json printed no JSON ({e}): {line}"))?;
    Ok(keys.iter().map(|key| v[key].as_f64()).collect())
}

/// Who runs a point: kombu-rs through one of its APIs, or Python Kombu (`python/kombu_scale.py`, the
/// same workload and options where it can do the same).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Blocking,
    Async,
    Python,
}

impl Side {
    const ALL: [Side; 3] = [Side::Blocking, Side::Async, Side::Python];

    fn name(self) -> &'static str {
        match self {
            Side::Blocking => "blocking",
            Side::Async => "async",
            Side::Python => "python",
        }
    }
}

/// Most messages of a Python Kombu point: it publishes to 1,000 Redis queues at some hundred a second.
const PYTHON_COUNT: u64 = 5_000;

/// A figure for the table: "-" for one not measured.
fn figure(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.0}")
    } else {
        "-".to_owned()
    }
}

/// The change from the first point's rate to `rate`, as "1.00x" ("-" without both).
fn versus_first(first: f64, rate: f64) -> String {
    if first > 0.0 && rate.is_finite() {
        format!("{:.2}x", rate / first)
    } else {
        "-".to_owned()
    }
}

fn measure(kombu: &Path, url: &str, dim: &Dimension, value: u64, side: Side, a: &Args) -> Result<Point, String> {
    let size = if dim.name == "size" { value } else { a.size };
    let mut count = count_for(a.n, size);
    if side == Side::Python {
        count = count.min(PYTHON_COUNT);
    }
    let mut keys: Vec<&str> = dim.rates.iter().map(|(key, _)| *key).collect();
    if dim.latency {
        keys.extend(LATENCY.map(|(key, _)| key));
    }
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); keys.len()];
    let (mut allocations, mut all_counted) = (Vec::new(), true);
    for _ in 0..a.rounds.max(1) {
        let mut cmd = match side {
            Side::Python => {
                let mut cmd = Command::new("python3");
                cmd.arg(super::root().join("xtask/python/kombu_scale.py")).arg(url);
                cmd
            }
            Side::Blocking | Side::Async => {
                let mut cmd = Command::new(kombu);
                cmd.args(["bench", url, "--json", "--no-progress"]);
                cmd
            }
        };
        cmd.args(["--count", &count.to_string(), "--size", &size.to_string()]);
        if dim.name != "size" {
            cmd.args([dim.flag, &value.to_string()]);
        }
        if dim.latency {
            cmd.args(["--rate", &RATE.to_string()]);
        }
        if side == Side::Async {
            cmd.arg("--async");
        }
        let line = output(&mut cmd)?;
        let counted: Option<Vec<f64>> = json_rates(&line, &ALLOCATIONS.map(|(key, _)| key))?.into_iter().collect();
        match counted {
            Some(counted) => allocations.push(counted),
            None => all_counted = false,
        }
        for ((all, x), key) in figures.iter_mut().zip(json_rates(&line, &keys)?).zip(&keys) {
            match (x, side) {
                (Some(x), _) => all.push(x),
                // Python Kombu cannot do this one (memory:// across processes, producers sharing a connection).
                (None, Side::Python) => all.push(f64::NAN),
                (None, _) => return Err(format!("no {key} in kombu bench --json: {line}")),
            }
        }
    }
    let medians: Vec<f64> = figures.into_iter().map(median).collect();
    let latency = dim.latency.then(|| [medians[2], medians[3], medians[4]]);
    let allocations = all_counted.then(|| std::array::from_fn(|k| median(allocations.iter().map(|a| a[k]).collect())));
    Ok(Point { value, count, rates: [medians[0], medians[1]], latency, allocations })
}

/// The dimensions named (all when none is).
fn chosen(names: &[String]) -> Result<Vec<&'static Dimension>, String> {
    if let Some(unknown) = names.iter().find(|n| !DIMENSIONS.iter().any(|d| d.name == n.as_str())) {
        let known: Vec<&str> = DIMENSIONS.iter().map(|d| d.name).collect();
        return Err(format!("unknown dimension '{unknown}' ({})", known.join(", ")));
    }
    Ok(DIMENSIONS.iter().filter(|d| names.is_empty() || names.iter().any(|n| n == d.name)).collect())
}

fn json_path(dim: &Dimension) -> PathBuf {
    target_dir().join("bench").join(format!("scale-{}.json", dim.name))
}

/// Runs every dimension (the `kombu` binary is built, the brokers run).
pub(crate) fn run(kombu: &Path, a: &Args) -> Result<(), String> {
    for dim in chosen(&a.dimensions)? {
        let values: Vec<String> = dim.points.iter().map(u64::to_string).collect();
        let [(_, x), (_, y)] = dim.rates;
        println!(
            "\nscale: {} ({}), rounds={} (medians); {x} / {y} msg/s, then vs the first point",
            dim.name,
            values.join(", "),
            a.rounds
        );
        let mut json = Vec::new();
        let (mut panels, mut latency_panels) = (Vec::new(), Vec::new());
        for backend in &a.backends {
            let url = url(backend)?;
            let (mut lines, mut latency_lines) = (Vec::new(), Vec::new());
            for side in Side::ALL {
                let api = side.name();
                let mut points = Vec::new();
                for &value in dim.points {
                    points.push(measure(kombu, url, dim, value, side, a)?);
                }
                print_points(backend, api, &points, dim.name == "size")?;
                for (rate, (_, name)) in dim.rates.iter().enumerate() {
                    let points: Vec<(f64, f64)> =
                        points.iter().map(|p| (p.value as f64, p.rates[rate])).filter(|p| p.1.is_finite()).collect();
                    let label = format!("{api} {}", name.replace('_', " "));
                    if !points.is_empty() {
                        lines.push(crate::plot::Line { label, style: style(side), rate, points });
                    }
                }
                for (rate, (_, name)) in LATENCY.iter().enumerate().take(2) {
                    let points: Vec<(f64, f64)> = points
                        .iter()
                        .filter_map(|p| Some((p.value as f64, p.latency?[rate])))
                        .filter(|p| p.1.is_finite())
                        .collect();
                    if !points.is_empty() {
                        let label = format!("{api} {name}");
                        latency_lines.push(crate::plot::Line { label, style: style(side), rate, points });
                    }
                }
                json.push(serde_json::json!({
                    "backend": backend,
                    "api": api,
                    "dimension": dim.name,
                    "latency_rate": dim.latency.then_some(RATE),
                    "points": points.iter().map(|p| point_json(dim, p)).collect::<Vec<_>>(),
                }));
            }
            panels.push((backend.clone(), lines));
            latency_panels.push((backend.clone(), latency_lines));
        }
        let path = json_path(dim);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let rounds = match a.rounds.max(1) {
            1 => "one round".to_owned(),
            n => format!("medians of {n} rounds"),
        };
        let png = path.with_extension("png");
        let title = format!("kombu-rs: {} ({rounds})", dim.across);
        crate::plot::draw(&crate::plot::Picture { title, across: dim.across, unit: "msg/s", panels }, &png)?;
        println!("written: {} and {}", path.display(), png.display());
        if dim.latency {
            let png = path.with_file_name(format!("scale-{}-latency.png", dim.name));
            let title = format!("kombu-rs: latency at {RATE} msg/s by {} ({rounds})", dim.across);
            let picture = crate::plot::Picture { title, across: dim.across, unit: "µs", panels: latency_panels };
            crate::plot::draw(&picture, &png)?;
            println!("written: {}", png.display());
        }
    }
    Ok(())
}

/// How a side's lines are drawn.
fn style(side: Side) -> crate::plot::Style {
    match side {
        Side::Blocking => crate::plot::Style::Solid,
        Side::Async => crate::plot::Style::Dashed,
        Side::Python => crate::plot::Style::Faint,
    }
}

/// Prints one API's points of a backend: the rates and their change from the first point, then the
/// latencies where measured.
/// With `copies` (the size dimension), also the allocations per message.
fn print_points(backend: &str, api: &str, points: &[Point], copies: bool) -> Result<(), String> {
    let first = points.first().copied().ok_or("a dimension without points")?;
    let cells: Vec<String> = points
        .iter()
        .map(|p| {
            let [x, y] = p.rates;
            let change = [versus_first(first.rates[0], x), versus_first(first.rates[1], y)];
            format!("{}: {} / {} ({} / {})", p.value, figure(x), figure(y), change[0], change[1])
        })
        .collect();
    println!("{backend:<7} {api:<8} {}", cells.join(" | "));
    let latencies: Vec<String> = points
        .iter()
        .filter_map(|p| p.latency.map(|l| format!("{}: {}", p.value, l.map(figure).join(" / "))))
        .collect();
    if !latencies.is_empty() {
        println!("{backend:<7} {api:<8} latency at {RATE} msg/s, p50 / p99 / max µs: {}", latencies.join(" | "));
    }
    if copies {
        let allocations: Vec<String> = points
            .iter()
            .filter_map(|p| {
                let [pa, pb, ca, cb] = p.allocations?;
                let size = p.value as f64;
                Some(format!("{}: {pa:.0} ({:.1}x) / {ca:.0} ({:.1}x)", p.value, pb / size, cb / size))
            })
            .collect();
        if !allocations.is_empty() {
            let what = "allocations per message (bytes allocated / body size), publish / consume";
            println!("{backend:<7} {api:<8} {what}: {}", allocations.join(" | "));
        }
    }
    Ok(())
}

/// One point in the JSON file: its value and count, its two rates by name, and its latencies.
fn point_json(dim: &Dimension, p: &Point) -> serde_json::Value {
    let mut point = serde_json::json!({ "value": p.value, "count": p.count });
    for ((_, name), rate) in dim.rates.iter().zip(p.rates) {
        point[*name] = rate.into();
    }
    if let Some(latency) = p.latency {
        for ((_, name), us) in LATENCY.iter().zip(latency) {
            point[format!("{name}_us")] = us.into();
        }
    }
    if let Some(allocations) = p.allocations {
        for ((_, name), x) in ALLOCATIONS.iter().zip(allocations) {
            point[*name] = x.into();
        }
    }
    point
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_run_fewer_messages() {
        assert_eq!(count_for(20_000, 100), 20_000);
        assert_eq!(count_for(20_000, 10_000), 13_421);
        assert_eq!(count_for(20_000, 1_000_000), 134);
        assert_eq!(count_for(20_000, 1 << 30), 64, "never fewer than 64");
        assert_eq!(count_for(20_000, 0), 20_000);
    }

    #[test]
    fn reads_the_rates_of_kombu_bench_json() {
        let keys = WORKLOAD.map(|(key, _)| key);
        let line = r#"{"transport":"memory","publish_per_sec":1000.5,"consume_per_sec":250.0,"queues":10}"#;
        assert_eq!(json_rates(line, &keys), Ok(vec![Some(1000.5), Some(250.0)]));
        assert!(json_rates("kombu-rs memory n=1 publish=1 msg/s", &keys).is_err());
        assert_eq!(json_rates(r#"{"publish_per_sec":1}"#, &keys), Ok(vec![Some(1.0), None]));
        let producers = DIMENSIONS[2].rates.map(|(key, _)| key);
        let line = r#"{"producers":16,"producers_shared_per_sec":30.0,"producers_own_per_sec":null}"#;
        assert_eq!(json_rates(line, &producers), Ok(vec![Some(30.0), None]));
        let latency = LATENCY.map(|(key, _)| key);
        let line = r#"{"latency_p50_us":40.0,"latency_p99_us":99.5,"latency_max_us":300.0}"#;
        assert_eq!(json_rates(line, &latency), Ok(vec![Some(40.0), Some(99.5), Some(300.0)]));
    }

    #[test]
    fn a_point_is_written_with_its_rates_and_latencies_by_name() {
        let latency = Some([40.0, 99.0, 300.0]);
        let p = Point { value: 10, count: 500, rates: [1.0, 2.0], latency, allocations: None };
        let j = point_json(&DIMENSIONS[0], &p);
        assert_eq!(
            j,
            serde_json::json!({"value": 10, "count": 500, "publish": 1.0, "consume": 2.0,
            "p50_us": 40.0, "p99_us": 99.0, "max_us": 300.0})
        );
        let counted = Point { allocations: Some([5.0, 700.0, 2.0, 300.0]), latency: None, ..p };
        let j = point_json(&DIMENSIONS[1], &counted);
        assert_eq!((j["publish_alloc_bytes"].as_f64(), j["consume_allocations"].as_f64()), (Some(700.0), Some(2.0)));
        let p = Point { latency: None, ..p };
        let j = point_json(&DIMENSIONS[2], &p);
        assert_eq!(j, serde_json::json!({"value": 10, "count": 500, "one_connection": 1.0, "a_connection_each": 2.0}));
    }

    #[test]
    fn dimensions_are_chosen_by_name() {
        assert_eq!(chosen(&[]).map(|d| d.len()), Ok(4));
        let one = chosen(&["producers".to_owned()]).expect("a known dimension");
        assert_eq!(one.iter().map(|d| d.name).collect::<Vec<_>>(), ["producers"]);
        assert!(chosen(&["threads".to_owned()]).is_err_and(|e| e.contains("'threads'") && e.contains("queues")));
    }

    #[test]
    fn changes_are_against_the_first_point() {
        assert_eq!(versus_first(100.0, 50.0), "0.50x");
        assert_eq!(versus_first(0.0, 1.0), "-");
        assert_eq!(versus_first(f64::NAN, 1.0), "-");
        assert_eq!(versus_first(1.0, f64::NAN), "-");
        assert_eq!((figure(1234.4), figure(f64::NAN)), ("1234".to_owned(), "-".to_owned()));
    }

    #[test]
    fn every_dimension_starts_at_the_bench_md_point() {
        assert_eq!(DIMENSIONS[0].points[0], 1, "one queue");
        assert_eq!(DIMENSIONS[1].points[0], 100, "100-byte bodies");
        assert_eq!(DIMENSIONS[2].points[0], 1, "one producer");
        assert_eq!(DIMENSIONS[3].points[0], 1, "one consumer");
        assert!(json_path(&DIMENSIONS[0]).ends_with("bench/scale-queues.json"));
    }
}
