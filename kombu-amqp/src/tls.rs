//! TLS for `amqps://`: the rustls client configuration made from [`TlsOptions`] (by kombu-tls), and lapin's connector.
//!
//! Every file is read when a connection is made (so a renewed certificate is used by the next reconnect),
//! and every error names the option and the file: a file that cannot be read, that holds no PEM item of
//! the kind expected, a CA certificate that cannot be a trust anchor, a key that does not belong to the
//! certificate. They are [`InvalidArgument`](kombu_core::ErrorKind::InvalidArgument) errors: the
//! configuration is wrong, and a retry cannot help.
//!
//! The configuration is rustls's own (ring), built by kombu-tls rather than through lapin's `OwnedTLSConfig`:
//! that one takes the same PEM but skips certificates it cannot parse without a word, and has no way to
//! turn verification off (`ssl_cert_reqs=none`) or to check another name than the URL's host
//! (`ssl_server_hostname`). lapin's `Connection::connector` runs [`TlsConnector::connect`] for each
//! connection. The PEM reading, the verifiers and the `ClientConfig` are kombu-tls's (shared with
//! kombu-redis); this backend's own: webpki's roots are trusted *besides* `ssl_ca_certs`, the CA file is
//! read only when verifying, and the name checked is `ssl_server_hostname` or the URL's host.

use std::path::Path;

use kombu_core::{Error, ErrorKind, Result};
use kombu_tls::rustls::pki_types::ServerName;
use kombu_tls::rustls::RootCertStore;
use kombu_tls::{Identity, Verify};
use lapin::tcp::{AsyncTcpStream, RustlsConnector};

use crate::options::TlsOptions;

/// Makes the TLS layer of each connection to one broker.
#[derive(Clone)]
pub struct TlsConnector {
    connector: RustlsConnector,
    server_name: String,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Reads the files `opts` names and builds the client configuration; `host` is the URL's host.
    pub fn new(opts: &TlsOptions, host: &str) -> Result<TlsConnector> {
        let server_name = opts.server_hostname.clone().unwrap_or_else(|| host.to_owned());
        ServerName::try_from(server_name.as_str()).map_err(|e| {
            Error::with_source(ErrorKind::InvalidArgument, format!("'{server_name}' is not a TLS server name"), e)
        })?;
        let (roots, verify) = match opts.verify {
            true => (roots(opts.ca_certs.as_deref())?, Verify::Full),
            false => (RootCertStore::empty(), Verify::Nothing),
        };
        let identity = opts.certfile.as_deref().map(|certfile| Identity {
            certfile: Path::new(certfile),
            keyfile: opts.keyfile.as_deref().map(Path::new),
        });
        let config = kombu_tls::client_config(roots, identity, verify)?;
        Ok(TlsConnector { connector: RustlsConnector::from(config), server_name })
    }

    /// The name the server's certificate is checked against (and sent as SNI).
    #[cfg(test)]
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// Puts TLS over a connected stream: the handshake, with the configuration made by [`TlsConnector::new`].
    pub async fn connect<S>(&self, stream: AsyncTcpStream<S>) -> std::io::Result<AsyncTcpStream<S>>
    where
        S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Send + Unpin + 'static,
    {
        stream.into_rustls(&self.connector, &self.server_name).await
    }
}

/// The built-in roots (webpki's), and the CA certificates of `ca_certs`, each of which must be usable.
fn roots(ca_certs: Option<&str>) -> Result<RootCertStore> {
    let mut roots = kombu_tls::builtin_roots();
    if let Some(path) = ca_certs {
        kombu_tls::add_ca_certs(&mut roots, Path::new(path))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> TlsOptions {
        TlsOptions { verify: true, ..TlsOptions::default() }
    }

    fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("kombu-amqp-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = write(&dir, "garbage.pem", "not a certificate\n");
        let broken = write(&dir, "broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
        let not_x509 = write(&dir, "notx509.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let missing = dir.join("missing.pem").to_string_lossy().into_owned();
        let cases = [
            (TlsOptions { ca_certs: Some(missing.clone()), ..opts() }, "ssl_ca_certs: cannot read"),
            (TlsOptions { ca_certs: Some(garbage.clone()), ..opts() }, "holds no certificate"),
            (TlsOptions { ca_certs: Some(broken.clone()), ..opts() }, "is not valid PEM"),
            (TlsOptions { ca_certs: Some(not_x509.clone()), ..opts() }, "cannot be a trust anchor"),
            (TlsOptions { certfile: Some(missing.clone()), ..opts() }, "ssl_certfile: cannot read"),
            (TlsOptions { certfile: Some(garbage.clone()), ..opts() }, "ssl_certfile"),
            (TlsOptions { certfile: Some(not_x509.clone()), ..opts() }, "holds no unencrypted private key"),
            (
                TlsOptions { certfile: Some(not_x509.clone()), keyfile: Some(missing.clone()), ..opts() },
                "ssl_keyfile: cannot read",
            ),
            (TlsOptions { certfile: Some(not_x509.clone()), keyfile: Some(garbage.clone()), ..opts() }, "ssl_keyfile"),
        ];
        for (o, says) in cases {
            let e = TlsConnector::new(&o, "localhost").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{o:?}");
            assert!(e.to_string().contains(says), "{o:?}: {e}");
            let named = [&o.ca_certs, &o.certfile, &o.keyfile].into_iter().flatten().any(|p| e.to_string().contains(p));
            assert!(named, "the error names the file: {e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn server_names() {
        assert_eq!(TlsConnector::new(&opts(), "127.0.0.1").unwrap().server_name(), "127.0.0.1");
        let o = TlsOptions { server_hostname: Some("broker.example".into()), ..opts() };
        assert_eq!(TlsConnector::new(&o, "127.0.0.1").unwrap().server_name(), "broker.example");
        let o = TlsOptions { server_hostname: Some("bad name!".into()), ..opts() };
        assert_eq!(TlsConnector::new(&o, "h").unwrap_err().kind(), ErrorKind::InvalidArgument);
        let o = TlsOptions { verify: false, ..opts() };
        assert!(TlsConnector::new(&o, "h").is_ok());
    }
}
