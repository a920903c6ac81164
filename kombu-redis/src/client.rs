//! Command connections: a small pool of blocking connections for declares, publishes, gets and acks,
//! dialed like every other socket (TLS, Sentinel), with Kombu's connection options and errors mapped to
//! kombu error kinds.

use std::sync::{Arc, Mutex};

use kombu_core::{Error, ErrorKind, Result};

use crate::command::CommandConnection;
use crate::dial::Dialer;
use crate::options::RedisOptions;
use crate::resp::pack;
use crate::socket::{auth_commands, handshake};

/// Whether a `redis` crate error is a `READONLY` reply: the server was a master and is a replica now
/// (a failover moved the master), so a new connection, to the new master, is what helps.
pub(crate) fn is_readonly(e: &redis::RedisError) -> bool {
    matches!(e.kind(), redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly))
}

/// Turns a `redis` crate error into a kombu error: socket trouble, and a server that cannot serve yet
/// (`LOADING` while it reads its data after a restart, `TRYAGAIN`, `MASTERDOWN`) or no longer takes
/// writes (`READONLY`: a replica since a failover), is a (recoverable) connection error, refused
/// credentials or rights (`NOPERM`) an access-refused error, another refused command a channel error.
/// The message is `context`; the redis error is the cause (opaque: its own text already includes its
/// causes).
pub fn map_err(context: &str, e: redis::RedisError) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || is_readonly(&e)
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

/// A pool of blocking command connections.
pub struct Pool {
    dialer: Arc<Dialer>,
    opts: RedisOptions,
    idle: Mutex<Vec<CommandConnection>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("address", &self.dialer.address()).field("db", &self.opts.db).finish()
    }
}

impl Pool {
    /// A pool for the server the dialer reaches; connects lazily.
    pub(crate) fn new(opts: &RedisOptions, dialer: Arc<Dialer>) -> Pool {
        Pool { dialer, opts: opts.clone(), idle: Mutex::new(Vec::new()) }
    }

    /// Opens a new connection: connects, authenticates, names itself, selects the database and loads the
    /// scripts, all in one pipelined round trip.
    pub(crate) fn connect(&self) -> Result<CommandConnection> {
        let mut commands = auth_commands(&self.opts);
        commands.push(pack("SELECT", &[self.opts.db.to_string()]));
        for code in [crate::scripts::ROUTE, crate::scripts::POP, crate::scripts::RESTORE, crate::scripts::UNLOCK] {
            commands.push(pack("SCRIPT", &["LOAD", code]));
        }
        let (stream, _, _) = handshake(&self.dialer, &commands, &[])?;
        let con = CommandConnection::new(stream, self.opts.db);
        con.set_timeouts(self.opts.socket_timeout)?;
        Ok(con)
    }

    fn checkout(&self) -> Result<(CommandConnection, bool)> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(c) => Ok((c, true)),
            None => Ok((self.connect()?, false)),
        }
    }

    fn checkin(&self, con: CommandConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.opts.max_connections {
            idle.push(con);
        }
    }

    /// Runs `f` on a pooled connection. A connection that fails with a socket error is dropped; when it
    /// was an idle pooled one (stale after a server restart) `f` is tried once more on a fresh connection.
    /// A `READONLY` reply (the server is a replica since a failover) drops every pooled connection and is
    /// tried once more the same way: new connections are dialed again, which finds the new master
    /// through Sentinel.
    pub(crate) fn run<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut CommandConnection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let (mut con, pooled) = self.checkout()?;
        match f(&mut con) {
            Ok(v) => {
                self.checkin(con);
                Ok(v)
            }
            Err(e) if is_readonly(&e) || (pooled && (e.is_io_error() || e.is_connection_dropped())) => {
                // READONLY: the command did not run, so it is safe to send again.
                tracing::debug!("{what}: pooled redis connection failed ({e}); retrying on a new one");
                self.clear();
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
