//! The engine: a tokio task that drives one connection's consumers. It owns the connection's driver
//! (the poller and the one reconnect path a Hub uses) in a private reactor, whose poll descriptor tokio
//! watches, and sleeps on `tokio::time` until the reactor's next timer.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DAY: Duration = Duration::from_secs(24 * 3600);

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, Notify};

use crate::connection::Connection;
use crate::driver::AttemptRunner;
use crate::error::{Error, Result};
use crate::hub::reactor::Reactor;
use crate::message::Message;

/// What the engine hands a consumer stream.
pub(crate) enum Item {
    /// A delivery that passed the consumer's checks.
    Message(Message),
    /// A delivery the poison policy refuses: dead-lettered by the stream, off the engine's task.
    DeadLetter { message: Message, queue: String, reason: String },
    /// An error of the connection (a reconnect that gave up, a failing poller).
    Failed(Error),
    /// The connection's driver ended (closed, or gave up): nothing more will come.
    End,
}

pub(crate) type Sink = mpsc::UnboundedSender<Item>;

/// A running engine; dropping the last handle stops its task (and with it the driver).
pub(crate) struct Engine {
    stop: Arc<Notify>,
    sinks: Arc<Mutex<Vec<Sink>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

impl Engine {
    /// Stops the task now; consumer streams end.
    pub(crate) fn stop(&self) {
        self.stop.notify_one();
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
        // SAFETY: the descriptor is the reactor's poll, open as long as the reactor, which `run` owns
        // and drops after the `AsyncFd` (declared after it there).
        let fd = unsafe { AsyncFd::register_with_interest(PollFd(reactor.as_raw_fd()), tokio::io::Interest::READABLE) }
            .map_err(|e| {
                Error::with_source(
                    crate::ErrorKind::State,
                    "the async API cannot watch its event loop",
                    e.into_parts().1,
                )
            })?;
        connection.hand_to_loop(Some(runner), |driver| reactor.add_driver(driver).map(|_| ()))?;
        let stop = Arc::new(Notify::new());
        let sinks = Arc::new(Mutex::new(Vec::new()));
        runtime.spawn(run(reactor, fd, stop.clone(), sinks.clone()));
        Ok(Arc::new(Engine { stop, sinks }))
    }

    /// Tells `sink` of the connection's errors and end too.
    pub(crate) fn watch(&self, sink: Sink) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks.retain(|s| !s.is_closed());
        sinks.push(sink);
    }
}

/// The reactor's poll descriptor, as tokio watches it (the reactor outlives it: both live in `run`).
struct PollFd(RawFd);

impl AsRawFd for PollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

fn tell(sinks: &Mutex<Vec<Sink>>, item: impl Fn() -> Item) {
    let mut sinks = sinks.lock().unwrap_or_else(|e| e.into_inner());
    sinks.retain(|s| s.send(item()).is_ok());
}

async fn run(mut reactor: Reactor, fd: AsyncFd<PollFd>, stop: Arc<Notify>, sinks: Arc<Mutex<Vec<Sink>>>) {
    // The watch goes before the reactor whose descriptor it watches.
    let (fd, reactor) = (fd, &mut reactor);
    let (mut external, mut errors) = (Vec::new(), Vec::new());
    loop {
        // Everything ready now, without waiting; again at once while the event buffer came back full.
        loop {
            if let Err(e) = reactor.turn(Some(Duration::ZERO), &mut external, &mut errors) {
                errors.push(e);
            }
            external.clear();
            for e in errors.drain(..) {
                tracing::error!("async consumers: {e:#}");
                let (kind, text) = (e.kind(), e.report().to_string());
                tell(&sinks, || Item::Failed(Error::new(kind, text.clone())));
            }
            if reactor.is_empty() {
                tell(&sinks, || Item::End);
                return;
            }
            if !reactor.saturated() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let due = reactor.next_due();
        let timer = async {
            match due {
                // tokio's timers reach about two years: a later deadline is looked at again in a day.
                Some(at) => tokio::time::sleep(at.saturating_duration_since(Instant::now()).min(DAY)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = stop.notified() => {
                tell(&sinks, || Item::End);
                return;
            }
            ready = fd.readable() => match ready {
                Ok(mut guard) => guard.clear_ready(),
                Err(e) => {
                    tracing::error!("async consumers: watching the event loop failed: {e}");
                    tell(&sinks, || Item::Failed(Error::state(format!("watching the event loop failed: {e}"))));
                    tell(&sinks, || Item::End);
                    return;
                }
            },
            () = timer => {}
        }
    }
}
