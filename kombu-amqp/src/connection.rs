//! [`AmqpConnection`]: one lapin connection, the channels opened on it and the consumers they run.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use kombu_core::{BrokerConnection, Channel, Error, Poller, Result};
use lapin::types::LongString;
use lapin::ConnectionProperties;

use crate::channel::AmqpChannel;
use crate::errors::from_lapin;
use crate::fields::short_string;
use crate::options::ConnectParams;
use crate::poller::{AmqpPoller, Deliveries};
use crate::reasons::CloseReasons;
use crate::runtime::{block_on, runtime};
#[cfg(feature = "tls")]
use crate::tls::TlsConnector;

/// How long opening a channel or closing the connection may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// An open AMQP connection.
pub struct AmqpConnection {
    conn: lapin::Connection,
    deliveries: Arc<Deliveries>,
    target: String,
    confirm_publish: bool,
    reasons: Arc<CloseReasons>,
    channels: Mutex<Vec<Weak<AmqpChannel>>>,
    /// The program closed the connection: a new channel is then a `State` error, as on every backend.
    closed_by_us: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for AmqpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConnection").field("target", &self.target).field("open", &self.is_open()).finish()
    }
}

impl AmqpConnection {
    /// Connects, waiting at most the connect timeout.
    pub fn open(params: &ConnectParams) -> Result<AmqpConnection> {
        let a = &params.uri.authority;
        let target = format!("{}://{}:{}/{}", params.uri.scheme, a.host, a.port, params.uri.vhost);
        if params.tls() && !cfg!(feature = "tls") {
            return Err(Error::unsupported(format!(
                "{target} needs TLS, which this build lacks: enable the `tls` feature of kombu-amqp"
            )));
        }
        let mut props = ConnectionProperties::default()
            .with_client_property("product".into(), LongString::from("kombu-rs"))
            .with_client_property("product_version".into(), LongString::from(env!("CARGO_PKG_VERSION")));
        for (k, v) in &params.client_properties {
            props = props.with_client_property(short_string(k, "client property")?, LongString::from(v.as_bytes()));
        }
        #[cfg(feature = "tls")]
        let fut = connect_tls(params, props)?;
        #[cfg(not(feature = "tls"))]
        let fut = lapin::Connection::connect_uri_with_config(params.uri.clone(), props, Default::default(), runtime()?);
        let conn = match block_on(fut, Some(params.connect_timeout)) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                let context = format!("connecting to {target}");
                // A refusal is the broker's text alone; the other errors already name the context.
                let refused = matches!(e.kind(), lapin::ErrorKind::ProtocolError(_));
                let err = from_lapin(e, &context);
                return Err(if refused { err.context(context) } else { err });
            }
            None => {
                return Err(Error::connection(format!(
                    "connecting to {target}: no answer within {:?}",
                    params.connect_timeout
                )))
            }
        };
        let reasons = Arc::new(CloseReasons::new(&conn));
        Ok(AmqpConnection {
            conn,
            deliveries: Deliveries::new(),
            target,
            confirm_publish: params.confirm_publish,
            reasons,
            channels: Mutex::default(),
            closed_by_us: Default::default(),
        })
    }

    /// The lapin connection underneath.
    pub fn lapin(&self) -> &lapin::Connection {
        &self.conn
    }

    /// Opens a channel, typed (the trait method gives it as `dyn Channel`).
    pub fn amqp_channel(&self) -> Result<Arc<AmqpChannel>> {
        if self.closed_by_us.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::state(format!("the connection to {} is closed", self.target)));
        }
        self.reasons.tidy();
        match block_on(self.conn.create_channel(), Some(CALL_TIMEOUT)) {
            Some(Ok(ch)) => {
                let ch = AmqpChannel::new(ch, self.deliveries.clone(), self.reasons.clone(), self.confirm_publish);
                let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
                channels.retain(|c| c.strong_count() > 0);
                channels.push(Arc::downgrade(&ch));
                Ok(ch)
            }
            Some(Err(e)) => Err(from_lapin(e, &format!("opening a channel on {}", self.target))),
            None => Err(Error::timeout(format!("opening a channel on {}: no answer", self.target))),
        }
    }
}

/// The connect future: lapin's plain TCP, or TCP and the TLS layer of [`TlsConnector`] (made here, so a bad
/// file is an error before any connection is tried).
#[cfg(feature = "tls")]
fn connect_tls(
    params: &ConnectParams,
    props: ConnectionProperties,
) -> Result<impl std::future::Future<Output = lapin::Result<lapin::Connection>>> {
    let tls = match params.tls() {
        true => Some(std::sync::Arc::new(TlsConnector::new(&params.tls_options, &params.uri.authority.host)?)),
        false => None,
    };
    let connect = async move |uri: lapin::uri::AMQPUri, rt: crate::runtime::LapinRuntime| {
        let addrs = rt.to_socket_addrs((uri.authority.host.clone(), uri.authority.port));
        let stream = lapin::tcp::AsyncTcpStream::connect(&rt, addrs).await?;
        match &tls {
            Some(tls) => Ok(tls.connect(stream).await?),
            None => Ok(stream),
        }
    };
    Ok(lapin::Connection::connector(params.uri.clone(), runtime()?, connect, props))
}

impl BrokerConnection for AmqpConnection {
    fn channel(&self) -> Result<Arc<dyn Channel>> {
        let ch: Arc<dyn Channel> = self.amqp_channel()?;
        Ok(ch)
    }

    fn poller(&self) -> Result<Box<dyn Poller>> {
        Ok(Box::new(AmqpPoller::new(self.deliveries.clone())))
    }

    fn is_open(&self) -> bool {
        self.conn.status().connected()
    }

    fn close(&self) -> Result<()> {
        self.closed_by_us.store(true, std::sync::atomic::Ordering::Release);
        self.deliveries.clear();
        if !self.conn.status().connected() {
            return Ok(());
        }
        // Close the channels first, as py-amqp does: each close waits for the channel's queued publishes and
        // the broker handles it after them (a connection.close right after publishes can lose some).
        let channels: Vec<_> = std::mem::take(&mut *self.channels.lock().unwrap_or_else(|e| e.into_inner()));
        for ch in channels.iter().filter_map(Weak::upgrade) {
            if let Err(e) = ch.close() {
                tracing::debug!("closing a channel of {}: {e:#}", self.target);
            }
        }
        // lapin may stop its I/O loop (the broker closes the socket right after close-ok) without answering
        // the close; the connection's state says when it is over.
        let mut close = std::pin::pin!(self.conn.close(200, "OK".into()));
        let deadline = Instant::now() + CALL_TIMEOUT;
        let status = self.conn.status();
        loop {
            match block_on(close.as_mut(), Some(Duration::from_millis(50))) {
                Some(Ok(())) => return Ok(()),
                Some(Err(e)) if !status.connected() => {
                    tracing::debug!("closing {}: {e}", self.target);
                    return Ok(());
                }
                Some(Err(e)) => return Err(from_lapin(e, &format!("closing {}", self.target))),
                None if status.closed() || status.errored() => {
                    tracing::debug!("closing {}: lapin ended the connection without answering the close", self.target);
                    return Ok(());
                }
                None if Instant::now() >= deadline => {
                    return Err(Error::timeout(format!("closing {}: no answer", self.target)));
                }
                None => {}
            }
        }
    }
}

impl Drop for AmqpConnection {
    fn drop(&mut self) {
        self.deliveries.clear();
    }
}
