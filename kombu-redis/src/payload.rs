//! Stored message payloads as Kombu reads them (pure): marking a restored message redelivered, writing
//! and reading an `unacked` entry (`[payload, exchange, routing_key]`), the delivery tags of new
//! messages, and the clock Kombu scores deliveries with.

use kombu_core::envelope::DELIVERY_COUNT;
use serde_json::value::RawValue;
use serde_json::Value;

/// The payload with `headers.redelivered` and `properties.delivery_info.redelivered` set, as Kombu does
/// when it restores a message, its delivery count (`properties["x-delivery-count"]`, which Python Kombu
/// ignores) raised by one, and the message's priority. A payload that is not a JSON object is kept as it
/// is (priority 0).
pub fn mark_redelivered(payload: &[u8]) -> (Vec<u8>, u8) {
    let Ok(mut v) = serde_json::from_slice::<Value>(payload) else {
        return (payload.to_vec(), 0);
    };
    let Some(obj) = v.as_object_mut() else {
        return (payload.to_vec(), 0);
    };
    match obj.get_mut("headers") {
        Some(Value::Object(h)) => {
            h.insert("redelivered".into(), Value::Bool(true));
        }
        Some(h @ Value::Null) | Some(h @ Value::Array(_)) => {
            let mut m = serde_json::Map::new();
            m.insert("redelivered".into(), Value::Bool(true));
            *h = Value::Object(m);
        }
        _ => {}
    }
    let mut priority = 0;
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        priority = props.get("priority").and_then(Value::as_u64).map(|p| p.min(255) as u8).unwrap_or(0);
        if let Some(Value::Object(di)) = props.get_mut("delivery_info") {
            di.insert("redelivered".into(), Value::Bool(true));
        }
        let count = props.get(DELIVERY_COUNT).and_then(Value::as_u64).unwrap_or(0);
        props.insert(DELIVERY_COUNT.into(), Value::from(count.saturating_add(1)));
    }
    (serde_json::to_vec(&v).unwrap_or_else(|_| payload.to_vec()), priority)
}

/// One entry of the `unacked` hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnackedEntry {
    /// The payload exactly as stored.
    pub payload: Vec<u8>,
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
}

/// Writes an `unacked` entry, `[payload, exchange, routing_key]`, as the POP script writes it (and as
/// [`parse_unacked`] reads it back exactly).
///
/// A payload that is a JSON object (a Kombu envelope) goes in as it is, as Kombu stores the message; any
/// other payload goes in as a JSON string. Strings are escaped as Redis's cjson escapes them (`"`, `\`,
/// `/`, control characters and DEL), bytes that are not UTF-8 passing through as they are.
pub fn unacked_entry(payload: &[u8], exchange: &str, routing_key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + exchange.len() + routing_key.len() + 12);
    out.push(b'[');
    let object = payload.first() == Some(&b'{')
        && payload.last() == Some(&b'}')
        && serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok();
    if object {
        out.extend_from_slice(payload);
    } else {
        json_string(&mut out, payload);
    }
    out.extend_from_slice(b", ");
    json_string(&mut out, exchange.as_bytes());
    out.extend_from_slice(b", ");
    json_string(&mut out, routing_key.as_bytes());
    out.push(b']');
    out
}

/// Appends `bytes` as a JSON string the way Redis's cjson writes one (`cjson.encode`).
fn json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' | b'\\' | b'/' => out.extend_from_slice(&[b'\\', b]),
            8 => out.extend_from_slice(b"\\b"),
            9 => out.extend_from_slice(b"\\t"),
            10 => out.extend_from_slice(b"\\n"),
            12 => out.extend_from_slice(b"\\f"),
            13 => out.extend_from_slice(b"\\r"),
            0..=31 | 127 => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Reads an `unacked` entry; `None` if it is not `[payload, exchange, routing_key]`.
///
/// A payload that was not a Kombu envelope is stored as a JSON string; Redis's cjson writes bytes that
/// are not UTF-8 into it as they are, so such an entry is read byte by byte and its bytes given back
/// exactly.
pub fn parse_unacked(raw: &[u8]) -> Option<UnackedEntry> {
    if let Ok((payload, exchange, routing_key)) = serde_json::from_slice::<(Box<RawValue>, String, String)>(raw) {
        let payload = match serde_json::from_str::<Value>(payload.get()).ok()? {
            // A payload that was not JSON is stored as a JSON string: give back the original text.
            Value::String(s) => s.into_bytes(),
            _ => payload.get().as_bytes().to_vec(),
        };
        return Some(UnackedEntry { payload, exchange, routing_key });
    }
    let rest = raw.trim_ascii_start().strip_prefix(b"[")?.trim_ascii_start();
    let (payload, rest) = json_string_bytes(rest)?;
    let rest = rest.trim_ascii_start().strip_prefix(b",")?;
    let mut tail = b"[".to_vec();
    tail.extend_from_slice(rest);
    let (exchange, routing_key): (String, String) = serde_json::from_slice(&tail).ok()?;
    Some(UnackedEntry { payload, exchange, routing_key })
}

/// Decodes a JSON string at the start of `input` into bytes, passing bytes that are not UTF-8 through;
/// returns the bytes and what follows the closing quote.
fn json_string_bytes(input: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut it = input.strip_prefix(b"\"")?.iter().enumerate();
    let body = input.get(1..)?;
    let mut out = Vec::with_capacity(body.len());
    while let Some((i, &b)) = it.next() {
        match b {
            b'"' => return Some((out, body.get(i + 1..)?)),
            b'\\' => {
                let (_, &e) = it.next()?;
                match e {
                    b'"' | b'\\' | b'/' => out.push(e),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let hex: Vec<u8> = (0..4).map(|_| it.next().map(|(_, &h)| h)).collect::<Option<_>>()?;
                        let code = u32::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?;
                        let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return None,
                }
            }
            _ => out.push(b),
        }
    }
    None
}

