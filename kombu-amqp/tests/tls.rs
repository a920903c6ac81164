//! AMQP over TLS with client certificates, on a RabbitMQ node of this test's own (never the shared one):
//! a TLS listener that verifies peers and refuses a client without a certificate, `EXTERNAL` login by the
//! certificate's common name, and certificates made here with rcgen (a CA, the server's for localhost and
//! 127.0.0.1, clients'). One node serves every case of this binary; it is stopped when they are done.
//!
//! Checked: publish, consume and ack over TLS with a client certificate; `login_method=EXTERNAL` with
//! only the certificate (the broker names the certificate's CN as the user); a missing, expired or
//! foreign client certificate refused by the broker, and a server certificate of an unknown CA or another
//! name refused here, each an `AccessRefused` error that says so and is not retried; `ssl_cert_reqs=none`;
//! a certificate file that is not there.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::rabbit::{free_port, RabbitNode};
use common::unique;
use kombu_core::{Connection, Consumer, ErrorKind, Exchange, Message, Producer, Queue, RetryPolicy};
use libtest_mimic::{Arguments, Failed, Trial};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// The user the client certificate logs in as with EXTERNAL (its common name).
const CLIENT_CN: &str = "kombu-tls-client";

/// The certificates, as files in a directory of their own.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn make() -> Pki {
        let dir = tempfile::Builder::new().prefix("kombu-pki-").tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        let make_ca = |cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let cert = p.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(p, key))
        };
        let leaf = |names: Vec<String>, cn: &str, issuer: &Issuer<'_, KeyPair>, expired: bool| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            if expired {
                p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                p.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            (p.signed_by(&key, issuer).unwrap().pem(), key.serialize_pem())
        };
        let (ca_pem, ca) = make_ca("kombu test CA");
        let (other_pem, other) = make_ca("another CA");
        write("ca.pem", ca_pem);
        write("other-ca.pem", other_pem);
        let (cert, key) = leaf(vec!["localhost".into(), "127.0.0.1".into()], "localhost", &ca, false);
        write("server.pem", cert);
        write("server.key", key);
        let (cert, key) = leaf(vec![], CLIENT_CN, &ca, false);
        write("client.pem", cert.clone());
        write("client.key", key.clone());
        write("client-and-key.pem", format!("{cert}{key}"));
        let (cert, key) = leaf(vec![], CLIENT_CN, &ca, true);
        write("expired.pem", cert);
        write("expired.key", key);
        let (cert, key) = leaf(vec![], CLIENT_CN, &other, false);
        write("foreign.pem", cert);
        write("foreign.key", key);
        Pki { dir }
    }
}

/// The node and what the cases need to reach it.
struct Broker {
    node: Mutex<Option<RabbitNode>>,
    tls_port: u16,
    pki: Pki,
}

static BROKER: OnceLock<Result<Broker, String>> = OnceLock::new();

/// The node, started by the first case that needs it.
fn broker() -> Result<&'static Broker, Failed> {
    let b = BROKER.get_or_init(|| {
        let pki = Pki::make();
        let tls_port = free_port();
        let conf = format!(
            "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
             ssl_options.cacertfile = {}\n\
             ssl_options.certfile = {}\n\
             ssl_options.keyfile = {}\n\
             ssl_options.verify = verify_peer\n\
             ssl_options.fail_if_no_peer_cert = true\n\
             auth_mechanisms.1 = EXTERNAL\n\
             auth_mechanisms.2 = PLAIN\n\
             ssl_cert_login_from = common_name\n",
            pki.path("ca.pem"),
            pki.path("server.pem"),
            pki.path("server.key"),
        );
        let node = RabbitNode::start("tls", &conf, &["rabbitmq_auth_mechanism_ssl"])?;
        eprintln!("tls: RabbitMQ node {} started in {:.1?}", node.name, node.started_in);
        // EXTERNAL takes the user from the certificate; the password is never used.
        node.ctl(&["add_user", CLIENT_CN, &unique("unused-password")])?;
        node.ctl(&["set_permissions", "-p", "/", CLIENT_CN, ".*", ".*", ".*"])?;
        Ok(Broker { node: Mutex::new(Some(node)), tls_port, pki })
    });
    b.as_ref().map_err(|e| Failed::from(format!("cannot start the test's RabbitMQ node: {e}")))
}

impl Broker {
    /// `amqps://` to the node as guest (loopback), with `options` after the CA.
    fn url(&self, options: &str) -> String {
        format!("amqps://guest:guest@127.0.0.1:{}//?ssl_ca_certs={}{options}", self.tls_port, self.pki.path("ca.pem"))
    }

