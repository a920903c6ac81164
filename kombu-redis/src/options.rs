//! Connection parameters and transport options, read from a `redis://` URL and its query (pure).

use std::time::Duration;

use kombu_core::{BrokerUrl, Error, Result};

/// Python Kombu's priority steps.
pub const DEFAULT_PRIORITY_STEPS: [u8; 4] = [0, 3, 6, 9];

/// How a channel reaches Redis and how it lays out its data. Every field has Kombu's default; the URL
/// query overrides them (`redis://host:6379/0?visibility_timeout=30&global_keyprefix=app:`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Database number (the URL's virtual host).
    pub db: u32,
    /// ACL user name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Record deliveries in `unacked`/`unacked_index` so that they can be restored (Kombu's default).
    pub ack_emulation: bool,
    /// How long a delivered, unacknowledged message stays invisible before any consumer restores it.
    pub visibility_timeout: Duration,
    /// The hash of unacknowledged messages (`unacked`, after the global prefix).
    pub unacked_key: String,
    /// The sorted set of delivery times (`unacked_index`, after the global prefix).
    pub unacked_index_key: String,
    /// The lock held while restoring (`unacked_mutex`, after the global prefix).
    pub unacked_mutex_key: String,
    /// How long that lock may be held.
    pub unacked_mutex_expire: Duration,
    /// How often a consumer looks for messages whose visibility timeout passed.
    pub unacked_restore_interval: Duration,
    /// Most messages restored per look.
    pub unacked_restore_limit: usize,
    /// Prefix of every key and pub/sub channel.
    pub global_keyprefix: String,
    /// Prefix of fanout channels after the global prefix (`/{db}.` formatted, a custom one, or empty).
    pub fanout_prefix: String,
    /// Fanout publishes go to `<exchange>/<routing key>` when the routing key is not empty.
    pub fanout_patterns: bool,
    /// Priority bands, ascending, starting at 0.
    pub priority_steps: Vec<u8>,
    /// Timeout of each command on the command connections.
    pub socket_timeout: Option<Duration>,
    /// Timeout of connecting.
    pub socket_connect_timeout: Option<Duration>,
    /// TCP keepalive on every socket.
    pub socket_keepalive: bool,
    /// How often the consumer sockets are checked (0: never).
    pub health_check_interval: Duration,
    /// Longest wait between two looks at the queues when no notification came (Kombu's `polling_interval`).
    pub polling_interval: Duration,
    /// Most pooled command connections kept idle.
    pub max_connections: usize,
    /// `CLIENT SETNAME` for each connection.
    pub client_name: Option<String>,
    /// Most messages one consumer request takes at once.
    pub consume_batch: usize,
    /// Wake consumers through Redis client-side tracking of their queue keys; without it (or on a server
    /// that refuses it) consumers look every `min(polling_interval, 100 ms)`.
    pub client_tracking: bool,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            host: "127.0.0.1".into(),
            port: 6379,
            db: 0,
            username: None,
            password: None,
            ack_emulation: true,
            visibility_timeout: Duration::from_secs(3600),
            unacked_key: "unacked".into(),
            unacked_index_key: "unacked_index".into(),
            unacked_mutex_key: "unacked_mutex".into(),
            unacked_mutex_expire: Duration::from_secs(300),
            unacked_restore_interval: Duration::from_secs(10),
            unacked_restore_limit: 100,
            global_keyprefix: String::new(),
            fanout_prefix: "/0.".into(),
            fanout_patterns: true,
            priority_steps: DEFAULT_PRIORITY_STEPS.to_vec(),
            socket_timeout: Some(Duration::from_secs(30)),
            socket_connect_timeout: Some(Duration::from_secs(5)),
            socket_keepalive: true,
            health_check_interval: Duration::from_secs(25),
            polling_interval: Duration::from_secs(1),
            max_connections: 10,
            client_name: None,
            consume_batch: 256,
            client_tracking: true,
        }
    }
}

/// A number of seconds (`>= 0`, fractions allowed, at most what a `Duration` holds, about 1.8e19).
fn seconds(url: &BrokerUrl, name: &str) -> Result<Option<Duration>> {
    match url.option::<f64>(name)? {
        None => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            Error::invalid(format!("option '{name}={s}': expected a number of seconds >= 0 (at most 1.8e19)"))
        }),
    }
}

