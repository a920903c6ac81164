//! Fuzz target: the topic matcher (`kombu_core::routing::topic_matches`) against a plain recursive
//! reference written from the AMQP 0-9-1 rules. Input: the pattern, a newline, the routing key.

#![no_main]

use std::collections::HashMap;

use kombu_core::routing::topic_matches;
use libfuzzer_sys::fuzz_target;

/// AMQP topic matching, word by word: `*` is exactly one word, `#` zero or more, anything else itself.
/// Top-down recursion over (pattern word, key word) positions, remembered so that many `#` stay cheap;
/// the matcher under test works bottom-up over the pattern, one word at a time.
fn reference(pattern: &[&str], key: &[&str]) -> bool {
    fn go(p: &[&str], k: &[&str], i: usize, j: usize, memo: &mut HashMap<(usize, usize), bool>) -> bool {
        if let Some(&known) = memo.get(&(i, j)) {
            return known;
        }
        let result = match p.get(i) {
            None => j == k.len(),
            Some(&"#") => (j..=k.len()).any(|skip| go(p, k, i + 1, skip, memo)),
            Some(&"*") => j < k.len() && go(p, k, i + 1, j + 1, memo),
            Some(word) => k.get(j) == Some(word) && go(p, k, i + 1, j + 1, memo),
        };
        memo.insert((i, j), result);
        result
    }
    go(pattern, key, 0, 0, &mut HashMap::new())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern, key) = text.split_once('\n').unwrap_or((text, ""));
    let got = topic_matches(pattern, key);
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    // The reference costs up to pattern words x key words^2 and recurses once per pattern word; keep it to
    // inputs it answers quickly.
    if p.len() <= 1_000 && p.len() * k.len() <= 20_000 {
        assert_eq!(got, reference(&p, &k), "pattern {pattern:?} key {key:?}");
    }
    // Facts that hold whatever the words: a pattern matches itself when it has no wildcard, and `#`
    // matches every key.
    if !pattern.contains(['*', '#']) {
        assert!(topic_matches(pattern, pattern));
    }
    assert!(topic_matches("#", key));
});
