//! The link's socket: the reader task that serves it, and the writes and reads that never wait.

use std::io::ErrorKind as IoKind;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::unix::AsyncFd;

use super::{lock, Wire};
use crate::dial::Stream;

/// The reader task of one socket: reads replies as they come and writes what callers left over, until
/// the socket is lost or replaced. Ending any other way (its runtime shut down) loses the socket too.
pub(super) async fn read_replies(
    wire: Arc<Mutex<Wire>>,
    io: Arc<Sock>,
    generation: u64,
    kick: Arc<tokio::sync::Notify>,
) {
    struct Ends<'a>(&'a Mutex<Wire>, u64);
    impl Drop for Ends<'_> {
        fn drop(&mut self) {
            let mut w = lock(self.0);
            if w.generation == self.1 && w.io.is_some() {
                w.lose();
            }
        }
    }
    let _ends = Ends(&wire, generation);
    loop {
        let writing = {
            let w = lock(&wire);
            if w.generation != generation || w.io.is_none() {
                return;
            }
            !w.out.is_empty() || io.get_ref().lock().wants_write()
        };
        let woke = tokio::select! {
            biased;
            () = kick.notified() => None,
            ready = io.readable() => Some(ready),
            ready = io.writable(), if writing => Some(ready),
        };
        let mut guard = match woke {
            None => None,
            Some(Ok(guard)) => Some(guard),
            Some(Err(_)) => return,
        };
        let mut w = lock(&wire);
        if w.generation != generation {
            return;
        }
        let mut blocked = w.write_now() | w.read_now(&io);
        if w.open.is_some() && w.queue.is_empty() {
            // Replies came: the publishes gathered meanwhile go as one command.
            w.seal();
            blocked |= w.write_now();
        }
        if blocked {
            // The socket said "not now": tokio waits for its next readiness.
            if let Some(g) = guard.as_mut() {
                g.clear_ready();
            }
        }
        w.wake_reached();
    }
}

/// A connected socket, plain or TLS, non-blocking, watched by tokio (which lets go of the descriptor
/// before the stream closes it).
pub(super) type Sock = AsyncFd<Held>;

pub(super) struct Held {
    stream: Mutex<Stream>,
    fd: RawFd,
}

impl AsRawFd for Held {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Held {
    fn lock(&self) -> MutexGuard<'_, Stream> {
        self.stream.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Watches `stream` (turned non-blocking) with the current runtime's reactor.
pub(super) fn watch(stream: Stream) -> std::io::Result<Sock> {
    stream.tcp().set_nonblocking(true)?;
    let fd = stream.tcp().as_raw_fd();
    // SAFETY: `fd` is the socket `Held` owns, open until `Held` drops, and `Held` never replaces its
    // stream; the `AsyncFd` deregisters it before dropping `Held`.
    unsafe { AsyncFd::register(Held { stream: Mutex::new(stream), fd }) }.map_err(|e| e.into_parts().1)
}

impl Wire {
    /// Writes what it can without waiting; `true` if the socket would block.
    pub(super) fn write_now(&mut self) -> bool {
        let Some(io) = self.io.clone() else { return false };
        let mut stream = io.get_ref().lock();
        let mut outcome = Ok(());
        while !self.out.is_empty() {
            match stream.write(&self.out) {
                Ok(0) => outcome = Err(IoKind::WriteZero.into()),
                Ok(n) => {
                    self.out.drain(..n);
                    continue;
                }
                Err(e) => outcome = Err(e),
            }
            break;
        }
        // Over TLS, what rustls holds encrypted goes out too.
        let outcome = outcome.and_then(|()| stream.flush());
        drop(stream);
        match outcome {
            Ok(()) => false,
            Err(e) if e.kind() == IoKind::WouldBlock => true,
            Err(e) => {
                tracing::debug!("async redis link: write failed ({e}); sending again on a new connection");
                self.lose();
                false
            }
        }
    }

    /// Reads what the socket has now, matching replies to requests; `true` if the socket would block.
    pub(super) fn read_now(&mut self, io: &Sock) -> bool {
        while self.io.is_some() {
            let spare = self.inbuf.spare(64 * 1024);
            let spare_len = spare.len();
            let got = io.get_ref().lock().read(spare);
            match got {
                Ok(0) => {
                    self.inbuf.filled(spare_len, 0);
                    tracing::debug!("async redis link: the server closed the connection; sending again");
                    self.lose();
                }
                Ok(n) => {
                    self.inbuf.filled(spare_len, n);
                    match self.take_replies() {
                        Ok(true) => {}
                        Ok(false) => self.lose(),
                        Err(e) => {
                            tracing::warn!("async redis link: {e}; connecting again");
                            self.lose();
                        }
                    }
                }
                Err(e) if e.kind() == IoKind::WouldBlock => {
                    self.inbuf.filled(spare_len, 0);
                    return true;
                }
                Err(e) => {
                    self.inbuf.filled(spare_len, 0);
                    tracing::debug!("async redis link: read failed ({e}); sending again on a new connection");
                    self.lose();
                }
            }
        }
        false
    }
}