    /// The client certificate and key options for `name` (`client`, `expired`, `foreign`).
    fn cert(&self, name: &str) -> String {
        format!(
            "&ssl_certfile={}&ssl_keyfile={}",
            self.pki.path(&format!("{name}.pem")),
            self.pki.path(&format!("{name}.key"))
        )
    }

    fn ctl(&self, args: &[&str]) -> Result<String, String> {
        match &*self.node.lock().unwrap() {
            Some(node) => node.ctl(args),
            None => Err("the node is stopped".into()),
        }
    }
}

/// Connecting to `url` fails; the error, and how long it took.
fn refused(url: &str) -> (kombu_core::Error, Duration) {
    let began = Instant::now();
    // A patient retry policy: a refusal must not be retried, so it still returns at once.
    let conn = Connection::builder(url)
        .retry(RetryPolicy::default().max_retries(Some(20)).intervals(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_secs(1),
        ))
        .open()
        .unwrap();
    let err = conn.connect().expect_err("the connection should be refused");
    (err, began.elapsed())
}

fn assert_refusal(url: &str, says: &str) -> Result<(), Failed> {
    let (err, took) = refused(url);
    let report = err.report().to_string();
    eprintln!("tls: refused as expected in {took:.1?}: {report}");
    if err.kind() != ErrorKind::AccessRefused || err.is_recoverable() {
        return Err(format!("expected a refusal that is not retried, got {report}").into());
    }
    if !report.contains(says) {
        return Err(format!("the error should say '{says}': {report}").into());
    }
    if took > Duration::from_secs(10) {
        return Err(format!("refused after {took:?}: was it retried?").into());
    }
    Ok(())
}

fn publish_consume_ack_with_a_client_certificate() -> Result<(), Failed> {
    let b = broker()?;
    let conn = Connection::open(&b.url(&b.cert("client")))?;
    conn.connect()?;
    let exchange = Exchange::direct(unique("tls-ex"));
    let queue = Queue::with_exchange(unique("tls-q"), exchange.clone(), "k");
    let producer = Producer::new(&conn)?.exchange(exchange);
    for i in 0..3 {
        producer.publish(&serde_json::json!({ "n": i })).routing_key("k").declare(&queue).send()?;
    }
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let g = got.clone();
    let consumer = Consumer::new(&conn, [queue.clone()]).callback(move |body: serde_json::Value, m: Message| {
        m.ack().unwrap();
        g.lock().unwrap().push(body);
    });
    let sub = consumer.consume()?;
    common::drain_until(
        &conn,
        Duration::from_secs(15),
        || format!("got {:?}", got.lock().unwrap()),
        || got.lock().unwrap().len() == 3,
    );
    sub.cancel()?;
    assert_eq!(
        *got.lock().unwrap(),
        [serde_json::json!({"n": 0}), serde_json::json!({"n": 1}), serde_json::json!({"n": 2})]
    );
    // Acked for good: a new channel finds the queue empty.
    let ch = conn.channel()?;
    assert!(ch.get(&queue.name, false)?.is_none(), "acked messages are gone");
    ch.delete_queue(&queue.name, false, false)?;
    // The broker saw a TLS connection that logged in with PLAIN as guest.
    let listing = b.ctl(&["list_connections", "-q", "user", "auth_mechanism", "ssl"])?;
    assert!(
        listing.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["guest", "PLAIN", "true"]),
        "{listing}"
    );
    conn.close()?;
    Ok(())
}

fn external_login_with_only_the_client_certificate() -> Result<(), Failed> {
    let b = broker()?;
    // No user or password in the URL: the certificate is the credential.
    let url = format!(
        "amqps://127.0.0.1:{}//?login_method=EXTERNAL&ssl_ca_certs={}&ssl_certfile={}",
        b.tls_port,
        b.pki.path("ca.pem"),
        b.pki.path("client-and-key.pem"),
    );
    let conn = Connection::open(&url)?;
    conn.connect()?;
    let queue = Queue::new(unique("tls-external"));
    let ch = conn.channel()?;
    ch.declare(&queue)?;
    ch.publish(Message::new("by certificate"), "", &queue.name, &Default::default())?;
    let m = common::get_within(&*ch, &queue.name, Duration::from_secs(5))?.ok_or("the message did not arrive")?;
    assert_eq!(&m.body[..], b"by certificate");
    m.ack()?;
    let listing = b.ctl(&["list_connections", "-q", "user", "auth_mechanism"])?;
    assert!(listing.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [CLIENT_CN, "EXTERNAL"]), "{listing}");
    ch.delete_queue(&queue.name, false, false)?;
    conn.close()?;
    // lapin's spelling of the option too.
    let conn = Connection::open(&url.replace("login_method", "auth_mechanism"))?;
    conn.connect()?;
    conn.close()?;
    Ok(())
}

