//! Declared URL options: each transport lists the query options it takes, as a table of
//! [`OptionSpec`]s (name and [`OptionKind`]: seconds with a range, a count with a range, a flag, text,
//! one of a few words, a list of numbers), returned by
//! [`Transport::options`]. kombu-core checks a URL against that table in one
//! place ([`check_url`], called by [`Connection::open`](crate::Connection::open)): an unknown name is an
//! error naming the nearest known one, a value that does not parse or is out of range is an error naming
//! the option, the value and the allowed range. A transport then reads its values through [`Options`],
//! which parses by the same table, so what was checked is what is used.
//!
//! ```
//! use std::time::Duration;
//! use kombu_core::options::{OptionSpec, Options};
//! use kombu_core::{BrokerUrl, ErrorKind};
//!
//! const OPTIONS: &[OptionSpec] = &[
//!     OptionSpec::seconds("visibility_timeout", Duration::from_secs(86_400)),
//!     OptionSpec::count("max_connections", 1, 1000),
//!     OptionSpec::choice("queue_order_strategy", &["round_robin", "priority", "sorted"]),
//! ];
//! let url: BrokerUrl = "x://h/?visibility_timeout=1.5&queue_order_strategy=priority".parse().unwrap();
//! let o = Options::new("x", OPTIONS, &url).unwrap();
//! assert_eq!(o.seconds("visibility_timeout").unwrap(), Some(Duration::from_millis(1500)));
//! assert_eq!(o.choice("queue_order_strategy").unwrap(), Some("priority"));
//! assert_eq!(o.count("max_connections").unwrap(), None);
//!
//! let typo: BrokerUrl = "x://h/?visiblity_timeout=5".parse().unwrap();
//! let e = Options::new("x", OPTIONS, &typo).unwrap_err();
//! assert_eq!(e.kind(), ErrorKind::InvalidArgument);
//! assert!(e.to_string().contains("unknown option 'visiblity_timeout' for transport x: did you mean 'visibility_timeout'?"));
//!
//! let huge: BrokerUrl = "x://h/?visibility_timeout=1e20".parse().unwrap();
//! let e = Options::new("x", OPTIONS, &huge).unwrap_err();
//! assert!(e.to_string().contains("from 0 to 86400 (1 day)"), "{e}");
//! ```

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::transport::Transport;
use crate::url::BrokerUrl;

/// What kind of value an option takes, with its allowed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionKind {
    /// A number of seconds (fractions allowed, as in Kombu), finite, from `min` to `max`.
    Seconds {
        /// The least value allowed.
        min: Duration,
        /// The greatest value allowed.
        max: Duration,
    },
    /// A whole number from `min` to `max`.
    Count {
        /// The least value allowed.
        min: u64,
        /// The greatest value allowed.
        max: u64,
    },
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// Any text.
    Text,
    /// One of these words (compared without regard to case).
    Choice(&'static [&'static str]),
    /// Whole numbers from `min` to `max`, separated by commas, optionally in brackets (`0,3,6,9` or
    /// `[0, 3, 6, 9]`).
    Counts {
        /// The least value allowed.
        min: u64,
        /// The greatest value allowed.
        max: u64,
    },
}

/// One option a transport takes: its name in the URL query and the kind of value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The name in the URL query.
    pub name: &'static str,
    /// The kind of value and its range.
    pub kind: OptionKind,
}

