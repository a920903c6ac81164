//! Why the broker closed a channel, for errors met later: a channel closed by the broker after a
//! pipelined call (a publish to a missing exchange) fails the next call with only "the channel is
//! closed"; lapin reports the broker's reason on the connection's event stream, without the channel's
//! number. Reasons are kept in the order they came and given out oldest first, each once: a reason
//! already reported with the call that caused it (a passive declare's `NOT_FOUND`) is claimed, so it is
//! not given to another channel.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::Stream;
use lapin::protocol::AMQPError;

type Events = Pin<Box<dyn Stream<Item = lapin::Event> + Send>>;

struct State {
    events: Events,
    /// Reasons not given out yet, oldest first.
    pending: VecDeque<AMQPError>,
    /// Reasons already reported whose event has not come yet: dropped when it comes.
    claimed: Vec<AMQPError>,
}

impl State {
    /// Reads the events that arrived.
    fn update(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        while let Poll::Ready(Some(event)) = self.events.as_mut().poll_next(&mut cx) {
            let lapin::Event::Error(e) = event else { continue };
            let lapin::ErrorKind::ProtocolError(amqp) = e.kind() else { continue };
            match self.claimed.iter().position(|c| c == amqp) {
                Some(i) => {
                    self.claimed.swap_remove(i);
                }
                None => self.pending.push_back(amqp.clone()),
            }
        }
    }
}

/// The broker's reasons for closing channels of one connection.
pub(crate) struct CloseReasons {
    state: Mutex<State>,
}

impl CloseReasons {
    pub(crate) fn new(conn: &lapin::Connection) -> CloseReasons {
        let state = State { events: Box::pin(conn.events_listener()), pending: VecDeque::new(), claimed: Vec::new() };
        CloseReasons { state: Mutex::new(state) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads what arrived (so the event stream does not grow).
    pub(crate) fn tidy(&self) {
        self.state().update();
    }

    /// A reason already reported to the caller (with the call the broker refused): not to be given out.
    pub(crate) fn claim(&self, reason: &AMQPError) {
        let mut s = self.state();
        s.update();
        match s.pending.iter().position(|p| p == reason) {
            Some(i) => {
                s.pending.remove(i);
            }
            None => s.claimed.push(reason.clone()),
        }
    }

    /// The oldest reason not given out yet, waiting up to `wait` for one (lapin reports it once it has
    /// answered the broker's close, which may be a moment after the channel is marked closed).
    pub(crate) fn take(&self, wait: Duration) -> Option<AMQPError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(r) = self.take_now() {
                return Some(r);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// [`take`](Self::take) for async callers: sleeps on `tokio::time` between looks.
    pub(crate) async fn take_async(&self, wait: Duration) -> Option<AMQPError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(r) = self.take_now() {
                return Some(r);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn take_now(&self) -> Option<AMQPError> {
        let mut s = self.state();
        s.update();
        s.pending.pop_front()
    }
}
