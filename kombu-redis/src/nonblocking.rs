//! The channel's non-blocking side ([`kombu_core::AsyncChannel`]), for the async API: publishes and acks
//! awaited on one multiplexed `redis` aio connection per kombu connection, made on first use on the
//! caller's runtime. Many futures in flight share it: the `redis` crate pipelines their commands and
//! hands each caller its own reply. The commands are the blocking path's (`publish::commands_to`, the
//! ROUTE script; `acks::forget_pipe`), so the data on the server is the same.
//!
//! Over TLS and through Sentinel, whose sockets kombu-redis dials itself (`dial.rs`), publishes and acks
//! take the blocking path on tokio's blocking pool for now.
//!
//! Unlike the blocking publisher, which reads an unconfirmed publish's reply later, an async publish
//! always awaits its reply: `Ok` means the server ran it, with or without `confirm_timeout`. A publish
//! through a headers exchange (whose binding set is read first) and a reject (which restores the
//! message) run the blocking path on tokio's blocking pool.

use std::sync::Mutex;
use std::time::Duration;

use kombu_core::{
    AsyncChannel, DeliveryTag, Error, ErrorKind, ExchangeKind, Message, Outgoing, PublishOptions, Result,
};
use redis::aio::MultiplexedConnection;

use crate::channel::RedisChannel;
use crate::client::map_err;
use crate::connection::lock;
use crate::options::RedisOptions;
use crate::publish::{self, after_write, is_socket_error};

/// The async connection of one kombu connection (none until first used, or after it was lost).
#[derive(Default)]
pub(crate) struct AsyncLink {
    con: Mutex<Option<MultiplexedConnection>>,
    /// Held while connecting: callers that come meanwhile wait for that connection instead of making
    /// their own (64 first sends made 64 connections).
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AsyncLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLink").field("connected", &lock(&self.con).is_some()).finish()
    }
}

/// The URL the `redis` crate's aio connection is made with (credentials percent-encoded).
fn plain_url(o: &RedisOptions) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let creds = match (&o.username, &o.password) {
        (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
        (None, Some(p)) => format!(":{}@", enc(p)),
        (Some(u), None) => format!("{}@", enc(u)),
        (None, None) => String::new(),
    };
    format!("redis://{creds}{}/{}", o.address(), o.db)
}

/// Whether the aio link can serve these options: a plain server named by the URL. Over TLS and through
/// Sentinel (whose sockets kombu-redis dials itself, `dial.rs`) the calls take the blocking path on
/// tokio's blocking pool instead.
fn direct(o: &RedisOptions) -> bool {
    o.tls.is_none() && o.sentinel.is_none()
}

impl AsyncLink {
    /// The connection: connects, authenticates, selects the database and loads the scripts the first time.
    async fn get(&self, o: &RedisOptions) -> Result<MultiplexedConnection> {
        if let Some(c) = lock(&self.con).clone() {
            return Ok(c);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(c) = lock(&self.con).clone() {
            return Ok(c);
        }
        let client = redis::Client::open(plain_url(o).as_str())
            .map_err(|e| Error::with_opaque_source(ErrorKind::InvalidArgument, "redis URL", e))?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(o.socket_connect_timeout.unwrap_or(Duration::from_secs(30))))
            .set_response_timeout(o.socket_timeout);
        let mut con = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| map_err(&format!("cannot connect to redis at {}", o.address()), e))?;
        load_scripts(&mut con, o).await?;
        *lock(&self.con) = Some(con.clone());
        Ok(con)
    }

    /// Forgets a connection that failed with a socket error: the next call connects again.
    fn lost(&self, e: &redis::RedisError) {
        if is_socket_error(e) {
            lock(&self.con).take();
        }
    }
}

async fn load_scripts(con: &mut MultiplexedConnection, o: &RedisOptions) -> Result<()> {
    let mut p = redis::pipe();
    for code in [crate::scripts::ROUTE, crate::scripts::POP, crate::scripts::RESTORE, crate::scripts::UNLOCK] {
        p.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
    }
    if let Some(name) = &o.client_name {
        p.cmd("CLIENT").arg("SETNAME").arg(name).ignore();
    }
    p.query_async::<()>(con).await.map_err(|e| map_err("loading scripts", e))
}