impl OptionSpec {
    /// A number of seconds from 0 to `max`.
    pub const fn seconds(name: &'static str, max: Duration) -> OptionSpec {
        OptionSpec { name, kind: OptionKind::Seconds { min: Duration::ZERO, max } }
    }
    /// A number of seconds from `min` to `max`.
    pub const fn seconds_between(name: &'static str, min: Duration, max: Duration) -> OptionSpec {
        OptionSpec { name, kind: OptionKind::Seconds { min, max } }
    }
    /// A whole number from `min` to `max`.
    pub const fn count(name: &'static str, min: u64, max: u64) -> OptionSpec {
        OptionSpec { name, kind: OptionKind::Count { min, max } }
    }
    /// A flag.
    pub const fn flag(name: &'static str) -> OptionSpec {
        OptionSpec { name, kind: OptionKind::Bool }
    }
    /// Any text.
    pub const fn text(name: &'static str) -> OptionSpec {
        OptionSpec { name, kind: OptionKind::Text }
    }
    /// One of `words`.
    pub const fn choice(name: &'static str, words: &'static [&'static str]) -> OptionSpec {
        OptionSpec { name, kind: OptionKind::Choice(words) }
    }
    /// A list of whole numbers from `min` to `max`.
    pub const fn counts(name: &'static str, min: u64, max: u64) -> OptionSpec {
        OptionSpec { name, kind: OptionKind::Counts { min, max } }
    }

    /// Parses a value of this option; the error names the option, the value and what is allowed.
    pub fn parse<'v>(&self, transport: &str, raw: &'v str) -> Result<OptionValue<'v>> {
        let bad = || {
            Error::invalid(format!(
                "invalid option '{}={raw}' for transport {transport}: expected {}",
                self.name,
                Expected(self.kind)
            ))
        };
        let v = raw.trim();
        match self.kind {
            OptionKind::Seconds { min, max } => {
                let secs = v.parse::<f64>().map_err(|_| bad())?;
                if !secs.is_finite() || secs < min.as_secs_f64() || secs > max.as_secs_f64() {
                    return Err(bad());
                }
                Duration::try_from_secs_f64(secs).map(|d| OptionValue::Seconds(d.clamp(min, max))).map_err(|_| bad())
            }
            OptionKind::Count { min, max } => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(OptionValue::Count(n)),
                _ => Err(bad()),
            },
            OptionKind::Bool => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(OptionValue::Bool(true)),
                "0" | "false" | "no" | "off" => Ok(OptionValue::Bool(false)),
                _ => Err(bad()),
            },
            OptionKind::Text => Ok(OptionValue::Text(raw)),
            OptionKind::Choice(words) => {
                words.iter().find(|w| w.eq_ignore_ascii_case(v)).map(|w| OptionValue::Choice(w)).ok_or_else(bad)
            }
            OptionKind::Counts { min, max } => {
                let inner = v.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(v);
                inner
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| match s.parse::<u64>() {
                        Ok(n) if (min..=max).contains(&n) => Ok(n),
                        _ => Err(bad()),
                    })
                    .collect::<Result<Vec<u64>>>()
                    .map(OptionValue::Counts)
            }
        }
    }
}

/// A parsed option value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OptionValue<'a> {
    /// Of [`OptionKind::Seconds`].
    Seconds(Duration),
    /// Of [`OptionKind::Count`].
    Count(u64),
    /// Of [`OptionKind::Bool`].
    Bool(bool),
    /// Of [`OptionKind::Text`].
    Text(&'a str),
    /// Of [`OptionKind::Choice`]: the word as declared.
    Choice(&'static str),
    /// Of [`OptionKind::Counts`].
    Counts(Vec<u64>),
}

/// "what is allowed", for messages.
struct Expected(OptionKind);

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            OptionKind::Seconds { min, max } => {
                write!(f, "a number of seconds from {} to {}", Secs(min), Secs(max))?;
                match human(max) {
                    Some(h) => write!(f, " ({h})"),
                    None => Ok(()),
                }
            }
            OptionKind::Count { min, max } => write!(f, "a whole number from {min} to {max}"),
            OptionKind::Bool => f.write_str("true or false"),
            OptionKind::Text => f.write_str("text"),
            OptionKind::Choice(words) => {
                f.write_str("one of ")?;
                for (i, w) in words.iter().enumerate() {
                    write!(f, "{}'{w}'", if i == 0 { "" } else { ", " })?;
                }
                Ok(())
            }
            OptionKind::Counts { min, max } => write!(f, "whole numbers from {min} to {max}, separated by commas"),
        }
    }
}

/// Seconds as a plain number (`0.001`, `5`, `86400`).
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{}", self.0.as_secs())
        } else {
            write!(f, "{}", self.0.as_secs_f64())
        }
    }
}

/// A whole number of days, hours or minutes, when the duration is one.
fn human(d: Duration) -> Option<String> {
    let s = d.as_secs();
    if d.subsec_nanos() != 0 || s < 60 {
        return None;
    }
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    Some(if s.is_multiple_of(86_400) {
        plural(s / 86_400, "day")
    } else if s.is_multiple_of(3600) {
        plural(s / 3600, "hour")
    } else if s.is_multiple_of(60) {
        plural(s / 60, "minute")
    } else {
        return None;
    })
}

