//! lapin errors to kombu-core errors: pure, no I/O.
//!
//! A broker's refusal keeps the broker's own text as the error message (`NOT_FOUND - no exchange 'x' in
//! vhost '/'`), with a kind a caller can act on: `NOT_FOUND` is [`ErrorKind::NotFound`],
//! `PRECONDITION_FAILED` and `RESOURCE_LOCKED` are [`ErrorKind::Precondition`], `ACCESS_REFUSED` and
//! `NOT_ALLOWED` are [`ErrorKind::AccessRefused`], `NOT_IMPLEMENTED` is [`ErrorKind::Unsupported`]; other
//! connection-level (hard) errors, I/O errors and lost heartbeats are [`ErrorKind::Connection`]
//! (recoverable by reconnecting), and an operation on a channel the broker closed is [`ErrorKind::Channel`].
//!
//! A TLS handshake that fails over a certificate is [`ErrorKind::AccessRefused`], like refused credentials:
//! a server certificate this side does not trust (unknown issuer, expired, another name), and a client
//! certificate the server refuses or misses (its alert: bad, unknown CA, expired, required, or a TLS 1.2
//! `handshake_failure`). A retry cannot help, so the connection's driver reports it instead of reconnecting
//! forever. Other TLS failures (a plain port answering garbage, say) stay [`ErrorKind::Connection`].

use kombu_core::{Error, ErrorKind};
use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::ErrorKind as LapinKind;

/// The kombu error kind for an AMQP error code carried by channel.close or connection.close.
pub fn kind_of_amqp(err: &AMQPError) -> ErrorKind {
    match err.kind() {
        AMQPErrorKind::Soft(soft) => match soft {
            AMQPSoftError::NOTFOUND | AMQPSoftError::NOROUTE | AMQPSoftError::NOCONSUMERS => ErrorKind::NotFound,
            AMQPSoftError::PRECONDITIONFAILED | AMQPSoftError::RESOURCELOCKED => ErrorKind::Precondition,
            AMQPSoftError::ACCESSREFUSED => ErrorKind::AccessRefused,
            AMQPSoftError::CONTENTTOOLARGE => ErrorKind::InvalidArgument,
        },
        AMQPErrorKind::Hard(hard) => match hard {
            AMQPHardError::NOTALLOWED => ErrorKind::AccessRefused,
            AMQPHardError::NOTIMPLEMENTED => ErrorKind::Unsupported,
            _ => ErrorKind::Connection,
        },
    }
}

/// A lapin error as a kombu error; `context` names the operation (`queue.declare 'q'`).
///
/// Each thing is said once: a broker's refusal is the broker's text alone (lapin's own `Display` of it
/// repeats that text behind "protocol error: AMQP soft error: ..."), a local state is described in the
/// message, an I/O error is the cause of a message that is the context, and any other lapin error (whose
/// `Display` includes its own cause) is an opaque cause.
pub fn from_lapin(err: lapin::Error, context: &str) -> Error {
    let (kind, message) = match err.kind() {
        LapinKind::ProtocolError(amqp) => (kind_of_amqp(amqp), amqp.get_message().as_str().to_owned()),
        LapinKind::InvalidChannelState(state, what) => {
            (ErrorKind::Channel, format!("{context}: the channel is {state:?} (at {what}); open a new channel"))
        }
        LapinKind::InvalidChannel(id) => (ErrorKind::Channel, format!("{context}: channel {id} is not open")),
        LapinKind::ChannelsLimitReached => {
            (ErrorKind::Channel, format!("{context}: the connection's channel limit is reached"))
        }
        LapinKind::InvalidConnectionState(state) => {
            (ErrorKind::Connection, format!("{context}: the connection is {state:?}"))
        }
        LapinKind::AuthProviderError(why) => (ErrorKind::AccessRefused, format!("{context}: {why}")),
        LapinKind::IOError(io) => {
            if let Some(refusal) = tls_refusal(io) {
                return Error::with_source(ErrorKind::AccessRefused, format!("{context}: {refusal}"), io.clone());
            }
            return Error::with_source(ErrorKind::Connection, context, io.clone());
        }
        _ => return Error::with_opaque_source(ErrorKind::Connection, context, err),
    };
    Error::new(kind, message)
}

