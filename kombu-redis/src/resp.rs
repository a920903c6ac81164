//! RESP framing for the non-blocking consumer sockets (pure): commands are packed with the `redis` crate,
//! replies are split off a byte buffer with `redis-protocol`'s decoder, which reports the bytes each
//! frame used or that the frame is still incomplete, so pipelined replies are read as they arrive.

use redis_protocol::resp2::decode::decode;
pub use redis_protocol::resp2::types::OwnedFrame as Frame;

use kombu_core::{Error, ErrorKind, Result};

/// Packs one command (`redis::cmd(..).get_packed_command()`).
pub fn pack<A: redis::ToRedisArgs>(name: &str, args: &[A]) -> Vec<u8> {
    let mut c = redis::cmd(name);
    for a in args {
        c.arg(a);
    }
    c.get_packed_command()
}

/// Appends `arg` to `out` as a RESP bulk string.
pub(crate) fn bulk(out: &mut Vec<u8>, arg: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// A buffer of received bytes from which whole frames are taken.
#[derive(Debug, Default)]
pub struct FrameBuf {
    /// Received bytes in `start..end`; the room after `end` stays allocated and zeroed, so a read
    /// does not clear it again.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        FrameBuf::default()
    }

    /// Spare room to read into (at least `min` bytes); call [`FrameBuf::filled`] with what was read.
    pub fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.start > 0 && (self.start == self.end || self.start > self.end / 2) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.end + min {
            self.buf.resize(self.end + min, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of the spare room (`spare_len` long, as [`FrameBuf::spare`] gave) as received.
    pub fn filled(&mut self, spare_len: usize, n: usize) {
        debug_assert_eq!(self.buf.len() - self.end, spare_len);
        self.end += n.min(spare_len);
    }

    /// Appends bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.spare(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// Bytes received and not yet framed.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// The next whole frame, `None` if more bytes are needed, an error if the bytes are not RESP.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.start == self.end {
            return Ok(None);
        }
        match decode(&self.buf[self.start..self.end]) {
            Ok(Some((frame, used))) => {
                self.start += used;
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(Error::new(ErrorKind::Connection, format!("malformed reply from redis: {e:?}"))),
        }
    }
}

/// The channel Redis sends client-tracking invalidations to (what [`classify`] is given).
pub const INVALIDATE: &[u8] = b"__redis__:invalidate";

/// `CLIENT TRACKING ON` in broadcast mode for keys under `prefixes`, the invalidations sent to the
/// connection `redirect` (the pub/sub socket subscribed to [`INVALIDATE`]), none for our own writes.
pub fn tracking_on<P: AsRef<str>>(redirect: i64, prefixes: &[P]) -> Vec<u8> {
    let id = redirect.to_string();
    let mut args: Vec<&str> = vec!["TRACKING", "ON", "REDIRECT", &id, "BCAST", "NOLOOP"];
    for p in prefixes {
        args.push("PREFIX");
        args.push(p.as_ref());
    }
    pack("CLIENT", &args)
}

/// What the pub/sub socket received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubSub {
    /// A message published to a channel matched by a pattern.
    Message {
        /// The channel it was published to.
        channel: Vec<u8>,
        /// The payload.
        data: Vec<u8>,
    },
    /// Keys changed (client-side caching invalidation); `None` when the whole database was flushed.
    Invalidate(Option<Vec<Vec<u8>>>),
    /// A (un)subscribe confirmation, a PONG or anything else without effect.
    Other,
}

fn bytes(f: &Frame) -> Option<&[u8]> {
    match f {
        Frame::BulkString(b) | Frame::SimpleString(b) => Some(b),
        _ => None,
    }
}

