//! Command connections: a small pool of blocking `redis` crate connections for declares, publishes, gets
//! and acks, with Kombu's connection options and errors mapped to kombu error kinds.

use std::sync::Mutex;
use std::time::Duration;

use kombu_core::{Error, ErrorKind, Result};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::options::RedisOptions;

/// Turns a `redis` crate error into a kombu error: socket trouble, and a server that cannot serve yet
/// (`LOADING` while it reads its data after a restart, `TRYAGAIN`, `MASTERDOWN`), is a (recoverable)
/// connection error, refused credentials or rights (`NOPERM`) an access-refused error, another refused
/// command a channel error. The message is `context`; the redis error is the
/// cause (opaque: its own text already includes its causes).
pub fn map_err(context: &str, e: redis::RedisError) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(e.retry_method(), redis::RetryMethod::WaitAndRetry)
    {
        ErrorKind::Connection
    } else if matches!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
    ) {
        // A wrong password, and an ACL user without the rights a command needs.
        ErrorKind::AccessRefused
    } else {
        ErrorKind::Channel
    };
    Error::with_opaque_source(kind, context, e)
}

/// The URL the `redis` crate connects with (credentials percent-encoded).
pub fn client_url(o: &RedisOptions) -> String {
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let creds = match (&o.username, &o.password) {
        (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
        (None, Some(p)) => format!(":{}@", enc(p)),
        (Some(u), None) => format!("{}@", enc(u)),
        (None, None) => String::new(),
    };
    format!("redis://{creds}{}/{}", o.address(), o.db)
}

/// A pool of blocking command connections.
pub struct Pool {
    client: redis::Client,
    opts: RedisOptions,
    idle: Mutex<Vec<redis::Connection>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("address", &self.opts.address()).field("db", &self.opts.db).finish()
    }
}

impl Pool {
    /// A pool for the server the options name; connects lazily.
    pub fn new(opts: &RedisOptions) -> Result<Pool> {
        let client = redis::Client::open(client_url(opts).as_str())
            .map_err(|e| Error::with_opaque_source(ErrorKind::InvalidArgument, "redis URL", e))?;
        Ok(Pool { client, opts: opts.clone(), idle: Mutex::new(Vec::new()) })
    }

    /// Opens a new connection: connects, authenticates, selects the database, names itself and loads the
    /// scripts (one pipelined round trip after the handshake).
    pub fn connect(&self) -> Result<redis::Connection> {
        let timeout = self.opts.socket_connect_timeout.unwrap_or(Duration::from_secs(30));
        let mut con = self
            .client
            .get_connection_with_timeout(timeout)
            .map_err(|e| map_err(&format!("cannot connect to redis at {}", self.opts.address()), e))?;
        con.set_read_timeout(self.opts.socket_timeout).map_err(|e| map_err("socket timeout", e))?;
        con.set_write_timeout(self.opts.socket_timeout).map_err(|e| map_err("socket timeout", e))?;
        let mut p = redis::pipe();
        for code in [crate::scripts::ROUTE, crate::scripts::POP, crate::scripts::RESTORE, crate::scripts::UNLOCK] {
            p.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
        }
        if let Some(name) = &self.opts.client_name {
            p.cmd("CLIENT").arg("SETNAME").arg(name).ignore();
        }
        p.query::<()>(&mut con).map_err(|e| map_err("loading scripts", e))?;
        Ok(con)
    }

    fn checkout(&self) -> Result<(redis::Connection, bool)> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(c) => Ok((c, true)),
            None => Ok((self.connect()?, false)),
        }
    }

    fn checkin(&self, con: redis::Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.opts.max_connections {
            idle.push(con);
        }
    }

    /// Runs `f` on a pooled connection. A connection that fails with a socket error is dropped; when it
    /// was an idle pooled one (stale after a server restart) `f` is tried once more on a fresh connection.
    pub fn run<T>(&self, what: &str, mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>) -> Result<T> {
        let (mut con, pooled) = self.checkout()?;
        match f(&mut con) {
            Ok(v) => {
                self.checkin(con);
                Ok(v)
            }
            Err(e) if pooled && (e.is_io_error() || e.is_connection_dropped()) => {
                tracing::debug!("{what}: pooled redis connection failed ({e}); retrying on a new one");
                self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
                let mut con = self.connect()?;
                let v = f(&mut con).map_err(|e| map_err(what, e))?;
                self.checkin(con);
                Ok(v)
            }
            Err(e) => {
                if !(e.is_io_error() || e.is_connection_dropped() || e.is_timeout()) {
                    self.checkin(con);
                }
                Err(map_err(what, e))
            }
        }
    }

    /// Drops every idle connection.
    pub fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_urls_encode_credentials() {
        let mut o = RedisOptions::default();
        assert_eq!(client_url(&o), "redis://127.0.0.1:6379/0");
        o.password = Some("p@s:s".into());
        o.db = 2;
        assert_eq!(client_url(&o), "redis://:p%40s%3As@127.0.0.1:6379/2");
        o.username = Some("me".into());
        assert_eq!(client_url(&o), "redis://me:p%40s%3As@127.0.0.1:6379/2");
    }
}