/// What a certificate failure of the TLS handshake means, if `io` is one (see the module docs; kombu-tls
/// sorts the rustls error).
#[cfg(feature = "tls")]
fn tls_refusal(io: &std::io::Error) -> Option<&'static str> {
    use kombu_tls::Failure;
    match Failure::of(kombu_tls::rustls_error(io)?) {
        Failure::Expired | Failure::WrongName | Failure::Untrusted => {
            Some("the server's TLS certificate is not trusted (see ssl_ca_certs, ssl_server_hostname)")
        }
        Failure::NoServerCertificate => Some("the server presented no TLS certificate"),
        // RabbitMQ (Erlang's ssl) answers a missing client certificate with TLS 1.2's `handshake_failure`.
        Failure::ClientRefused | Failure::HandshakeFailure => Some(
            "the server refused the TLS handshake: a client certificate it does not accept, or none (see ssl_certfile)",
        ),
        Failure::NotTls | Failure::Other => None,
    }
}

#[cfg(not(feature = "tls"))]
fn tls_refusal(_io: &std::io::Error) -> Option<&'static str> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(code: u16, text: &str) -> lapin::Error {
        let amqp = AMQPError::from_id(code, text.into()).expect("known code");
        LapinKind::ProtocolError(amqp).into()
    }

    #[test]
    fn broker_codes_map_to_kinds_with_the_broker_text() {
        let cases = [
            (404, "NOT_FOUND - no exchange 'x' in vhost '/'", ErrorKind::NotFound),
            (406, "PRECONDITION_FAILED - inequivalent arg 'durable'", ErrorKind::Precondition),
            (405, "RESOURCE_LOCKED - cannot obtain exclusive access", ErrorKind::Precondition),
            (403, "ACCESS_REFUSED - Login was refused", ErrorKind::AccessRefused),
            (530, "NOT_ALLOWED - vhost nope not found", ErrorKind::AccessRefused),
            (540, "NOT_IMPLEMENTED - requeue=false", ErrorKind::Unsupported),
            (320, "CONNECTION_FORCED - broker forced connection closure", ErrorKind::Connection),
            (311, "CONTENT_TOO_LARGE", ErrorKind::InvalidArgument),
        ];
        for (code, text, kind) in cases {
            let e = from_lapin(protocol(code, text), "op");
            assert_eq!(e.kind(), kind, "{code}");
            assert_eq!(e.message(), text);
            assert_eq!(e.report().to_string(), format!("{kind}: {text}"), "the broker's text once");
        }
    }

    #[test]
    fn local_states_map_to_channel_and_connection() {
        let closed: lapin::Error = LapinKind::InvalidChannelState(lapin::ChannelState::Closed, "basic.publish").into();
        let e = from_lapin(closed, "publish to 'ex'");
        assert_eq!(e.kind(), ErrorKind::Channel);
        assert!(e.message().contains("publish to 'ex'"), "{e}");
        let io: lapin::Error = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
        let e = from_lapin(io, "basic.get");
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.is_recoverable());
        assert_eq!(e.report().to_string(), "connection error: basic.get: reset");
        assert!(!from_lapin(protocol(404, "x"), "y").is_recoverable());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn certificate_failures_are_refusals_not_retried() {
        use kombu_tls::rustls;
        use std::io;
        let tls = |e: rustls::Error| -> lapin::Error { io::Error::new(io::ErrorKind::InvalidData, e).into() };
        let cases = [
            (tls(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)), ErrorKind::AccessRefused),
            (tls(rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)), ErrorKind::AccessRefused),
            (
                tls(rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired)),
                ErrorKind::AccessRefused,
            ),
            (tls(rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA)), ErrorKind::AccessRefused),
            (tls(rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure)), ErrorKind::AccessRefused),
            (tls(rustls::Error::DecryptError), ErrorKind::Connection),
        ];
        for (err, kind) in cases {
            let e = from_lapin(err, "connecting to amqps://h:5671/");
            assert_eq!(e.kind(), kind, "{e:#}");
            assert_eq!(e.is_recoverable(), kind == ErrorKind::Connection);
            assert!(e.message().starts_with("connecting to amqps://h:5671/"), "{e}");
        }
        let e = from_lapin(tls(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)), "op");
        assert_eq!(
            e.report().to_string(),
            "access refused: op: the server's TLS certificate is not trusted (see ssl_ca_certs, ssl_server_hostname): \
             invalid peer certificate: UnknownIssuer"
        );
    }
}