/// The error for a name no option has: the nearest known name when there is a close one.
fn unknown(transport: &str, specs: &[OptionSpec], name: &str) -> Error {
    let mut msg = format!("unknown option '{name}' for transport {transport}");
    if specs.is_empty() {
        msg.push_str(": it takes no options");
        return Error::invalid(msg);
    }
    let nearest = specs
        .iter()
        .map(|s| (strsim::damerau_levenshtein(name, s.name), s.name))
        .filter(|(d, known)| *d <= 2.max(known.len() / 3))
        .min();
    match nearest {
        Some((_, known)) => msg.push_str(&format!(": did you mean '{known}'?")),
        None => {
            let mut names: Vec<&str> = specs.iter().map(|s| s.name).collect();
            names.sort_unstable();
            msg.push_str(&format!(" (known options: {})", names.join(", ")));
        }
    }
    Error::invalid(msg)
}

/// The options of one URL, checked against a transport's table: every name known, every value valid.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    transport: &'a str,
    specs: &'a [OptionSpec],
    url: &'a BrokerUrl,
}

impl<'a> Options<'a> {
    /// Checks every query option of `url` against `specs` (unknown names, parse, range).
    pub fn new(transport: &'a str, specs: &'a [OptionSpec], url: &'a BrokerUrl) -> Result<Options<'a>> {
        for (name, raw) in &url.query {
            let spec = specs.iter().find(|s| s.name == name).ok_or_else(|| unknown(transport, specs, name))?;
            spec.parse(transport, raw)?;
        }
        Ok(Options { transport, specs, url })
    }

    /// The value of an option, if the URL sets it. Asking for a name the table does not declare is an
    /// error (a bug in the transport, reported rather than ignored).
    pub fn get(&self, name: &str) -> Result<Option<OptionValue<'a>>> {
        let spec = self.specs.iter().find(|s| s.name == name).ok_or_else(|| {
            Error::invalid(format!("transport {} reads option '{name}', which it does not declare", self.transport))
        })?;
        match self.url.query.get(name) {
            None => Ok(None),
            Some(raw) => spec.parse(self.transport, raw).map(Some),
        }
    }

    fn wrong(&self, name: &str, what: &str) -> Error {
        Error::invalid(format!(
            "transport {} reads option '{name}' as {what}, which it does not declare",
            self.transport
        ))
    }

    /// A seconds option.
    pub fn seconds(&self, name: &str) -> Result<Option<Duration>> {
        match self.get(name)? {
            None => Ok(None),
            Some(OptionValue::Seconds(d)) => Ok(Some(d)),
            Some(_) => Err(self.wrong(name, "seconds")),
        }
    }

    /// A count option.
    pub fn count(&self, name: &str) -> Result<Option<u64>> {
        match self.get(name)? {
            None => Ok(None),
            Some(OptionValue::Count(n)) => Ok(Some(n)),
            Some(_) => Err(self.wrong(name, "a count")),
        }
    }

    /// A flag.
    pub fn flag(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name)? {
            None => Ok(None),
            Some(OptionValue::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(self.wrong(name, "a flag")),
        }
    }

    /// A text option.
    pub fn text(&self, name: &str) -> Result<Option<&'a str>> {
        match self.get(name)? {
            None => Ok(None),
            Some(OptionValue::Text(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(name, "text")),
        }
    }

    /// A choice: the word as declared.
    pub fn choice(&self, name: &str) -> Result<Option<&'static str>> {
        match self.get(name)? {
            None => Ok(None),
            Some(OptionValue::Choice(w)) => Ok(Some(w)),
            Some(_) => Err(self.wrong(name, "a choice")),
        }
    }

    /// A list of counts.
    pub fn counts(&self, name: &str) -> Result<Option<Vec<u64>>> {
        match self.get(name)? {
            None => Ok(None),
            Some(OptionValue::Counts(v)) => Ok(Some(v)),
            Some(_) => Err(self.wrong(name, "a list of counts")),
        }
    }
}

