//! Publishes that share one command: while earlier requests are in flight, consecutive publishes to one
//! place (the same command but for the payloads at its end: one list's `LPUSH`, one routing key's ROUTE
//! script) join one open command, written as one when the link next writes. The server then runs one
//! script for many messages, in the order they were published, with the same outcome for each.
//!
//! A run holds at most [`MAX_RUN`] payloads and about [`MAX_BODY`] bytes; a publish to another place, any
//! other request, or a publish that waits differently (confirmed or not) closes it first, so requests
//! still reach the server in call order.

/// Most payloads one command carries (as a batch's runs).
pub(crate) const MAX_RUN: usize = crate::publish::MAX_RUN;

use crate::resp::bulk;

/// Bytes of payloads after which a run takes no more.
const MAX_BODY: usize = 256 * 1024;

/// One publish that may join others: its command's arguments before the payload, and its payload.
pub(crate) struct Joinable {
    /// The arguments, each packed as a RESP bulk string.
    head: Vec<u8>,
    args: usize,
    payload: Vec<u8>,
}

impl Joinable {
    /// A publish of `payload` by a command whose arguments before it are `head`, `args` of them, each
    /// packed as a RESP bulk string ([`crate::resp::bulk`]).
    pub(crate) fn new(head: Vec<u8>, args: usize, payload: Vec<u8>) -> Joinable {
        Joinable { head, args, payload }
    }
}

/// A run not yet written: request ids `first..=last`, all confirmed or all not.
pub(super) struct Open {
    head: Vec<u8>,
    args: usize,
    body: Vec<u8>,
    len: usize,
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) awaited: bool,
}

impl Open {
    pub(super) fn new(j: Joinable, id: u64, awaited: bool) -> Open {
        // Room for a few publishes like it (a run that grows reallocates seldom), not past the run's
        // bound: a large payload gets no more than its own room.
        let own = j.payload.len() + 16;
        let mut body = Vec::with_capacity(own.saturating_mul(8).min(MAX_BODY).max(own));
        bulk(&mut body, &j.payload);
        Open { head: j.head, args: j.args, body, len: 1, first: id, last: id, awaited }
    }

    /// Whether `j` may join this run.
    pub(super) fn takes(&self, j: &Joinable, awaited: bool) -> bool {
        self.awaited == awaited && self.len < MAX_RUN && self.body.len() < MAX_BODY && self.head == j.head
    }

    pub(super) fn push(&mut self, j: &Joinable, id: u64) {
        bulk(&mut self.body, &j.payload);
        self.len += 1;
        self.last = id;
    }

    /// Bytes it will take when written.
    pub(super) fn bytes(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// Publishes in it.
    pub(super) fn count(&self) -> usize {
        self.len
    }

    /// The one command that carries the run.
    pub(super) fn packed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.body.len() + 16);
        out.push(b'*');
        out.extend_from_slice(itoa::Buffer::new().format(self.args + self.len).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn lpush(key: &str, payload: &str) -> Joinable {
        let mut head = Vec::new();
        bulk(&mut head, b"LPUSH");
        bulk(&mut head, key.as_bytes());
        Joinable::new(head, 2, payload.as_bytes().to_vec())
    }

    #[test]
    fn a_run_packs_as_the_one_command_with_every_payload() {
        let mut run = Open::new(lpush("q", "a"), 7, true);
        assert!(run.takes(&lpush("q", "bc"), true));
        assert!(!run.takes(&lpush("other", "bc"), true), "another list");
        assert!(!run.takes(&lpush("q", "bc"), false), "an unconfirmed publish");
        run.push(&lpush("q", "bc"), 8);
        let mut whole = redis::cmd("LPUSH");
        whole.arg("q").arg("a").arg("bc");
        assert_eq!(run.packed(), whole.get_packed_command());
        assert_eq!((run.first, run.last, run.count()), (7, 8, 2));
        assert_eq!(run.bytes(), whole.get_packed_command().len() - b"*4\r\n".len());
    }

    #[test]
    fn a_run_is_bounded() {
        let mut run = Open::new(lpush("q", "x"), 0, false);
        for id in 1..MAX_RUN as u64 {
            assert!(run.takes(&lpush("q", "x"), false));
            run.push(&lpush("q", "x"), id);
        }
        assert!(!run.takes(&lpush("q", "x"), false), "{MAX_RUN} payloads");
        let big = "y".repeat(MAX_BODY);
        let run = Open::new(lpush("q", &big), 0, false);
        assert!(!run.takes(&lpush("q", "x"), false), "{MAX_BODY} bytes");
    }
}
