//! Broker URLs (`scheme://user:pass@host:port/vhost?opt=val`) and Kombu's failover lists (`url1;url2`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// One parsed broker URL.
///
/// The virtual host follows Kombu: the path without its first `/`, percent-decoded, so `amqp://h//`
/// names vhost `/`, `redis://h/3` names database `3`, and `memory://` has none.
///
/// ```
/// use kombu_core::BrokerUrl;
/// let u: BrokerUrl = "amqp://guest:s%3Bcret@localhost:5672//?heartbeat=10".parse().unwrap();
/// assert_eq!(u.scheme, "amqp");
/// assert_eq!(u.password.as_deref(), Some("s;cret"));
/// assert_eq!(u.virtual_host.as_deref(), Some("/"));
/// assert_eq!(u.query["heartbeat"], "10");
/// assert_eq!(u.to_string(), "amqp://guest:**@localhost:5672//?heartbeat=10");
/// assert!("not a url".parse::<BrokerUrl>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerUrl {
    /// The scheme, which picks the transport (`memory`, `redis`, `amqp`, ...).
    pub scheme: String,
    /// User name.
    pub userid: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Host name or address (IPv6 without brackets).
    pub hostname: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Virtual host (Kombu's rule: the path without its leading `/`).
    pub virtual_host: Option<String>,
    /// The decoded path as written, with its leading `/` (for file-based transports).
    pub path: String,
    /// Query options (transport options).
    pub query: BTreeMap<String, String>,
}

impl BrokerUrl {
    /// A query option parsed as `T`, with a clear error naming the option when it does not parse.
    pub fn option<T: FromStr>(&self, name: &str) -> Result<Option<T>>
    where
        T::Err: fmt::Display,
    {
        match self.query.get(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse::<T>()
                .map(Some)
                .map_err(|e| Error::invalid(format!("option '{name}={raw}' in URL {self}: {e}"))),
        }
    }

    /// A boolean query option (`1/0`, `true/false`, `yes/no`, `on/off`).
    pub fn bool_option(&self, name: &str) -> Result<Option<bool>> {
        match self.query.get(name).map(|s| s.to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(Some(true)),
                "0" | "false" | "no" | "off" => Ok(Some(false)),
                _ => Err(Error::invalid(format!("option '{name}={v}' in URL {self}: expected true or false"))),
            },
        }
    }
}

fn decode(s: &str) -> Result<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::invalid(format!("URL part '{s}' is not valid UTF-8 after percent-decoding")))
}

impl FromStr for BrokerUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let bad = |why: &str| Error::invalid(format!("invalid broker URL '{}': {why}", redact(s)));
        let Some((scheme, _)) = s.split_once("://") else {
            return Err(bad("expected scheme://[user:password@]host[:port][/vhost]"));
        };
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
            return Err(bad("the scheme must be letters, digits, '+', '-' or '.'"));
        }
        let parsed = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        let hostname = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => Some(decode(d)?),
            Some(url::Host::Ipv4(a)) => Some(a.to_string()),
            Some(url::Host::Ipv6(a)) => Some(a.to_string()),
            _ => None,
        };
        let userid = match parsed.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = match parsed.password() {
            None | Some("") => None,
            Some(p) => Some(decode(p)?),
        };
        let path = decode(parsed.path())?;
        let vhost = path.strip_prefix('/').unwrap_or(&path);
        let virtual_host = if vhost.is_empty() { None } else { Some(vhost.to_owned()) };
        let query = parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        Ok(BrokerUrl {
            scheme: scheme.to_ascii_lowercase(),
            userid,
            password,
            hostname,
            port: parsed.port(),
            virtual_host,
            path,
            query,
        })
    }
}

/// `s` with the password of a URL replaced by `**`, for messages.
fn redact(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let creds = &s[start + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}:**{}", &s[..start + 3 + colon], &s[at..]),
                None => s.to_owned(),
            }
        }
        _ => s.to_owned(),
    }
}

