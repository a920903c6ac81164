//! TLS for `amqps://`: the rustls client configuration made from [`TlsOptions`], its PEM files read and checked here.
//!
//! Every file is read when a connection is made (so a renewed certificate is used by the next reconnect),
//! and every error names the option and the file: a file that cannot be read, that holds no PEM item of
//! the kind expected, a CA certificate that cannot be a trust anchor, a key that does not belong to the
//! certificate. They are [`InvalidArgument`](kombu_core::ErrorKind::InvalidArgument) errors: the
//! configuration is wrong, and a retry cannot help.
//!
//! The configuration is rustls's own (ring), built here rather than through lapin's `OwnedTLSConfig`:
//! that one takes the same PEM but skips certificates it cannot parse without a word, and has no way to
//! turn verification off (`ssl_cert_reqs=none`) or to check another name than the URL's host
//! (`ssl_server_hostname`). lapin's `Connection::connector` runs [`TlsConnector::connect`] for each
//! connection.

use std::sync::Arc;

use kombu_core::{Error, ErrorKind, Result};
use lapin::tcp::{AsyncTcpStream, RustlsConnector};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

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
        let provider = Arc::new(crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::with_source(ErrorKind::Unsupported, "TLS: the protocol versions", e))?;
        let builder = if opts.verify {
            builder.with_root_certificates(roots(opts.ca_certs.as_deref())?)
        } else {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)))
        };
        let config = match &opts.certfile {
            None => builder.with_no_client_auth(),
            Some(certfile) => {
                let cert_pem = read("ssl_certfile", certfile)?;
                let chain = certificates("ssl_certfile", certfile, &cert_pem)?;
                let (key_option, key_path, key_pem) = match &opts.keyfile {
                    Some(keyfile) => ("ssl_keyfile", keyfile, read("ssl_keyfile", keyfile)?),
                    None => ("ssl_certfile", certfile, cert_pem),
                };
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    let what = format!(
                        "{key_option}: '{key_path}' holds no unencrypted private key (PEM: PKCS#8, PKCS#1 or SEC1)"
                    );
                    Error::with_source(ErrorKind::InvalidArgument, what, e)
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    let what = format!("ssl_certfile '{certfile}' and the key in '{key_path}' cannot be used together");
                    Error::with_source(ErrorKind::InvalidArgument, what, e)
                })?
            }
        };
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
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    if let Some(path) = ca_certs {
        let pem = read("ssl_ca_certs", path)?;
        for (n, cert) in certificates("ssl_ca_certs", path, &pem)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                let what = format!("ssl_ca_certs: certificate {} of '{path}' cannot be a trust anchor", n + 1);
                Error::with_source(ErrorKind::InvalidArgument, what, e)
            })?;
        }
    }
    Ok(roots)
}

fn read(option: &str, path: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, format!("{option}: cannot read '{path}'"), e))
}

/// Every certificate of a PEM file; at least one.
fn certificates(option: &str, path: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| {
        Error::with_source(ErrorKind::InvalidArgument, format!("{option}: '{path}' is not valid PEM"), e)
    })?;
    if certs.is_empty() {
        return Err(Error::invalid(format!(
            "{option}: '{path}' holds no certificate (PEM, -----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

/// `ssl_cert_reqs=none`: any server certificate is accepted. The handshake's signatures are still checked
/// (the server must hold the key of the certificate it sent), the chain, dates and name are not.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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
