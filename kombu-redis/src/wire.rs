//! The async link: the one non-blocking connection per kombu connection on which the async API's
//! publishes and acks are pipelined, in the order they were made.
//!
//! A request (the packed commands of one publish or one ack) is queued under a lock, so requests reach
//! the server in call order: written at once by its caller when it is the only one unanswered, otherwise
//! by the link's reader task, which writes everything queued meanwhile in one go (many requests in flight
//! cost one write, not one each). The reader task (spawned on the runtime that connected the socket,
//! woken by its readiness) reads the replies, matches them to the requests in order and wakes each
//! waiting caller.
//!
//! A publish to one list or one routing key (one command with its payload last) joins the publishes to
//! the same place made while earlier requests are unanswered ([`run`]): they go as one command when
//! the link has nothing else unanswered, so many publishes in flight cost the server one script run,
//! not one each. A publish on an idle link yields once first, so that those made in the same turn go
//! with it; that first run goes as soon as it holds [`LEAD_RUN`] publishes, so that the server runs it
//! while the next ones gather (the client and the server work at once).
//!
//! - A caller that waits (a confirmed publish, an ack) is woken when its replies are in.
//! - An unconfirmed publish does not wait, except while [`WINDOW`] requests are unanswered (or a
//!   megabyte is not written yet); a refusal of one is reported by the next call. [`AsyncLink::flush`]
//!   waits until every earlier request is answered, so a channel reads its own writes.
//! - A lost socket (or a `READONLY` reply: the server became a replica) keeps every unanswered request;
//!   the next caller connects again (dialing through Sentinel, on the blocking pool) and sends them all
//!   again in order, at least once. A script cache flushed meanwhile (`NOSCRIPT`) gets the scripts again.
//!
//! The socket is dialed, authenticated and readied by the blocking pool's code (`Pool::connect`), then
//! handed to tokio, plain or TLS (rustls driven without blocking: what it holds encrypted is written when
//! the socket takes it).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use kombu_core::{Error, ErrorKind, Result};
use rustc_hash::FxHashMap as HashMap;

use crate::connection::Shared;
use crate::resp::{Frame, FrameBuf};

mod io;
mod run;
use io::{read_replies, watch, Sock};
pub(crate) use run::Joinable;

/// Most requests left unanswered before an unconfirmed publish waits for replies (as the blocking
/// publisher's window).
pub(crate) const WINDOW: usize = 128;

/// Most bytes queued and not yet written before an unconfirmed publish waits for the writes.
const MAX_UNWRITTEN: usize = 1 << 20;

/// Publishes after which a run opened on an idle link goes without waiting for its yield: the server
/// runs them while the next ones gather behind. With 64 sends in flight, a quarter more confirmed
/// publishes a second than one run of all 64 at a time (8, 16, 24 and 32 measured alike, within the
/// noise; larger runs cost the server less).
const LEAD_RUN: usize = 32;

/// Whether a caller waits for the reply to its request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reply {
    /// No: it waits only while [`WINDOW`] requests are unanswered (an unconfirmed publish).
    NotAwaited,
    /// Yes, giving up after this limit if one is given (a confirmed publish's `confirm_timeout`; the
    /// request may still arrive), and after the `socket_timeout` option in any case.
    Awaited(Option<Duration>),
}

impl Reply {
    fn awaited(self) -> bool {
        matches!(self, Reply::Awaited(_))
    }
}

/// What a caller waits for.
#[derive(Clone, Copy)]
enum Until {
    /// The reply to its own request.
    Answered(u64),
    /// Every request up to this one answered.
    AllUpTo(u64),
    /// At most [`MAX_UNWRITTEN`] bytes unwritten and [`WINDOW`] requests unanswered.
    Room,
}

/// One request: packed commands, written together, answered by `replies` replies; the request of each
/// id in `first..=id` (more than one: publishes that joined one command, see `run`).
struct Request {
    first: u64,
    id: u64,
    what: &'static str,
    packed: Bytes,
    replies: usize,
    got: usize,
    /// The first error reply to it.
    refused: Option<String>,
    /// A caller waits for its outcome.
    awaited: bool,
}

