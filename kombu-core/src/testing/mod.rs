//! The conformance suite: the behaviours every transport must have (`CONFORMANCE.md`), as one table of
//! cases that any backend's tests run against a URL.
//!
//! A backend runs it as one test per case, from a test target with `harness = false`:
//!
//! ```text
//! // Cargo.toml: [[test]] name = "conformance" path = "tests/conformance.rs" harness = false
//! kombu_core::register_transport!(kombu_memory::DESCRIPTOR);
//!
//! fn main() -> std::process::ExitCode {
//!     kombu_core::testing::Suite::new("memory://conformance").peer("memory://peer").run_as_tests()
//! }
//! ```
//!
//! Each case is then a test named `c<number>_<name in snake case>` (`c12_prefetch_limits_unacked_deliveries`),
//! so `cargo test -p kombu-redis --test conformance prefetch` (or `c12`) runs one case and `-- --list` lists
//! them; a case added to the table runs on every backend. A case written against the seam of both APIs
//! also runs through the async API (feature `tokio`) as case 100 + its number
//! (`c107_message_round_trip_async`). Cases run one at a time unless `--test-threads` (or
//! `RUST_TEST_THREADS`) says otherwise: some wait on timers and would be disturbed by a busy machine.
//!
//! A case that needs a capability the transport declares it lacks (see [`Capabilities`]) is skipped by
//! name, with the reason, never silently: it runs, checks the capability, and is reported as ignored
//! with the reason. Every case uses fresh names, so suites for several backends, or several runs, can
//! share one broker.

mod cases;
mod down;

use std::fmt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::transport::{Capabilities, Channel};
use crate::Message;

pub use down::{DownTransport, DOWN_SCHEME};

/// Restarts the broker behind the suite's URL (for case 26); returns when it accepts connections again.
pub type RestartHook = Arc<dyn Fn() -> Result<()> + Send + Sync>;

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It did not apply, and why.
    Skipped(String),
    /// It failed, and how.
    Failed(String),
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Number in CONFORMANCE.md.
    pub number: u32,
    /// Short name.
    pub name: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// The outcome of a suite run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The URL it ran against.
    pub url: String,
    /// One result per case, in order.
    pub results: Vec<CaseResult>,
}

impl Report {
    /// The cases that failed.
    pub fn failures(&self) -> Vec<&CaseResult> {
        self.results.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).collect()
    }
    /// The result of case `number`.
    pub fn case(&self, number: u32) -> Option<&CaseResult> {
        self.results.iter().find(|r| r.number == number)
    }
    /// How many passed, failed and were skipped.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for r in &self.results {
            match r.outcome {
                Outcome::Passed => c.0 += 1,
                Outcome::Failed(_) => c.1 += 1,
                Outcome::Skipped(_) => c.2 += 1,
            }
        }
        c
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of {}:", self.url)?;
        for r in &self.results {
            let (mark, detail) = match &r.outcome {
                Outcome::Passed => ("ok     ", String::new()),
                Outcome::Skipped(why) => ("skipped", format!(": {why}")),
                Outcome::Failed(why) => ("FAILED ", format!(": {why}")),
            };
            writeln!(f, "  {mark} {:>2} {} ({} ms){detail}", r.number, r.name, r.elapsed.as_millis())?;
        }
        let (p, fl, s) = self.counts();
        write!(f, "  {p} passed, {fl} failed, {s} skipped")
    }
}

/// The suite, configured for one transport.
#[derive(Clone)]
pub struct Suite {
    url: String,
    peer: Option<String>,
    restart: Option<RestartHook>,
    only: Option<Vec<u32>>,
    except: Vec<u32>,
}

impl fmt::Debug for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suite").field("url", &self.url).field("peer", &self.peer).finish()
    }
}

impl Suite {
    /// The suite for the transport of `url` (whose scheme must be registered).
    pub fn new(url: impl Into<String>) -> Suite {
        Suite { url: url.into(), peer: None, restart: None, only: None, except: Vec::new() }
    }

