//! Topic patterns: dot-separated words, `*` matches exactly one word, `#` zero or more.

/// Whether the topic `pattern` matches `routing_key`, by AMQP 0-9-1 rules.
///
/// Unlike Python Kombu's regex translation, `a.#` matches `a` (`#` may match zero words).
///
/// ```
/// use kombu_core::routing::topic_matches;
/// assert!(topic_matches("a.#", "a"));
/// assert!(topic_matches("a.#", "a.b.c"));
/// assert!(topic_matches("a.*", "a.b"));
/// assert!(!topic_matches("a.*", "a.b.c"));
/// assert!(!topic_matches("a.*", "a"));
/// assert!(topic_matches("#", "x.y"));
/// assert!(topic_matches("#.b.#", "b"));
/// ```
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    if !pattern.contains(['*', '#']) {
        return pattern == routing_key;
    }
    let pat: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    // reach[j]: the first i pattern words can match the first j key words.
    let mut reach = vec![false; key.len() + 1];
    reach[0] = true;
    for word in &pat {
        let mut next = vec![false; key.len() + 1];
        match *word {
            "#" => {
                let mut any = false;
                for j in 0..=key.len() {
                    any |= reach[j];
                    next[j] = any;
                }
            }
            "*" => {
                next[1..].copy_from_slice(&reach[..key.len()]);
            }
            literal => {
                for j in 0..key.len() {
                    next[j + 1] = reach[j] && key[j] == literal;
                }
            }
        }
        reach = next;
    }
    reach[key.len()]
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn table() {
        let cases = [
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("*", "a", true),
            ("*", "a.b", false),
            ("a.#", "a", true),
            ("a.#", "a.b", true),
            ("a.#", "a.b.c", true),
            ("a.#", "b.a", false),
            ("a.*", "a.b", true),
            ("a.*", "a", false),
            ("a.*", "a.b.c", false),
            ("#", "", true),
            ("#", "a.b.c", true),
            ("#.c", "c", true),
            ("#.c", "a.b.c", true),
            ("#.c", "a.b.d", false),
            ("a.*.#", "a", false),
            ("a.*.#", "a.b", true),
            ("a.#.#.b", "a.b", true),
            ("*.*", "a.b", true),
            ("*.*", "a..", false),
            ("a.b.*", "a.b.", true),
        ];
        for (p, k, want) in cases {
            assert_eq!(topic_matches(p, k), want, "pattern {p:?} key {k:?}");
        }
    }

    #[test]
    fn many_hashes_stay_fast() {
        let pattern = std::iter::repeat_n("#", 200).collect::<Vec<_>>().join(".") + ".z";
        let key = std::iter::repeat_n("a", 200).collect::<Vec<_>>().join(".");
        assert!(!topic_matches(&pattern, &key));
    }
}