/// Parses `priority_steps` written as `0,3,6,9` or `[0, 3, 6, 9]`.
pub fn parse_priority_steps(raw: &str) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::invalid(format!("option 'priority_steps={raw}': {why}"));
    let inner = raw.trim().trim_start_matches('[').trim_end_matches(']');
    let mut steps = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u8>().map_err(|_| bad("expected numbers 0-255 separated by commas")))
        .collect::<Result<Vec<u8>>>()?;
    steps.sort_unstable();
    steps.dedup();
    if steps.first() != Some(&0) {
        return Err(bad("the steps must include 0"));
    }
    Ok(steps)
}

impl RedisOptions {
    /// Reads a `redis://[user:password@]host[:port][/db][?options]` URL.
    pub fn from_url(url: &BrokerUrl) -> Result<RedisOptions> {
        let mut o = RedisOptions::default();
        if let Some(h) = &url.hostname {
            o.host = h.clone();
        }
        if let Some(p) = url.port {
            o.port = p;
        }
        o.db = match url.virtual_host.as_deref().map(|v| v.trim_start_matches('/')) {
            None | Some("") => 0,
            Some(v) => v.parse::<u32>().map_err(|_| {
                Error::invalid(format!("invalid redis database '{v}' in {url}: expected a number such as /0"))
            })?,
        };
        o.username = url.userid.clone();
        o.password = url.password.clone();
        if let Some(v) = url.bool_option("ack_emulation")? {
            o.ack_emulation = v;
        }
        if let Some(v) = seconds(url, "visibility_timeout")? {
            o.visibility_timeout = v;
        }
        for (name, slot) in [
            ("unacked_key", &mut o.unacked_key),
            ("unacked_index_key", &mut o.unacked_index_key),
            ("unacked_mutex_key", &mut o.unacked_mutex_key),
            ("global_keyprefix", &mut o.global_keyprefix),
        ] {
            if let Some(v) = url.query.get(name) {
                *slot = v.clone();
            }
        }
        if let Some(v) = seconds(url, "unacked_mutex_expire")? {
            o.unacked_mutex_expire = v;
        }
        if let Some(v) = seconds(url, "unacked_restore_interval")? {
            o.unacked_restore_interval = v.max(Duration::from_millis(10));
        }
        if let Some(v) = url.option::<usize>("unacked_restore_limit")? {
            o.unacked_restore_limit = v.max(1);
        }
        // fanout_prefix: true (Kombu's '/{db}.'), false (none), or a custom prefix.
        o.fanout_prefix = match url.query.get("fanout_prefix").map(|s| s.as_str()) {
            None => "/{db}.".into(),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => "/{db}.".into(),
                "0" | "false" | "no" | "off" | "" => String::new(),
                _ => v.to_owned(),
            },
        }
        .replace("{db}", &o.db.to_string());
        // Kombu prefixes every key it names, these included.
        for key in [&mut o.unacked_key, &mut o.unacked_index_key, &mut o.unacked_mutex_key] {
            key.insert_str(0, &o.global_keyprefix);
        }
        if let Some(v) = url.bool_option("fanout_patterns")? {
            o.fanout_patterns = v;
        }
        if let Some(raw) = url.query.get("priority_steps") {
            o.priority_steps = parse_priority_steps(raw)?;
        }
        if url.query.contains_key("socket_timeout") {
            o.socket_timeout = seconds(url, "socket_timeout")?.filter(|d| !d.is_zero());
        }
        if url.query.contains_key("socket_connect_timeout") {
            o.socket_connect_timeout = seconds(url, "socket_connect_timeout")?.filter(|d| !d.is_zero());
        }
        if let Some(v) = url.bool_option("socket_keepalive")? {
            o.socket_keepalive = v;
        }
        if let Some(v) = seconds(url, "health_check_interval")? {
            o.health_check_interval = v;
        }
        if let Some(v) = seconds(url, "polling_interval")? {
            o.polling_interval = v.max(Duration::from_millis(10));
        }
        if let Some(v) = url.option::<usize>("max_connections")? {
            o.max_connections = v.max(1);
        }
        if let Some(v) = url.query.get("client_name") {
            o.client_name = Some(v.clone());
        }
        if let Some(v) = url.bool_option("client_tracking")? {
            o.client_tracking = v;
        }
        if let Some(v) = url.option::<usize>("consume_batch")? {
            o.consume_batch = v.clamp(1, 10_000);
        }
        Ok(o)
    }

    /// The address to connect to.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> Result<RedisOptions> {
        RedisOptions::from_url(&s.parse::<BrokerUrl>()?)
    }

    #[test]
    fn defaults_are_kombus() {
        let o = opts("redis://localhost").unwrap();
        assert_eq!((o.host.as_str(), o.port, o.db), ("localhost", 6379, 0));
        assert_eq!(o.visibility_timeout, Duration::from_secs(3600));
        assert_eq!(o.unacked_mutex_expire, Duration::from_secs(300));
        assert_eq!(o.fanout_prefix, "/0.");
        assert!(o.fanout_patterns && o.ack_emulation);
        assert_eq!(o.priority_steps, vec![0, 3, 6, 9]);
        assert_eq!(o.global_keyprefix, "");
    }

    #[test]
    fn url_options() {
        let o = opts(
            "redis://u:p%40ss@h:7000/3?visibility_timeout=1.5&global_keyprefix=app:&fanout_prefix=false\
             &fanout_patterns=0&priority_steps=[0,5]&socket_timeout=2&health_check_interval=0&ack_emulation=no",
        )
        .unwrap();
        assert_eq!((o.username.as_deref(), o.password.as_deref()), (Some("u"), Some("p@ss")));
        assert_eq!((o.port, o.db), (7000, 3));
        assert_eq!(o.visibility_timeout, Duration::from_millis(1500));
        assert_eq!(o.global_keyprefix, "app:");
        assert_eq!((o.unacked_key.as_str(), o.unacked_index_key.as_str()), ("app:unacked", "app:unacked_index"));
        assert_eq!(o.unacked_mutex_key, "app:unacked_mutex");
        assert_eq!(o.fanout_prefix, "");
        assert!(!o.fanout_patterns && !o.ack_emulation);
        assert_eq!(o.priority_steps, vec![0, 5]);
        assert_eq!(o.socket_timeout, Some(Duration::from_secs(2)));
        assert_eq!(o.health_check_interval, Duration::ZERO);
        assert_eq!(opts("redis://h/2").unwrap().fanout_prefix, "/2.");
        assert_eq!(opts("redis://h/2?fanout_prefix=/x.").unwrap().fanout_prefix, "/x.");
        assert_eq!(opts("redis://[::1]:1/0").unwrap().address(), "[::1]:1");
    }

    #[test]
    fn bad_options_are_errors() {
        for bad in [
            "redis://h/x",
            "redis://h/0?visibility_timeout=abc",
            "redis://h/0?visibility_timeout=-1",
            "redis://h/0?priority_steps=3,6",
            "redis://h/0?priority_steps=a",
            "redis://h/0?fanout_patterns=maybe",
        ] {
            let e = opts(bad).unwrap_err();
            assert_eq!(e.kind(), kombu_core::ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn seconds_too_large_for_a_duration_are_errors() {
        // Found by the `url` fuzz target: a finite number of seconds past u64::MAX (about 1.8e19) panicked
        // in Duration::from_secs_f64.
        let found = "redsis://user:pw@host/16?ss27.0.f'&sket_keepal127.i!e=on&unacked_mutex_expire=\
                     88888885555555555555555555555555555555555555555555555555555555555555555555555555888888300\
                     &ack_emulation=true";
        let e = opts(found).unwrap_err();
        assert_eq!(e.kind(), kombu_core::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("unacked_mutex_expire"), "{e}");
        for name in [
            "visibility_timeout",
            "unacked_mutex_expire",
            "unacked_restore_interval",
            "socket_timeout",
            "socket_connect_timeout",
            "health_check_interval",
            "polling_interval",
        ] {
            for value in ["1e20", "18446744073709551616", "1e308"] {
                let url = format!("redis://h/0?{name}={value}");
                assert_eq!(opts(&url).unwrap_err().kind(), kombu_core::ErrorKind::InvalidArgument, "{url}");
            }
        }
        // The largest whole number of seconds a Duration holds still reads; so do zero and -0.
        let o = opts("redis://h/0?visibility_timeout=1e19&socket_timeout=-0").unwrap();
        assert_eq!(o.visibility_timeout, Duration::from_secs(10_000_000_000_000_000_000));
        assert_eq!(o.socket_timeout, None);
    }
}
