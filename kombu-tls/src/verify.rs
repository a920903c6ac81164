//! How the server's certificate is checked: rustls's webpki verifier, or one that lets the name
//! (`ssl_check_hostname=false`) or the whole certificate (`ssl_cert_reqs=none`) go unchecked. Every mode
//! still checks the handshake's signatures: the server must hold the key of the certificate it sent.

use std::sync::Arc;

use kombu_core::{Error, ErrorKind, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What is verified of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The chain to a trusted root, the dates, and the name (the default).
    Full,
    /// The chain and the dates, not the name (`ssl_check_hostname=false`).
    AnyName,
    /// Nothing: any certificate is accepted (`ssl_cert_reqs=none`); the handshake signatures still are.
    Nothing,
}

/// The verifier of `verify`, with `roots` as trust anchors and `provider`'s signature algorithms.
pub(crate) fn verifier(
    roots: RootCertStore,
    verify: Verify,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>> {
    let webpki = || {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "TLS certificate verifier", e))
    };
    Ok(match verify {
        Verify::Full => webpki()?,
        Verify::AnyName => Arc::new(Lenient { chain: Some(webpki()?), provider }),
        Verify::Nothing => Arc::new(Lenient { chain: None, provider }),
    })
}

/// The verifier of [`Verify::AnyName`] (`chain` set: a certificate not valid for the name passes) and
/// [`Verify::Nothing`] (no `chain`: every certificate passes). Signatures are checked with the provider's
/// algorithms, as the webpki verifier built on it does.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
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
        crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
