//! Connection settings from a broker URL, with Kombu's defaults and vhost rule: pure, no I/O.
//!
//! `amqp://user:password@host:port/vhost?options`: the virtual host is the path without its first `/`
//! (so `amqp://h//` and `amqp://h/%2F` name `/`, and `amqp://h` and `amqp://h/` mean the default, `/`);
//! user and password default to `guest`, the host to `localhost`, the port to 5672 (5671 with TLS).
//!
//! Options (Kombu's names where Kombu has one), declared in [`OPTIONS`] and checked by kombu-core when
//! the URL is opened (an unknown name is an error naming the nearest known one, a value out of range an
//! error naming the range):
//! - `heartbeat` (seconds, 0 to 65535; `0` turns heartbeats off; unset: the broker's proposal),
//! - `connect_timeout` (seconds, fractions allowed, 0.001 to 3600; default 5),
//! - `channel_max` (0 to 65535), `frame_max` (0 to 4294967295), negotiated down from the broker's proposal,
//! - `login_method` (`PLAIN`, `AMQPLAIN`, `EXTERNAL`, `ANONYMOUS`, `RABBIT-CR-DEMO`),
//! - `ssl` (`true` makes `amqp://` use TLS; `amqps://` always does), `ssl_ca_certs` (a PEM file of CA
//!   certificates to trust besides the built-in roots),
//! - `connection_name`, and `client_properties` (a JSON object) for the client properties the broker shows,
//! - `confirm_publish` (Kombu's transport option: `true` makes every publish wait for the broker's confirm,
//!   30 seconds at most unless the publish sets its own `confirm_timeout`).

use std::time::Duration;

use kombu_core::options::{OptionSpec, Options};
use kombu_core::{BrokerUrl, Error, Result};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo, SASLMechanism};

/// Default connect timeout (Kombu's `connect_timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Every option an `amqp://` URL takes, with its range.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec::flag("ssl"),
    OptionSpec::seconds("heartbeat", Duration::from_secs(u16::MAX as u64)),
    OptionSpec::seconds_between("connect_timeout", Duration::from_millis(1), Duration::from_secs(3600)),
    OptionSpec::count("channel_max", 0, u16::MAX as u64),
    OptionSpec::count("frame_max", 0, u32::MAX as u64),
    OptionSpec::choice("login_method", &["PLAIN", "AMQPLAIN", "EXTERNAL", "ANONYMOUS", "RABBIT-CR-DEMO"]),
    OptionSpec::text("ssl_ca_certs"),
    OptionSpec::text("connection_name"),
    OptionSpec::text("client_properties"),
    OptionSpec::flag("confirm_publish"),
];

/// Everything needed to open one AMQP connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectParams {
    /// The lapin URI (scheme, credentials, host, port, vhost, negotiated limits).
    pub uri: AMQPUri,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// A PEM file of extra CA certificates (TLS only).
    pub ca_certs: Option<String>,
    /// Client properties shown by the broker (`connection_name` among them).
    pub client_properties: Vec<(String, String)>,
    /// Every publish waits for the broker's confirm.
    pub confirm_publish: bool,
}

impl ConnectParams {
    /// Whether the connection uses TLS.
    pub fn tls(&self) -> bool {
        self.uri.scheme == AMQPScheme::AMQPS
    }
}