/// A new delivery tag: a version-4 UUID as Kombu writes them. Its random bits come from a per-thread
/// splitmix64 generator seeded once from the OS (asking the OS for every message costs a system call).
pub fn new_tag() -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0);
    }
    let next = || {
        let s = STATE.with(|c| {
            let v = c.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            c.set(v);
            v
        });
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&next().to_le_bytes());
    bytes[8..].copy_from_slice(&next().to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// Seconds since the epoch with microseconds, as Python's `time()` scores `unacked_index`.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// A time as an `unacked_index` score is written: seconds with six decimals.
pub fn score(secs: f64) -> String {
    format!("{secs:.6}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PY: &str = r#"{"body": "eyJ4IjogMX0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "ex", "routing_key": "a.b"}, "priority": 4, "body_encoding": "base64", "delivery_tag": "t1"}}"#;

    #[test]
    fn restored_messages_are_marked() {
        let (out, pri) = mark_redelivered(PY.as_bytes());
        assert_eq!(pri, 4);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["headers"]["redelivered"], true);
        assert_eq!(v["properties"]["delivery_info"]["redelivered"], true);
        assert_eq!(v["properties"]["delivery_tag"], "t1");
        assert_eq!(v["properties"]["x-delivery-count"], 1);
        let (twice, _) = mark_redelivered(&out);
        let v: Value = serde_json::from_slice(&twice).unwrap();
        assert_eq!(v["properties"]["x-delivery-count"], 2);
        let m = kombu_core::envelope::Envelope::parse(&twice).unwrap().into_message().unwrap();
        assert_eq!(m.delivery_info.redeliveries, Some(2));
        assert!(m.properties.extra.get("x-delivery-count").is_none());
        let nulls = br#"{"body": "", "headers": null, "properties": {}}"#;
        let v: Value = serde_json::from_slice(&mark_redelivered(nulls).0).unwrap();
        assert_eq!(v["headers"]["redelivered"], true);
        assert_eq!(mark_redelivered(b"not json").0, b"not json".to_vec());
    }

    #[test]
    fn unacked_entries_as_python_writes_them() {
        let raw = format!(r#"[{PY}, "ex", "a.b"]"#);
        let e = parse_unacked(raw.as_bytes()).unwrap();
        assert_eq!(e.payload, PY.as_bytes());
        assert_eq!((e.exchange.as_str(), e.routing_key.as_str()), ("ex", "a.b"));
        let text = parse_unacked(br#"["garbage", "", "q"]"#).unwrap();
        assert_eq!(text.payload, b"garbage");
        assert!(parse_unacked(b"{}").is_none());
        // Binary junk as Redis's cjson records it: bytes that are not UTF-8 kept as they are.
        let junk = b"[\"\xff\xfe\\\"\\/\\u0001x\", \"\", \"jobs\"]";
        let e = parse_unacked(junk).unwrap();
        assert_eq!(e.payload, b"\xff\xfe\"/\x01x".to_vec());
        assert_eq!((e.exchange.as_str(), e.routing_key.as_str()), ("", "jobs"));
        assert!(parse_unacked(b"[\"\xff unterminated").is_none());
        assert!(parse_unacked(b"[1, 2]").is_none());
        assert!(now_secs() > 1.7e9);
    }

    #[test]
    fn unacked_entries_round_trip() {
        let awkward: &[&[u8]] = &[
            PY.as_bytes(),
            b"not json",
            b"\"quoted\" \\ back\\slash / slash",
            b"\xff\xfe\x00\x01\x7f\n\r\t\x08\x0c binary",
            "caf\u{e9} \u{1F600}".as_bytes(),
            b"\"a json string\"",
            b"[1, 2]",
            b"42",
            b" {\"padded\": 1}",
            b"{\"unclosed\": ",
            b"",
        ];
        for payload in awkward {
            for (ex, rk) in [("", "jobs"), ("ex \"q\" \\", "a/b\u{7}.\u{e9}")] {
                let raw = unacked_entry(payload, ex, rk);
                let e = parse_unacked(&raw).unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(&raw)));
                assert_eq!(e.payload, payload.to_vec(), "{:?}", String::from_utf8_lossy(&raw));
                assert_eq!((e.exchange.as_str(), e.routing_key.as_str()), (ex, rk));
            }
        }
        // An envelope goes in as Kombu stores it, not as a string.
        assert_eq!(unacked_entry(PY.as_bytes(), "ex", "a.b"), format!(r#"[{PY}, "ex", "a.b"]"#).into_bytes());
        let mut s = Vec::new();
        json_string(&mut s, b"a\"b\\c/d\x01\x08\t\n\x0c\r\x7f\xff\xfe \xc3\xa9");
        // The bytes Redis's `cjson.encode` gives for the same input (seen with EVAL on Redis 7).
        assert_eq!(s, b"\"a\\\"b\\\\c\\/d\\u0001\\b\\t\\n\\f\\r\\u007f\xff\xfe \xc3\xa9\"".to_vec());
        assert_eq!(score(1.5), "1.500000");
    }

    #[test]
    fn tags_are_distinct_v4_uuids() {
        let tags: std::collections::HashSet<String> = (0..10_000).map(|_| new_tag()).collect();
        assert_eq!(tags.len(), 10_000);
        for t in tags.iter().take(10) {
            let u = uuid::Uuid::parse_str(t).unwrap();
            assert_eq!(u.get_version_num(), 4);
        }
    }
}
