//! Python Kombu's names on Redis: binding sets and their members, priority sub-queues, fanout channels and
//! the patterns that subscribe to them (pure).

/// Kombu's default separator inside binding members and priority queue names (option `sep`; Celery
/// documents `sep=':'`). Every function here takes the separator in use.
pub const DEFAULT_SEP: &str = "\x06\x16";

/// The binding set of an exchange: `_kombu.binding.<exchange>`.
pub fn binding_key(prefix: &str, exchange: &str) -> String {
    [prefix, "_kombu.binding.", exchange].concat()
}

/// The set Kombu 5.7 keeps beside it for bindings of queues without `x-expires`.
pub fn binding_permanent_key(prefix: &str, exchange: &str) -> String {
    format!("{prefix}_kombu.binding_permanent.{exchange}")
}

/// A binding set member: `routing_key sep pattern sep queue`.
pub fn binding_member(routing_key: &str, pattern: &str, queue: &str, sep: &str) -> String {
    format!("{routing_key}{sep}{pattern}{sep}{queue}")
}

/// One member of a binding set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The binding key.
    pub routing_key: String,
    /// Kombu's pattern field (a regex for topic bindings, JSON arguments for headers bindings).
    pub pattern: String,
    /// The bound queue.
    pub queue: String,
}

/// Splits a member written with `sep`: the routing key ends at the first separator, the pattern at the
/// second, the queue is the rest. `None` when it is not a member (or `sep` is empty).
pub fn parse_member(raw: &[u8], sep: &str) -> Option<Member> {
    if sep.is_empty() {
        return None;
    }
    let s = std::str::from_utf8(raw).ok()?;
    let (routing_key, rest) = s.split_once(sep)?;
    let (pattern, queue) = rest.split_once(sep)?;
    Some(Member { routing_key: routing_key.into(), pattern: pattern.into(), queue: queue.into() })
}

/// Kombu's regex for a topic binding key (`a.#` becomes `^a\..*?$`, `*` becomes `[^\.]+`), written into
/// the member so that Python publishers route to Rust bindings.
pub fn topic_pattern(routing_key: &str) -> String {
    let escaped: String = routing_key
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '#' | '*') {
                c.to_string()
            } else if c == '\0' {
                "\\000".to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect();
    let words: Vec<&str> = escaped
        .split('.')
        .map(|w| match w {
            "*" => r"[^\.]+",
            "#" => r".*?",
            other => other,
        })
        .collect();
    format!("^{}$", words.join(r"\."))
}

/// The priority band of a message priority: clamped to 0-9 (Kombu's virtual range), then the highest
/// step not above it.
pub fn priority_step(priority: u8, steps: &[u8]) -> u8 {
    let p = priority.min(9);
    steps.iter().copied().filter(|s| *s <= p).max().unwrap_or(0)
}

/// The list holding a queue's messages of one band: the queue itself for band 0, `queue sep step`
/// otherwise (Kombu's `_q_for_pri`).
pub fn queue_key(prefix: &str, queue: &str, step: u8, sep: &str) -> String {
    if step == 0 {
        return [prefix, queue].concat();
    }
    format!("{prefix}{queue}{}", step_suffix(step, sep))
}

/// The suffix a band adds to a queue name (empty for band 0).
pub fn step_suffix(step: u8, sep: &str) -> String {
    if step == 0 {
        String::new()
    } else {
        format!("{sep}{step}")
    }
}

/// Every list of a queue, in the order Kombu's BRPOP reads them (band 0 first).
pub fn queue_keys(prefix: &str, queue: &str, steps: &[u8], sep: &str) -> Vec<String> {
    steps.iter().map(|s| queue_key(prefix, queue, *s, sep)).collect()
}

/// The channel a fanout message is published to: `<prefix><fanout prefix><exchange>`, plus
/// `/<routing key>` with fanout patterns.
pub fn fanout_topic(prefix: &str, fanout_prefix: &str, exchange: &str, routing_key: &str, patterns: bool) -> String {
    if patterns && !routing_key.is_empty() {
        format!("{prefix}{fanout_prefix}{exchange}/{routing_key}")
    } else {
        format!("{prefix}{fanout_prefix}{exchange}")
    }
}

/// Escapes glob characters so that a name matches only itself in PSUBSCRIBE.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The PSUBSCRIBE patterns that take every fanout message of an exchange, whatever its routing key
/// (AMQP's rule: a fanout exchange ignores routing keys).
pub fn fanout_patterns(prefix: &str, fanout_prefix: &str, exchange: &str, patterns: bool) -> Vec<String> {
    let base = glob_escape(&format!("{prefix}{fanout_prefix}{exchange}"));
    if patterns {
        vec![base.clone(), format!("{base}/*")]
    } else {
        vec![base]
    }
}