impl RedisChannel {
    /// Runs `pipe` on the connection's async link; a server that lost the scripts (restarted, flushed) gets
    /// them again and the pipe once more. A failure to connect is an error of nothing sent; a failure of
    /// the pipe goes through `failed`.
    async fn run_async(&self, pipe: &redis::Pipeline, failed: fn(redis::RedisError) -> Error) -> Result<()> {
        let o = &self.shared.opts;
        let mut con = self.shared.aio.get(o).await.map_err(|e| e.with_may_have_reached_broker(false))?;
        let outcome = match pipe.query_async::<()>(&mut con).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                tracing::debug!("the redis server lost the scripts; loading them again");
                load_scripts(&mut con, o).await.map_err(|e| e.with_may_have_reached_broker(false))?;
                pipe.query_async::<()>(&mut con).await
            }
            other => other,
        };
        outcome.map_err(|e| {
            self.shared.aio.lost(&e);
            failed(e)
        })
    }

    /// Runs a blocking call of this channel on tokio's blocking pool.
    async fn on_blocking_pool(&self, call: impl FnOnce(&RedisChannel) -> Result<()> + Send + 'static) -> Result<()> {
        let me = self.arc()?;
        match tokio::task::spawn_blocking(move || call(&me)).await {
            Ok(done) => done,
            Err(e) => Err(Error::state(format!("a blocking redis call failed to run: {e}"))),
        }
    }
}

/// A failed publish: a refusal (an error reply) means it did not run; a socket error or a time-out may
/// have come after the server ran it.
fn publish_failed(e: redis::RedisError) -> Error {
    let written = is_socket_error(&e);
    let err = map_err("publish", e);
    if written {
        after_write(err)
    } else {
        err.with_may_have_reached_broker(false)
    }
}

#[async_trait::async_trait]
impl AsyncChannel for RedisChannel {
    async fn publish(
        &self,
        message: Message,
        exchange: &str,
        routing_key: &str,
        options: &PublishOptions,
    ) -> Result<()> {
        if !kombu_core::Channel::is_open(self) {
            return Err(Error::state("redis channel is closed"));
        }
        let kind = self.shared.exchange_kind(exchange);
        if kind == ExchangeKind::Headers || !direct(&self.shared.opts) {
            let (ex, key, options) = (exchange.to_owned(), routing_key.to_owned(), options.clone());
            return self
                .on_blocking_pool(move |ch| kombu_core::Channel::publish(ch, message, &ex, &key, &options))
                .await;
        }
        let dest = publish::destination(&self.shared, &message, exchange, routing_key, kind, None)?;
        let commands = publish::commands_to(&self.shared, dest, &message, exchange, routing_key)?;
        if commands.is_empty() {
            // Routed to no queue: dropped, as AMQP drops it.
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for c in commands {
            pipe.add_command(c).ignore();
        }
        self.run_async(&pipe, publish_failed).await
    }

    async fn publish_batch(&self, batch: Vec<Outgoing>, options: &PublishOptions) -> Result<()> {
        // One round trip for the binding sets, then runs of up to 1,000 per command: the blocking path's.
        let options = options.clone();
        self.on_blocking_pool(move |ch| kombu_core::Channel::publish_batch(ch, batch, &options)).await
    }

    async fn ack(&self, tag: &DeliveryTag) -> Result<()> {
        if !direct(&self.shared.opts) {
            let tag = tag.clone();
            return self.on_blocking_pool(move |ch| kombu_core::Channel::ack(ch, &tag)).await;
        }
        let ack = self.begin_ack(tag)?;
        let res = if ack.recorded {
            let pipe = crate::acks::forget_pipe(&self.shared, &[ack.key.as_str()]);
            self.run_async(&pipe, |e| map_err("ack", e)).await
        } else {
            Ok(())
        };
        self.end_ack(ack, &res);
        res
    }

    async fn reject(&self, tag: &DeliveryTag, requeue: bool) -> Result<()> {
        let tag = tag.clone();
        self.on_blocking_pool(move |ch| kombu_core::Channel::reject(ch, &tag, requeue)).await
    }
}
