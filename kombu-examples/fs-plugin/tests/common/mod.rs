//! Test support: builds the plugin and the refused test libraries with the cargo that runs the tests (so
//! plain `cargo test` works), finds them in the target directory in use, and makes fresh queue directories.

// Each test file uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `target/<profile>` of this test run: the test binary is `target/<profile>/deps/<test>-<hash>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps").to_path_buf()
}

/// Builds the plugin and the example libraries once per test binary (a no-op when they are up to date,
/// for example after `cargo xtask test` built them); returns `target/<profile>`.
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let target_dir = dir.parent().expect("target/<profile> has a parent").to_path_buf();
        let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_owned();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "kombu-fs-plugin", "--lib", "--examples"]);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        cmd.env("CARGO_TARGET_DIR", &target_dir);
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the plugin failed: {status}");
        dir
    })
}

fn library(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// The filesystem transport plugin.
pub fn fs_plugin() -> PathBuf {
    library(built(), "kombu_fs_plugin")
}

/// One of the test libraries of `examples/` (`bad_abi_plugin`, `no_entry_plugin`, `clashing_plugin`).
pub fn example_library(name: &str) -> PathBuf {
    library(&built().join("examples"), name)
}

/// A directory of its own under the system temporary directory (not created).
pub fn fresh_dir(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    std::env::temp_dir().join(format!("kombu-fs-{what}-{}-{nanos}", std::process::id()))
}

/// Loads the plugin into the global registry, unless `KOMBU_PLUGINS` already did; returns where the
/// `filesystem` transport was loaded from.
pub fn load_global() -> PathBuf {
    use kombu_core::registry::Origin;
    let registry = kombu_core::Registry::global();
    if registry.origin("filesystem").is_none() {
        let aliases = registry.load_plugin(fs_plugin()).expect("the plugin loads");
        assert_eq!(aliases, ["filesystem", "fs"]);
    }
    match registry.origin("fs") {
        Some(Origin::Plugin(from)) => from,
        other => panic!("the fs transport was registered from {other:?}, not from the plugin"),
    }
}