/// Classifies one frame of the pub/sub socket.
pub fn classify(frame: Frame, invalidate_channel: &[u8]) -> Result<PubSub> {
    let items = match frame {
        Frame::Array(items) => items,
        Frame::Error(e) => return Err(Error::channel(format!("redis pub/sub error: {e}"))),
        _ => return Ok(PubSub::Other),
    };
    let kind = items.first().and_then(bytes).unwrap_or_default().to_ascii_lowercase();
    match (kind.as_slice(), items.len()) {
        (b"pmessage", 4) => {
            let mut it = items.into_iter().skip(2);
            let (Some(Frame::BulkString(channel)), Some(Frame::BulkString(data))) = (it.next(), it.next()) else {
                return Ok(PubSub::Other);
            };
            Ok(PubSub::Message { channel, data })
        }
        (b"message", 3) => {
            let mut it = items.into_iter().skip(1);
            let (Some(channel), Some(data)) = (it.next(), it.next()) else { return Ok(PubSub::Other) };
            if bytes(&channel) == Some(invalidate_channel) {
                return Ok(PubSub::Invalidate(match data {
                    Frame::Array(keys) => Some(keys.iter().filter_map(bytes).map(<[u8]>::to_vec).collect()),
                    _ => None,
                }));
            }
            match (channel, data) {
                (Frame::BulkString(channel), Frame::BulkString(data)) => Ok(PubSub::Message { channel, data }),
                _ => Ok(PubSub::Other),
            }
        }
        _ => Ok(PubSub::Other),
    }
}

/// The error text of an error reply, if it is one.
pub fn error_text(frame: &Frame) -> Option<&str> {
    match frame {
        Frame::Error(e) => Some(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_whole_across_partial_reads() {
        let wire = b"+OK\r\n*2\r\n$3\r\nabc\r\n:5\r\n$-1\r\n-ERR bad\r\n";
        // Feed one byte at a time: every frame appears exactly when its last byte arrives.
        let mut fb = FrameBuf::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            fb.extend(&[*b]);
            while let Some(f) = fb.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![
                Frame::SimpleString(b"OK".to_vec()),
                Frame::Array(vec![Frame::BulkString(b"abc".to_vec()), Frame::Integer(5)]),
                Frame::Null,
                Frame::Error("ERR bad".into()),
            ]
        );
        assert_eq!(fb.pending(), 0);
        assert_eq!(error_text(&got[3]), Some("ERR bad"));
    }

    #[test]
    fn spare_and_filled() {
        let mut fb = FrameBuf::new();
        let spare = fb.spare(16);
        let len = spare.len();
        spare[..5].copy_from_slice(b":42\r\n");
        fb.filled(len, 5);
        assert_eq!(fb.next_frame().unwrap(), Some(Frame::Integer(42)));
        assert_eq!(fb.next_frame().unwrap(), None);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut fb = FrameBuf::new();
        fb.extend(b"?what\r\n");
        assert!(fb.next_frame().is_err());
    }

    #[test]
    fn pubsub_kinds() {
        let inv = INVALIDATE;
        let bulk = |s: &[u8]| Frame::BulkString(s.to_vec());
        let pm = Frame::Array(vec![bulk(b"pmessage"), bulk(b"/0.ex*"), bulk(b"/0.ex/k"), bulk(b"{}")]);
        assert_eq!(classify(pm, inv).unwrap(), PubSub::Message { channel: b"/0.ex/k".to_vec(), data: b"{}".to_vec() });
        let iv = Frame::Array(vec![bulk(b"message"), bulk(inv), Frame::Array(vec![bulk(b"q1")])]);
        assert_eq!(classify(iv, inv).unwrap(), PubSub::Invalidate(Some(vec![b"q1".to_vec()])));
        let flush = Frame::Array(vec![bulk(b"message"), bulk(inv), Frame::Null]);
        assert_eq!(classify(flush, inv).unwrap(), PubSub::Invalidate(None));
        let sub = Frame::Array(vec![bulk(b"psubscribe"), bulk(b"x"), Frame::Integer(1)]);
        assert_eq!(classify(sub, inv).unwrap(), PubSub::Other);
        assert!(classify(Frame::Error("ERR".into()), inv).is_err());
        assert_eq!(pack("PING", &[] as &[&str]), b"*1\r\n$4\r\nPING\r\n".to_vec());
    }

    #[test]
    fn tracking_is_broadcast_by_prefix() {
        let want =
            pack("CLIENT", &["TRACKING", "ON", "REDIRECT", "7", "BCAST", "NOLOOP", "PREFIX", "a", "PREFIX", "b."]);
        assert_eq!(tracking_on(7, &["a", "b."]), want);
        assert_eq!(INVALIDATE, b"__redis__:invalidate");
    }
}
