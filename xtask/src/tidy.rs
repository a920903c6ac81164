//! The tidy checks of `cargo xtask lint`, on the source text: every Rust file says its job in a `//!`
//! line, no file under a crate's `src/` is longer than [`MAX_LINES`], and kombu-core's code names no
//! broker (ARCHITECTURE.md, "Tidy rules").

use std::path::{Path, PathBuf};

use crate::root;

/// Longest a `.rs` file under a crate's `src/` may be, in lines. Test files (under `tests/`), examples
/// and benches are exempt.
pub(crate) const MAX_LINES: usize = 650;

/// The crates that are backends: kombu-core's code names none of them.
const BACKEND_CRATES: &[&str] = &["kombu_memory", "kombu_redis", "kombu_amqp"];

/// Broker words that may not appear in kombu-core's identifiers or string literals (case-insensitive).
const BROKER_WORDS: &[&str] = &["redis", "amqp", "rabbit"];

/// Where kombu-core may use a broker word, as (file, identifier or string), each with its reason.
/// `Queue::amqp_arguments`: AMQP is here the protocol whose queue-argument convention (`x-max-priority`,
/// `x-message-ttl`, ...) kombu's entities follow, as Python Kombu's do; it names no backend.
const BROKER_WORDS_ALLOWED: &[(&str, &str)] = &[("kombu-core/src/entity.rs", "amqp_arguments")];

/// URL schemes of the backends: a string literal in kombu-core's code may not be one, or contain one
/// followed by `://`.
const BACKEND_SCHEMES: &[&str] = &["memory", "redis", "rediss", "sentinel", "amqp", "amqps", "pyamqp"];

/// Runs every tidy check over the workspace.
pub(crate) fn run() -> Result<(), String> {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root, &mut files)?;
    let mut problems = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let rel = path.strip_prefix(&root).unwrap_or(path).to_string_lossy().replace('\\', "/");
        problems.extend(check_file(&rel, &text));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("tidy:\n  {}", problems.join("\n  ")))
    }
}

/// The problems of one file, `rel` being its path from the workspace root with `/` separators.
fn check_file(rel: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !first.starts_with("//!") {
        problems.push(format!("{rel}: no `//!` line saying what the file is for"));
    }
    let lines = text.lines().count();
    if lines > MAX_LINES && length_checked(rel) {
        problems.push(format!("{rel}: {lines} lines, more than {MAX_LINES}: split it by job"));
    }
    if rel.starts_with("kombu-core/src/") {
        let allowed: Vec<&str> = BROKER_WORDS_ALLOWED.iter().filter(|(f, _)| *f == rel).map(|(_, w)| *w).collect();
        let found = broker_names(text, &allowed);
        problems.extend(found.into_iter().map(|(line, what)| format!("{rel}:{line}: {what}")));
    }
    problems
}

/// Whether the length limit applies: a file under a `src/` folder of the workspace.
fn length_checked(rel: &str) -> bool {
    rel.split('/').any(|c| c == "src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                rust_files(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Where kombu-core's code names a broker: backend crate paths, identifiers or string literals with a
/// broker word, string literals that are a backend's scheme or hold a `scheme://` URL; as (line, what).
/// Comments (doc comments and their examples included) and `#[cfg(test)]` items are not looked at: the
/// rule is about what the code does, and kombu-core's doc tests cannot use a backend anyway. Identifiers
/// and strings in `allowed` are let through.
fn broker_names(text: &str, allowed: &[&str]) -> Vec<(usize, String)> {
    let tokens = tokens(text);
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if is_cfg_test(&tokens[i..]) {
            i = skip_item(&tokens, i + 7);
            continue;
        }
        let (line, ref token) = tokens[i];
        i += 1;
        match token {
            Token::Ident(s) | Token::Str(s) if allowed.contains(&s.as_str()) => {}
            Token::Ident(id) => {
                let lower = id.to_lowercase();
                if BACKEND_CRATES.contains(&id.as_str()) {
                    found.push((line, format!("backend crate `{id}`")));
                } else if let Some(w) = BROKER_WORDS.iter().find(|w| lower.contains(*w)) {
                    found.push((line, format!("identifier `{id}` names a broker ({w})")));
                }
            }
            Token::Str(s) => {
                let lower = s.to_lowercase();
                let scheme = BACKEND_SCHEMES.iter().find(|b| lower == **b || lower.contains(&format!("{b}://")));
                if let Some(b) = scheme {
                    found.push((line, format!("string {s:?} names the `{b}` backend")));
                } else if let Some(w) = BROKER_WORDS.iter().find(|w| lower.contains(*w)) {
                    found.push((line, format!("string {s:?} names a broker ({w})")));
                }
            }
            Token::Punct(_) => {}
        }
    }
    found
}

/// `#[cfg(test)]` at the start of `tokens`.
fn is_cfg_test(tokens: &[(usize, Token)]) -> bool {
    let want = ["#", "[", "cfg", "(", "test", ")", "]"];
    tokens.len() >= want.len() && tokens.iter().zip(want).all(|((_, t), w)| t.text() == w)
}

/// The index after the item starting at `i`: after its `;` (outside brackets), or after the `}` that
/// closes its first `{`.
fn skip_item(tokens: &[(usize, Token)], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < tokens.len() {
        match tokens[i].1.text() {
            "{" | "(" | "[" => depth += 1,
            "}" | ")" | "]" => {
                depth = depth.saturating_sub(1);
                if depth == 0 && tokens[i].1.text() == "}" {
                    return i + 1;
                }
            }
            ";" if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// What the broker check looks at in Rust source: identifiers, string literal contents, brackets.
#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Punct(char),
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Ident(s) => s,
            Token::Str(_) => "\"",
            Token::Punct(c) => match c {
                '#' => "#",
                '[' => "[",
                ']' => "]",
                '(' => "(",
                ')' => ")",
                '{' => "{",
                '}' => "}",
                _ => ";",
            },
        }
    }
}

/// The tokens of `text` with their line numbers (1-based), comments dropped. A small lexer, enough for
/// rustfmt-formatted code: strings (with escapes, byte and raw strings), char literals and lifetimes,
/// line and nested block comments.
fn tokens(text: &str) -> Vec<(usize, Token)> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if ch == '"' || (ch == 'b' && at(i + 1) == '"') {
            let start_line = line;
            i += if ch == 'b' { 2 } else { 1 };
            let mut s = String::new();
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    s.push(c[i]);
                    i += 1;
                }
                line += usize::from(at(i) == '\n');
                s.push(at(i));
                i += 1;
            }
            i += 1;
            out.push((start_line, Token::Str(s)));
        } else if let Some((prefix, hashes)) = raw_string_start(&c, i) {
            let start_line = line;
            i += prefix + hashes + 1;
            let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let mut s = String::new();
            while i < c.len() && !c[i..].starts_with(&close) {
                line += usize::from(c[i] == '\n');
                s.push(c[i]);
                i += 1;
            }
            i += close.len();
            out.push((start_line, Token::Str(s)));
        } else if ch == '\'' {
            // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a, 'static).
            if at(i + 1) == '\\' {
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let mut id = String::new();
            while at(i).is_alphanumeric() || at(i) == '_' {
                id.push(c[i]);
                i += 1;
            }
            out.push((line, Token::Ident(id)));
        } else {
            if "#[](){};".contains(ch) {
                out.push((line, Token::Punct(ch)));
            }
            i += 1;
        }
    }
    out
}

