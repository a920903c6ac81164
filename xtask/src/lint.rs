//! `cargo xtask lint`: formatting, clippy with warnings as errors, rustdoc with warnings as errors, and
//! the tidy checks (`tidy.rs`).

use crate::{cargo, root, run_checked};

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
    crate::tidy::run()?;
    println!("lint: fmt, clippy, docs and tidy are clean");
    Ok(())
}
