//! File names of the filesystem transport: queue and exchange names made safe as directory names, and
//! message file names that sort in delivery order and carry the priority band, expiry and redelivery flag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use kombu_core::{Error, Result};

/// Longest encoded name (file systems allow 255 bytes; claims and bindings add a suffix).
const MAX_ENCODED: usize = 180;

/// `name` as one path component: ASCII letters, digits, `-`, `_` and `.` are kept (except a leading `.`),
/// anything else is `%XX`-encoded, so distinct names stay distinct and none can leave its directory.
pub(crate) fn encode(what: &str, name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::invalid(format!("the filesystem transport needs a {what} name")));
    }
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_ENCODED {
        return Err(Error::invalid(format!("{what} name '{name}' is too long for a file name")));
    }
    Ok(out)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A sequence number that orders messages by publish time: nanoseconds since the epoch, strictly
/// increasing within the process.
pub(crate) fn next_seq() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// The name of one message file: `BBB-SSSSSSSSSSSSSSSSSSSS-PPPPPPPPPP-EEEEEEEEEEEEEEEEEEEE-R.msg`. Fixed-width
/// fields, so names sort by band (0 first: the highest priority), then publish order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageName {
    /// Delivery band: 0 is served first.
    pub(crate) band: u8,
    /// Publish order.
    pub(crate) seq: u64,
    /// The publishing process (keeps names of two processes apart).
    pub(crate) pid: u32,
    /// When it expires (milliseconds since the epoch), if ever.
    pub(crate) expires_ms: Option<u64>,
    /// Delivered before and put back.
    pub(crate) redelivered: bool,
}

impl MessageName {
    /// A new name for a message published now.
    pub(crate) fn new(band: u8, expires_ms: Option<u64>) -> MessageName {
        MessageName { band, seq: next_seq(), pid: std::process::id(), expires_ms, redelivered: false }
    }

    /// The file name.
    pub(crate) fn file_name(&self) -> String {
        format!(
            "{:03}-{:020}-{:010}-{:020}-{}.msg",
            self.band,
            self.seq,
            self.pid,
            self.expires_ms.unwrap_or(0),
            if self.redelivered { 'r' } else { 'n' }
        )
    }

    /// Parses a file name; anything else (a temporary file, a stray file) is None.
    pub(crate) fn parse(file_name: &str) -> Option<MessageName> {
        let stem = file_name.strip_suffix(".msg")?;
        let mut parts = stem.split('-');
        let band = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let expires: u64 = parts.next()?.parse().ok()?;
        let redelivered = match parts.next()? {
            "r" => true,
            "n" => false,
            _ => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(MessageName { band, seq, pid, expires_ms: (expires > 0).then_some(expires), redelivered })
    }

    /// Whether it has expired at `now_ms`.
    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms)
    }
}

/// The name of a claimed message file: `<owner>~<message file name>`, the owner being
/// `<pid>.<connection>` of the connection whose channel holds it.
pub(crate) fn claimed_name(owner: &str, name: &MessageName) -> String {
    format!("{owner}~{}", name.file_name())
}

/// The owner's process id and the message name of a claimed file name.
pub(crate) fn parse_claimed(file_name: &str) -> Option<(u32, MessageName)> {
    let (owner, name) = file_name.split_once('~')?;
    let pid = owner.split('.').next()?.parse().ok()?;
    Some((pid, MessageName::parse(name)?))
}

/// FNV-1a over some bytes (binding file names).
pub(crate) fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_distinct() {
        assert_eq!(encode("queue", "celery").unwrap(), "celery");
        assert_eq!(encode("queue", "a.b-c_d").unwrap(), "a.b-c_d");
        assert_eq!(encode("queue", "../etc").unwrap(), "%2E.%2Fetc");
        assert_eq!(encode("queue", "a/b").unwrap(), "a%2Fb");
        assert_eq!(encode("queue", "é~").unwrap(), "%C3%A9%7E");
        assert_ne!(encode("queue", "a%2Fb").unwrap(), encode("queue", "a/b").unwrap());
        assert!(encode("queue", "").is_err());
        assert!(encode("queue", &"x".repeat(500)).is_err());
    }

    #[test]
    fn message_names_round_trip_and_sort() {
        let a = MessageName::new(0, None);
        let b = MessageName::new(0, Some(1_700_000_000_000));
        let high = MessageName::new(0, None);
        let low = MessageName::new(5, None);
        assert_eq!(MessageName::parse(&a.file_name()), Some(a));
        assert_eq!(MessageName::parse(&b.file_name()), Some(b));
        let requeued = MessageName { redelivered: true, ..a };
        assert_eq!(MessageName::parse(&requeued.file_name()), Some(requeued));
        let mut names = vec![low.file_name(), b.file_name(), high.file_name(), a.file_name()];
        names.sort();
        assert_eq!(names, vec![a.file_name(), b.file_name(), high.file_name(), low.file_name()]);
        assert!(b.expired(1_700_000_000_000) && !b.expired(1_699_999_999_999) && !a.expired(u64::MAX));
        for bad in ["", "x.msg", "001-2-3-4-x.msg", "001-2-3-4-n-5.msg", "001-2-3-4-n.tmp"] {
            assert_eq!(MessageName::parse(bad), None, "{bad}");
        }
        let claimed = claimed_name("42.7", &a);
        assert_eq!(parse_claimed(&claimed), Some((42, a)));
        assert_eq!(parse_claimed("junk"), None);
    }

    #[test]
    fn sequence_is_strictly_increasing() {
        let seqs: Vec<u64> = (0..1000).map(|_| next_seq()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }
}
