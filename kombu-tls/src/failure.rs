//! rustls failures sorted into what a caller can act on. A certificate either side refuses is the TLS
//! connection's credentials being wrong: the backends make it `AccessRefused`, which no retry changes.
//! Which kind the ambiguous cases get, and every message, is the backend's (their options differ).

use rustls::{AlertDescription as A, CertificateError as C};

/// What a TLS failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// This side refused the server's certificate: it has expired.
    Expired,
    /// This side refused the server's certificate: it is not for the name checked.
    WrongName,
    /// This side refused the server's certificate: unknown issuer, bad, revoked, or any other reason.
    Untrusted,
    /// The server presented no certificate.
    NoServerCertificate,
    /// The server refused our client certificate, or its absence (its alert: bad, unsupported, revoked,
    /// expired, unknown, unknown CA, access denied, certificate required, no certificate).
    ClientRefused,
    /// The server's `handshake_failure` alert: a TLS 1.2 server's answer to a missing client certificate,
    /// or any server's when no cipher suite is shared.
    HandshakeFailure,
    /// The peer does not speak TLS with us: garbage, an unexpected message, no shared protocol version.
    NotTls,
    /// Anything else (a lost or corrupted link, say).
    Other,
}

impl Failure {
    /// Sorts a rustls error.
    pub fn of(e: &rustls::Error) -> Failure {
        use rustls::Error as E;
        match e {
            E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => Failure::Expired,
            E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => Failure::WrongName,
            E::InvalidCertificate(_) | E::InvalidCertRevocationList(_) => Failure::Untrusted,
            E::NoCertificatesPresented => Failure::NoServerCertificate,
            E::AlertReceived(
                A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied
                | A::CertificateRequired
                | A::NoCertificate,
            ) => Failure::ClientRefused,
            E::AlertReceived(A::HandshakeFailure) => Failure::HandshakeFailure,
            E::InvalidMessage(_)
            | E::PeerIncompatible(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::AlertReceived(A::ProtocolVersion) => Failure::NotTls,
            _ => Failure::Other,
        }
    }

    /// Whether a certificate is at fault, on either side: what the backends report as `AccessRefused`.
    pub fn is_certificate(self) -> bool {
        matches!(
            self,
            Failure::Expired
                | Failure::WrongName
                | Failure::Untrusted
                | Failure::NoServerCertificate
                | Failure::ClientRefused
        )
    }
}

/// The rustls error inside an I/O error, if it carries one (as rustls's streams and lapin report them).
pub fn rustls_error(io: &std::io::Error) -> Option<&rustls::Error> {
    io.get_ref()?.downcast_ref::<rustls::Error>()
}