#[derive(Default)]
struct Wire {
    /// The socket, none before the first call and after it was lost.
    io: Option<Arc<Sock>>,
    /// Bytes not yet written.
    out: Vec<u8>,
    /// Replies received and not yet matched.
    inbuf: FrameBuf,
    /// Written or to be written, unanswered, oldest first.
    queue: VecDeque<Request>,
    /// Publishes gathered into one command after the queue's, not yet in `out`.
    open: Option<run::Open>,
    next_id: u64,
    /// Outcomes of answered requests whose callers have not taken them yet.
    outcomes: HashMap<u64, Result<()>>,
    /// The refusal of an unconfirmed publish, reported by the next call.
    deferred: Option<Error>,
    /// Waiting callers, by token.
    waiting: HashMap<u64, (Until, Waker)>,
    /// Counts the sockets: a reader task serves one.
    generation: u64,
    /// Tells the socket's reader task that bytes wait to be written, or that the socket is given up.
    kick: Arc<tokio::sync::Notify>,
    next_token: u64,
}

/// The async link of one kombu connection.
#[derive(Default)]
pub(crate) struct AsyncLink {
    wire: Arc<Mutex<Wire>>,
    /// Held while connecting: callers that come meanwhile wait for that connection.
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AsyncLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.lock();
        let gathered = w.open.as_ref().map_or(0, run::Open::count);
        f.debug_struct("AsyncLink")
            .field("connected", &w.io.is_some())
            .field("unanswered", &w.queue.len())
            .field("gathered", &gathered)
            .finish()
    }
}

/// Which limit ends a wait first.
enum Expiry {
    /// The `socket_timeout` option: the socket is given up.
    Socket(Duration),
    /// The caller's own (what it names, how long).
    Caller(&'static str, Duration),
}

/// How waiting ended.
enum Progress {
    Done(Result<()>),
    /// The socket is gone: connect again, then wait again.
    Lost,
}

impl AsyncLink {
    fn lock(&self) -> MutexGuard<'_, Wire> {
        lock(&self.wire)
    }

    /// Sends a request and waits as `reply` says. `what` names it in errors ("publish", "ack").
    pub(crate) async fn call(
        &self,
        shared: &Arc<Shared>,
        what: &'static str,
        packed: Vec<u8>,
        replies: usize,
        reply: Reply,
    ) -> Result<()> {
        let awaited = reply.awaited();
        self.send(shared, what, reply, |w| (w.push(what, Bytes::from(packed), replies, awaited), false)).await
    }

    /// Sends one publish that may share a command with the publishes to the same place made while
    /// earlier requests are in flight (see `run`); otherwise as [`call`](Self::call).
    pub(crate) async fn call_joinable(&self, shared: &Arc<Shared>, publish: Joinable, reply: Reply) -> Result<()> {
        self.send(shared, "publish", reply, |w| w.join(publish, reply.awaited())).await
    }

    /// Queues a request (`enqueue` gives its id, and whether it leads a run on an idle link) and waits
    /// as `reply` says.
    async fn send(
        &self,
        shared: &Arc<Shared>,
        what: &'static str,
        reply: Reply,
        enqueue: impl FnOnce(&mut Wire) -> (u64, bool),
    ) -> Result<()> {
        // The caller's limit covers connecting too; what that took is taken from the wait for the reply.
        let mut limit = match reply {
            Reply::Awaited(limit) => limit,
            Reply::NotAwaited => None,
        };
        if self.lock().io.is_none() {
            let connected = match limit {
                None => self.connect(shared).await,
                Some(l) => {
                    let started = std::time::Instant::now();
                    let connected = tokio::time::timeout(l, self.connect(shared)).await.unwrap_or_else(|_| {
                        Err(Error::timeout(format!(
                            "{what}: no connection to redis at {} within confirm_timeout {l:?}",
                            shared.dialer.address()
                        )))
                    });
                    limit = Some(l.saturating_sub(started.elapsed()));
                    connected
                }
            };
            connected.map_err(|e| e.with_may_have_reached_broker(false))?;
        }
        let (id, leads) = {
            let mut w = self.lock();
            if let Some(e) = w.deferred.take() {
                return Err(e.with_may_have_reached_broker(false));
            }
            enqueue(&mut w)
        };
        if leads {
            // A run on an idle link: one yield lets the publishes made in the same turn (the task's other
            // futures, other tasks) join it; then it goes. Dropped meanwhile, it goes all the same.
            let lead = Lead(self);
            tokio::task::yield_now().await;
            drop(lead);
        }
        if reply.awaited() {
            return self.wait(shared, Until::Answered(id), limit.map(|l| (what, l))).await;
        }
        let room = self.lock().reached(Until::Room).is_some();
        if room {
            Ok(())
        } else {
            self.wait(shared, Until::Room, None).await
        }
    }

