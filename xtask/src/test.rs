//! `cargo xtask test`: the full test run. Brokers first (found, started or installed: no broker test is
//! ever skipped), the plugin libraries the tests load, then every test of the workspace with every
//! feature, doc tests included, and a summary of what ran.

use std::io::{BufRead, BufReader};

use crate::{cargo, root, run_checked, services};

#[derive(Default)]
struct Suite {
    name: String,
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Parses `test result: ok. 3 passed; 0 failed; 1 ignored; ...`.
fn parse_result(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let mut counts = (0, 0, 0);
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (what, n) = (words.next()?, words.next().and_then(|n| n.parse::<u64>().ok()));
        match (what, n) {
            ("passed", Some(n)) => counts.0 = n,
            ("failed", Some(n)) => counts.1 = n,
            ("ignored", Some(n)) => counts.2 = n,
            _ => {}
        }
    }
    Some(counts)
}

/// The test binary a `Running ...` or `Doc-tests ...` line names.
fn parse_binary(line: &str) -> Option<String> {
    let t = line.trim();
    if let Some(rest) = t.strip_prefix("Running ") {
        return Some(rest.split(" (").next().unwrap_or(rest).to_owned());
    }
    t.strip_prefix("Doc-tests ").map(|c| format!("doc tests of {c}"))
}

pub(crate) fn run(extra: &[String]) -> Result<(), String> {
    let services = services::ensure_all()?;
    println!("{services}");
    if root().join("kombu-examples/fs-plugin/Cargo.toml").exists() {
        // The plugin and the test plugins the loader's refusal tests use, with the tests' own features.
        run_checked(cargo().current_dir(root()).args(["build", "-p", "kombu-fs-plugin", "--lib", "--examples"]))?;
    }
    // cargo names each test binary on stderr and the binary prints its results on stdout: one pipe for
    // both keeps them in order.
    let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let writer2 = writer.try_clone().map_err(|e| format!("pipe: {e}"))?;
    let mut cmd = cargo();
    cmd.current_dir(root()).args(["test", "--workspace", "--all-features", "--no-fail-fast"]).args(extra);
    let mut child = cmd.stdout(writer).stderr(writer2).spawn().map_err(|e| format!("cannot run cargo test: {e}"))?;
    drop(cmd);
    let mut list: Vec<Suite> = Vec::new();
    for line in BufReader::new(reader).lines().map_while(Result::ok) {
        println!("{line}");
        if let Some(name) = parse_binary(&line) {
            list.push(Suite { name, ..Default::default() });
        } else if let Some((p, f, i)) = parse_result(&line) {
            match list.last_mut() {
                Some(s) if s.passed + s.failed + s.ignored == 0 => (s.passed, s.failed, s.ignored) = (p, f, i),
                _ => list.push(Suite { name: "tests".into(), passed: p, failed: f, ignored: i }),
            }
        }
    }
    let status = child.wait().map_err(|e| format!("cargo test: {e}"))?;
    let (mut p, mut f, mut i) = (0, 0, 0);
    println!("\nxtask test: what ran");
    for s in list.iter().filter(|s| s.passed + s.failed + s.ignored > 0) {
        println!("  {:<60} {:>4} passed {:>3} failed {:>3} ignored", s.name, s.passed, s.failed, s.ignored);
        (p, f, i) = (p + s.passed, f + s.failed, i + s.ignored);
    }
    if i > 0 {
        println!("  ({i} ignored)");
    }
    println!("summary: {p} passed, {f} failed");
    if status.success() && f == 0 {
        Ok(())
    } else {
        Err(format!("tests failed ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cargo_lines() {
        assert_eq!(
            parse_result(
                "test result: ok. 30 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.06s"
            ),
            Some((30, 2, 1))
        );
        assert_eq!(parse_result("running 3 tests"), None);
        assert_eq!(
            parse_binary("     Running tests/conformance.rs (target/debug/deps/conformance-25be)").as_deref(),
            Some("tests/conformance.rs")
        );
        assert_eq!(parse_binary("   Doc-tests kombu_core").as_deref(), Some("doc tests of kombu_core"));
    }
}
