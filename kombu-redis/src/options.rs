//! Connection parameters and transport options, read from a `redis://` or `rediss://` URL and its query
//! (pure: TLS files are named here and read when the connection opens).

use std::path::PathBuf;
use std::time::Duration;

use kombu_core::options::{OptionSpec, OptionValue, Options};
use kombu_core::{BrokerUrl, Error, Result};

use crate::cycle::QueueOrder;
use crate::keys::DEFAULT_SEP;

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
    /// The separator inside binding members and priority queue names (Kombu's `sep`, `\x06\x16`).
    pub sep: String,
    /// The order in which a consumer on several queues takes from them (Kombu's `queue_order_strategy`).
    pub queue_order_strategy: QueueOrder,
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
    /// Replicas that must have a confirmed publish before it returns (Redis `WAIT`; 0: none).
    pub wait_for_replicas: usize,
    /// How long a confirmed publish waits for them.
    pub wait_for_replicas_timeout: Duration,
    /// TLS on every socket to the server (`rediss://`; with Sentinel, to the master); `None`: plain TCP.
    pub tls: Option<TlsOptions>,
    /// The master is found through Redis Sentinel (`sentinel://`): `host` and `port` are a sentinel's.
    pub sentinel: Option<SentinelOptions>,
}

/// How the master is found through Redis Sentinel (`sentinel://host:26379?master_name=mymaster`): Kombu's
/// `master_name` transport option, and its `sentinel_kwargs` (password, TLS) for the connections to the
/// sentinels. The master's own credentials are the URL's, as in Kombu.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct SentinelOptions {
    /// The name the sentinels monitor the master under (`master_name`, required).
    pub master_name: String,
    /// ACL user on the sentinels (`sentinel_username`).
    pub username: Option<String>,
    /// Password of the sentinels (`sentinel_password`; Kombu's `sentinel_kwargs={'password': ...}`).
    pub password: Option<String>,
    /// TLS to the sentinels (`sentinel_ssl`), with the URL's `ssl_*` options.
    pub tls: Option<TlsOptions>,
}

/// The options only a `sentinel://` URL takes.
const SENTINEL_ONLY: &[&str] = &["master_name", "sentinel_username", "sentinel_password", "sentinel_ssl"];

/// The default port of a sentinel.
pub const SENTINEL_PORT: u16 = 26379;

/// `tls`: the URL's `ssl_*` settings, for the sentinels if `sentinel_ssl` asks for TLS to them.
fn sentinel_options(url: &BrokerUrl, q: &Options<'_>, tls: TlsOptions) -> Result<SentinelOptions> {
    let master_name = match q.text("master_name")? {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => {
            return Err(Error::invalid(format!(
                "{url} needs the master_name option: the name the sentinels monitor the master under \
                 (sentinel://host:26379;sentinel://host2:26379?master_name=mymaster)"
            )))
        }
    };
    let text = |name| q.text(name).map(|v| v.filter(|v| !v.is_empty()).map(str::to_owned));
    let ssl = q.flag("sentinel_ssl")?.unwrap_or(false);
    Ok(SentinelOptions {
        master_name,
        username: text("sentinel_username")?,
        password: text("sentinel_password")?,
        tls: ssl.then_some(tls),
    })
}

/// What a TLS connection verifies and presents: redis-py's `ssl_*` connection arguments, which Kombu takes
/// from the URL query.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// PEM file of the certificate authorities the server's certificate must chain to (`ssl_ca_certs`);
    /// `None`: Mozilla's roots.
    pub ca_certs: Option<PathBuf>,
    /// PEM file of the client certificate chain (`ssl_certfile`), for servers that ask for one.
    pub certfile: Option<PathBuf>,
    /// PEM file of the client certificate's private key (`ssl_keyfile`); `None`: in `certfile`.
    pub keyfile: Option<PathBuf>,
    /// Whether the server's certificate is verified (`ssl_cert_reqs`).
    pub cert_reqs: CertReqs,
    /// Whether the certificate must be for the host connected to (`ssl_check_hostname`).
    pub check_hostname: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            ca_certs: None,
            certfile: None,
            keyfile: None,
            cert_reqs: CertReqs::Required,
            check_hostname: true,
        }
    }
}