    /// Waits until every request sent before now is answered; returns a refusal of an unconfirmed one
    /// not reported yet.
    pub(crate) async fn flush(&self, shared: &Arc<Shared>) -> Result<()> {
        let last = {
            let mut w = self.lock();
            match w.open.as_ref().map(|o| o.last).or_else(|| w.queue.back().map(|r| r.id)) {
                Some(id) => id,
                None => return w.deferred.take().map_or(Ok(()), Err),
            }
        };
        self.wait(shared, Until::AllUpTo(last), None).await?;
        match self.lock().deferred.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits for `until`, connecting again (once) if the socket is lost meanwhile; bounded by the
    /// `socket_timeout` option, and by the caller's own `limit` (what it names, how long) if one is
    /// given: one timer for both.
    async fn wait(&self, shared: &Arc<Shared>, until: Until, limit: Option<(&'static str, Duration)>) -> Result<()> {
        let waited = async {
            let mut reconnected = false;
            loop {
                let (token, generation) = {
                    let mut w = self.lock();
                    (w.token(), w.generation)
                };
                let guard = Waiting { link: self, token };
                let progress = poll_fn(|cx| self.poll_until(until, token, generation, cx)).await;
                drop(guard);
                match progress {
                    Progress::Done(r) => return r,
                    Progress::Lost if !reconnected => {
                        reconnected = true;
                        self.connect(shared).await.map_err(|e| e.with_may_have_reached_broker(true))?;
                    }
                    Progress::Lost => {
                        return Err(Error::connection(format!(
                            "the async redis link to {} was lost twice while waiting for a reply; the \
                             unanswered requests are sent again by the next call",
                            shared.dialer.address()
                        ))
                        .with_may_have_reached_broker(true))
                    }
                }
            }
        };
        let socket = shared.opts.socket_timeout;
        let first = match (socket, limit) {
            (None, None) => return waited.await,
            (Some(s), Some((what, l))) if l < s => Expiry::Caller(what, l),
            (Some(s), _) => Expiry::Socket(s),
            (None, Some((what, l))) => Expiry::Caller(what, l),
        };
        let (Expiry::Socket(after) | Expiry::Caller(_, after)) = first;
        match tokio::time::timeout(after, waited).await {
            Ok(r) => r,
            Err(_) => Err(match first {
                Expiry::Socket(limit) => {
                    // The replies may still come; the socket is given up and what is unanswered sent
                    // again on a new one (at least once).
                    self.lock().lose();
                    Error::timeout(format!(
                        "no reply from redis at {} within socket_timeout {limit:?}",
                        shared.dialer.address()
                    ))
                }
                // A server that stopped answering: the caller hears of it within its limit (the request
                // stays queued, and is sent again if the link is lost: it may still arrive).
                Expiry::Caller(what, limit) => {
                    Error::timeout(format!("{what}: no reply from redis within confirm_timeout {limit:?}"))
                }
            }
            .with_may_have_reached_broker(true)),
        }
    }

    fn poll_until(&self, until: Until, token: u64, generation: u64, cx: &mut Context<'_>) -> Poll<Progress> {
        let mut w = self.lock();
        if let Some(p) = w.reached(until) {
            return Poll::Ready(p);
        }
        if w.io.is_none() || w.generation != generation {
            return Poll::Ready(Progress::Lost);
        }
        w.waiting.insert(token, (until, cx.waker().clone()));
        Poll::Pending
    }

    /// Connects (on the blocking pool, with the blocking pool's dial, authentication and scripts) and
    /// sends every unanswered request again, in order.
    async fn connect(&self, shared: &Arc<Shared>) -> Result<()> {
        let _connecting = self.connecting.lock().await;
        if self.lock().io.is_some() {
            return Ok(());
        }
        let sh = Arc::clone(shared);
        let con = tokio::task::spawn_blocking(move || sh.pool.connect())
            .await
            .map_err(|e| Error::state(format!("connecting the async redis link failed to run: {e}")))??;
        let io = watch(con.into_stream())
            .map_err(|e| Error::with_source(ErrorKind::Connection, "handing the redis socket to tokio", e))?;
        let mut w = self.lock();
        w.out.clear();
        w.inbuf = FrameBuf::new();
        let Wire { queue, out, .. } = &mut *w;
        for r in queue.iter_mut() {
            out.extend_from_slice(&r.packed);
            r.got = 0;
            r.refused = None;
        }
        if !w.queue.is_empty() {
            tracing::debug!("async redis link connected again; sending {} unanswered requests again", w.queue.len());
        }
        let io = Arc::new(io);
        w.io = Some(io.clone());
        w.generation += 1;
        w.kick = Arc::default();
        // What does not fit the socket now, the reader task writes.
        w.write_now();
        w.wake_all();
        tokio::spawn(read_replies(self.wire.clone(), io, w.generation, w.kick.clone()));
        Ok(())
    }

    /// Before the connection closes, on a thread that may block (not a runtime's worker): waits up to
    /// the socket time-out (10 s without one) for the reader task to see every request answered;
    /// returns the first refusal. If the link is lost meanwhile (or its runtime is gone), the unanswered
    /// requests are sent again on a new blocking connection (at least once).
    pub(crate) fn settle_blocking(&self, shared: &Shared) -> Result<()> {
        let limit =
            std::time::Instant::now() + shared.opts.socket_timeout.unwrap_or(std::time::Duration::from_secs(10));
        loop {
            let mut w = self.lock();
            if w.queue.is_empty() {
                return w.deferred.take().map_or(Ok(()), Err);
            }
            if w.io.is_none() || std::time::Instant::now() >= limit {
                break;
            }
            drop(w);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let pending: Vec<Bytes> = {
            let mut w = self.lock();
            w.seal();
            w.lose();
            w.queue.drain(..).map(|r| r.packed).collect()
        };
        tracing::debug!("async redis link: sending {} unanswered requests again before closing", pending.len());
        let mut con = shared.pool.connect()?;
        for p in pending {
            redis::ConnectionLike::req_packed_command(&mut con, &p)
                .map_err(|e| crate::client::map_err("publish before closing", e))?;
        }
        self.lock().deferred.take().map_or(Ok(()), Err)
    }
}

impl Drop for AsyncLink {
    fn drop(&mut self) {
        // The reader task sees the socket gone and ends.
        self.lock().lose();
    }
}

fn lock(wire: &Mutex<Wire>) -> MutexGuard<'_, Wire> {
    wire.lock().unwrap_or_else(|e| e.into_inner())
}

/// A run opened on an idle link: when dropped (after one yield, or cancelled), the run goes, unless
/// something was sent meanwhile (then the reader task sends it once that is answered).
struct Lead<'a>(&'a AsyncLink);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut w = self.0.lock();
        if w.open.is_some() && w.queue.is_empty() {
            w.seal();
            w.written_or_kicked();
        }
    }
}

