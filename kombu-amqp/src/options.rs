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
//! - `login_method` (`PLAIN`, `AMQPLAIN`, `EXTERNAL`, `ANONYMOUS`, `RABBIT-CR-DEMO`; Kombu's and py-amqp's
//!   name), or `auth_mechanism` (lapin's name for the same; both may be given only if they agree).
//!   `EXTERNAL` logs in with the client certificate (RabbitMQ's `rabbitmq_auth_mechanism_ssl`), so it needs
//!   TLS and `ssl_certfile`; the URL's user and password are then not sent,
//! - `ssl` (`true` makes `amqp://` use TLS; `amqps://` always does), and for TLS only (on a plain URL
//!   each is an error, never ignored), with the names of Kombu's URL options:
//!   `ssl_ca_certs` (a PEM file of CA certificates to trust besides the built-in roots),
//!   `ssl_certfile` (a PEM file: the client certificate, then its chain; it may hold the key too, as
//!   Python's `load_cert_chain` allows) and `ssl_keyfile` (a PEM file with the key: PKCS#8, PKCS#1 or SEC1),
//!   `ssl_cert_reqs` (`required`, the default, or `none`; also Kombu's `CERT_REQUIRED` and `CERT_NONE`, and
//!   `optional`/`CERT_OPTIONAL`, which on a client means `required`, as in Python's `ssl`): `none` accepts
//!   any server certificate (the handshake's signatures are still checked, the chain and name are not),
//!   `ssl_server_hostname` (the name the server certificate must carry and that is sent as SNI; default the
//!   URL's host),
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
    OptionSpec::choice("auth_mechanism", &["PLAIN", "AMQPLAIN", "EXTERNAL", "ANONYMOUS", "RABBIT-CR-DEMO"]),
    OptionSpec::text("ssl_ca_certs"),
    OptionSpec::text("ssl_certfile"),
    OptionSpec::text("ssl_keyfile"),
    OptionSpec::choice(
        "ssl_cert_reqs",
        &["required", "none", "optional", "CERT_REQUIRED", "CERT_NONE", "CERT_OPTIONAL"],
    ),
    OptionSpec::text("ssl_server_hostname"),
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
    /// The TLS settings (used when [`ConnectParams::tls`] says so).
    pub tls_options: TlsOptions,
    /// Client properties shown by the broker (`connection_name` among them).
    pub client_properties: Vec<(String, String)>,
    /// Every publish waits for the broker's confirm.
    pub confirm_publish: bool,
}

/// What a TLS connection trusts and presents, from the `ssl_*` options (files are read when connecting).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    /// A PEM file of CA certificates to trust besides the built-in roots (`ssl_ca_certs`).
    pub ca_certs: Option<String>,
    /// A PEM file with the client certificate and its chain (`ssl_certfile`).
    pub certfile: Option<String>,
    /// A PEM file with the client's private key (`ssl_keyfile`; unset: the key is in `certfile`).
    pub keyfile: Option<String>,
    /// Whether the server's certificate is verified (`ssl_cert_reqs`; `none` turns it off).
    pub verify: bool,
    /// The name the server certificate is checked against and sent as SNI (`ssl_server_hostname`).
    pub server_hostname: Option<String>,
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
    let auth_mechanism = match (q.choice("login_method")?, q.choice("auth_mechanism")?) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::invalid(format!(
                "login_method={a} and auth_mechanism={b} disagree (they are two names of one option)"
            )))
        }
        (None, None) => None,
        (Some(m), _) | (None, Some(m)) => {
            Some(m.parse::<SASLMechanism>().map_err(|e| Error::invalid(format!("login_method: {e}")))?)
        }
    };
    let tls_options = tls_options(&q, tls, auth_mechanism == Some(SASLMechanism::External))?;
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
        tls_options,
        client_properties,
        confirm_publish: q.flag("confirm_publish")?.unwrap_or(false),
    })
}