/// `ssl_cert_reqs`: Python's `ssl.CERT_*` (as redis-py and Kombu spell them, `required` or `CERT_REQUIRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertReqs {
    /// The server's certificate must be valid and trusted (the default).
    Required,
    /// As `Required`: a TLS server always presents a certificate, so Python's client side treats the two alike.
    Optional,
    /// Not verified at all (logged at warn level once): encryption without authentication.
    None,
}

/// The words `ssl_cert_reqs` takes.
const CERT_REQS: &[&str] = &["required", "optional", "none", "CERT_REQUIRED", "CERT_OPTIONAL", "CERT_NONE"];

/// The TLS options (all but `ssl_check_hostname` are what Kombu moves from the URL query to `ssl`).
pub(crate) const TLS_OPTIONS: &[&str] =
    &["ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname"];

fn tls_options(q: &Options<'_>) -> Result<TlsOptions> {
    let mut t = TlsOptions::default();
    for (name, slot) in
        [("ssl_ca_certs", &mut t.ca_certs), ("ssl_certfile", &mut t.certfile), ("ssl_keyfile", &mut t.keyfile)]
    {
        match q.text(name)? {
            Some("") => {
                return Err(Error::invalid(format!("invalid option '{name}=' for transport redis: expected a file")))
            }
            Some(v) => *slot = Some(PathBuf::from(v)),
            None => {}
        }
    }
    if let Some(v) = q.choice("ssl_cert_reqs")? {
        t.cert_reqs = match v.trim_start_matches("CERT_").to_ascii_lowercase().as_str() {
            "none" => CertReqs::None,
            "optional" => CertReqs::Optional,
            _ => CertReqs::Required,
        };
    }
    if let Some(v) = q.flag("ssl_check_hostname")? {
        t.check_hostname = v;
    }
    if t.keyfile.is_some() && t.certfile.is_none() {
        return Err(Error::invalid("option ssl_keyfile needs ssl_certfile (the client certificate) beside it"));
    }
    Ok(t)
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
            sep: DEFAULT_SEP.to_owned(),
            queue_order_strategy: QueueOrder::RoundRobin,
            socket_timeout: Some(Duration::from_secs(30)),
            socket_connect_timeout: Some(Duration::from_secs(5)),
            socket_keepalive: true,
            health_check_interval: Duration::from_secs(25),
            polling_interval: Duration::from_secs(1),
            max_connections: 10,
            client_name: None,
            consume_batch: 256,
            client_tracking: true,
            wait_for_replicas: 0,
            wait_for_replicas_timeout: Duration::from_secs(1),
            tls: None,
            sentinel: None,
        }
    }
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// `priority_steps`: steps from 0 to 9.
const PRIORITY_STEPS: OptionSpec = OptionSpec::counts("priority_steps", 0, 9);

/// Every option a `redis://` URL takes, with its range (checked by kombu-core before the transport sees
/// the URL; see [`kombu_core::options`]).
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec::flag("ack_emulation"),
    OptionSpec::seconds("visibility_timeout", YEAR),
    OptionSpec::text("unacked_key"),
    OptionSpec::text("unacked_index_key"),
    OptionSpec::text("unacked_mutex_key"),
    OptionSpec::seconds("unacked_mutex_expire", DAY),
    OptionSpec::seconds("unacked_restore_interval", DAY),
    OptionSpec::count("unacked_restore_limit", 1, 1_000_000),
    OptionSpec::text("global_keyprefix"),
    OptionSpec::text("fanout_prefix"),
    OptionSpec::flag("fanout_patterns"),
    OptionSpec::text("sep"),
    PRIORITY_STEPS,
    OptionSpec::choice("queue_order_strategy", QueueOrder::NAMES),
    OptionSpec::seconds("socket_timeout", DAY),
    OptionSpec::seconds("socket_connect_timeout", HOUR),
    OptionSpec::flag("socket_keepalive"),
    OptionSpec::seconds("health_check_interval", DAY),
    OptionSpec::seconds("polling_interval", DAY),
    OptionSpec::count("max_connections", 1, 10_000),
    OptionSpec::text("client_name"),
    OptionSpec::count("consume_batch", 1, 10_000),
    OptionSpec::flag("client_tracking"),
    OptionSpec::count("wait_for_replicas", 0, 100),
    OptionSpec::seconds_between("wait_for_replicas_timeout", Duration::from_millis(1), HOUR),
    OptionSpec::text("ssl_ca_certs"),
    OptionSpec::text("ssl_certfile"),
    OptionSpec::text("ssl_keyfile"),
    OptionSpec::choice("ssl_cert_reqs", CERT_REQS),
    OptionSpec::flag("ssl_check_hostname"),
    OptionSpec::text("master_name"),
    OptionSpec::text("sentinel_username"),
    OptionSpec::text("sentinel_password"),
    OptionSpec::flag("sentinel_ssl"),
];