/// A waiting caller's registration; dropping it (a wait over, or cancelled) unregisters.
struct Waiting<'a> {
    link: &'a AsyncLink,
    token: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.link.lock().waiting.remove(&self.token);
    }
}

impl Wire {
    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Sends `packed` after everything before it; the request's id.
    fn push(&mut self, what: &'static str, packed: Bytes, replies: usize, awaited: bool) -> u64 {
        self.seal();
        let id = self.next_id;
        self.next_id += 1;
        self.out.extend_from_slice(&packed);
        self.queue.push_back(Request { first: id, id, what, packed, replies, got: 0, refused: None, awaited });
        self.written_or_kicked();
        id
    }

    /// Sends `publish` after everything before it, in the open run when it may join it: its id, and
    /// whether nothing else is unanswered (the caller then sees that the run goes, see [`Lead`]); while
    /// something is, the run goes when the reader task has the replies. A run on an idle link goes as
    /// soon as it holds [`LEAD_RUN`] publishes.
    fn join(&mut self, publish: Joinable, awaited: bool) -> (u64, bool) {
        let id = self.next_id;
        self.next_id += 1;
        match &mut self.open {
            Some(open) if open.takes(&publish, awaited) => {
                open.push(&publish, id);
                if self.queue.is_empty() && open.count() >= LEAD_RUN {
                    // The first run on an idle link is long enough: it goes now, the next gather.
                    self.seal();
                    self.written_or_kicked();
                    return (id, false);
                }
            }
            _ => {
                if self.open.is_some() {
                    // Closed by a publish to another place: it goes now, whoever led it (its lead,
                    // seeing something unanswered, leaves it be).
                    self.seal();
                    self.written_or_kicked();
                }
                self.open = Some(run::Open::new(publish, id, awaited));
            }
        }
        (id, self.queue.is_empty())
    }

    /// The only request is written now (its reply is what the caller waits for); when others are in
    /// flight, the reader task writes everything that came meanwhile in one go.
    fn written_or_kicked(&mut self) {
        let blocked = self.queue.len() == 1 && self.write_now();
        if blocked || !self.out.is_empty() {
            self.kick.notify_one();
        }
    }

    /// Closes the open run: its command joins the queue.
    fn seal(&mut self) {
        if let Some(open) = self.open.take() {
            let packed = Bytes::from(open.packed());
            self.out.extend_from_slice(&packed);
            self.queue.push_back(Request {
                first: open.first,
                id: open.last,
                what: "publish",
                packed,
                replies: 1,
                got: 0,
                refused: None,
                awaited: open.awaited,
            });
        }
    }

