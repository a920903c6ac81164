//! Records the version of the compiler that builds kombu-core (`KOMBU_RUSTC_VERSION`), which a plugin's
//! declaration carries so that a program refuses plugins built by another compiler.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = match Command::new(&rustc).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => {
            println!("cargo:warning=`{} --version` failed: {}", rustc.to_string_lossy(), out.status);
            "unknown".to_owned()
        }
        Err(e) => {
            println!("cargo:warning=cannot run `{} --version`: {e}", rustc.to_string_lossy());
            "unknown".to_owned()
        }
    };
    println!("cargo:rustc-env=KOMBU_RUSTC_VERSION={version}");
}
