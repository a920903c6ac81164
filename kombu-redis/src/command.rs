//! A blocking command connection: a dialed [`Stream`] (plain or TLS) that the `redis` crate's commands,
//! pipelines and scripts run on (`redis::ConnectionLike`), replies read with the crate's own parser.
//!
//! Ours rather than `redis::Connection` so that every socket is dialed, secured and authenticated by
//! one code path (`dial`, `socket::handshake`): the TLS configuration and its provider are chosen here,
//! a refused certificate has a kind a retry cannot help, and a Sentinel-resolved address is used as is.

use std::io::Write;
use std::time::Duration;

use redis::{ConnectionLike, RedisError, RedisResult, Value};

use crate::dial::Stream;

/// One blocking connection, authenticated and on its database.
pub(crate) struct CommandConnection {
    stream: Stream,
    parser: redis::Parser,
    db: i64,
    open: bool,
}

impl CommandConnection {
    pub(crate) fn new(stream: Stream, db: u32) -> CommandConnection {
        CommandConnection { stream, parser: redis::Parser::new(), db: i64::from(db), open: true }
    }

    /// The socket, to be driven by other code (the async link).
    pub(crate) fn into_stream(self) -> Stream {
        self.stream
    }

    /// Sets the timeout of each read and write (`None`: none).
    pub(crate) fn set_timeouts(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.stream.set_timeouts(timeout)
    }

    /// Writes packed commands without reading their replies.
    pub(crate) fn send_packed_command(&mut self, cmd: &[u8]) -> RedisResult<()> {
        let written = self.stream.write_all(cmd).and_then(|()| self.stream.flush());
        written.map_err(|e| {
            self.open = false;
            RedisError::from(e)
        })
    }

    /// Reads the next reply as it came (an error reply is a `Value::ServerError`, not an `Err`).
    pub(crate) fn recv_response(&mut self) -> RedisResult<Value> {
        loop {
            match self.parser.parse_value(&mut self.stream) {
                Ok(Value::Push { .. }) => {}
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.open = false;
                    return Err(e);
                }
            }
        }
    }
}

impl ConnectionLike for CommandConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.send_packed_command(cmd)?;
        self.recv_response()
    }

    /// Reads `offset + count` replies and returns the last `count`. The first `offset` are a
    /// transaction's MULTI and QUEUED replies: an error among them (a command the server would not
    /// queue) is the result, as redis-rs reports an aborted transaction.
    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        self.send_packed_command(cmd)?;
        let mut out = Vec::with_capacity(count);
        let mut refused = None;
        for i in 0..offset + count {
            match self.recv_response()? {
                Value::ServerError(e) if i < offset => {
                    refused.get_or_insert(e);
                }
                v if i >= offset => out.push(v),
                _ => {}
            }
        }
        match refused {
            Some(e) => Err(RedisError::from(e)),
            None => Ok(out),
        }
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}