fn a_missing_client_certificate_is_refused() -> Result<(), Failed> {
    let b = broker()?;
    assert_refusal(&b.url(""), "the server refused the TLS handshake: a client certificate it does not accept, or none")
}

fn an_expired_or_foreign_client_certificate_is_refused() -> Result<(), Failed> {
    let b = broker()?;
    assert_refusal(&b.url(&b.cert("expired")), "the server refused the TLS handshake")?;
    assert_refusal(&b.url(&b.cert("foreign")), "the server refused the TLS handshake")
}

fn a_server_certificate_of_another_ca_is_refused() -> Result<(), Failed> {
    let b = broker()?;
    let url = b.url(&b.cert("client")).replace(&b.pki.path("ca.pem"), &b.pki.path("other-ca.pem"));
    assert_refusal(&url, "the server's TLS certificate is not trusted")?;
    assert_refusal(&url, "UnknownIssuer")
}

fn a_server_certificate_for_another_name_is_refused() -> Result<(), Failed> {
    let b = broker()?;
    assert_refusal(
        &b.url(&format!("{}&ssl_server_hostname=broker.example", b.cert("client"))),
        "certificate not valid for name \"broker.example\"",
    )?;
    // The name the certificate does carry, while the URL names the address.
    let conn = Connection::open(&b.url(&format!("{}&ssl_server_hostname=localhost", b.cert("client"))))?;
    conn.connect()?;
    conn.close()?;
    Ok(())
}

fn cert_reqs_none_accepts_a_server_certificate_of_another_ca() -> Result<(), Failed> {
    let b = broker()?;
    let url = b.url(&b.cert("client")).replace(&b.pki.path("ca.pem"), &b.pki.path("other-ca.pem"));
    let conn = Connection::open(&format!("{url}&ssl_cert_reqs=none"))?;
    conn.connect()?;
    let ch = conn.channel()?;
    let q = Queue::new(unique("tls-noverify"));
    ch.declare(&q)?;
    ch.delete_queue(&q.name, false, false)?;
    conn.close()?;
    Ok(())
}

fn a_missing_certificate_file_is_an_error_naming_it() -> Result<(), Failed> {
    let b = broker()?;
    let missing = b.pki.path("no-such-client.pem");
    let conn = Connection::open(&b.url(&format!("&ssl_certfile={missing}")))?;
    let err = conn.connect().expect_err("no such file");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err:#}");
    assert!(err.to_string().contains(&format!("ssl_certfile: cannot read '{missing}'")), "{err:#}");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    type Case = fn() -> Result<(), Failed>;
    let cases: &[(&str, Case)] = &[
        ("publish_consume_ack_with_a_client_certificate", publish_consume_ack_with_a_client_certificate),
        ("external_login_with_only_the_client_certificate", external_login_with_only_the_client_certificate),
        ("a_missing_client_certificate_is_refused", a_missing_client_certificate_is_refused),
        ("an_expired_or_foreign_client_certificate_is_refused", an_expired_or_foreign_client_certificate_is_refused),
        ("a_server_certificate_of_another_ca_is_refused", a_server_certificate_of_another_ca_is_refused),
        ("a_server_certificate_for_another_name_is_refused", a_server_certificate_for_another_name_is_refused),
        (
            "cert_reqs_none_accepts_a_server_certificate_of_another_ca",
            cert_reqs_none_accepts_a_server_certificate_of_another_ca,
        ),
        ("a_missing_certificate_file_is_an_error_naming_it", a_missing_certificate_file_is_an_error_naming_it),
    ];
    let trials = cases.iter().map(|&(name, case)| Trial::test(name, case)).collect();
    let began = Instant::now();
    let conclusion = libtest_mimic::run(&args, trials);
    // The node outlives the cases (a static), so it is stopped here, by pid.
    if let Some(Ok(b)) = BROKER.get() {
        if let Some(mut node) = b.node.lock().unwrap().take() {
            node.stop();
        }
        eprintln!("tls: {:.1?} in all, the node's start included", began.elapsed());
    }
    conclusion.exit_code()
}
