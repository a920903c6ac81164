//! TLS settings made into a rustls client configuration (ring provider, chosen explicitly), and TLS
//! failures turned into kombu errors of a kind a retry cannot help when a certificate is at fault.
//!
//! Built once per connection from [`TlsOptions`] (the PEM files are read then); every socket the
//! connection opens (the poller's two, the command pool's, and the sentinels' when asked) uses it. The PEM
//! reading, the verifiers, the `ClientConfig` and the sorting of rustls failures are kombu-tls's (shared
//! with kombu-amqp); this backend's own: `ssl_ca_certs` *replaces* Mozilla's roots, the warning of
//! `ssl_cert_reqs=none`, the blocking handshake, and the kinds and messages of its errors.

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
    use std::sync::{Arc, Once};

    use kombu_core::{Error, ErrorKind, Result};
    use kombu_tls::rustls::{self, pki_types::ServerName, ClientConfig, ClientConnection, RootCertStore, StreamOwned};
    use kombu_tls::{Failure, Identity, Verify};

    use crate::options::{CertReqs, TlsOptions};

    /// A rustls client configuration for every socket of one connection.
    #[derive(Debug, Clone)]
    pub(crate) struct Config {
        config: Arc<ClientConfig>,
    }

    impl Config {
        /// Reads the PEM files the options name and builds the configuration: the CA file's certificates as
        /// the only roots (else Mozilla's, from `webpki-root-certs`), the client certificate and key if given,
        /// and the verification `ssl_cert_reqs` and `ssl_check_hostname` ask for.
        pub(crate) fn new(o: &TlsOptions) -> Result<Config> {
            let roots = match &o.ca_certs {
                Some(path) => {
                    let mut roots = RootCertStore::empty();
                    kombu_tls::add_ca_certs(&mut roots, path)?;
                    roots
                }
                None => kombu_tls::builtin_roots(),
            };
            let verify = match o.cert_reqs {
                CertReqs::None => {
                    static WARNED: Once = Once::new();
                    WARNED.call_once(|| {
                        tracing::warn!(
                            "ssl_cert_reqs=none: the Redis server's TLS certificate is not verified (anyone on the \
                             path can impersonate it)"
                        )
                    });
                    Verify::Nothing
                }
                CertReqs::Required | CertReqs::Optional if o.check_hostname => Verify::Full,
                CertReqs::Required | CertReqs::Optional => Verify::AnyName,
            };
            let identity = match (&o.certfile, &o.keyfile) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(Error::invalid("ssl_keyfile needs ssl_certfile (the client certificate)"))
                }
                (Some(certfile), keyfile) => Some(Identity { certfile, keyfile: keyfile.as_deref() }),
            };
            Ok(Config { config: Arc::new(kombu_tls::client_config(roots, identity, verify)?) })
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
        if kombu_tls::rustls_error(&e).is_none() {
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
        let (kind, why) = match Failure::of(&e) {
            Failure::Expired => (ErrorKind::AccessRefused, "the server's certificate has expired"),
            Failure::WrongName => (ErrorKind::AccessRefused, "the server's certificate is not for this host"),
            Failure::Untrusted | Failure::NoServerCertificate => {
                (ErrorKind::AccessRefused, "the server's certificate is not trusted (check ssl_ca_certs)")
            }
            Failure::ClientRefused => {
                (ErrorKind::AccessRefused, "the server refused the client certificate (see ssl_certfile)")
            }
            Failure::NotTls | Failure::HandshakeFailure => {
                (ErrorKind::InvalidArgument, "the server does not speak TLS with us (is this its TLS port?)")
            }
            Failure::Other => (ErrorKind::Connection, "TLS failed"),
        };
        Error::with_source(kind, format!("{context}: {why}"), e)
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
            assert!(e.to_string().contains(&format!("ssl_ca_certs: cannot read '{}'", missing.display())), "{e}");
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
            assert!(e.to_string().ends_with("holds no certificate (PEM, -----BEGIN CERTIFICATE-----)"), "{e}");
            assert!(Config::new(&TlsOptions::default()).is_ok());
        }
    }
}