    /// A URL of another backend (or another server), for case 19: one Hub driving both.
    pub fn peer(mut self, url: impl Into<String>) -> Self {
        self.peer = Some(url.into());
        self
    }

    /// How to restart the broker, for case 26.
    pub fn restart_hook(mut self, hook: RestartHook) -> Self {
        self.restart = Some(hook);
        self
    }

    /// Runs only these cases (by number).
    pub fn only(mut self, numbers: &[u32]) -> Self {
        self.only = Some(numbers.to_vec());
        self
    }

    /// Runs every case but these (by number): a case added to the table later runs.
    pub fn except(mut self, numbers: &[u32]) -> Self {
        self.except.extend_from_slice(numbers);
        self
    }

    /// Whether case `number` is among those this suite runs.
    fn selects(&self, number: u32) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&number)) && !self.except.contains(&number)
    }

    /// The transport's declared capabilities, from a connection that is opened (not connected).
    fn capabilities(&self) -> std::result::Result<Capabilities, String> {
        Connection::open(&self.url).map(|c| c.capabilities()).map_err(|e| format!("cannot open {}: {e}", self.url))
    }

    /// Runs one case with the capabilities already read.
    fn run_case(&self, case: &cases::Case, caps: Capabilities) -> CaseResult {
        let ctx = Ctx { suite: self, caps };
        let _turn = Turn::take(cases::runs_alone(case.number));
        let start = Instant::now();
        let outcome = match case.run.call(&ctx) {
            Ok(Verdict::Pass) => Outcome::Passed,
            Ok(Verdict::Skip(why)) => Outcome::Skipped(why),
            Err(why) => Outcome::Failed(why),
        };
        CaseResult { number: case.number, name: case.name, outcome, elapsed: start.elapsed() }
    }

    /// Runs every case and reports.
    pub fn run(&self) -> Report {
        down::install();
        let caps = match self.capabilities() {
            Ok(caps) => caps,
            Err(why) => {
                return Report {
                    url: self.url.clone(),
                    results: vec![CaseResult {
                        number: 0,
                        name: "open",
                        outcome: Outcome::Failed(why),
                        elapsed: Duration::ZERO,
                    }],
                }
            }
        };
        let results = cases::all().filter(|c| self.selects(c.number)).map(|c| self.run_case(c, caps.clone())).collect();
        Report { url: self.url.clone(), results }
    }

    /// Runs the suite as the test binary's `main`: one test per case (see the module's documentation);
    /// the binary's test target needs `harness = false`. Shorthand for `Tests::new().suite(self).run()`.
    pub fn run_as_tests(self) -> ExitCode {
        Tests::new().suite(self).run()
    }

    /// Runs every case; panics with the report if any failed. Prints the report either way.
    pub fn assert_passes(&self) {
        let report = self.run();
        println!("{report}");
        assert!(report.failures().is_empty(), "{report}");
    }
}

/// The test name of a case: `c12_prefetch_limits_unacked_deliveries` (the number, and the name in snake
/// case up to its first colon, then `_async` for a case through the async API whose name has a colon).
pub fn test_name(number: u32, name: &str) -> String {
    let head = name.split(':').next().unwrap_or(name);
    let tail = if head != name && name.ends_with(" (async)") { " async" } else { "" };
    let words = format!("{head}{tail}").to_lowercase();
    let words: Vec<&str> = words.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    format!("c{number:02}_{}", words.join("_"))
}

/// A suite built on first use, shared by the tests of its cases.
struct Lazy {
    suite: OnceLock<Suite>,
    make: Mutex<Option<Box<dyn FnOnce() -> Suite + Send>>>,
}

impl Lazy {
    fn get(&self) -> &Suite {
        self.suite.get_or_init(|| {
            let make = self.make.lock().unwrap_or_else(|e| e.into_inner()).take();
            make.expect("building the suite failed in an earlier case")()
        })
    }
}

