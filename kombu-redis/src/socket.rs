//! The consumer's sockets: connecting and authenticating a blocking socket before it turns non-blocking,
//! then reading everything available (the Hub is edge-triggered) and writing what the kernel takes.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::Duration;

use kombu_core::hub::{Interest, Sources, Token};
use kombu_core::{Error, ErrorKind, Result};

use crate::options::RedisOptions;
use crate::resp::{error_text, pack, Frame, FrameBuf};

/// One non-blocking socket.
pub(crate) struct Sock {
    pub(crate) stream: TcpStream,
    pub(crate) token: Token,
    pub(crate) rbuf: FrameBuf,
    pub(crate) wbuf: Vec<u8>,
    pub(crate) writable_watched: bool,
}

impl Sock {
    /// Reads everything available (the Hub is edge-triggered). Errors on EOF or socket failure.
    pub(crate) fn fill(&mut self) -> Result<()> {
        loop {
            let spare = self.rbuf.spare(64 * 1024);
            let len = spare.len();
            match self.stream.read(spare) {
                Ok(0) => {
                    self.rbuf.filled(len, 0);
                    return Err(Error::connection("redis closed the connection"));
                }
                Ok(n) => self.rbuf.filled(len, n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.rbuf.filled(len, 0);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.rbuf.filled(len, 0),
                Err(e) => {
                    self.rbuf.filled(len, 0);
                    return Err(Error::with_source(ErrorKind::Connection, "reading from redis", e));
                }
            }
        }
    }

    /// Writes what it can; watches for writability while something is left.
    pub(crate) fn flush(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        while !self.wbuf.is_empty() {
            match self.stream.write(&self.wbuf) {
                Ok(0) => return Err(Error::connection("redis connection closed while writing")),
                Ok(n) => {
                    self.wbuf.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::with_source(ErrorKind::Connection, "writing to redis", e)),
            }
        }
        let want = !self.wbuf.is_empty();
        if want != self.writable_watched {
            let interest = if want { Interest::BOTH } else { Interest::READABLE };
            sources.reregister_fd(self.stream.as_raw_fd(), self.token, interest)?;
            self.writable_watched = want;
        }
        Ok(())
    }
}

/// Connects a blocking socket, runs the handshake commands, and returns it with their replies. An error
/// reply fails the handshake, except to the commands at the `optional` positions (returned as replies).
pub(crate) fn handshake(o: &RedisOptions, commands: &[Vec<u8>], optional: &[usize]) -> Result<(TcpStream, Vec<Frame>)> {
    let timeout = o.socket_connect_timeout.unwrap_or(Duration::from_secs(10));
    let addrs: Vec<_> = o
        .address()
        .to_socket_addrs()
        .map_err(|e| Error::with_source(ErrorKind::Connection, format!("cannot resolve {}", o.address()), e))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = stream.ok_or_else(|| match last {
        Some(e) => Error::with_source(ErrorKind::Connection, format!("cannot connect to redis at {}", o.address()), e),
        None => Error::connection(format!("no address for {}", o.address())),
    })?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut out = Vec::new();
    for c in commands {
        out.extend_from_slice(c);
    }
    stream.write_all(&out)?;
    let mut fb = FrameBuf::new();
    let mut replies = Vec::new();
    while replies.len() < commands.len() {
        let spare = fb.spare(4096);
        let len = spare.len();
        let n = stream.read(spare)?;
        fb.filled(len, n);
        if n == 0 {
            return Err(Error::connection("redis closed the connection during the handshake"));
        }
        while let Some(f) = fb.next_frame()? {
            if let Some(e) = error_text(&f).filter(|_| !optional.contains(&replies.len())) {
                // "ERR AUTH <password> called without any password configured": refused credentials too,
                // as redis-rs (the command connections) reports it.
                let refused = ["NOAUTH", "WRONGPASS", "NOPERM"].iter().any(|code| e.contains(code));
                let kind =
                    if refused || e.starts_with("ERR AUTH") { ErrorKind::AccessRefused } else { ErrorKind::Connection };
                return Err(Error::new(kind, format!("redis refused the handshake: {e}")));
            }
            replies.push(f);
        }
    }
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    stream.set_nonblocking(true)?;
    Ok((stream, replies))
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