/// Checks a URL for its transport: the query options against the table the transport declares (if it
/// declares one), then the transport's own [`validate`](Transport::validate).
/// [`Connection::open`](crate::Connection::open) calls it for every URL of a failover list.
pub fn check_url(transport: &dyn Transport, url: &BrokerUrl) -> Result<()> {
    if let Some(specs) = transport.options() {
        Options::new(transport.name(), specs, url)?;
    }
    transport.validate(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    const T: &[OptionSpec] = &[
        OptionSpec::seconds("visibility_timeout", Duration::from_secs(31_536_000)),
        OptionSpec::seconds_between("connect_timeout", Duration::from_millis(1), Duration::from_secs(3600)),
        OptionSpec::count("max_connections", 1, 10_000),
        OptionSpec::flag("ack_emulation"),
        OptionSpec::text("global_keyprefix"),
        OptionSpec::choice("queue_order_strategy", &["round_robin", "priority", "sorted"]),
        OptionSpec::counts("priority_steps", 0, 9),
    ];

    fn opts(q: &str) -> Result<()> {
        let url: BrokerUrl = format!("t://h/?{q}").parse()?;
        Options::new("t", T, &url).map(|_| ())
    }

    fn message(q: &str) -> String {
        let e = opts(q).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{q}");
        e.to_string()
    }

    #[test]
    fn values_parse_by_kind() {
        let url: BrokerUrl = "t://h/?visibility_timeout=0.25&max_connections=7&ack_emulation=NO&global_keyprefix=a:\
                              &queue_order_strategy=Sorted&priority_steps=[0, 3,9]"
            .parse()
            .unwrap();
        let o = Options::new("t", T, &url).unwrap();
        assert_eq!(o.seconds("visibility_timeout").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(o.seconds("connect_timeout").unwrap(), None);
        assert_eq!(o.count("max_connections").unwrap(), Some(7));
        assert_eq!(o.flag("ack_emulation").unwrap(), Some(false));
        assert_eq!(o.text("global_keyprefix").unwrap(), Some("a:"));
        assert_eq!(o.choice("queue_order_strategy").unwrap(), Some("sorted"));
        assert_eq!(o.counts("priority_steps").unwrap(), Some(vec![0, 3, 9]));
        // Reading an undeclared name, or a declared one as the wrong kind, is an error, not a panic.
        assert!(o.seconds("nope").is_err());
        assert!(o.count("visibility_timeout").is_err());
    }

    #[test]
    fn unknown_names_suggest_the_nearest() {
        assert_eq!(
            message("visiblity_timeout=5"),
            "invalid argument: unknown option 'visiblity_timeout' for transport t: did you mean 'visibility_timeout'?"
        );
        assert!(message("max_conections=5").ends_with("did you mean 'max_connections'?"));
        let m = message("zzz=1");
        assert!(
            m.contains("unknown option 'zzz' for transport t (known options: ack_emulation, connect_timeout"),
            "{m}"
        );
        let url: BrokerUrl = "t://h/?x=1".parse().unwrap();
        let m = Options::new("memory", &[], &url).unwrap_err().to_string();
        assert!(m.ends_with("unknown option 'x' for transport memory: it takes no options"), "{m}");
    }

    #[test]
    fn values_out_of_range_name_the_option_value_and_range() {
        for q in [
            "visibility_timeout=1e20",
            "visibility_timeout=inf",
            "visibility_timeout=NaN",
            "visibility_timeout=-1",
            "visibility_timeout=abc",
            "visibility_timeout=1e19",
        ] {
            let m = message(q);
            assert!(m.contains(&format!("invalid option '{q}' for transport t")), "{m}");
            assert!(m.ends_with("expected a number of seconds from 0 to 31536000 (365 days)"), "{m}");
        }
        assert!(message("connect_timeout=0").ends_with("from 0.001 to 3600 (1 hour)"));
        assert!(message("max_connections=0").ends_with("expected a whole number from 1 to 10000"));
        assert!(message("max_connections=-3").ends_with("expected a whole number from 1 to 10000"));
        assert!(message("max_connections=99999999999999999999999").contains("from 1 to 10000"));
        assert!(message("ack_emulation=maybe").ends_with("expected true or false"));
        assert!(message("queue_order_strategy=fifo").ends_with("expected one of 'round_robin', 'priority', 'sorted'"));
        assert!(message("priority_steps=0,10").ends_with("whole numbers from 0 to 9, separated by commas"));
        assert!(opts("visibility_timeout=31536000&connect_timeout=0.001&max_connections=10000").is_ok());
    }

    #[test]
    fn human_ranges() {
        assert_eq!(human(Duration::from_secs(86_400)).as_deref(), Some("1 day"));
        assert_eq!(human(Duration::from_secs(7200)).as_deref(), Some("2 hours"));
        assert_eq!(human(Duration::from_secs(300)).as_deref(), Some("5 minutes"));
        assert_eq!(human(Duration::from_secs(65_535)), None);
        assert_eq!(human(Duration::from_secs(30)), None);
    }
}