/// The conformance cases of one or more suites as a test binary (on `libtest-mimic`): each case of the
/// table is one test, run against the suite that selects it. Arguments are those of `cargo test`'s
/// harness (a name filter, `--list`, `--exact`, `--test-threads`, ...).
#[derive(Default)]
pub struct Tests {
    /// Each test with the number of its case.
    trials: Vec<(u32, libtest_mimic::Trial)>,
}

impl fmt::Debug for Tests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tests").field("tests", &self.trials.len()).finish()
    }
}

impl Tests {
    /// No tests yet.
    pub fn new() -> Tests {
        Tests::default()
    }

    /// A test for each case `suite` selects (every case, or those of [`Suite::only`] less [`Suite::except`]).
    pub fn suite(self, suite: Suite) -> Self {
        let numbers: Vec<u32> = cases::all().map(|c| c.number).filter(|n| suite.selects(*n)).collect();
        self.suite_with(&numbers, move || suite)
    }

    /// A test for each of these cases, against the suite `make` builds when the first of them runs (so
    /// that listing or filtering tests starts no server). `make` runs at most once.
    pub fn suite_with(mut self, numbers: &[u32], make: impl FnOnce() -> Suite + Send + 'static) -> Self {
        let lazy = Arc::new(Lazy { suite: OnceLock::new(), make: Mutex::new(Some(Box::new(make))) });
        for case in cases::all().filter(|c| numbers.contains(&c.number)) {
            let lazy = lazy.clone();
            let test = libtest_mimic::Trial::ignorable_test(test_name(case.number, case.name), move || {
                down::install();
                let suite = lazy.get();
                let caps = suite.capabilities()?;
                let result = suite.run_case(case, caps);
                match result.outcome {
                    Outcome::Passed => Ok(libtest_mimic::Completion::Completed),
                    // The case ran and found the transport declares it lacks what the case needs.
                    Outcome::Skipped(why) => Ok(libtest_mimic::Completion::ignored_with(why)),
                    Outcome::Failed(why) => {
                        Err(format!("case {} ({}) on {}: {why}", case.number, case.name, suite.url).into())
                    }
                }
            });
            self.trials.push((case.number, test));
        }
        self
    }

    /// Runs the tests the command line selects, one at a time unless `--test-threads` or
    /// `RUST_TEST_THREADS` asks for more; the exit code says whether all passed. Suites are dropped
    /// (and servers they own stopped) before it returns.
    pub fn run(mut self) -> ExitCode {
        // In the order of their numbers, whichever suite each belongs to.
        self.trials.sort_by_key(|(number, _)| *number);
        let mut args = libtest_mimic::Arguments::from_args();
        if args.test_threads.is_none() {
            let env = std::env::var("RUST_TEST_THREADS").ok().and_then(|n| n.parse().ok());
            args.test_threads = Some(env.unwrap_or(1));
        }
        libtest_mimic::run(&args, self.trials.into_iter().map(|(_, t)| t).collect()).exit_code()
    }
}

/// What a case concluded, when it did not fail.
pub(crate) enum Verdict {
    Pass,
    Skip(String),
}

/// What a case sees.
pub(crate) struct Ctx<'a> {
    suite: &'a Suite,
    caps: Capabilities,
}

/// A failed check, as text.
pub(crate) type Check<T = ()> = std::result::Result<T, String>;

pub(crate) fn fail<T>(msg: impl Into<String>) -> Check<T> {
    Err(msg.into())
}

/// Turns a kombu error into a case failure with context.
pub(crate) trait Context<T> {
    fn ctx(self, what: &str) -> Check<T>;
}

impl<T> Context<T> for Result<T> {
    fn ctx(self, what: &str) -> Check<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// How long a case waits for something that should happen.
pub(crate) const WAIT: Duration = Duration::from_secs(5);
/// How long a case waits to be sure something does not happen.
pub(crate) const SETTLE: Duration = Duration::from_millis(250);

impl Ctx<'_> {
    pub(crate) fn caps(&self) -> &Capabilities {
        &self.caps
    }

    pub(crate) fn url(&self) -> &str {
        &self.suite.url
    }

