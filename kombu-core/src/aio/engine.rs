//! The engine: a tokio task that drives one connection's consumers. It owns the connection's driver
//! (the poller and the one reconnect path a Hub uses) in a private reactor, whose poll descriptor tokio
//! watches, and sleeps on `tokio::time` until the reactor's next timer.
//!
//! The consumer streams turn the reactor too. A stream that runs out of messages turns it on its own
//! task ([`Engine::turn_now`]), so that what waits (in a broker's buffer, in a store in this process)
//! reaches it without crossing to the engine's task and back. While streams are polled, the engine's
//! task hands its wake-ups to them (it wakes those waiting) instead of turning the reactor on another
//! thread; it turns it itself once no stream was polled for [`HANDOFF`] (the program is busy elsewhere,
//! or the streams are gone), so that timers, reconnects and the prefetch window's deliveries go on.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// How long after a stream was last polled the engine's task leaves the turning to the streams.
const HANDOFF: Duration = Duration::from_millis(10);

use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use crate::connection::Connection;
use crate::driver::AttemptRunner;
use crate::error::{Error, Result};
use crate::hub::reactor::Reactor;
use crate::hub::sources::WakeShared;
use crate::hub::Event;
use crate::message::Message;

/// What the engine hands a consumer stream.
pub(crate) enum Item {
    /// A delivery that passed the consumer's checks.
    Message(Box<Message>),
    /// A delivery the poison policy refuses: dead-lettered by the stream, off the engine's task.
    DeadLetter { message: Box<Message>, queue: String, reason: String },
    /// An error of the connection (a reconnect that gave up, a failing poller).
    Failed(Error),
    /// The connection's driver ended (closed, or gave up): nothing more will come.
    End,
}

pub(crate) use super::inbox::Sink;

/// The reactor and what a turn of it needs, shared by the engine's task and the consumer streams
/// (`None` once the engine ended: the reactor is gone).
struct Turning {
    reactor: Reactor,
    external: Vec<Event>,
    errors: Vec<Error>,
    /// The timer the engine's task sleeps until (a turn elsewhere that sets an earlier one tells it).
    planned: Option<Instant>,
}

/// What the engine's task and the streams share.
struct Core {
    turning: Mutex<Option<Turning>>,
    sinks: Mutex<Vec<Sink>>,
    /// Streams waiting for messages, to wake when the reactor has events for them to take: the
    /// reactor's own list, which a wake from another thread (a backend's I/O thread) empties too.
    waiting: Arc<WakeShared>,
    /// A stream was polled since the engine's task last looked.
    polled: AtomicBool,
    stop: Notify,
    /// A turn on a stream's task set an earlier timer than the engine's task sleeps until: it looks
    /// again.
    retime: Notify,
}

impl Core {
    fn turning(&self) -> MutexGuard<'_, Option<Turning>> {
        self.turning.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tell(&self, item: impl Fn() -> Item) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks.retain(|s| s.send(item()).is_ok());
    }

    /// One turn of the reactor, without waiting: everything ready now is handed out.
    fn turn(&self, t: &mut Turning) -> Turned {
        if let Err(e) = t.reactor.turn(Some(Duration::ZERO), &mut t.external, &mut t.errors) {
            t.errors.push(e);
        }
        t.external.clear();
        for e in t.errors.drain(..) {
            tracing::error!("async consumers: {e:#}");
            let (kind, text) = (e.kind(), e.report().to_string());
            self.tell(|| Item::Failed(Error::new(kind, text.clone())));
        }
        if t.reactor.is_empty() {
            self.tell(|| Item::End);
            return Turned::Ended;
        }
        // A full event buffer, or a poller that ran out of its budget and asked for another turn.
        if t.reactor.saturated() || t.reactor.rewoken() {
            Turned::More
        } else {
            Turned::Idle
        }
    }
}

/// How a turn left the reactor.
enum Turned {
    /// Nothing more ready now.
    Idle,
    /// The event buffer came back full, or a poller asked for another turn: more may be waiting.
    More,
    /// The connection's driver is gone.
    Ended,
}

/// A running engine; dropping the last handle stops its task (and with it the driver).
pub(crate) struct Engine {
    core: Arc<Core>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.core.stop.notify_one();
    }
}

impl Engine {
    /// Stops the task now; consumer streams end.
    pub(crate) fn stop(&self) {
        self.core.stop.notify_one();
    }

    /// Hands `connection` to a new engine on the current runtime (the connection must not be in a Hub).
    pub(crate) fn start(connection: &Connection) -> Result<Arc<Engine>> {
        let runtime = super::runtime()?;
        let pool = runtime.clone();
        // Connection attempts run on the runtime's blocking pool, where a backend on tokio finds it.
        let runner: AttemptRunner = Arc::new(move |attempt| {
            drop(pool.spawn_blocking(move || crate::transport::as_async_api(attempt)));
        });
        let mut reactor = Reactor::new()?;
        // SAFETY: the descriptor is the reactor's poll, open as long as the reactor, which the core
        // holds until `Watch` has dropped the `AsyncFd` (its first field) on the way out.
        let fd = unsafe { AsyncFd::register_with_interest(PollFd(reactor.as_raw_fd()), tokio::io::Interest::READABLE) }
            .map_err(|e| {
                Error::with_source(
                    crate::ErrorKind::State,
                    "the async API cannot watch its event loop",
                    e.into_parts().1,
                )
            })?;
        connection.hand_to_loop(Some(runner), |driver| reactor.add_driver(driver).map(|_| ()))?;
        let reactor_shared = reactor.shared().clone();
        let turning = Turning { reactor, external: Vec::new(), errors: Vec::new(), planned: None };
        let core = Arc::new(Core {
            turning: Mutex::new(Some(turning)),
            sinks: Mutex::new(Vec::new()),
            waiting: reactor_shared,
            polled: AtomicBool::new(false),
            stop: Notify::new(),
            retime: Notify::new(),
        });
        runtime.spawn(run(Watch { fd: Some(fd), core: core.clone() }));
        Ok(Arc::new(Engine { core }))
    }