    fn reached(&mut self, until: Until) -> Option<Progress> {
        match until {
            Until::Answered(id) => self.outcomes.remove(&id).map(Progress::Done),
            Until::AllUpTo(id) => (self.oldest().is_none_or(|f| f > id)).then_some(Progress::Done(Ok(()))),
            Until::Room => self.has_room().then_some(Progress::Done(Ok(()))),
        }
    }

    /// The id of the oldest request not answered.
    fn oldest(&self) -> Option<u64> {
        self.queue.front().map(|r| r.first).or(self.open.as_ref().map(|o| o.first))
    }

    fn has_room(&self) -> bool {
        let (gathered, runs) = self.open.as_ref().map_or((0, 0), |o| (o.bytes(), 1));
        self.io.is_some() && self.out.len() + gathered <= MAX_UNWRITTEN && self.queue.len() + runs <= WINDOW
    }

    fn wake_all(&mut self) {
        for (_, (_, waker)) in self.waiting.drain() {
            waker.wake();
        }
    }

    /// The socket is gone: what is unanswered stays queued, to be sent again; every waiter is told.
    fn lose(&mut self) {
        self.io = None;
        self.kick.notify_one();
        self.out.clear();
        self.inbuf = FrameBuf::new();
        self.wake_all();
    }

    /// Matches the whole replies received to the oldest requests. `false`: the socket must be given up
    /// (the server refused as a replica), and what is unanswered sent again elsewhere.
    fn take_replies(&mut self) -> Result<bool> {
        while let Some(frame) = self.inbuf.next_frame()? {
            let Some(front) = self.queue.front_mut() else {
                return Err(Error::connection("a reply from redis that no request asked for"));
            };
            front.got += 1;
            if let Some(text) = refusal(&frame) {
                if text.starts_with("READONLY") {
                    // It did not run, nor did what came after: all sent again once the link connects
                    // again (through Sentinel, to the new master).
                    tracing::debug!("async redis link: the server is a replica now ({text}); connecting again");
                    return Ok(false);
                }
                front.refused.get_or_insert(text);
            }
            if front.got < front.replies {
                continue;
            }
            let Some(done) = self.queue.pop_front() else { break };
            if done.refused.as_deref().is_some_and(|t| t.starts_with("NOSCRIPT")) {
                // The script cache was flushed: load the scripts and send it again.
                tracing::debug!("async redis link: the server lost the scripts; loading them again");
                self.requeue_after_scripts(done);
                continue;
            }
            let outcome = || match &done.refused {
                None => Ok(()),
                Some(text) => Err(Error::channel(format!("{} refused by redis: {text}", done.what))
                    .with_may_have_reached_broker(false)),
            };
            if done.awaited {
                // Every publish a joined command carried has its outcome.
                for id in done.first..=done.id {
                    self.outcomes.insert(id, outcome());
                }
            } else if let Err(e) = outcome() {
                tracing::warn!("{e} (an unconfirmed publish; reported by the next call)");
                self.deferred.get_or_insert(e);
            }
        }
        Ok(true)
    }

    fn requeue_after_scripts(&mut self, mut request: Request) {
        let mut load = Vec::new();
        for code in [crate::scripts::ROUTE, crate::scripts::POP, crate::scripts::RESTORE, crate::scripts::UNLOCK] {
            load.extend_from_slice(&crate::resp::pack("SCRIPT", &["LOAD", code]));
        }
        let id = self.next_id;
        self.next_id += 1;
        let load = Bytes::from(load);
        self.out.extend_from_slice(&load);
        self.queue.push_back(Request {
            first: id,
            id,
            what: "SCRIPT LOAD",
            packed: load,
            replies: 4,
            got: 0,
            refused: None,
            awaited: false,
        });
        request.got = 0;
        request.refused = None;
        self.out.extend_from_slice(&request.packed);
        self.queue.push_back(request);
        self.write_now();
    }

    /// Wakes the waiters whose wait is over.
    fn wake_reached(&mut self) {
        let oldest = self.oldest();
        let room = self.has_room();
        let outcomes = &self.outcomes;
        self.waiting.retain(|_, (until, waker)| {
            let over = match *until {
                Until::Answered(id) => outcomes.contains_key(&id),
                Until::AllUpTo(id) => oldest.is_none_or(|f| f > id),
                Until::Room => room,
            };
            if over {
                waker.wake_by_ref();
            }
            !over
        });
    }
}

/// The text of an error reply, or of the first error inside a transaction's `EXEC` reply.
fn refusal(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Error(text) => Some(text.clone()),
        Frame::Array(items) => items.iter().find_map(refusal),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