/// Reads a broker URL; every option is checked against [`OPTIONS`].
pub fn parse(url: &BrokerUrl) -> Result<ConnectParams> {
    let tls = match url.scheme.as_str() {
        "amqps" => true,
        "amqp" | "pyamqp" => false,
        other => return Err(Error::invalid(format!("'{other}' is not an AMQP URL scheme (amqp, pyamqp, amqps)"))),
    };
    let q = Options::new("amqp", OPTIONS, url)?;
    let tls = tls || q.flag("ssl")?.unwrap_or(false);
    let heartbeat = q.seconds("heartbeat")?.map(|d| d.as_secs_f64().round().min(f64::from(u16::MAX)) as u16);
    let connect_timeout = q.seconds("connect_timeout")?.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let auth_mechanism = match q.choice("login_method")? {
        None => None,
        Some(m) => Some(m.parse::<SASLMechanism>().map_err(|e| Error::invalid(format!("login_method: {e}")))?),
    };
    let query = AMQPQueryString {
        frame_max: q.count("frame_max")?.and_then(|n| u32::try_from(n).ok()),
        channel_max: q.count("channel_max")?.and_then(|n| u16::try_from(n).ok()),
        heartbeat,
        connection_timeout: Some(connect_timeout.as_millis().min(u128::from(u64::MAX)) as u64),
        auth_mechanism,
    };
    let uri = AMQPUri {
        scheme: if tls { AMQPScheme::AMQPS } else { AMQPScheme::AMQP },
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: url.userid.clone().unwrap_or_else(|| "guest".into()),
                password: url.password.clone().unwrap_or_else(|| "guest".into()),
            },
            host: url.hostname.clone().unwrap_or_else(|| "localhost".into()),
            port: url.port.unwrap_or(if tls { 5671 } else { 5672 }),
        },
        vhost: url.virtual_host.clone().unwrap_or_else(|| "/".into()),
        query,
    };
    let mut client_properties = Vec::new();
    if let Some(name) = q.text("connection_name")? {
        client_properties.push(("connection_name".to_owned(), name.to_owned()));
    }
    if let Some(raw) = q.text("client_properties")? {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw)
            .map_err(|e| Error::invalid(format!("client_properties must be a JSON object: {e}")))?;
        for (k, v) in map {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            client_properties.push((k, text));
        }
    }
    Ok(ConnectParams {
        uri,
        connect_timeout,
        ca_certs: q.text("ssl_ca_certs")?.map(str::to_owned),
        client_properties,
        confirm_publish: q.flag("confirm_publish")?.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(s: &str) -> Result<ConnectParams> {
        parse(&s.parse::<BrokerUrl>()?)
    }

    #[test]
    fn kombu_vhost_rules_and_defaults() {
        let vhost = |s: &str| params(s).unwrap().uri.vhost;
        assert_eq!(vhost("amqp://h//"), "/");
        assert_eq!(vhost("amqp://h/%2F"), "/");
        assert_eq!(vhost("amqp://h/"), "/");
        assert_eq!(vhost("amqp://h"), "/");
        assert_eq!(vhost("amqp://h/prod"), "prod");
        assert_eq!(vhost("amqp://h/a%2Fb"), "a/b");
        let p = params("pyamqp://").unwrap();
        assert_eq!(p.uri.authority.host, "localhost");
        assert_eq!(p.uri.authority.port, 5672);
        assert_eq!(p.uri.authority.userinfo.username, "guest");
        assert_eq!(p.uri.authority.userinfo.password, "guest");
        assert_eq!(p.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert!(!p.tls());
        assert!(!p.confirm_publish);
        assert!(params("amqp://h//?confirm_publish=yes").unwrap().confirm_publish);
    }

    #[test]
    fn credentials_tls_and_ports() {
        let p = params("amqps://u:p%40ss@broker.example/v").unwrap();
        assert!(p.tls());
        assert_eq!(p.uri.authority.port, 5671);
        assert_eq!(p.uri.authority.userinfo.password, "p@ss");
        let p = params("amqp://h:1234//?ssl=true").unwrap();
        assert!(p.tls());
        assert_eq!(p.uri.authority.port, 1234);
    }

    #[test]
    fn options() {
        let p = params(
            "amqp://h//?heartbeat=10&connect_timeout=0.5&channel_max=16&frame_max=131072&login_method=AMQPLAIN\
             &connection_name=worker-1&client_properties=%7B%22team%22%3A%22ops%22%2C%22n%22%3A3%7D&ssl_ca_certs=/ca.pem",
        )
        .unwrap();
        assert_eq!(p.uri.query.heartbeat, Some(10));
        assert_eq!(p.connect_timeout, Duration::from_millis(500));
        assert_eq!(p.uri.query.connection_timeout, Some(500));
        assert_eq!(p.uri.query.channel_max, Some(16));
        assert_eq!(p.uri.query.frame_max, Some(131072));
        assert_eq!(p.uri.query.auth_mechanism, Some(SASLMechanism::AMQPlain));
        assert_eq!(p.ca_certs.as_deref(), Some("/ca.pem"));
        assert!(p.client_properties.contains(&("connection_name".into(), "worker-1".into())));
        assert!(p.client_properties.contains(&("team".into(), "ops".into())));
        assert!(p.client_properties.contains(&("n".into(), "3".into())));
    }

    #[test]
    fn bad_options_are_errors_not_panics() {
        for bad in [
            "amqp://h//?heartbeat=-1",
            "amqp://h//?heartbeat=abc",
            "amqp://h//?heartbeat=70000",
            "amqp://h//?connect_timeout=0",
            "amqp://h//?connect_timeout=nan",
            "amqp://h//?channel_max=70000",
            "amqp://h//?frame_max=x",
            "amqp://h//?login_method=magic",
            "amqp://h//?ssl=maybe",
            "amqp://h//?confirm_publish=2",
            "amqp://h//?client_properties=%5B1%5D",
            "amqp://h//?connect_timeout=1e20",
            "amqp://h//?heartbeat=1e19",
            "amqp://h//?frame_max=4294967296",
            "amqp://h//?hearbeat=10",
            "redis://h/0",
        ] {
            let err = params(bad).unwrap_err();
            assert_eq!(err.kind(), kombu_core::ErrorKind::InvalidArgument, "{bad}");
        }
        let e = params("amqp://h//?hearbeat=10").unwrap_err();
        assert!(
            e.to_string().ends_with("unknown option 'hearbeat' for transport amqp: did you mean 'heartbeat'?"),
            "{e}"
        );
        let e = params("amqp://h//?connect_timeout=1e20").unwrap_err();
        assert!(e.to_string().ends_with("expected a number of seconds from 0.001 to 3600 (1 hour)"), "{e}");
        assert_eq!(
            params("amqp://h//?login_method=amqplain").unwrap().uri.query.auth_mechanism,
            Some(SASLMechanism::AMQPlain)
        );
    }

    #[test]
    fn every_option_is_documented() {
        let docs = include_str!("options.rs");
        let docs = &docs[..docs.find("use std::time").unwrap_or(docs.len())];
        for spec in OPTIONS {
            assert!(docs.contains(&format!("`{}`", spec.name)), "option {} is not in the module docs", spec.name);
        }
    }
}
