//! `cargo xtask lint`: formatting, clippy with warnings as errors, rustdoc with warnings as errors, and
//! the tidy checks.

use std::path::Path;

use crate::{cargo, root, run_checked};

/// Every Rust source file starts with a `//!` line saying what it is for.
fn tidy() -> Result<(), String> {
    let mut missing = Vec::new();
    visit(&root(), &mut missing)?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("files without a `//!` line saying what they are for:\n  {}", missing.join("\n  ")))
    }
}

fn visit(dir: &Path, missing: &mut Vec<String>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                visit(&path, missing)?;
            }
        } else if name.ends_with(".rs") {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            if !first.starts_with("//!") {
                missing.push(path.strip_prefix(root()).unwrap_or(&path).display().to_string());
            }
        }
    }
    Ok(())
}

pub(crate) fn run() -> Result<(), String> {
    run_checked(cargo().current_dir(root()).args(["fmt", "--all", "--", "--check"]))?;
    // The cargo-fuzz crate is its own workspace, outside `--all` (formatting it builds nothing).
    run_checked(cargo().current_dir(root()).args(["fmt", "--manifest-path", "fuzz/Cargo.toml", "--", "--check"]))?;
    run_checked(cargo().current_dir(root()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The public API docs build without warnings (broken or private intra-doc links, bad HTML).
    run_checked(cargo().current_dir(root()).env("RUSTDOCFLAGS", "-D warnings").args([
        "doc",
        "--workspace",
        "--all-features",
        "--no-deps",
    ]))?;
    tidy()?;
    println!("lint: fmt, clippy, docs and tidy are clean");
    Ok(())
}