/// At a raw string (`r"`, `r#"`, `br##"`...): the length of its prefix (`r` or `br`) and its number of `#`.
fn raw_string_start(c: &[char], i: usize) -> Option<(usize, usize)> {
    let prefix = match (c.get(i), c.get(i + 1)) {
        (Some('r'), _) => 1,
        (Some('b'), Some('r')) => 2,
        _ => return None,
    };
    let hashes = c[i + prefix..].iter().take_while(|&&ch| ch == '#').count();
    (c.get(i + prefix + hashes) == Some(&'"')).then_some((prefix, hashes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<usize> {
        broker_names(text, &[]).into_iter().map(|(line, _)| line).collect()
    }

    #[test]
    fn broker_names_in_code_are_found_with_their_lines() {
        let text =
            "//! Core.\nuse kombu_redis::X;\nconst S: &str = \"amqp\";\nfn f() {\n    open(\"memory://x\");\n}\n\
                    struct RabbitThing;\nconst OK: &str = \"in memory of\";\n";
        assert_eq!(found(text), [2, 3, 5, 7]);
        let problems = broker_names(text, &[]);
        assert!(problems[0].1.contains("backend crate `kombu_redis`"), "{problems:?}");
        assert!(problems[2].1.contains("`memory` backend"), "{problems:?}");
        assert_eq!(broker_names(text, &["amqp", "RabbitThing"]).len(), 2, "allowed names pass");
    }

    #[test]
    fn comments_doc_examples_and_test_items_are_not_code() {
        let text = r##"//! Backends (`kombu-redis`, `redis://`) register themselves.
/// ```
/// Connection::open("amqp://h//").unwrap();
/// ```
fn f() -> &'static str { /* "redis" /* nested */ */ 'x'; '\''; "fine" }
const RAW: &str = r#"a "quoted" word"#;
#[cfg(test)]
mod tests {
    #[test]
    fn t() { assert_eq!(parse("redis://h"), Some("redis")); let s = "{"; }
}
#[cfg(test)]
use kombu_memory as _;
const AFTER: &str = "rediss";
"##;
        assert_eq!(broker_names(text, &[]), [(14, "string \"rediss\" names the `rediss` backend".to_string())]);
    }

    #[test]
    fn strings_keep_their_lines_and_escapes() {
        let toks = tokens("a\n\"x\\\"y\nz\" b r\"raw\" 'c' '\\'' 'life br#\"x\"#");
        assert_eq!(
            toks,
            [
                (1, Token::Ident("a".into())),
                (2, Token::Str("x\\\"y\nz".into())),
                (3, Token::Ident("b".into())),
                (3, Token::Str("raw".into())),
                (3, Token::Str("x".into())),
            ]
        );
    }

    #[test]
    fn length_limit_applies_under_src_only() {
        let long = format!("//! Long.\n{}", "x\n".repeat(MAX_LINES));
        assert!(check_file("kombu-memory/src/big.rs", &long)[0].contains("lines, more than 650"));
        assert!(check_file("src/cli/big.rs", &long)[0].contains("split it by job"));
        assert!(check_file("kombu-redis/tests/big.rs", &long).is_empty());
        assert!(check_file("kombu-examples/examples/big.rs", &long).is_empty());
        let short = format!("//! Short.\n{}", "x\n".repeat(MAX_LINES - 1));
        assert!(check_file("kombu-memory/src/ok.rs", &short).is_empty());
        assert_eq!(check_file("kombu-memory/src/ok.rs", "fn main() {}\n").len(), 1, "the `//!` line is checked");
    }
}
