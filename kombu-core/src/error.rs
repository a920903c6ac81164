//! The one error type of kombu-rs: a kind a caller can act on, a message, and the cause.

use std::fmt;

/// What went wrong, in terms a caller can act on.
///
/// Match on the kind, not on the message text; use [`Error::is_recoverable`] to decide whether a retry
/// (for example a reconnect) can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection to the broker failed or was lost. A retry (reconnect) may help.
    Connection,
    /// The broker closed the channel, or the channel is unusable. Open a new channel.
    Channel,
    /// An exchange, queue or other named entity does not exist.
    NotFound,
    /// An entity exists with other settings, or the operation's precondition does not hold.
    Precondition,
    /// The broker refused access (credentials, permissions).
    AccessRefused,
    /// An argument was invalid (a URL, an option, a name).
    InvalidArgument,
    /// No transport is registered for a URL scheme.
    UnknownTransport,
    /// A body could not be serialized or deserialized, or compressed or decompressed.
    Serialization,
    /// A message's content type is not in the consumer's accept list.
    ContentDisallowed,
    /// A transport plugin could not be loaded.
    Plugin,
    /// An operation did not complete in time (for example `drain_events` with a timeout).
    Timeout,
    /// The object was already closed, or a message was already acknowledged.
    State,
    /// The transport does not support this operation.
    Unsupported,
}

impl ErrorKind {
    /// A short lowercase name for the kind, as used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connection => "connection error",
            ErrorKind::Channel => "channel error",
            ErrorKind::NotFound => "not found",
            ErrorKind::Precondition => "precondition failed",
            ErrorKind::AccessRefused => "access refused",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::UnknownTransport => "unknown transport",
            ErrorKind::Serialization => "serialization error",
            ErrorKind::ContentDisallowed => "content disallowed",
            ErrorKind::Plugin => "plugin error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::State => "invalid state",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of every kombu-rs operation.
///
/// ```
/// use kombu_core::{Error, ErrorKind};
/// let err = Error::new(ErrorKind::Connection, "connection refused");
/// assert!(err.is_recoverable());
/// assert_eq!(err.to_string(), "connection error: connection refused");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{}", self.display())]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    /// An error of `kind` with a message and the underlying cause.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error { kind, message: message.into(), source: Some(source.into()) }
    }

    /// `kind: message`, or the message alone when it already starts with the kind's name.
    fn display(&self) -> String {
        if self.message.starts_with(self.kind.as_str()) {
            self.message.clone()
        } else {
            format!("{}: {}", self.kind, self.message)
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind prefix (for a broker error: the broker's own text).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the operation (after reconnecting) can help.
    pub fn is_recoverable(&self) -> bool {
        matches!(self.kind, ErrorKind::Connection | ErrorKind::Timeout)
    }

    /// A connection error (recoverable).
    pub fn connection(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Connection, message)
    }

    /// A channel error.
    pub fn channel(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Channel, message)
    }

    /// A missing entity.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// A failed precondition.
    pub fn precondition(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Precondition, message)
    }

    /// An invalid argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// A serialization failure.
    pub fn serialization(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Serialization, message)
    }

    /// A time-out.
    pub fn timeout(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Timeout, message)
    }

    /// An operation on something closed or already settled.
    pub fn state(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::State, message)
    }

    /// An operation the transport does not offer.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            _ => ErrorKind::Connection,
        };
        Error::with_source(kind, err.to_string(), err)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_say_whether_retry_helps() {
        assert!(Error::connection("x").is_recoverable());
        assert!(Error::timeout("x").is_recoverable());
        assert!(!Error::not_found("x").is_recoverable());
        assert!(!Error::new(ErrorKind::ContentDisallowed, "x").is_recoverable());
    }

    #[test]
    fn io_errors_map_to_connection() {
        let e: Error = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(std::error::Error::source(&e).is_some());
    }
}