    pub(crate) fn peer(&self) -> Option<&str> {
        self.suite.peer.as_deref()
    }

    pub(crate) fn restart_hook(&self) -> Option<&RestartHook> {
        self.suite.restart.as_ref()
    }

    /// A name no other case or run uses.
    pub(crate) fn name(&self, what: &str) -> String {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() % 1_000_000_000)
            .unwrap_or(0);
        format!("kct.{}.{nanos}.{}.{what}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn open(&self) -> Check<Connection> {
        let conn = Connection::open(&self.suite.url).ctx("open")?;
        conn.connect().ctx("connect")?;
        Ok(conn)
    }
}

/// Gets one message, waiting up to `wait` for it to arrive.
pub(crate) fn get_wait(ch: &Arc<dyn Channel>, queue: &str, wait: Duration) -> Check<Option<Message>> {
    let end = Instant::now() + wait;
    loop {
        if let Some(m) = ch.get(queue, false).ctx(&format!("get from {queue}"))? {
            return Ok(Some(m));
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The bodies of messages, as text.
pub(crate) fn bodies<M: std::borrow::Borrow<Message>>(messages: &[M]) -> Vec<String> {
    messages.iter().map(|m| String::from_utf8_lossy(&m.borrow().body).into_owned()).collect()
}

/// Whether an error is of the kind.
pub(crate) fn is_kind(e: &Error, kind: crate::ErrorKind) -> bool {
    e.kind() == kind
}

/// The registry the suite uses (the global one).
pub(crate) fn registry() -> &'static Registry {
    Registry::global()
}

/// Runs the whole suite against `url` and panics with the report if a case failed
/// (`Suite::new(url).assert_passes()`; use [`Suite`] to add a peer URL or a restart hook).
pub fn assert_conformance(url: &str) {
    Suite::new(url).assert_passes();
}

/// Cases that time the machine run alone: while one runs, no other case of the process does (the others
/// share the turn and run side by side). The cases run in parallel threads, and on a small machine a
/// dozen busy neighbours hold a thread up for longer than any limit such a case can set.
struct Turn {
    _shared: Option<std::sync::RwLockReadGuard<'static, ()>>,
    _alone: Option<std::sync::RwLockWriteGuard<'static, ()>>,
}

static TURNS: std::sync::RwLock<()> = std::sync::RwLock::new(());

impl Turn {
    fn take(alone: bool) -> Turn {
        // A case that panicked while holding its turn does not stop the others.
        if alone {
            Turn { _shared: None, _alone: Some(TURNS.write().unwrap_or_else(|e| e.into_inner())) }
        } else {
            Turn { _shared: Some(TURNS.read().unwrap_or_else(|e| e.into_inner())), _alone: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_carry_the_number_and_the_words() {
        assert_eq!(test_name(12, "prefetch limits unacked deliveries"), "c12_prefetch_limits_unacked_deliveries");
        assert_eq!(test_name(3, "one Hub, two backends: memory and redis"), "c03_one_hub_two_backends");
        assert_eq!(test_name(107, "message round trip (async)"), "c107_message_round_trip_async");
        assert_eq!(test_name(130, "one kind: closed channel (async)"), "c130_one_kind_async");
    }

    #[test]
    fn every_case_has_its_own_number_and_test_name() {
        let mut numbers: Vec<u32> = cases::all().map(|c| c.number).collect();
        let mut names: Vec<String> = cases::all().map(|c| test_name(c.number, c.name)).collect();
        let n = numbers.len();
        numbers.sort();
        numbers.dedup();
        names.sort();
        names.dedup();
        assert_eq!((numbers.len(), names.len()), (n, n));
    }

    #[test]
    fn a_suite_selects_all_but_its_exceptions() {
        let s = Suite::new("memory://x").except(&[26]);
        assert!(s.selects(1) && !s.selects(26));
        let s = Suite::new("memory://x").only(&[26, 27]).except(&[27]);
        assert!(s.selects(26) && !s.selects(27) && !s.selects(1));
    }
}
