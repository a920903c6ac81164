//! The one error type of kombu-rs: a kind a caller can act on, a message, and the cause.
//!
//! Each thing is said once (Rust API guidelines, C-GOOD-ERR): an error's `Display` is its kind and its
//! own message (the context: what was being done), and the cause is only in [`source()`](std::error::Error::source).
//! [`Error::report`] prints the whole chain, each link once, for a program's last word or a log line.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong, in terms a caller can act on.
///
/// Match on the kind, not on the message text; use [`Error::is_recoverable`] to decide whether a retry
/// (for example a reconnect) can help.
///
/// One condition has one kind on every backend (memory, redis, amqp, the filesystem plugin; conformance
/// case 30 checks it):
///
/// | condition | kind | recoverable |
/// |---|---|---|
/// | the broker refused the TCP connection (nothing listening) | [`Connection`](ErrorKind::Connection) | yes |
/// | the broker refused the credentials (user, password) | [`AccessRefused`](ErrorKind::AccessRefused) | no |
/// | passive declare of a queue or exchange that does not exist | [`NotFound`](ErrorKind::NotFound) | no |
/// | an operation on a channel the program closed | [`State`](ErrorKind::State) | no |
/// | an operation on a connection the program closed (or on a channel of it) | [`State`](ErrorKind::State) | no |
///
/// A channel the *broker* closed (AMQP, after a refused method) is [`Channel`](ErrorKind::Channel): the
/// program did nothing wrong with the object, and a new channel works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection to the broker failed or was lost, or the broker refused the TCP connection. A retry
    /// (reconnect) may help.
    Connection,
    /// The broker closed the channel, or refused a command on it. Open a new channel.
    Channel,
    /// An exchange, queue or other named entity does not exist (for example a passive declare of a missing
    /// queue or exchange).
    NotFound,
    /// An entity exists with other settings, or the operation's precondition does not hold.
    Precondition,
    /// The broker refused access: wrong credentials (user, password), or no permission.
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
    /// The object was already closed by the program (a channel it closed, a connection it closed and its
    /// channels), or a message was already acknowledged. Open a new one; retrying does not help.
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
/// Its `Display` is `kind: message` (or the kind alone when there is no message), never the cause: the
/// cause, when there is one, is [`source()`](std::error::Error::source). Print [`Error::report`] to show
/// the whole chain once.
///
/// ```
/// use kombu_core::{Error, ErrorKind};
/// let err = Error::new(ErrorKind::Connection, "connection refused");
/// assert!(err.is_recoverable());
/// assert_eq!(err.to_string(), "connection error: connection refused");
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let err = Error::with_source(ErrorKind::Connection, "connecting to 127.0.0.1:1", io);
/// assert_eq!(err.to_string(), "connection error: connecting to 127.0.0.1:1");
/// assert_eq!(err.report().to_string(), "connection error: connecting to 127.0.0.1:1: refused");
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
    may_have_reached_broker: bool,
}

/// `{}` is `kind: message`; `{:#}` is the whole chain, as [`Error::report`] prints it (the form for log
/// lines: `tracing::warn!("publish failed: {err:#}")`).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return fmt::Display::fmt(&self.report(), f);
        }
        if self.message.is_empty() {
            f.write_str(self.kind.as_str())
        } else {
            write!(f, "{}: {}", self.kind, self.message)
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn StdError + 'static))
    }
}

/// An error and its causes as one line, each once: `Display` of the error, then `: ` and the `Display`
/// of each [`source()`](std::error::Error::source) in turn. Made by [`Error::report`].
#[derive(Clone, Copy)]
pub struct Report<'a>(&'a Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for link in self.0.chain() {
            if !first {
                f.write_str(": ")?;
            }
            first = false;
            write!(f, "{link}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A foreign error whose `Display` already includes its causes (lapin's and redis-rs's errors print their
/// source in their own message and return it from `source()` too): its text is kept, its causes are not
/// given a second time.
struct Opaque(Box<dyn StdError + Send + Sync + 'static>);

impl fmt::Display for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl StdError for Opaque {}

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None, may_have_reached_broker: false }
    }

