//! TLS settings made into a rustls client configuration (ring provider, chosen explicitly), and TLS
//! failures turned into kombu errors of a kind a retry cannot help when a certificate is at fault.
//!
//! Built once per connection from [`TlsOptions`] (the PEM files are read then); every socket the
//! connection opens (the poller's two, the command pool's, and the sentinels' when asked) uses it.

#[cfg(feature = "tls")]
pub(crate) use imp::{classify, handshake, io_error, Config};
#[cfg(not(feature = "tls"))]
pub(crate) use none::{io_error, Config};

#[cfg(not(feature = "tls"))]
mod none {
    use kombu_core::{Error, Result};

    use crate::options::TlsOptions;

    /// Without the `tls` feature there is no TLS configuration (no value of this type can exist): asking
    /// for TLS is an error naming the feature.
    #[derive(Debug, Clone)]
    pub(crate) enum Config {}

    impl Config {
        pub(crate) fn new(_: &TlsOptions) -> Result<Config> {
            Err(Error::unsupported("TLS (rediss://, ssl_* options) needs the `tls` feature of kombu-redis"))
        }
    }

    /// Without the `tls` feature an I/O error is only an I/O error.
    pub(crate) fn io_error(context: String, e: std::io::Error) -> Error {
        Error::with_source(kombu_core::ErrorKind::Connection, context, e)
    }
}

#[cfg(feature = "tls")]
mod imp {
    use std::net::TcpStream;
    use std::path::Path;
    use std::sync::{Arc, Once};

