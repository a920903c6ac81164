//! The consumer's sockets: connecting and authenticating a blocking socket before it turns non-blocking,
//! then reading everything available (the Hub is edge-triggered) and writing what the kernel takes. A
//! TLS socket reads every record the kernel has and every byte of plaintext rustls decrypted from them,
//! and keeps writable interest while rustls holds records not yet written.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use kombu_core::hub::{Interest, Sources, Token};
use kombu_core::{Error, ErrorKind, Result};

use crate::dial::{Dialer, Stream};
use crate::options::RedisOptions;
use crate::resp::{error_text, pack, Frame, FrameBuf};
use crate::tls;

/// One non-blocking socket.
pub(crate) struct Sock {
    pub(crate) stream: Stream,
    pub(crate) token: Token,
    pub(crate) rbuf: FrameBuf,
    pub(crate) wbuf: Vec<u8>,
    pub(crate) writable_watched: bool,
}

/// What one non-blocking read gave.
enum Got {
    Bytes(usize),
    Closed,
    Drained,
}

fn read_error(e: std::io::Error) -> Error {
    tls::io_error("reading from redis".into(), e)
}

impl Sock {
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        self.stream.tcp().as_raw_fd()
    }

    /// Reads everything available (the Hub is edge-triggered). Errors on EOF or socket failure.
    pub(crate) fn fill(&mut self) -> Result<()> {
        loop {
            let spare = self.rbuf.spare(64 * 1024);
            let len = spare.len();
            let got = read_some(&mut self.stream, spare);
            let n = match &got {
                Ok(Got::Bytes(n)) => *n,
                _ => 0,
            };
            self.rbuf.filled(len, n);
            match got {
                Ok(Got::Bytes(_)) => {}
                Ok(Got::Drained) => return Ok(()),
                Ok(Got::Closed) => return Err(Error::connection("redis closed the connection")),
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes what it can; watches for writability while something is left (in `wbuf`, or TLS records
    /// rustls has not written yet).
    pub(crate) fn flush(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        let want = match &mut self.stream {
            Stream::Plain(tcp) => {
                write_some(tcp, &mut self.wbuf)?;
                !self.wbuf.is_empty()
            }
            #[cfg(feature = "tls")]
            Stream::Tls(s) => {
                if !self.wbuf.is_empty() {
                    // No buffer limit is set: rustls takes it all, as records to write.
                    s.conn.writer().write_all(&self.wbuf)?;
                    self.wbuf.clear();
                }
                while s.conn.wants_write() {
                    match s.conn.write_tls(&mut s.sock) {
                        Ok(0) => return Err(Error::connection("redis connection closed while writing")),
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(Error::with_source(ErrorKind::Connection, "writing to redis", e)),
                    }
                }
                s.conn.wants_write()
            }
        };
        if want != self.writable_watched {
            let interest = if want { Interest::BOTH } else { Interest::READABLE };
            sources.reregister_fd(self.fd(), self.token, interest)?;
            self.writable_watched = want;
        }
        Ok(())
    }
}

/// One read from a non-blocking stream. For TLS: plaintext rustls holds first; else one read of records
/// from the socket, processed (`Bytes(0)` then: read again, there may be plaintext now).
fn read_some(stream: &mut Stream, buf: &mut [u8]) -> Result<Got> {
    match stream {
        Stream::Plain(tcp) => loop {
            match tcp.read(buf) {
                Ok(0) => return Ok(Got::Closed),
                Ok(n) => return Ok(Got::Bytes(n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Got::Drained),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(e)),
            }
        },
        #[cfg(feature = "tls")]
        Stream::Tls(s) => {
            match s.conn.reader().read(buf) {
                Ok(0) => return Ok(Got::Closed),
                Ok(n) => return Ok(Got::Bytes(n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(read_error(e)),
            }
            loop {
                match s.conn.read_tls(&mut s.sock) {
                    Ok(0) => return Ok(Got::Closed),
                    Ok(_) => {
                        s.conn.process_new_packets().map_err(|e| tls::classify("reading from redis".into(), e))?;
                        return Ok(Got::Bytes(0));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Got::Drained),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(read_error(e)),
                }
            }
        }
    }
}

fn write_some(tcp: &mut std::net::TcpStream, wbuf: &mut Vec<u8>) -> Result<()> {
    while !wbuf.is_empty() {
        match tcp.write(wbuf) {
            Ok(0) => return Err(Error::connection("redis connection closed while writing")),
            Ok(n) => {
                wbuf.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::with_source(ErrorKind::Connection, "writing to redis", e)),
        }
    }
    Ok(())
}

/// Connects a blocking socket through `dialer`, runs the handshake commands, and returns it (still
/// blocking, with the connect timeout) with their replies. An error reply fails the handshake, except to
/// the commands at the `optional` positions (returned as replies). A server found through Sentinel must
/// also say it is the master (`ROLE`; a server whose ACL refuses ROLE is taken at its sentinel's word).
/// Returns the stream, the replies, and the address connected to.
pub(crate) fn handshake(
    dialer: &Dialer,
    commands: &[Vec<u8>],
    optional: &[usize],
) -> Result<(Stream, Vec<Frame>, String)> {
    let (mut stream, addr) = dialer.connect()?;
    if !dialer.checks_role() {
        let replies = exchange(&mut stream, &addr, commands, optional)?;
        return Ok((stream, replies, addr));
    }
    let mut commands = commands.to_vec();
    commands.push(pack::<&str>("ROLE", &[]));
    let mut optional = optional.to_vec();
    optional.push(commands.len() - 1);
    let mut replies = exchange(&mut stream, &addr, &commands, &optional)?;
    match replies.pop().as_ref().and_then(crate::sentinel::role) {
        Some(role) if role != "master" => Err(Error::connection(format!(
            "redis at {addr} is a {role}, not the master (a failover under way?); asking the sentinels again"
        ))),
        _ => Ok((stream, replies, addr)),
    }
}

/// Sends `commands` on a connected blocking stream and reads one reply to each. An error reply is an
/// error (refused credentials `AccessRefused`), except to the commands at the `optional` positions.
pub(crate) fn exchange(
    stream: &mut Stream,
    addr: &str,
    commands: &[Vec<u8>],
    optional: &[usize],
) -> Result<Vec<Frame>> {
    let mut out = Vec::new();
    for c in commands {
        out.extend_from_slice(c);
    }
    let io = |what: &str, e: std::io::Error| tls::io_error(format!("{what} redis at {addr} during the handshake"), e);
    stream.write_all(&out).and_then(|()| stream.flush()).map_err(|e| io("writing to", e))?;
    let mut fb = FrameBuf::new();
    let mut replies = Vec::new();
    while replies.len() < commands.len() {
        let spare = fb.spare(4096);
        let len = spare.len();
        let read = stream.read(spare);
        let n = *read.as_ref().unwrap_or(&0);
        fb.filled(len, n);
        match read {
            Ok(0) => {
                return Err(Error::connection(format!("redis at {addr} closed the connection during the handshake")))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("reading from", e)),
        }
        while let Some(f) = fb.next_frame()? {
            if let Some(e) = error_text(&f).filter(|_| !optional.contains(&replies.len())) {
                // "ERR AUTH <password> called without any password configured": refused credentials too,
                // as redis-rs reports it.
                let credentials =
                    ["NOAUTH", "WRONGPASS"].iter().any(|code| e.contains(code)) || e.starts_with("ERR AUTH");
                return Err(if credentials {
                    Error::new(ErrorKind::AccessRefused, format!("authentication failed at redis {addr}: {e}"))
                } else if e.contains("NOPERM") {
                    Error::new(ErrorKind::AccessRefused, format!("redis at {addr} refused the handshake: {e}"))
                } else {
                    Error::connection(format!("redis at {addr} refused the handshake: {e}"))
                });
            }
            replies.push(f);
        }
    }
    Ok(replies)
}

/// Makes a handshaken stream non-blocking, for the Hub.
pub(crate) fn nonblocking(stream: &Stream) -> Result<()> {
    stream.set_timeouts(None)?;
    stream.tcp().set_nonblocking(true)?;
    Ok(())
}

pub(crate) fn auth_commands(o: &RedisOptions) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    match (&o.username, &o.password) {
        (Some(u), Some(p)) => v.push(pack("AUTH", &[u.as_str(), p.as_str()])),
        (None, Some(p)) => v.push(pack("AUTH", &[p.as_str()])),
        _ => {}
    }
    if let Some(name) = &o.client_name {
        v.push(pack("CLIENT", &["SETNAME", name.as_str()]));
    }
    v
}