    /// An error of `kind` with the underlying cause. The message is context only (what was being done:
    /// `"connecting to redis at 127.0.0.1:6379"`), never the cause's text, which the cause prints itself;
    /// it may be empty.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        Error { kind, message: message.into(), source: Some(source.into()), may_have_reached_broker: false }
    }

    /// Like [`with_source`](Error::with_source), for a cause whose own `Display` already includes *its*
    /// causes (as lapin's and redis-rs's errors do): the chain stops at it, so nothing is printed twice.
    /// The cause is then not reachable by downcasting `source()`.
    ///
    /// ```
    /// use kombu_core::{Error, ErrorKind};
    /// #[derive(Debug)]
    /// struct Loud(std::io::Error); // prints its cause and returns it as source(), too
    /// impl std::fmt::Display for Loud {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "IO error: {}", self.0) }
    /// }
    /// impl std::error::Error for Loud {
    ///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> { Some(&self.0) }
    /// }
    /// let loud = Loud(std::io::Error::other("reset"));
    /// let err = Error::with_opaque_source(ErrorKind::Connection, "reading", loud);
    /// assert_eq!(err.report().to_string(), "connection error: reading: IO error: reset");
    /// ```
    pub fn with_opaque_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        Error::with_source(kind, message, Opaque(source.into()))
    }

    /// The same error with `context` put before its message (`"publishing: " + message`): kind, cause
    /// and publish outcome are kept. For adding what the caller was doing without nesting the error in
    /// another (which would print the kind twice).
    ///
    /// ```
    /// use kombu_core::Error;
    /// let err = Error::connection("").context("connecting to amqp://127.0.0.1:1//");
    /// assert_eq!(err.to_string(), "connection error: connecting to amqp://127.0.0.1:1//");
    /// let err = Error::not_found("no queue 'q'").context("consuming");
    /// assert_eq!(err.to_string(), "not found: consuming: no queue 'q'");
    /// ```
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message =
            if self.message.is_empty() { context.to_string() } else { format!("{context}: {}", self.message) };
        self
    }

    /// The error and its causes as one line, each said once: for a program's error message or a log line
    /// (`tracing::warn!("publish failed: {err:#}")`).
    ///
    /// ```
    /// use kombu_core::{Error, ErrorKind};
    /// let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
    /// let err = Error::with_source(ErrorKind::Connection, "connecting to amqp://127.0.0.1:1//", cause);
    /// assert_eq!(
    ///     err.report().to_string(),
    ///     "connection error: connecting to amqp://127.0.0.1:1//: Connection refused (os error 111)"
    /// );
    /// assert_eq!(format!("{err:#}"), err.report().to_string());
    /// ```
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }

    /// The error, then each of its causes in turn (what [`report`](Error::report) prints).
    ///
    /// ```
    /// use kombu_core::{Error, ErrorKind};
    /// let err = Error::with_source(ErrorKind::Connection, "reading", std::io::Error::other("reset"));
    /// let links: Vec<String> = err.chain().map(|e| e.to_string()).collect();
    /// assert_eq!(links, ["connection error: reading", "reset"]);
    /// ```
    pub fn chain(&self) -> impl Iterator<Item = &(dyn StdError + 'static)> {
        std::iter::successors(Some(self as &(dyn StdError + 'static)), |e: &&(dyn StdError + 'static)| (*e).source())
    }

    /// For an error of a publish: whether the message (or, for a batch, any of its messages) may have
    /// reached the broker before the failure.
    ///
    /// `false`: nothing was sent (refused before writing, a serialization error, a closed channel, a
    /// connection that could not be made) or the broker refused the message, so it is not on the broker
    /// and publishing it again cannot duplicate it. `true`: the outcome is unknown (the connection was lost
    /// after the bytes were written, no confirm came in time): the message may be on the broker, and
    /// publishing it again may deliver it twice. See [`Producer`](crate::Producer) for the guarantees.
    /// Errors of other operations answer `false`.
    ///
    /// ```
    /// use kombu_core::Error;
    /// assert!(!Error::serialization("not JSON").may_have_reached_broker());
    /// let lost = Error::timeout("no publisher confirm within 10s").with_may_have_reached_broker(true);
    /// assert!(lost.may_have_reached_broker());
    /// ```
    pub fn may_have_reached_broker(&self) -> bool {
        self.may_have_reached_broker
    }

    /// Sets what [`may_have_reached_broker`](Error::may_have_reached_broker) answers (for transports'
    /// publish paths).
    pub fn with_may_have_reached_broker(mut self, yes: bool) -> Self {
        self.may_have_reached_broker = yes;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind prefix and without the cause (for a broker error: the broker's own
    /// text). May be empty when the cause says it all.
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
        // The I/O error says what happened; the caller adds what it was doing with `context`.
        Error::with_source(kind, "", err)
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
        assert_eq!(e.to_string(), "connection error", "the cause is not in Display");
        assert_eq!(e.report().to_string(), "connection error: refused");
        assert_eq!(
            e.context("reading from redis").report().to_string(),
            "connection error: reading from redis: refused"
        );
    }

    /// Every piece of the report (split on ": ") that is long enough to mean something appears once.
    fn assert_says_each_thing_once(line: &str) {
        let pieces: Vec<&str> = line.split(": ").filter(|p| p.len() > 10).collect();
        for (i, p) in pieces.iter().enumerate() {
            assert!(!pieces[i + 1..].contains(p), "'{p}' repeats in: {line}");
        }
    }

    #[test]
    fn display_never_repeats_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        let e = Error::with_source(ErrorKind::Connection, "connecting to amqp://127.0.0.1:1//", io);
        assert_eq!(e.to_string(), "connection error: connecting to amqp://127.0.0.1:1//");
        let line = e.report().to_string();
        assert_eq!(line, "connection error: connecting to amqp://127.0.0.1:1//: Connection refused (os error 111)");
        assert_says_each_thing_once(&line);
        assert_eq!(e.chain().count(), 2);
    }

    #[test]
    fn a_message_that_starts_with_the_kind_is_not_special() {
        // No de-duplication of the display: the message is printed as given, after the kind.
        let e = Error::connection("connection error: twice");
        assert_eq!(e.to_string(), "connection error: connection error: twice");
        assert_eq!(Error::connection("").to_string(), "connection error");
    }

    #[derive(Debug)]
    struct Loud(std::io::Error);
    impl fmt::Display for Loud {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "IO error: {}", self.0)
        }
    }
    impl StdError for Loud {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_opaque_source_stops_the_chain_at_a_foreign_error_that_prints_its_cause() {
        let loud = Loud(std::io::Error::other("Connection reset by peer"));
        let plain = Error::with_source(
            ErrorKind::Connection,
            "publishing",
            Loud(std::io::Error::other("Connection reset by peer")),
        );
        assert_eq!(plain.chain().count(), 3, "a foreign error that repeats itself, kept as is");
        let e = Error::with_opaque_source(ErrorKind::Connection, "publishing", loud);
        assert_eq!(e.chain().count(), 2);
        let line = e.report().to_string();
        assert_eq!(line, "connection error: publishing: IO error: Connection reset by peer");
        assert_says_each_thing_once(&line);
        assert!(format!("{e:?}").contains("Connection reset by peer"));
    }

    #[test]
    fn context_goes_before_the_message_and_keeps_the_rest() {
        let e = Error::with_source(
            ErrorKind::AccessRefused,
            "ACCESS_REFUSED - Login was refused",
            std::io::Error::other("x"),
        )
        .with_may_have_reached_broker(true)
        .context("connecting to amqp://h:5672//");
        assert_eq!(e.kind(), ErrorKind::AccessRefused);
        assert_eq!(e.message(), "connecting to amqp://h:5672//: ACCESS_REFUSED - Login was refused");
        assert!(e.may_have_reached_broker());
        assert_eq!(
            e.report().to_string(),
            "access refused: connecting to amqp://h:5672//: ACCESS_REFUSED - Login was refused: x"
        );
    }

    #[test]
    fn the_publish_outcome_defaults_to_not_sent() {
        assert!(!Error::connection("refused").may_have_reached_broker());
        let e = Error::timeout("no confirm").with_may_have_reached_broker(true);
        assert!(e.may_have_reached_broker());
        assert!(!e.with_may_have_reached_broker(false).may_have_reached_broker());
    }
}
