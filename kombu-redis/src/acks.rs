//! Deferred acknowledgements (`Message::ack_deferred`): a thread per connection sends the queued acks,
//! batched into one `MULTI ZREM HDEL EXEC`, as soon as it can, so an ack waits about one round trip
//! however busy or idle the program is; closing the connection sends what is left before it returns.
//! [`forget`] is the one ack transaction, synchronous acks use it too.

use std::sync::{Arc, Condvar, Mutex};

use kombu_core::{Error, Result};

use crate::connection::{lock, Shared};

#[derive(Default)]
struct State {
    queued: Vec<Arc<str>>,
    /// The sending thread runs.
    running: bool,
    /// A batch is on its way.
    sending: bool,
    closed: bool,
}

/// The queue of deferred acks of one connection and its sending thread.
#[derive(Default)]
pub(crate) struct AckFlusher {
    state: Mutex<State>,
    changed: Condvar,
}

impl AckFlusher {
    /// Queues an ack; starts the sending thread on first use.
    pub(crate) fn push(&self, shared: &Arc<Shared>, tag: Arc<str>) -> Result<()> {
        let mut st = lock(&self.state);
        if st.closed {
            return Err(Error::state("redis connection is closed"));
        }
        st.queued.push(tag);
        if !st.running {
            let sh = shared.clone();
            std::thread::Builder::new()
                .name("kombu-redis-acks".into())
                .spawn(move || sh.acks.run(&sh))
                .map_err(|e| Error::with_source(kombu_core::ErrorKind::State, "cannot start the ack sender", e))?;
            st.running = true;
        }
        self.changed.notify_all();
        Ok(())
    }

    fn run(&self, shared: &Shared) {
        loop {
            let batch = {
                let mut st = lock(&self.state);
                while st.queued.is_empty() && !st.closed {
                    st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                if st.queued.is_empty() {
                    st.running = false;
                    self.changed.notify_all();
                    return;
                }
                st.sending = true;
                std::mem::take(&mut st.queued)
            };
            send(shared, &batch);
            let mut st = lock(&self.state);
            st.sending = false;
            self.changed.notify_all();
        }
    }

    /// Sends what is queued and waits for a batch on its way; later acks are refused (the connection
    /// is closing).
    pub(crate) fn close(&self, shared: &Shared) {
        let left = {
            let mut st = lock(&self.state);
            st.closed = true;
            self.changed.notify_all();
            std::mem::take(&mut st.queued)
        };
        send(shared, &left);
        let mut st = lock(&self.state);
        while st.sending {
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// One transaction forgetting `tags` on the server; a failure is logged (those messages come back after
/// the visibility timeout, the window `ack_deferred` documents).
fn send(shared: &Shared, tags: &[Arc<str>]) {
    let names: Vec<&str> = tags.iter().map(|t| &**t).collect();
    if let Err(e) = forget(shared, &names) {
        tracing::error!("{} deferred acks were not sent; those messages will be redelivered: {e:#}", tags.len());
    }
}

/// Forgets `tags` on the server in one transaction (`MULTI ZREM HDEL EXEC`, Kombu's ack).
pub(crate) fn forget(shared: &Shared, tags: &[&str]) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let p = forget_pipe(shared, tags);
    shared.pool.run("ack", |c| p.query::<()>(c))
}

/// The one ack transaction: `MULTI ZREM HDEL EXEC` of `tags` (in chunks of 1,000).
pub(crate) fn forget_pipe(shared: &Shared, tags: &[&str]) -> redis::Pipeline {
    let o = &shared.opts;
    let mut p = redis::pipe();
    p.atomic();
    for chunk in tags.chunks(1000) {
        p.cmd("ZREM").arg(&o.unacked_index_key).arg(chunk).ignore();
        p.cmd("HDEL").arg(&o.unacked_key).arg(chunk).ignore();
    }
    p
}
