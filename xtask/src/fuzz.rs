//! `cargo xtask fuzz`: builds the cargo-fuzz crate in `fuzz/` and runs each of its targets in turn for a
//! bounded time, on the stable toolchain; fails if any target finds a crash.
//!
//! cargo-fuzz wants nightly only for `-Zsanitizer` (AddressSanitizer, its default). With
//! `--sanitizer none` every flag it passes is stable (`-Cpasses=sancov-module`, the
//! `-Cllvm-args=-sanitizer-coverage-*` options, `--cfg fuzzing`), so no `RUSTC_BOOTSTRAP` is needed. The
//! targets fuzz safe Rust, where a sanitizer has little to add: what they look for is panics, failed
//! assertions (round trips, a reference implementation), overflow, and allocations past the limits.
//!
//! cargo-fuzz is installed with `cargo install cargo-fuzz --locked` when `cargo fuzz` is missing.
//! Seeds are in `fuzz/seeds/<target>/` (committed, a few hand-made files each), libFuzzer dictionaries in
//! `fuzz/dicts/<target>.dict`; what a run discovers goes to `fuzz/corpus/<target>/` and crashing inputs to
//! `fuzz/artifacts/<target>/` (both ignored by git).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

use crate::{cargo, root, run_checked};

/// Arguments of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// How long to fuzz each target, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Build with optimizations: slower to build, several times more runs per second (for long runs).
    #[arg(long)]
    release: bool,
    /// Targets to run (default: every file in fuzz/fuzz_targets/).
    targets: Vec<String>,
}

/// What one target's run came to.
struct Outcome {
    target: String,
    runs: Option<String>,
    seconds: f64,
    crash: Option<String>,
    ok: bool,
}

/// The fuzz targets: the file names in `fuzz/fuzz_targets/`, sorted.
fn all_targets(dir: &Path) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".rs")).map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

fn have_cargo_fuzz() -> bool {
    cargo().args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success())
}

/// `cargo fuzz` with the flags every call shares (build and run must agree, or run rebuilds).
fn cargo_fuzz(sub: &str, release: bool) -> std::process::Command {
    let mut cmd = cargo();
    cmd.current_dir(root()).args(["fuzz", sub, "--fuzz-dir", "fuzz", "--sanitizer", "none"]);
    if !release {
        cmd.arg("--dev");
    }
    cmd
}

/// Runs one target for `seconds`, passing its output through, and notes libFuzzer's summary lines.
fn run_target(target: &str, seconds: u64, release: bool) -> Result<Outcome, String> {
    let fuzz = root().join("fuzz");
    let corpus = fuzz.join("corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
    let seeds = fuzz.join("seeds").join(target);
    let mut cmd = cargo_fuzz("run", release);
    cmd.arg(target).arg(&corpus);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    // One input may take at most 10 s, and the process 2 GB: a slower input or a bigger allocation is a
    // finding (libFuzzer saves it as an artifact like a crash).
    cmd.args(["--", &format!("-max_total_time={seconds}"), "-timeout=10", "-rss_limit_mb=2048"]);
    // A dictionary of the target's tokens (option names, RESP type bytes) lets mutations reach deeper.
    let dict = fuzz.join("dicts").join(format!("{target}.dict"));
    if dict.is_file() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let writer2 = writer.try_clone().map_err(|e| format!("pipe: {e}"))?;
    let start = Instant::now();
    let mut child = cmd.stdout(writer).stderr(writer2).spawn().map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    drop(cmd);
    let mut outcome = Outcome { target: target.to_owned(), runs: None, seconds: 0.0, crash: None, ok: false };
    for line in BufReader::new(reader).lines().map_while(Result::ok) {
        eprintln!("{line}");
        // "Done 160404 runs in 6 second(s)"
        if let Some(rest) = line.strip_prefix("Done ") {
            outcome.runs = rest.split_whitespace().next().map(str::to_owned);
        }
        // "artifact_prefix='...'; Test unit written to fuzz/artifacts/resp/crash-..."
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            outcome.crash = Some(path.trim().to_owned());
        }
    }
    let status = child.wait().map_err(|e| format!("cargo fuzz run {target}: {e}"))?;
    outcome.seconds = start.elapsed().as_secs_f64();
    outcome.ok = status.success() && outcome.crash.is_none();
    Ok(outcome)
}

pub(crate) fn run(args: &Args) -> Result<(), String> {
    let fuzz = root().join("fuzz");
    let known = all_targets(&fuzz.join("fuzz_targets"))?;
    let targets = if args.targets.is_empty() { known.clone() } else { args.targets.clone() };
    if let Some(unknown) = targets.iter().find(|t| !known.contains(t)) {
        return Err(format!("no fuzz target '{unknown}' (targets: {})", known.join(", ")));
    }
    if !have_cargo_fuzz() {
        eprintln!("xtask: installing cargo-fuzz with cargo install");
        run_checked(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let start = Instant::now();
    run_checked(&mut cargo_fuzz("build", args.release))?;
    let built = start.elapsed().as_secs_f64();
    let mut outcomes = Vec::new();
    for target in &targets {
        eprintln!("xtask: fuzzing {target} for {} s", args.seconds);
        outcomes.push(run_target(target, args.seconds, args.release)?);
    }
    println!("\nxtask fuzz: {} target(s), {} s each (built in {built:.0} s)", outcomes.len(), args.seconds);
    for o in &outcomes {
        let runs = o.runs.as_deref().unwrap_or("?");
        let result = match (&o.crash, o.ok) {
            (Some(path), _) => format!("CRASH: {path}"),
            (None, true) => "ok".to_owned(),
            (None, false) => "FAILED (see the output above)".to_owned(),
        };
        println!("  {:<14} {runs:>10} runs {:>6.1} s  {result}", o.target, o.seconds);
    }
    let failed: Vec<&str> = outcomes.iter().filter(|o| !o.ok).map(|o| o.target.as_str()).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzzing found crashes in {}; reproduce one with `cargo fuzz run --fuzz-dir fuzz --sanitizer none --dev \
             <target> <artifact>`, then add the input as a regression test in the crate that owns the code",
            failed.join(", ")
        ))
    }
}