impl fmt::Display for BrokerUrl {
    /// The URL with the password hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(u) = &self.userid {
            f.write_str(u)?;
        }
        if self.password.is_some() {
            f.write_str(":**")?;
        }
        if self.userid.is_some() || self.password.is_some() {
            f.write_str("@")?;
        }
        match &self.hostname {
            Some(h) if h.contains(':') => write!(f, "[{h}]")?,
            Some(h) => f.write_str(h)?,
            None => {}
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        f.write_str(&self.path)?;
        let mut sep = '?';
        for (k, v) in &self.query {
            write!(f, "{sep}{k}={v}")?;
            sep = '&';
        }
        Ok(())
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

/// Parses Kombu's failover form, `url1;url2;...`, into its URLs (at least one).
///
/// Kombu's transport options apply to every alternate of a list, and Kombu ignores a query on any but
/// the first URL; so that one list can serve both, a query written once, on the last URL, is also the
/// query of each URL before it of the same scheme that has none of its own
/// (`sentinel://a;sentinel://b?master_name=m` gives both `master_name=m`).
///
/// ```
/// let urls = kombu_core::url::parse_failover("redis://a:1; redis://b:2").unwrap();
/// assert_eq!(urls.len(), 2);
/// assert_eq!(urls[1].hostname.as_deref(), Some("b"));
/// assert!(kombu_core::url::parse_failover(" ; ").is_err());
/// let urls = kombu_core::url::parse_failover("x://a;y://b;x://c?k=v").unwrap();
/// assert_eq!((urls[0].query.get("k"), urls[1].query.get("k")), (Some(&"v".to_string()), None));
/// ```
pub fn parse_failover(s: &str) -> Result<Vec<BrokerUrl>> {
    let mut urls =
        s.split(';').map(str::trim).filter(|p| !p.is_empty()).map(str::parse).collect::<Result<Vec<BrokerUrl>>>()?;
    let Some(last) = urls.last().cloned() else {
        return Err(Error::invalid("empty broker URL"));
    };
    for u in urls.iter_mut().filter(|u| u.query.is_empty() && u.scheme == last.scheme) {
        u.query = last.query.clone();
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kombu_vhost_rules() {
        let vh = |s: &str| s.parse::<BrokerUrl>().unwrap().virtual_host;
        assert_eq!(vh("amqp://h//"), Some("/".into()));
        assert_eq!(vh("amqp://h/"), None);
        assert_eq!(vh("amqp://h"), None);
        assert_eq!(vh("amqp://h/%2F"), Some("/".into()));
        assert_eq!(vh("amqp://h/prod"), Some("prod".into()));
        assert_eq!(vh("redis://localhost:6379/2"), Some("2".into()));
        assert_eq!(vh("memory://"), None);
        assert_eq!(vh("memory://named"), None);
    }

    #[test]
    fn hosts_ports_credentials() {
        let u: BrokerUrl = "redis://:secret@[::1]:6380/0".parse().unwrap();
        assert_eq!(u.hostname.as_deref(), Some("::1"));
        assert_eq!(u.port, Some(6380));
        assert_eq!(u.userid, None);
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.to_string(), "redis://:**@[::1]:6380/0");
        let m: BrokerUrl = "memory://".parse().unwrap();
        assert_eq!((m.scheme.as_str(), m.hostname.as_deref()), ("memory", None));
        let f: BrokerUrl = "filesystem:///tmp/q".parse().unwrap();
        assert_eq!(f.path, "/tmp/q");
    }

    #[test]
    fn malformed_urls_are_errors_not_panics() {
        for bad in [
            "",
            "redis",
            "://host",
            "redis://host:99999",
            "redis://ho st",
            "amqp://user:pa@ss@host:notaport",
            "re dis://x",
            "redis://[::1",
        ] {
            let err = bad.parse::<BrokerUrl>().unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
        }
        let err = "redis://u:hunter2@host:x".parse::<BrokerUrl>().unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn options_parse_with_clear_errors() {
        let u: BrokerUrl = "redis://h/0?visibility_timeout=10&ack_emulation=false&x=abc".parse().unwrap();
        assert_eq!(u.option::<u64>("visibility_timeout").unwrap(), Some(10));
        assert_eq!(u.bool_option("ack_emulation").unwrap(), Some(false));
        assert_eq!(u.option::<u64>("missing").unwrap(), None);
        let err = u.option::<u64>("x").unwrap_err();
        assert!(err.to_string().contains("x=abc"));
        assert!(u.bool_option("x").is_err());
    }
}