    /// Tells `sink` of the connection's errors and end too.
    pub(crate) fn watch(&self, sink: Sink) {
        let mut sinks = self.core.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks.retain(|s| !s.is_closed());
        sinks.push(sink);
    }

    /// A stream is polled: the engine's task leaves turning the reactor to the streams a while.
    pub(crate) fn polled(&self) {
        if !self.core.polled.load(Ordering::Relaxed) {
            self.core.polled.store(true, Ordering::Relaxed);
        }
    }

    /// A stream waits for messages: `waker` is woken when the reactor has events (the stream then
    /// turns it).
    pub(crate) fn wait(&self, waker: &Waker) {
        let mut waiting = self.core.waiting.watchers.lock().unwrap_or_else(|e| e.into_inner());
        if !waiting.iter().any(|w| w.will_wake(waker)) {
            waiting.push(waker.clone());
        }
    }

    /// Turns the reactor once on the caller's task, without waiting for events (after a turn under way
    /// on another task, which is short: what is ready, at most a poller's budget), unless the engine
    /// ended; returns whether it did. What was ready is handed to the consumers' sinks; the engine's
    /// task hears of what changed for it (an earlier timer, the end).
    ///
    /// A stream that registered with [`wait`](Engine::wait) before this is woken by the engine's task
    /// for what comes after, so no event is left waiting for the hand-off's timer.
    pub(crate) fn turn_now(&self) -> bool {
        let mut guard = self.core.turning();
        let Some(t) = guard.as_mut() else { return false };
        match self.core.turn(t) {
            Turned::Ended => self.core.stop.notify_one(),
            // The stream has messages now, and turns again when it has none.
            Turned::More => {}
            Turned::Idle => {
                let due = t.reactor.next_due();
                if due.is_some_and(|at| t.planned.is_none_or(|planned| at < planned)) {
                    self.core.retime.notify_one();
                }
            }
        }
        true
    }
}

/// The reactor's poll descriptor, as tokio watches it (the reactor outlives it: see `Watch`).
struct PollFd(RawFd);

impl AsRawFd for PollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The engine task's watch of the reactor. Dropped (the task ended, or the runtime dropped it), it
/// stops watching, then drops the reactor (after a turn on a stream's task, if one is under way).
struct Watch {
    fd: Option<AsyncFd<PollFd>>,
    core: Arc<Core>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        drop(self.fd.take());
        let reactor = self.core.turning().take();
        drop(reactor);
    }
}

async fn run(watch: Watch) {
    let core = watch.core.clone();
    let Some(fd) = watch.fd.as_ref() else { return };
    loop {
        // Everything ready now, without waiting; again at once while the event buffer came back full.
        // While streams turn the reactor, the waiting ones are woken to do it instead.
        let due = loop {
            let turned = {
                let mut guard = core.turning();
                let Some(t) = guard.as_mut() else { return };
                let waiting = std::mem::take(&mut *core.waiting.watchers.lock().unwrap_or_else(|e| e.into_inner()));
                // A timer that is due is served here, not left to a stream that may be busy.
                let due_now = t.reactor.next_due().is_some_and(|at| at <= Instant::now());
                if !due_now && (core.polled.swap(false, Ordering::Relaxed) || !waiting.is_empty()) {
                    waiting.into_iter().for_each(Waker::wake);
                    let handoff_ends = Instant::now() + HANDOFF;
                    t.planned = Some(t.reactor.next_due().map_or(handoff_ends, |at| at.min(handoff_ends)));
                    Ok(t.planned)
                } else {
                    match core.turn(t) {
                        Turned::Idle => {
                            t.planned = t.reactor.next_due();
                            Ok(t.planned)
                        }
                        other => Err(other),
                    }
                }
            };
            match turned {
                Ok(due) => break due,
                Err(Turned::More) => tokio::task::yield_now().await,
                Err(_) => return,
            }
        };
        let timer = async {
            match due {
                // tokio's timers reach about two years: a later deadline is looked at again in a day.
                Some(at) => tokio::time::sleep(at.saturating_duration_since(Instant::now()).min(DAY)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = core.stop.notified() => {
                core.tell(|| Item::End);
                return;
            }
            ready = fd.readable() => match ready {
                Ok(mut guard) => guard.clear_ready(),
                Err(e) => {
                    tracing::error!("async consumers: watching the event loop failed: {e}");
                    core.tell(|| Item::Failed(Error::state(format!("watching the event loop failed: {e}"))));
                    core.tell(|| Item::End);
                    return;
                }
            },
            () = core.retime.notified() => {}
            () = timer => {}
        }
    }
}
