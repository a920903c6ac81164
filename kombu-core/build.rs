//! Records, for the plugin declaration:
//!
//! - the version of the compiler that builds kombu-core (`KOMBU_RUSTC_VERSION`), so that a program
//!   refuses plugins built by another compiler;
//! - a fingerprint of kombu-core's plugin API (`$OUT_DIR/api_fingerprint.rs`): a hash of the normalized
//!   source text of the files that define the transport traits and the types their signatures use, so
//!   that a program refuses a plugin built from a kombu-core whose traits differ (a method added to
//!   `Channel`, a field added to `Message`), even when the version numbers agree.

use std::path::Path;
use std::process::Command;

/// The files whose text makes the API fingerprint: the traits (`transport.rs`), the types their
/// signatures use (entities, header values, messages, errors, URLs, options, the Hub's sources and events), and the
/// plugin declaration and registrar themselves.
const API_FILES: &[&str] = &[
    "src/transport.rs",
    "src/entity.rs",
    "src/fields/mod.rs",
    "src/fields/json.rs",
    "src/message.rs",
    "src/error.rs",
    "src/url.rs",
    "src/options.rs",
    "src/hub/sources.rs",
    "src/plugin.rs",
    "src/plugin/guard.rs",
];

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

    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in API_FILES {
        println!("cargo:rerun-if-changed={file}");
        // A missing file is an error of the build, not a fingerprint of nothing.
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("kombu-core build: cannot read {file}: {e}"));
        hash = fnv1a(hash, file.as_bytes());
        hash = fnv1a(hash, normalize(&text).as_bytes());
    }
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    let code = format!(
        "/// A fingerprint of kombu-core's plugin API (written by build.rs).\n\
         pub const API_FINGERPRINT: u64 = 0x{hash:016x};\n"
    );
    std::fs::write(Path::new(&out).join("api_fingerprint.rs"), code).expect("kombu-core build: cannot write OUT_DIR");
}

/// The text with its comments (line comments, doc comments) and its unit tests removed and every run of
/// whitespace made one space: rewording a comment or reformatting leaves the fingerprint as it was; any
/// change of the code changes it.
fn normalize(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut out = String::with_capacity(code.len());
    for line in code.lines() {
        let line = strip_line_comment(line);
        for word in line.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

/// The line up to a `//` that is not inside a string literal.
fn strip_line_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
