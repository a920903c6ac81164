//! One connection to a Redis server: the state its channels and its poller share (Kombu's per-connection
//! exchange table, fanout bindings, the command pool, the wake slot of its registered poller).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kombu_core::transport::{BrokerConnection, Channel, Poller};
use kombu_core::virtual_transport::WakeSlot;
use kombu_core::{Error, ExchangeKind, Result};

use crate::channel::RedisChannel;
use crate::client::Pool;
use crate::dial::Dialer;
use crate::options::RedisOptions;
use crate::poller::RedisPoller;

/// Locks a mutex, recovering from poisoning (a panicking callback must not wedge the connection).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the channels and the poller of one connection share.
pub(crate) struct Shared {
    pub(crate) opts: RedisOptions,
    /// How every socket of the connection is opened (TCP or TLS).
    pub(crate) dialer: Arc<Dialer>,
    pub(crate) pool: Pool,
    pub(crate) channels: Mutex<Vec<Arc<RedisChannel>>>,
    /// Exchange types declared through this connection (Kombu keeps the same table per connection;
    /// an exchange it does not know routes as direct).
    pub(crate) exchanges: Mutex<HashMap<String, ExchangeKind>>,
    /// Queues declared through this connection (an empty queue has no key on Redis).
    pub(crate) queues: Mutex<HashSet<String>>,
    /// Queue to the fanout exchanges it is bound to.
    pub(crate) fanout: Mutex<HashMap<String, HashSet<String>>>,
    /// Wakes the registered poller (after a change in consumers, prefetch room or bindings).
    pub(crate) waker: Arc<WakeSlot>,
    pub(crate) open: AtomicBool,
    /// Deferred acks and the thread that sends them.
    pub(crate) acks: crate::acks::AckFlusher,
    /// A visibility-timeout sweep is running (on its own thread, off the Hub's).
    pub(crate) sweeping: AtomicBool,
    next_channel: AtomicU64,
    /// Names this connection's in-flight hash, unique per connection.
    pub(crate) session: String,
    /// The pipelined async connection of the async API's publishes and acks, made on first use.
    pub(crate) aio: crate::wire::AsyncLink,
}

impl Shared {
    pub(crate) fn exchange_kind(&self, exchange: &str) -> ExchangeKind {
        lock(&self.exchanges).get(exchange).copied().unwrap_or(ExchangeKind::Direct)
    }

    pub(crate) fn channels(&self) -> Vec<Arc<RedisChannel>> {
        lock(&self.channels).clone()
    }

    /// The in-flight hash of this connection's consumer requests.
    pub(crate) fn inflight_key(&self) -> String {
        format!("{}_kombu_rs.inflight.{}", self.opts.global_keyprefix, self.session)
    }
}

/// An open connection to Redis.
pub struct RedisConnection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection").field("address", &self.shared.dialer.address()).finish()
    }
}

impl RedisConnection {
    /// Connects (and checks the server answers) with these options.
    pub fn open(opts: RedisOptions) -> Result<RedisConnection> {
        let dialer = Arc::new(Dialer::new(&opts)?);
        let pool = Pool::new(&opts, dialer.clone());
        pool.run("PING", |c| redis::cmd("PING").query::<String>(c))?;
        let conn = RedisConnection {
            shared: Arc::new(Shared {
                opts,
                dialer,
                pool,
                channels: Mutex::new(Vec::new()),
                exchanges: Mutex::new(HashMap::new()),
                queues: Mutex::new(HashSet::new()),
                fanout: Mutex::new(HashMap::new()),
                waker: Arc::default(),
                open: AtomicBool::new(true),
                sweeping: AtomicBool::new(false),
                acks: Default::default(),
                next_channel: AtomicU64::new(1),
                session: uuid::Uuid::new_v4().to_string(),
                aio: crate::wire::AsyncLink::default(),
            }),
        };
        crate::restore::recover_parked(&conn.shared);
        Ok(conn)
    }

    /// The options in force.
    pub fn options(&self) -> &RedisOptions {
        &self.shared.opts
    }
}

impl BrokerConnection for RedisConnection {
    fn channel(&self) -> Result<Arc<dyn Channel>> {
        if !self.shared.open.load(Ordering::Acquire) {
            return Err(Error::state("redis connection is closed"));
        }
        let id = self.shared.next_channel.fetch_add(1, Ordering::Relaxed);
        let ch = RedisChannel::new(id, self.shared.clone());
        lock(&self.shared.channels).push(ch.clone());
        Ok(ch)
    }

    fn poller(&self) -> Result<Box<dyn Poller>> {
        if !self.shared.open.load(Ordering::Acquire) {
            return Err(Error::state("redis connection is closed"));
        }
        Ok(Box::new(RedisPoller::new(self.shared.clone())))
    }

    fn is_open(&self) -> bool {
        self.shared.open.load(Ordering::Acquire)
    }

    fn close(&self) -> Result<()> {
        // What the async API published and did not see answered reaches the server first.
        let mut first_err = self.shared.aio.settle_blocking(&self.shared).err();
        // Deferred acks first: a channel's close puts back what is still unacknowledged.
        self.shared.acks.close(&self.shared);
        for ch in self.shared.channels() {
            if let Err(e) = ch.close() {
                first_err.get_or_insert(e);
            }
        }
        self.shared.open.store(false, Ordering::Release);
        lock(&self.shared.channels).clear();
        self.shared.waker.wake();
        self.shared.pool.clear();
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for RedisConnection {
    fn drop(&mut self) {
        if self.shared.open.load(Ordering::Acquire) {
            if let Err(e) = BrokerConnection::close(self) {
                tracing::debug!("closing redis connection: {e:#}");
            }
        }
    }
}
