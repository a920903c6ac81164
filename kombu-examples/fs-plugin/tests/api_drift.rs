//! A plugin built from a kombu-core whose `Channel` trait gained a method (as one built from another
//! commit would be), with the same version numbers, compiler and dependencies: the loader must refuse it
//! for its API fingerprint. The test copies kombu-core to a temporary workspace, adds the method, builds a
//! small plugin against the copy (offline, with this workspace's `Cargo.lock` and target directory, so only
//! kombu-core and the plugin are compiled) and loads it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use kombu_core::plugin::API_FINGERPRINT;
use kombu_core::{ErrorKind, Registry};

/// This workspace's root (`kombu-examples/fs-plugin/../..`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The root manifest of the temporary workspace: this workspace's `[workspace.package]` and
/// `[workspace.dependencies]`, without the crates it does not copy.
fn workspace_manifest(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let workspace = text.split("\n[package]").next().unwrap();
    let mut out = String::new();
    for line in workspace.lines() {
        if line.starts_with("members") {
            out.push_str("members = [\"kombu-core\", \"drift-plugin\"]\n");
        } else if line.starts_with("exclude") || (line.starts_with("kombu") && !line.starts_with("kombu-core ")) {
            continue;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

const PLUGIN_SOURCE: &str = r#"
use kombu_core::transport::{BrokerConnection, Capabilities, Transport};
use kombu_core::{BrokerUrl, Error, Result};

pub struct Drift;

impl Transport for Drift {
    fn name(&self) -> &str { "drift" }
    fn aliases(&self) -> Vec<String> { vec!["drift".to_owned()] }
    fn default_port(&self) -> Option<u16> { None }
    fn capabilities(&self) -> Capabilities { Capabilities::new() }
    fn connect(&self, _: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> { Err(Error::unsupported("drift")) }
}

kombu_core::export_plugin!(Drift);
"#;

#[test]
fn a_plugin_built_from_a_kombu_core_whose_channel_gained_a_method_is_refused() {
    let root = workspace_root();
    let dir = common::fresh_dir("api-drift");
    copy_dir(&root.join("kombu-core/src"), &dir.join("kombu-core/src"));
    std::fs::copy(root.join("kombu-core/build.rs"), dir.join("kombu-core/build.rs")).unwrap();
    std::fs::copy(root.join("kombu-core/Cargo.toml"), dir.join("kombu-core/Cargo.toml")).unwrap();
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), workspace_manifest(&root)).unwrap();

    // The change: one more (defaulted) method on `Channel`.
    let transport = dir.join("kombu-core/src/transport.rs");
    let text = std::fs::read_to_string(&transport).unwrap();
    let anchor = "pub trait Channel: Send + Sync {\n";
    assert!(text.contains(anchor), "transport.rs has no `{anchor}`");
    let changed = text.replacen(
        anchor,
        &format!("{anchor}    /// Added after the program was built.\n    fn added_later(&self) -> u32 {{ 0 }}\n"),
        1,
    );
    std::fs::write(&transport, changed).unwrap();

    std::fs::create_dir_all(dir.join("drift-plugin/src")).unwrap();
    std::fs::write(
        dir.join("drift-plugin/Cargo.toml"),
        "[package]\nname = \"kombu-drift-plugin\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nkombu-core = { path = \"../kombu-core\", features = [\"plugins\"] }\n",
    )
    .unwrap();
    std::fs::write(dir.join("drift-plugin/src/lib.rs"), PLUGIN_SOURCE).unwrap();

    // This test binary is target/<profile>/deps/<name>: build into the same target directory, debug.
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().and_then(Path::parent).and_then(Path::parent).expect("target/").to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--offline", "-p", "kombu-drift-plugin"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the drifted plugin failed: {status}");
    let lib = target.join("debug").join(format!(
        "{}kombu_drift_plugin{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));

    let registry = Registry::empty();
    let err = registry.load_plugin(&lib).expect_err("the loader refuses the drifted plugin");
    assert_eq!(err.kind(), ErrorKind::Plugin, "{err}");
    let text = err.to_string();
    assert!(text.contains("built against kombu-core plugin API "), "refused for its API: {text}");
    assert!(text.contains(&format!("this program uses plugin API {API_FINGERPRINT:016x}")), "{text}");
    assert!(registry.aliases().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