/// Parses `priority_steps` written as `0,3,6,9` or `[0, 3, 6, 9]`: steps from 0 to 9 (Kombu clamps
/// message priorities to 0-9, so a higher step would never be used), which must include 0; sorted, without
/// repeats (Kombu bisects the list, which must be sorted).
pub fn parse_priority_steps(raw: &str) -> Result<Vec<u8>> {
    match PRIORITY_STEPS.parse("redis", raw)? {
        OptionValue::Counts(steps) => steps_from(raw, steps),
        _ => steps_from(raw, Vec::new()),
    }
}

fn steps_from(raw: &str, steps: Vec<u64>) -> Result<Vec<u8>> {
    let mut steps: Vec<u8> = steps.into_iter().filter_map(|s| u8::try_from(s).ok()).collect();
    steps.sort_unstable();
    steps.dedup();
    if steps.first() != Some(&0) {
        return Err(Error::invalid(format!(
            "invalid option 'priority_steps={raw}' for transport redis: the steps must include 0"
        )));
    }
    Ok(steps)
}

impl RedisOptions {
    /// Reads a `redis://[user:password@]host[:port][/db][?options]` URL (`rediss://` for TLS); every
    /// option is checked against [`OPTIONS`] (unknown names, values, ranges). TLS options on a plain
    /// `redis://` URL are an error: they would otherwise be ignored and the link left unencrypted.
    pub fn from_url(url: &BrokerUrl) -> Result<RedisOptions> {
        let q = Options::new("redis", OPTIONS, url)?;
        let mut o = RedisOptions::default();
        let ssl_given = TLS_OPTIONS.iter().find(|n| url.query.contains_key(**n));
        let sentinel = url.scheme == "sentinel";
        o.tls = match (url.scheme.as_str(), ssl_given) {
            ("rediss", _) => Some(tls_options(&q)?),
            // As Kombu: any ssl_* option on a sentinel URL puts the master behind TLS.
            ("sentinel", Some(_)) => Some(tls_options(&q)?),
            (_, Some(name)) => {
                return Err(Error::invalid(format!(
                    "option '{name}' is for TLS, which {}:// does not use: write rediss:// for Redis over TLS",
                    url.scheme
                )))
            }
            _ => None,
        };
        if sentinel {
            o.port = SENTINEL_PORT;
            o.sentinel = Some(sentinel_options(url, &q, tls_options(&q)?)?);
        } else if let Some(name) = SENTINEL_ONLY.iter().find(|n| url.query.contains_key(**n)) {
            return Err(Error::invalid(format!(
                "option '{name}' is for Redis Sentinel: write sentinel://<sentinel host>:26379?master_name=<name>"
            )));
        }
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
        if let Some(v) = q.flag("ack_emulation")? {
            o.ack_emulation = v;
        }
        if let Some(v) = q.seconds("visibility_timeout")? {
            o.visibility_timeout = v;
        }
        for (name, slot) in [
            ("unacked_key", &mut o.unacked_key),
            ("unacked_index_key", &mut o.unacked_index_key),
            ("unacked_mutex_key", &mut o.unacked_mutex_key),
            ("global_keyprefix", &mut o.global_keyprefix),
        ] {
            if let Some(v) = q.text(name)? {
                *slot = v.to_owned();
            }
        }
        if let Some(v) = q.seconds("unacked_mutex_expire")? {
            o.unacked_mutex_expire = v;
        }
        if let Some(v) = q.seconds("unacked_restore_interval")? {
            o.unacked_restore_interval = v.max(Duration::from_millis(10));
        }
        if let Some(v) = q.count("unacked_restore_limit")? {
            o.unacked_restore_limit = usize::try_from(v).unwrap_or(usize::MAX);
        }
        // fanout_prefix: true (Kombu's '/{db}.'), false (none), or a custom prefix.
        o.fanout_prefix = match q.text("fanout_prefix")? {
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
        if let Some(v) = q.flag("fanout_patterns")? {
            o.fanout_patterns = v;
        }
        if let Some(v) = q.text("sep")? {
            if v.is_empty() {
                return Err(Error::invalid(
                    "invalid option 'sep=' for transport redis: expected a separator of one or more characters",
                ));
            }
            o.sep = v.to_owned();
        }
        if let (Some(raw), Some(steps)) = (url.query.get("priority_steps"), q.counts("priority_steps")?) {
            o.priority_steps = steps_from(raw, steps)?;
        }
        if let Some(v) = q.choice("queue_order_strategy")? {
            o.queue_order_strategy = QueueOrder::from_name(v).unwrap_or_default();
        }
        if url.query.contains_key("socket_timeout") {
            o.socket_timeout = q.seconds("socket_timeout")?.filter(|d| !d.is_zero());
        }
        if url.query.contains_key("socket_connect_timeout") {
            o.socket_connect_timeout = q.seconds("socket_connect_timeout")?.filter(|d| !d.is_zero());
        }
        if let Some(v) = q.flag("socket_keepalive")? {
            o.socket_keepalive = v;
        }
        if let Some(v) = q.seconds("health_check_interval")? {
            o.health_check_interval = v;
        }
        if let Some(v) = q.seconds("polling_interval")? {
            o.polling_interval = v.max(Duration::from_millis(10));
        }
        if let Some(v) = q.count("max_connections")? {
            o.max_connections = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = q.text("client_name")? {
            o.client_name = Some(v.to_owned());
        }
        if let Some(v) = q.flag("client_tracking")? {
            o.client_tracking = v;
        }
        if let Some(v) = q.count("wait_for_replicas")? {
            o.wait_for_replicas = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = q.seconds("wait_for_replicas_timeout")? {
            o.wait_for_replicas_timeout = v;
        }
        if let Some(v) = q.count("consume_batch")? {
            o.consume_batch = usize::try_from(v).unwrap_or(usize::MAX);
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
            "redis://h/0?priority_steps=0,10",
            "redis://h/0?priority_steps=",
            "redis://h/0?sep=",
            "redis://h/0?queue_order_strategy=fifo",
            "redis://h/0?consume_batch=0",
            "redis://h/0?max_connections=100000",
        ] {
            let e = opts(bad).unwrap_err();
            assert_eq!(e.kind(), kombu_core::ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn huge_durations_are_errors_not_panics() {
        for (name, cap) in [
            ("visibility_timeout", "31536000 (365 days)"),
            ("socket_timeout", "86400 (1 day)"),
            ("socket_connect_timeout", "3600 (1 hour)"),
            ("polling_interval", "86400 (1 day)"),
            ("health_check_interval", "86400 (1 day)"),
            ("unacked_restore_interval", "86400 (1 day)"),
            ("unacked_mutex_expire", "86400 (1 day)"),
        ] {
            for v in ["1e20", "1e19", "inf", "-0.5"] {
                let e = opts(&format!("redis://h/0?{name}={v}")).unwrap_err();
                assert_eq!(e.kind(), kombu_core::ErrorKind::InvalidArgument);
                let m = e.to_string();
                assert!(m.contains(&format!("'{name}={v}' for transport redis")), "{m}");
                assert!(m.ends_with(&format!("expected a number of seconds from 0 to {cap}")), "{m}");
            }
        }
        let o = opts("redis://h/0?visibility_timeout=31536000&polling_interval=86400").unwrap();
        assert_eq!(o.visibility_timeout, YEAR);
        assert_eq!(o.polling_interval, DAY);
    }

    #[test]
    fn unknown_options_suggest_the_nearest() {
        let e = opts("redis://h/0?visiblity_timeout=5").unwrap_err();
        assert_eq!(e.kind(), kombu_core::ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "invalid argument: unknown option 'visiblity_timeout' for transport redis: did you mean 'visibility_timeout'?"
        );
        let e = opts("redis://h/0?queue_order=priority").unwrap_err();
        assert!(e.to_string().contains("unknown option 'queue_order'"), "{e}");
    }

    #[test]
    fn kombus_sep_priority_steps_and_queue_order() {
        let o = opts("redis://h/0").unwrap();
        assert_eq!((o.sep.as_str(), o.queue_order_strategy), ("\x06\x16", QueueOrder::RoundRobin));
        let o = opts("redis://h/0?sep=:&queue_order_strategy=priority&priority_steps=%5B0%2C%205%2C%202%2C%205%5D")
            .unwrap();
        assert_eq!(o.sep, ":");
        assert_eq!(o.queue_order_strategy, QueueOrder::Priority);
        assert_eq!(o.priority_steps, vec![0, 2, 5]);
        assert_eq!(opts("redis://h/0?queue_order_strategy=sorted").unwrap().queue_order_strategy, QueueOrder::Sorted);
        assert_eq!(parse_priority_steps("0,3,6,9").unwrap(), vec![0, 3, 6, 9]);
        assert_eq!(parse_priority_steps("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]").unwrap(), (0..=9).collect::<Vec<u8>>());
        let e = parse_priority_steps("3,6").unwrap_err();
        assert!(e.to_string().ends_with("the steps must include 0"), "{e}");
    }

    #[test]
    fn tls_and_sentinel_options_belong_to_their_schemes() {
        let o = opts("rediss://h/0").unwrap();
        assert_eq!(o.tls, Some(TlsOptions::default()));
        let t = opts("rediss://h/0?ssl_cert_reqs=CERT_OPTIONAL&ssl_check_hostname=no").unwrap().tls.unwrap();
        assert_eq!((t.cert_reqs, t.check_hostname), (CertReqs::Optional, false));
        let o = opts("sentinel://:pw@s:1/2?master_name=m&sentinel_password=sp&wait_for_replicas=1").unwrap();
        let s = o.sentinel.unwrap();
        assert_eq!((s.master_name.as_str(), s.password.as_deref(), s.tls), ("m", Some("sp"), None));
        assert_eq!((o.password.as_deref(), o.db, o.tls, o.wait_for_replicas), (Some("pw"), 2, None, 1));
        assert_eq!(opts("sentinel://s?master_name=m").unwrap().port, SENTINEL_PORT);
        let o = opts("sentinel://s?master_name=m&sentinel_ssl=1&ssl_ca_certs=/ca.pem").unwrap();
        assert_eq!(o.tls.as_ref().and_then(|t| t.ca_certs.clone()), Some(PathBuf::from("/ca.pem")));
        assert_eq!(o.sentinel.and_then(|s| s.tls), o.tls);
        for bad in ["redis://h/0?ssl_certfile=c.pem", "redis://h/0?master_name=m", "rediss://h/0?sentinel_ssl=1"] {
            assert_eq!(opts(bad).unwrap_err().kind(), kombu_core::ErrorKind::InvalidArgument, "{bad}");
        }
        for bad in ["sentinel://s", "sentinel://s?master_name=", "rediss://h/0?ssl_keyfile=k.pem"] {
            assert_eq!(opts(bad).unwrap_err().kind(), kombu_core::ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn every_option_is_documented() {
        let docs = include_str!("lib.rs");
        for spec in OPTIONS {
            assert!(docs.contains(&format!("`{}`", spec.name)), "option {} is not in the crate docs", spec.name);
        }
    }

    #[test]
    fn seconds_too_large_for_a_duration_are_errors() {
        // Found by the `url` fuzz target: a finite number of seconds past u64::MAX (about 1.8e19) panicked
        // in Duration::from_secs_f64.
        let found = "redsis://user:pw@host/16?unacked_mutex_expire=\
                     88888885555555555555555555555555555555555555555555555555555555555555555555555555888888300\
                     &ack_emulation=true";
        let e = opts(found).unwrap_err();
        assert_eq!(e.kind(), kombu_core::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("unacked_mutex_expire"), "{e}");
    }
}