/// The exchange a fanout channel name belongs to, as Kombu reads it: the global prefix removed, then
/// everything up to the first `.` when the name starts with `/`, then up to the first `/`.
pub fn fanout_exchange<'a>(prefix: &str, channel: &'a str) -> &'a str {
    let rest = channel.strip_prefix(prefix).unwrap_or(channel);
    let rest = if rest.starts_with('/') { rest.split_once('.').map(|(_, r)| r).unwrap_or("") } else { rest };
    rest.split('/').next().unwrap_or("")
}

/// The smallest set of key prefixes covering every prefix given (Redis refuses overlapping prefixes in
/// `CLIENT TRACKING ... BCAST`).
pub fn minimal_prefixes(mut prefixes: Vec<String>) -> Vec<String> {
    prefixes.sort();
    prefixes.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in prefixes {
        if !out.iter().any(|kept| p.starts_with(kept.as_str())) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_as_kombu_writes_them() {
        assert_eq!(binding_member("k", "", "q", DEFAULT_SEP), "k\x06\x16\x06\x16q");
        let m = parse_member(b"a.#\x06\x16^a\\..*?$\x06\x16tq", DEFAULT_SEP).unwrap();
        assert_eq!((m.routing_key.as_str(), m.pattern.as_str(), m.queue.as_str()), ("a.#", r"^a\..*?$", "tq"));
        assert!(parse_member(b"no separators", DEFAULT_SEP).is_none());
        assert!(parse_member(b"\xff\x06\x16\x06\x16q", DEFAULT_SEP).is_none());
        // Celery's sep=':': Python Kombu writes `k::q` for a direct binding.
        assert_eq!(binding_member("k", "", "q", ":"), "k::q");
        let m = parse_member(b"k::q", ":").unwrap();
        assert_eq!((m.routing_key.as_str(), m.pattern.as_str(), m.queue.as_str()), ("k", "", "q"));
        assert!(parse_member(b"k\x06\x16\x06\x16q", ":").is_none(), "a member of another separator");
        assert!(parse_member(b"k::q", "").is_none());
        assert_eq!(binding_key("p:", "ex"), "p:_kombu.binding.ex");
        assert_eq!(binding_permanent_key("", "ex"), "_kombu.binding_permanent.ex");
    }

    #[test]
    fn topic_patterns_match_kombu() {
        // Seen on a live server with Python Kombu 5.7.
        assert_eq!(topic_pattern("a.#"), r"^a\..*?$");
        assert_eq!(topic_pattern("*.b"), r"^[^\.]+\.b$");
        assert_eq!(topic_pattern("a-b.c"), r"^a\-b\.c$");
        assert_eq!(topic_pattern(""), "^$");
    }

    #[test]
    fn priority_bands() {
        let steps = [0, 3, 6, 9];
        let bands: Vec<u8> = (0..=12).map(|p| priority_step(p, &steps)).collect();
        assert_eq!(bands, vec![0, 0, 0, 3, 3, 3, 6, 6, 6, 9, 9, 9, 9]);
        assert_eq!(queue_key("", "q", 0, DEFAULT_SEP), "q");
        assert_eq!(queue_key("x:", "q", 6, DEFAULT_SEP), "x:q\x06\x166");
        assert_eq!(queue_key("", "q", 3, ":"), "q:3");
        assert_eq!(queue_keys("", "q", &steps, ":"), vec!["q", "q:3", "q:6", "q:9"]);
        assert_eq!(step_suffix(9, ":"), ":9");
        assert_eq!(step_suffix(0, ":"), "");
        assert_eq!(priority_step(4, &[0, 5]), 0);
    }

    #[test]
    fn fanout_names() {
        assert_eq!(fanout_topic("", "/0.", "ex", "rk", true), "/0.ex/rk");
        assert_eq!(fanout_topic("", "/0.", "ex", "", true), "/0.ex");
        assert_eq!(fanout_topic("p:", "/0.", "ex", "rk", false), "p:/0.ex");
        assert_eq!(fanout_patterns("", "/0.", "e*x", true), vec![r"/0.e\*x".to_string(), r"/0.e\*x/*".to_string()]);
        assert_eq!(fanout_exchange("", "/0.ex/rk"), "ex");
        assert_eq!(fanout_exchange("p:", "p:/0.my.ex"), "my.ex");
        assert_eq!(fanout_exchange("", "plain/rk"), "plain");
    }

    #[test]
    fn prefixes_do_not_overlap() {
        let got = minimal_prefixes(vec!["q2".into(), "q".into(), "r".into(), "q".into()]);
        assert_eq!(got, vec!["q".to_string(), "r".to_string()]);
    }
}
