//! Dialing a server: one place where every socket kombu-redis opens is connected (the master found
//! through Sentinel when configured, TCP, then TLS when configured), so the poller's sockets, the command
//! pool and the helper threads share one set of settings. [`Stream`] is plain or TLS behind one
//! `Read`/`Write`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use kombu_core::{Error, ErrorKind, Result};

use crate::options::RedisOptions;
use crate::sentinel::Sentinels;
use crate::tls;

/// A connected socket, plain or TLS. Blocking or not as its TCP socket is set.
pub(crate) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<kombu_tls::rustls::StreamOwned<kombu_tls::rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket under it.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Whether bytes wait to be written to the socket (TLS records rustls holds; none on a plain socket,
    /// whose writes go straight to it).
    pub(crate) fn wants_write(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.conn.wants_write(),
        }
    }

    /// Sets both socket timeouts (`None`: wait for ever).
    pub(crate) fn set_timeouts(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.tcp().set_read_timeout(t)?;
        self.tcp().set_write_timeout(t)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// How one connection reaches its server: where (a fixed address, or the master its sentinels name),
/// with which timeout, over TLS or not.
#[derive(Debug)]
pub(crate) struct Dialer {
    host: String,
    port: u16,
    timeout: Duration,
    tls: Option<tls::Config>,
    sentinels: Option<Sentinels>,
    /// TCP keepalive on the connections to the server (`socket_keepalive`).
    keepalive: bool,
}

impl Dialer {
    /// The dialer for these options (reads the TLS files they name).
    pub(crate) fn new(o: &RedisOptions) -> Result<Dialer> {
        let tls = o.tls.as_ref().map(tls::Config::new).transpose()?;
        let timeout = o.socket_connect_timeout.unwrap_or(Duration::from_secs(10));
        let sentinels = match &o.sentinel {
            Some(s) => Some(Sentinels::new(s, &o.host, o.port, timeout)?),
            None => None,
        };
        Ok(Dialer { host: o.host.clone(), port: o.port, timeout, tls, sentinels, keepalive: o.socket_keepalive })
    }

    /// The server, for messages: its address, or the master's name and the last address found for it.
    pub(crate) fn address(&self) -> String {
        match &self.sentinels {
            None => address(&self.host, self.port),
            Some(s) => s.describe(),
        }
    }

    /// Whether a server dialed must be asked whether it is the master (it was found through Sentinel).
    pub(crate) fn checks_role(&self) -> bool {
        self.sentinels.is_some()
    }

    /// With Sentinel, the master's address as the sentinels say now (blocking); `None` without.
    pub(crate) fn master(&self) -> Option<Result<String>> {
        self.sentinels.as_ref().map(|s| s.master().map(|(h, p)| address(&h, p)))
    }

    /// Connects to the server (blocking, with the connect timeout on every step, which stays set); the
    /// master is asked of the sentinels each time. Returns the stream and the address it reached.
    pub(crate) fn connect(&self) -> Result<(Stream, String)> {
        let (host, port) = match &self.sentinels {
            None => (self.host.clone(), self.port),
            Some(s) => s.master()?,
        };
        let stream = dial(&host, port, self.timeout, self.tls.as_ref())?;
        if self.keepalive {
            socket2::SockRef::from(stream.tcp()).set_keepalive(true).map_err(|e| {
                Error::with_source(ErrorKind::Connection, format!("socket_keepalive on {}", address(&host, port)), e)
            })?;
        }
        Ok((stream, address(&host, port)))
    }
}

/// Connects a blocking socket to `host:port` (TLS with `tls`), with `timeout` on every step (it stays set).
pub(crate) fn dial(host: &str, port: u16, timeout: Duration, tls: Option<&tls::Config>) -> Result<Stream> {
    let addr = address(host, port);
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::with_source(ErrorKind::Connection, format!("cannot resolve {addr}"), e))?
        .collect();
    let mut last = None;
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = tcp.ok_or_else(|| match last {
        Some(e) => Error::with_source(ErrorKind::Connection, format!("cannot connect to redis at {addr}"), e),
        None => Error::connection(format!("no address for {addr}")),
    })?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    match tls {
        None => Ok(Stream::Plain(tcp)),
        #[cfg(feature = "tls")]
        Some(config) => Ok(Stream::Tls(tls::handshake(config, host, &addr, tcp)?)),
        #[cfg(not(feature = "tls"))]
        Some(config) => match *config {},
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub(crate) fn address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
