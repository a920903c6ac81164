//! Running Python Kombu from the tests: `tests/py_helper.py` with one JSON spec, to completion or as a
//! consumer that says READY once subscribed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

pub const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py_helper.py");

/// Base64, as the helper takes bodies.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `a` with the fields of `b` added.
pub fn with(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Runs the helper to completion; returns its JSON lines.
pub fn python(spec: Value) -> Vec<Value> {
    let out = Command::new("python3").arg(HELPER).arg(spec.to_string()).output().expect("python3");
    assert!(out.status.success(), "helper failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{') || l.starts_with("null"))
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Starts the helper as a consumer; returns when it says READY.
pub fn python_consumer(spec: Value) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child =
        Command::new("python3").arg(HELPER).arg(spec.to_string()).stdout(Stdio::piped()).spawn().expect("python3");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready line");
    assert_eq!(line.trim(), "READY");
    (child, out)
}

/// Waits for a consumer started by [`python_consumer`]; returns its JSON lines.
pub fn finish(mut child: std::process::Child, out: BufReader<std::process::ChildStdout>) -> Vec<Value> {
    let lines: Vec<Value> = out.lines().map_while(|l| l.ok()).filter_map(|l| serde_json::from_str(&l).ok()).collect();
    assert!(child.wait().expect("wait").success());
    lines
}
