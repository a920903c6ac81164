//! A consumer stream's inbox: what the engine's turns hand one stream, in order.
//!
//! An unbounded queue (bounded in practice by the prefetch window, see the consumer) whose buffer is
//! reused from turn to turn: a turn that hands out a batch costs one short lock per item and no
//! allocation once the buffer has grown, and wakes the stream once. Receiving takes from the task's
//! cooperative budget, as tokio's channels do, so a stream that always has messages still lets the
//! runtime's other tasks run.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};

use super::engine::Item;

struct State {
    items: VecDeque<Item>,
    /// The stream is gone: what is sent comes back to the sender.
    closed: bool,
    /// Live senders; none left (and nothing queued) ends the stream.
    senders: usize,
    waker: Option<Waker>,
}

struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The receiving end, held by the stream.
pub(crate) struct Inbox(Arc<Shared>);

/// A sending end (the engine's, the consumer's callbacks').
pub(crate) struct Sink(Arc<Shared>);

/// A new inbox and its first sender.
pub(crate) fn inbox() -> (Sink, Inbox) {
    let state = State { items: VecDeque::new(), closed: false, senders: 1, waker: None };
    let shared = Arc::new(Shared(Mutex::new(state)));
    (Sink(shared.clone()), Inbox(shared))
}

impl Sink {
    /// Queues `item`; gives it back when the stream is gone.
    pub(crate) fn send(&self, item: Item) -> Result<(), Item> {
        let waker = {
            let mut s = self.0.lock();
            if s.closed {
                return Err(item);
            }
            s.items.push_back(item);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Whether the stream is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.lock().closed
    }
}

impl Clone for Sink {
    fn clone(&self) -> Sink {
        self.0.lock().senders += 1;
        Sink(self.0.clone())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.0.lock();
            s.senders -= 1;
            if s.senders > 0 {
                return;
            }
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Inbox {
    /// The next item; `None` once every sender is gone and nothing is left.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        let mut s = self.0.lock();
        if let Some(item) = s.items.pop_front() {
            coop.made_progress();
            return Poll::Ready(Some(item));
        }
        if s.senders == 0 {
            return Poll::Ready(None);
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Item> {
        self.0.lock().items.pop_front()
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.lock().items.is_empty()
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let left = {
            let mut s = self.0.lock();
            s.closed = true;
            std::mem::take(&mut s.items)
        };
        // Dropped outside the lock (a message's drop may call back into the channel).
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop_cx<'a>(waker: &'a Waker) -> Context<'a> {
        Context::from_waker(waker)
    }

    #[test]
    fn items_come_in_order_and_the_last_sender_ends_the_stream() {
        let (tx, mut rx) = inbox();
        let other = tx.clone();
        assert!(tx.send(Item::End).is_ok());
        assert!(other.send(Item::Failed(crate::Error::state("x"))).is_ok());
        let waker = Waker::noop();
        let mut cx = noop_cx(waker);
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(Some(Item::End))));
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(Some(Item::Failed(_)))));
        assert!(rx.poll_recv(&mut cx).is_pending());
        drop(tx);
        assert!(rx.poll_recv(&mut cx).is_pending(), "a sender is left");
        drop(other);
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn a_send_after_the_stream_is_gone_comes_back() {
        let (tx, rx) = inbox();
        drop(rx);
        assert!(matches!(tx.send(Item::End), Err(Item::End)));
    }
}
