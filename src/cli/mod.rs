//! The `kombu` command-line tool: parses the command line, runs one command against a broker named by URL,
//! and turns the outcome into an exit status and at most one line on stderr.
//!
//! The binary (`src/bin/kombu.rs`) only calls [`run`](crate::cli::run) with the process's arguments and standard streams;
//! the same entry point can be called in-process with other streams, which is how the memory broker
//! (which lives inside one process) is exercised end to end.

mod args;
mod bench;
mod bench_allocations;
#[cfg(feature = "tokio")]
mod bench_async;
mod bench_consumers;
mod bench_latency;
#[cfg(feature = "celery")]
mod celery;
mod consume;
mod entities;
mod get;
mod manage;
mod output;
mod publish;
mod transports;

use std::ffi::OsString;
use std::io::{self, Read, Write};

use clap::Parser;

pub use args::Cli;
pub use output::message_json;

/// Exit status: the command did what it was asked.
pub const EXIT_OK: i32 = 0;
/// Exit status: an error (described in one line on stderr).
pub const EXIT_ERROR: i32 = 1;
/// Exit status: the command line was not understood.
pub const EXIT_USAGE: i32 = 2;
/// Exit status: `consume` timed out before the messages it waited for arrived.
pub const EXIT_TIMED_OUT: i32 = 3;

/// The standard streams a command reads and writes.
pub struct Io<'a> {
    /// Where `publish -` reads a body.
    pub stdin: &'a mut dyn Read,
    /// Results: consumed messages, listings, rates.
    pub stdout: &'a mut dyn Write,
    /// The error line.
    pub stderr: &'a mut dyn Write,
}

impl std::fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Io")
    }
}

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A kombu error (a broker, URL, argument or body problem).
    Kombu(kombu_core::Error),
    /// Writing the results failed.
    Output(io::Error),
}

impl From<kombu_core::Error> for Failure {
    fn from(e: kombu_core::Error) -> Self {
        Failure::Kombu(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

/// What a command returns: an exit status, or a failure.
pub(crate) type Outcome = Result<i32, Failure>;

/// Runs the tool with `args` (the first is the program name) and returns the exit status.
///
/// Never panics on bad input: a bad command line gives clap's usage message and status 2, any other error
/// one line `error: ...` on `io.stderr` and status 1.
pub fn run<I, T>(args: I, io: &mut Io<'_>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            let out: &mut dyn Write = if e.use_stderr() { &mut *io.stderr } else { &mut *io.stdout };
            // Nothing better to do if the help text cannot be written.
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    #[cfg(feature = "plugins")]
    for path in &cli.plugins {
        if let Err(e) = kombu_core::Registry::global().load_plugin(path) {
            return report(io, &error_line(&e));
        }
    }
    let outcome = match cli.command {
        args::Command::Publish(a) => publish::run(&a, io),
        #[cfg(feature = "celery")]
        args::Command::Celery(c) => celery::run(&c, io),
        args::Command::Get(a) => get::run(&a, io),
        args::Command::Consume(a) => consume::run(&a, io),
        args::Command::Declare(c) => manage::declare(&c, io),
        args::Command::Delete(c) => manage::delete(&c, io),
        args::Command::Purge(a) => manage::purge(&a, io),
        args::Command::Transports(a) => transports::run(&a, io),
        args::Command::Bench(a) => bench::run(&a, io),
    };
    let flushed = io.stdout.flush();
    match (outcome, flushed) {
        (Ok(code), Ok(())) => code,
        (Ok(_), Err(e)) | (Err(Failure::Output(e)), _) => {
            if e.kind() == io::ErrorKind::BrokenPipe {
                // The reader went away (`kombu consume ... | head -1`): nothing left to tell anyone.
                return EXIT_OK;
            }
            report(io, &format!("writing output: {e}"))
        }
        (Err(Failure::Kombu(e)), _) => report(io, &error_line(&e)),
    }
}

fn report(io: &mut Io<'_>, line: &str) -> i32 {
    let _ = writeln!(io.stderr, "error: {line}").and_then(|()| io.stderr.flush());
    EXIT_ERROR
}

/// A kombu error as one line: the error and each of its causes once ([`kombu_core::Error::report`]),
/// newlines folded.
pub fn error_line(e: &kombu_core::Error) -> String {
    e.report().to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Opens a connection to `url` and connects now, so that a bad URL or an unreachable broker is reported
/// before anything else happens.
pub(crate) fn connect(url: &str) -> Result<crate::Connection, kombu_core::Error> {
    let conn = crate::Connection::open(url)?;
    conn.connect()?;
    Ok(conn)
}

/// Splits `KEY=VALUE`.
pub(crate) fn key_value<'s>(what: &str, s: &'s str) -> Result<(&'s str, &'s str), kombu_core::Error> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(kombu_core::Error::invalid(format!("{what} '{s}' must be KEY=VALUE"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_capture(args: &[&str]) -> (i32, String, String) {
        let mut stdin: &[u8] = b"";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut io = Io { stdin: &mut stdin, stdout: &mut out, stderr: &mut err };
        let code = run(args.iter().copied(), &mut io);
        (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
    }

    #[test]
    fn help_goes_to_stdout_with_status_0() {
        let (code, out, err) = run_capture(&["kombu", "--help"]);
        assert_eq!(code, EXIT_OK);
        assert!(out.contains("Examples:"), "{out}");
        assert!(err.is_empty());
    }

    #[test]
    fn usage_errors_have_status_2() {
        let (code, _, err) = run_capture(&["kombu", "publish"]);
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("URL"), "{err}");
    }

    #[test]
    fn kombu_errors_are_one_line() {
        let (code, out, err) = run_capture(&["kombu", "purge", "nosuchscheme://x", "q"]);
        assert_eq!(code, EXIT_ERROR);
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: unknown transport: 'nosuchscheme'"), "{err}");
    }

    #[test]
    fn key_value_needs_a_key_and_an_equals_sign() {
        assert_eq!(key_value("header", "a=b=c").unwrap(), ("a", "b=c"));
        assert_eq!(key_value("header", "a=").unwrap(), ("a", ""));
        assert!(key_value("header", "=b").is_err());
        assert!(key_value("header", "ab").is_err());
    }

    #[test]
    fn error_line_folds_newlines_and_adds_causes() {
        let cause = io::Error::other("line one\nline two");
        let e = kombu_core::Error::with_source(kombu_core::ErrorKind::Connection, "cannot connect", cause);
        assert_eq!(error_line(&e), "connection error: cannot connect: line one line two");
    }
}