/// The `ssl_*` options: only on a TLS URL, a key file only with a certificate, EXTERNAL only with one.
fn tls_options(q: &Options<'_>, tls: bool, external: bool) -> Result<TlsOptions> {
    let text = |name| q.text(name).map(|v| v.map(str::to_owned));
    let verify = match q.choice("ssl_cert_reqs")? {
        Some(v) => !v.eq_ignore_ascii_case("none") && !v.eq_ignore_ascii_case("CERT_NONE"),
        None => true,
    };
    let opts = TlsOptions {
        ca_certs: text("ssl_ca_certs")?,
        certfile: text("ssl_certfile")?,
        keyfile: text("ssl_keyfile")?,
        verify,
        server_hostname: text("ssl_server_hostname")?,
    };
    if !tls {
        let given = ["ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_server_hostname"]
            .into_iter()
            .filter(|name| matches!(q.get(name), Ok(Some(_))))
            .collect::<Vec<_>>();
        if !given.is_empty() {
            return Err(Error::invalid(format!(
                "{} only apply to TLS: use an amqps:// URL (or ssl=true)",
                given.join(", ")
            )));
        }
    }
    if opts.keyfile.is_some() && opts.certfile.is_none() {
        return Err(Error::invalid("ssl_keyfile needs ssl_certfile (the certificate the key belongs to)"));
    }
    if opts.server_hostname.as_deref() == Some("") {
        return Err(Error::invalid("ssl_server_hostname is empty"));
    }
    if external && (!tls || opts.certfile.is_none()) {
        return Err(Error::invalid(
            "login_method EXTERNAL logs in with the client certificate: it needs an amqps:// URL with ssl_certfile",
        ));
    }
    Ok(opts)
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
             &connection_name=worker-1&client_properties=%7B%22team%22%3A%22ops%22%2C%22n%22%3A3%7D&ssl_ca_certs=/ca.pem&ssl=1",
        )
        .unwrap();
        assert_eq!(p.uri.query.heartbeat, Some(10));
        assert_eq!(p.connect_timeout, Duration::from_millis(500));
        assert_eq!(p.uri.query.connection_timeout, Some(500));
        assert_eq!(p.uri.query.channel_max, Some(16));
        assert_eq!(p.uri.query.frame_max, Some(131072));
        assert_eq!(p.uri.query.auth_mechanism, Some(SASLMechanism::AMQPlain));
        assert_eq!(p.tls_options.ca_certs.as_deref(), Some("/ca.pem"));
        assert!(p.tls_options.verify);
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
    fn tls_options_and_external() {
        let p = params(
            "amqps://h//?ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_cert_reqs=CERT_NONE&ssl_server_hostname=b.example\
             &login_method=EXTERNAL",
        )
        .unwrap();
        assert_eq!(p.tls_options.certfile.as_deref(), Some("/c.pem"));
        assert_eq!(p.tls_options.keyfile.as_deref(), Some("/k.pem"));
        assert!(!p.tls_options.verify);
        assert_eq!(p.tls_options.server_hostname.as_deref(), Some("b.example"));
        assert_eq!(p.uri.query.auth_mechanism, Some(SASLMechanism::External));
        for (reqs, verify) in [("required", true), ("optional", true), ("CERT_REQUIRED", true), ("none", false)] {
            assert_eq!(params(&format!("amqps://h//?ssl_cert_reqs={reqs}")).unwrap().tls_options.verify, verify);
        }
        let p = params("amqps://h//?ssl_certfile=/both.pem&auth_mechanism=external").unwrap();
        assert_eq!(p.tls_options.keyfile, None, "the key may be in the certificate file");
        assert_eq!(p.uri.query.auth_mechanism, Some(SASLMechanism::External));
        assert!(params("amqps://h//?auth_mechanism=plain&login_method=PLAIN").is_ok());
        for (bad, says) in [
            ("amqp://h//?ssl_certfile=/c.pem", "ssl_certfile only apply to TLS"),
            ("amqp://h//?ssl_ca_certs=/a&ssl_cert_reqs=none", "ssl_ca_certs, ssl_cert_reqs only apply to TLS"),
            ("amqps://h//?ssl_keyfile=/k.pem", "ssl_keyfile needs ssl_certfile"),
            ("amqps://h//?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
            ("amqps://h//?ssl_server_hostname=", "ssl_server_hostname is empty"),
            ("amqps://h//?login_method=EXTERNAL", "EXTERNAL logs in with the client certificate"),
            ("amqp://h//?login_method=EXTERNAL", "EXTERNAL logs in with the client certificate"),
            ("amqps://h//?login_method=PLAIN&auth_mechanism=EXTERNAL", "disagree"),
        ] {
            let e = params(bad).unwrap_err();
            assert_eq!(e.kind(), kombu_core::ErrorKind::InvalidArgument, "{bad}");
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
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