    use kombu_core::{Error, ErrorKind, Result};
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::crypto::{ring, CryptoProvider};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct};
    use rustls::{RootCertStore, SignatureScheme, StreamOwned};

    use crate::options::{CertReqs, TlsOptions};

    /// A rustls client configuration for every socket of one connection.
    #[derive(Debug, Clone)]
    pub(crate) struct Config {
        config: Arc<ClientConfig>,
    }

    fn invalid_file(option: &str, path: &Path, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::with_source(ErrorKind::InvalidArgument, format!("{option} '{}': {what}", path.display()), e)
    }

    fn certificates(option: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| invalid_file(option, path, "cannot read PEM certificates", e))?;
        if certs.is_empty() {
            return Err(Error::invalid(format!("{option} '{}': no PEM certificate in the file", path.display())));
        }
        Ok(certs)
    }

    impl Config {
        /// Reads the PEM files the options name and builds the configuration: the CA file's certificates as
        /// the only roots (else Mozilla's, from `webpki-root-certs`), the client certificate and key if given,
        /// and the verification `ssl_cert_reqs` and `ssl_check_hostname` ask for.
        pub(crate) fn new(o: &TlsOptions) -> Result<Config> {
            let provider = Arc::new(ring::default_provider());
            let mut roots = RootCertStore::empty();
            match &o.ca_certs {
                Some(path) => {
                    for (i, cert) in certificates("ssl_ca_certs", path)?.into_iter().enumerate() {
                        roots.add(cert).map_err(|e| {
                            invalid_file("ssl_ca_certs", path, &format!("certificate {} is not a usable CA", i + 1), e)
                        })?;
                    }
                }
                None => {
                    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
                }
            }
            let builder = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "TLS protocol versions", e))?;
            let verifier: Arc<dyn ServerCertVerifier> = match o.cert_reqs {
                CertReqs::None => {
                    static WARNED: Once = Once::new();
                    WARNED.call_once(|| {
                        tracing::warn!(
                            "ssl_cert_reqs=none: the Redis server's TLS certificate is not verified (anyone on the \
                             path can impersonate it)"
                        )
                    });
                    Arc::new(AcceptAny(provider.clone()))
                }
                CertReqs::Required | CertReqs::Optional => {
                    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "TLS certificate verifier", e))?;
                    if o.check_hostname {
                        webpki
                    } else {
                        Arc::new(AnyName(webpki))
                    }
                }
            };
            let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
            let config = match (&o.certfile, &o.keyfile) {
                (None, None) => builder.with_no_client_auth(),
                (None, Some(_)) => {
                    return Err(Error::invalid("ssl_keyfile needs ssl_certfile (the client certificate)"))
                }
                (Some(cert), key) => {
                    let chain = certificates("ssl_certfile", cert)?;
                    // As Python's ssl module: without a key file, the key is in the certificate file.
                    let (option, key_path) = match key {
                        Some(k) => ("ssl_keyfile", k),
                        None => ("ssl_certfile", cert),
                    };
                    let key = PrivateKeyDer::from_pem_file(key_path)
                        .map_err(|e| invalid_file(option, key_path, "cannot read a PEM private key", e))?;
                    builder.with_client_auth_cert(chain, key).map_err(|e| {
                        invalid_file("ssl_certfile", cert, "the client certificate and key cannot be used", e)
                    })?
                }
            };
            Ok(Config { config: Arc::new(config) })
        }
    }

    /// Runs the TLS handshake on a connected, blocking socket (its timeouts bound the wait).
    pub(crate) fn handshake(
        config: &Config,
        host: &str,
        addr: &str,
        mut tcp: TcpStream,
    ) -> Result<Box<StreamOwned<ClientConnection, TcpStream>>> {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            Error::with_source(ErrorKind::InvalidArgument, format!("'{host}' is not a host name TLS can verify"), e)
        })?;
        let mut conn = ClientConnection::new(config.config.clone(), name)
            .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "TLS client", e))?;
        // Writes are buffered by the poller: rustls takes all of them, and the socket drains them.
        conn.set_buffer_limit(None);
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(|e| io_error(format!("TLS handshake with redis at {addr}"), e))?;
        }
        Ok(Box::new(StreamOwned::new(conn, tcp)))
    }

    /// An I/O error of a TLS socket: a TLS failure is classified, anything else is a lost connection.
    pub(crate) fn io_error(context: String, e: std::io::Error) -> Error {
        let is_tls = e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>());
        if !is_tls {
            return Error::with_source(ErrorKind::Connection, context, e);
        }
        match e.into_inner().map(|inner| inner.downcast::<rustls::Error>()) {
            Some(Ok(tls)) => classify(context, *tls),
            _ => Error::connection(context),
        }
    }

    /// A TLS failure as a kombu error. A certificate either side refuses is `AccessRefused` (the
    /// credentials of a TLS connection; no retry changes them), a peer that does not speak TLS or shares
    /// no protocol with us is `InvalidArgument` (a wrong port or configuration), anything else is a
    /// (recoverable) `Connection` error.
    pub(crate) fn classify(context: String, e: rustls::Error) -> Error {
        use rustls::Error as E;
        let (kind, why) = match &e {
            E::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
                (ErrorKind::AccessRefused, "the server's certificate has expired")
            }
            E::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => (ErrorKind::AccessRefused, "the server's certificate is not for this host"),
            E::InvalidCertificate(_) | E::NoCertificatesPresented => {
                (ErrorKind::AccessRefused, "the server's certificate is not trusted (check ssl_ca_certs)")
            }
            E::AlertReceived(
                AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA
                | AlertDescription::AccessDenied
                | AlertDescription::CertificateRequired,
            ) => (ErrorKind::AccessRefused, "the server refused the client certificate (see ssl_certfile)"),
            E::InvalidMessage(_)
            | E::PeerIncompatible(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::AlertReceived(AlertDescription::HandshakeFailure | AlertDescription::ProtocolVersion) => {
                (ErrorKind::InvalidArgument, "the server does not speak TLS with us (is this its TLS port?)")
            }
            _ => (ErrorKind::Connection, "TLS failed"),
        };
        Error::with_source(kind, format!("{context}: {why}"), e)
    }

    /// `ssl_cert_reqs=none`: any certificate is accepted; the handshake signatures are still checked.
    #[derive(Debug)]
    struct AcceptAny(Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAny {
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
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// `ssl_check_hostname=false`: the chain is verified, the name it is for is not.
    #[derive(Debug)]
    struct AnyName(Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for AnyName {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn missing_and_bad_pem_files_are_argument_errors_naming_the_file() {
            let dir = tempfile::tempdir().unwrap();
            let missing = dir.path().join("missing.pem");
            let o = TlsOptions { ca_certs: Some(missing.clone()), ..TlsOptions::default() };
            let e = Config::new(&o).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.to_string().contains(&format!("ssl_ca_certs '{}'", missing.display())), "{e}");
            let junk = dir.path().join("junk.pem");
            std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n")
                .unwrap();
            for o in [
                TlsOptions { ca_certs: Some(junk.clone()), ..TlsOptions::default() },
                TlsOptions { certfile: Some(junk.clone()), ..TlsOptions::default() },
                TlsOptions { keyfile: Some(junk.clone()), ..TlsOptions::default() },
            ] {
                let e = Config::new(&o).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e:#}");
            }
            let empty = dir.path().join("empty.pem");
            std::fs::write(&empty, "").unwrap();
            let e = Config::new(&TlsOptions { ca_certs: Some(empty), ..TlsOptions::default() }).unwrap_err();
            assert!(e.to_string().ends_with("no PEM certificate in the file"), "{e}");
            assert!(Config::new(&TlsOptions::default()).is_ok());
        }
    }
}
