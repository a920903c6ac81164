//! TLS test material: a CA and certificates made with rcgen in a temporary directory (a server
//! certificate for 127.0.0.1 and localhost, a client certificate, an expired server certificate, one for
//! another host name, and a second CA unrelated to the first with a client certificate of its own), and a
//! redis-server of the test's own serving TLS only.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every file a TLS test needs.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server: Pair,
    pub client: Pair,
    pub expired: Pair,
    pub wrong_name: Pair,
    pub other_ca: PathBuf,
    pub other_client: Pair,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let pem = p.self_signed(&key).unwrap().pem();
    (p, key, pem)
}

impl Pki {
    /// Makes them all.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (ca_params, ca_key, ca_pem) = ca("kombu-rs test CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let (other_params, other_key, other_pem) = ca("an unrelated CA");
        let other_issuer = Issuer::new(other_params, other_key);
        let leaf = |name: &str, sans: &[&str], client: bool, expired: bool, by: &Issuer<'_, KeyPair>| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
            p.distinguished_name.push(DnType::CommonName, name);
            p.extended_key_usages =
                vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
            if expired {
                p.not_before = date_time_ymd(2020, 1, 1);
                p.not_after = date_time_ymd(2021, 1, 1);
            }
            let cert = p.signed_by(&key, by).unwrap();
            Pair {
                cert: write(&format!("{name}.pem"), &cert.pem()),
                key: write(&format!("{name}.key"), &key.serialize_pem()),
            }
        };
        let local = ["127.0.0.1", "localhost"];
        Pki {
            ca: write("ca.pem", &ca_pem),
            server: leaf("server", &local, false, false, &issuer),
            client: leaf("client", &["client"], true, false, &issuer),
            expired: leaf("expired", &local, false, true, &issuer),
            wrong_name: leaf("wrong-name", &["redis.example.invalid"], false, false, &issuer),
            other_ca: write("other-ca.pem", &other_pem),
            other_client: leaf("other-client", &["client"], true, false, &other_issuer),
            dir,
        }
    }
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// A redis-server of the test's own that serves TLS only (`--port 0`), with `server` as its certificate,
/// `pki.ca` as the CA of the client certificates it accepts, and `--tls-auth-clients` as given
/// (`optional` or `yes`). Stopped by pid when dropped.
pub struct TlsRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl TlsRedis {
    pub fn start(pki: &Pki, server: &Pair, auth_clients: &str) -> TlsRedis {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--tls-auth-clients", auth_clients])
            .arg("--tls-cert-file")
            .arg(&server.cert)
            .arg("--tls-key-file")
            .arg(&server.key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "redis-server (TLS) did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsRedis { port, dir, child }
    }

    /// `rediss://127.0.0.1:<port>/0?<query>`.
    pub fn url(&self, query: &str) -> String {
        format!("rediss://127.0.0.1:{}/0?{query}", self.port)
    }

    /// Where the server keeps its files.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// `ssl_ca_certs=<path>` (percent-encoded enough for a temporary path).
pub fn ca_query(path: &std::path::Path) -> String {
    format!("ssl_ca_certs={}", path.display())
}

/// `ssl_certfile=..&ssl_keyfile=..`.
pub fn client_query(pair: &Pair) -> String {
    format!("ssl_certfile={}&ssl_keyfile={}", pair.cert.display(), pair.key.display())
}
