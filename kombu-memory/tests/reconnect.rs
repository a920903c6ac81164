//! A lost connection is recovered: the consumer is set up again on a new connection and goes on, with
//! nothing lost, under `drain_events` and under a Hub. The loss is simulated by a transport wrapping the
//! memory broker whose connections can be killed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kombu_core::hub::{Event, Sources, WakeHandle};
use kombu_core::transport::{BrokerConnection, Capabilities, Channel, Delivery, Poller, Transport};
use kombu_core::{
    BrokerUrl, Connection, Consumer, Error, Hub, Message, Producer, Queue, Registry, Result, Subscription,
};
use kombu_memory::MemoryTransport;

kombu_core::register_transport!(kombu_memory::DESCRIPTOR);

/// Connections to the memory broker that die when `kill` is called.
/// A live connection: the host of its URL (each test uses its own), its kill switch and the waker of its
/// poller.
type Alive = (String, Arc<AtomicBool>, Arc<Mutex<Option<WakeHandle>>>);

#[derive(Default)]
struct Flaky {
    alive: Mutex<Vec<Alive>>,
    connects: AtomicU64,
}

impl Flaky {
    /// Kills the live connections to `host` only: the tests of this file run in parallel and share
    /// the transport, and one test's kill must not reach the other's connections.
    fn kill_all(&self, host: &str) {
        let mut alive = self.alive.lock().unwrap();
        let (killed, kept): (Vec<Alive>, Vec<Alive>) = alive.drain(..).partition(|(h, _, _)| h == host);
        *alive = kept;
        for (_, dead, wake) in killed {
            dead.store(true, Ordering::Release);
            if let Some(w) = wake.lock().unwrap().as_ref() {
                w.wake();
            }
        }
    }
}

struct FlakyTransport(Arc<Flaky>);

impl Transport for FlakyTransport {
    fn name(&self) -> &str {
        "flaky"
    }
    fn aliases(&self) -> Vec<String> {
        vec!["flaky".into()]
    }
    fn default_port(&self) -> Option<u16> {
        None
    }
    fn capabilities(&self) -> Capabilities {
        MemoryTransport.capabilities()
    }
    fn connect(&self, url: &BrokerUrl) -> Result<Box<dyn BrokerConnection>> {
        let mut inner_url = url.clone();
        inner_url.scheme = "memory".into();
        let dead = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Mutex::new(None));
        let host = url.hostname.clone().unwrap_or_default();
        self.0.alive.lock().unwrap().push((host, dead.clone(), wake.clone()));
        self.0.connects.fetch_add(1, Ordering::AcqRel);
        Ok(Box::new(FlakyConnection { inner: MemoryTransport.connect(&inner_url)?, dead, wake }))
    }
}

struct FlakyConnection {
    inner: Box<dyn BrokerConnection>,
    dead: Arc<AtomicBool>,
    wake: Arc<Mutex<Option<WakeHandle>>>,
}

impl BrokerConnection for FlakyConnection {
    fn channel(&self) -> Result<Arc<dyn Channel>> {
        if self.dead.load(Ordering::Acquire) {
            return Err(Error::connection("killed"));
        }
        self.inner.channel()
    }
    fn poller(&self) -> Result<Box<dyn Poller>> {
        Ok(Box::new(FlakyPoller { inner: self.inner.poller()?, dead: self.dead.clone(), wake: self.wake.clone() }))
    }
    fn is_open(&self) -> bool {
        !self.dead.load(Ordering::Acquire) && self.inner.is_open()
    }
    fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

struct FlakyPoller {
    inner: Box<dyn Poller>,
    dead: Arc<AtomicBool>,
    wake: Arc<Mutex<Option<WakeHandle>>>,
}

impl Poller for FlakyPoller {
    fn register(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        *self.wake.lock().unwrap() = Some(sources.waker());
        self.inner.register(sources)
    }
    fn ready(&mut self, event: &Event, sources: &mut Sources<'_>, out: &mut Vec<Delivery>) -> Result<()> {
        if self.dead.load(Ordering::Acquire) {
            return Err(Error::connection("connection reset by peer (killed by the test)"));
        }
        self.inner.ready(event, sources, out)
    }
    fn deregister(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        self.inner.deregister(sources)
    }
}

fn flaky() -> Arc<Flaky> {
    static FLAKY: std::sync::OnceLock<Arc<Flaky>> = std::sync::OnceLock::new();
    FLAKY
        .get_or_init(|| {
            let f = Arc::new(Flaky::default());
            Registry::global().register(Arc::new(FlakyTransport(f.clone()))).expect("register flaky");
            f
        })
        .clone()
}

fn publish(vhost: &str, queue: &str, body: &str) {
    let conn = Connection::open(&format!("memory://{vhost}")).unwrap();
    let ch = conn.channel().unwrap();
    ch.publish(Message::new(body.to_owned()), "", queue, &Default::default()).unwrap();
}

static HOLDS: AtomicU64 = AtomicU64::new(0);

fn recorder(conn: &Connection, queue: &Queue) -> (Subscription, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let c = Consumer::new(conn, [queue.clone()]).on_message(move |m| {
        let body = String::from_utf8_lossy(&m.body).into_owned();
        if body == "hold" {
            // Received, never acked: must come back after the connection is lost.
            HOLDS.fetch_add(1, Ordering::AcqRel);
            return;
        }
        s.lock().unwrap().push(body);
        m.ack().unwrap();
    });
    (c.consume().unwrap(), seen)
}

#[test]
fn drain_events_reconnects_and_restarts_consumers() {
    let f = flaky();
    let conn = Connection::open("flaky://reconnect-drain").unwrap();
    let queue = Queue::new("rq").durable(false);
    let (_c, seen) = recorder(&conn, &queue);
    let producer = Producer::new(&conn).unwrap().routing_key("rq");
    producer.publish_bytes("before").send().unwrap();
    publish("reconnect-drain", "rq", "hold");
    let end = Instant::now() + Duration::from_secs(5);
    while (seen.lock().unwrap().is_empty() || HOLDS.load(Ordering::Acquire) < 1) && Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(50)));
    }
    let connects = f.connects.load(Ordering::Acquire);
    f.kill_all("reconnect-drain");
    // The loss is noticed and repaired inside drain_events: no error reaches the caller.
    conn.drain_events(Some(Duration::from_secs(5))).unwrap();
    // A producer made before the loss publishes on the new connection.
    producer.publish_bytes("after").send().unwrap();
    // So does a forward, which sends through the same path.
    producer.forward(&Message::new("forwarded")).send().unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while (seen.lock().unwrap().len() < 3 || HOLDS.load(Ordering::Acquire) < 2) && Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(50)));
    }
    assert_eq!(HOLDS.load(Ordering::Acquire), 2, "the unacked message was not redelivered after the loss");
    assert!(f.connects.load(Ordering::Acquire) > connects, "no new connection was made");
    assert_eq!(*seen.lock().unwrap(), vec!["before", "after", "forwarded"]);
}

#[test]
fn hub_reconnects_and_keeps_running() {
    let f = flaky();
    let conn = Connection::open("flaky://reconnect-hub").unwrap();
    let mut hub = Hub::new().unwrap();
    conn.register_with_event_loop(&mut hub).unwrap();
    let queue = Queue::new("hq").durable(false);
    let (_c, seen) = recorder(&conn, &queue);
    publish("reconnect-hub", "hq", "one");
    let end = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().is_empty() && Instant::now() < end {
        hub.run_for(Duration::from_millis(50)).unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), vec!["one"]);
    f.kill_all("reconnect-hub");
    hub.run_for(Duration::from_millis(200)).unwrap();
    publish("reconnect-hub", "hq", "two");
    let end = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < 2 && Instant::now() < end {
        hub.run_for(Duration::from_millis(50)).unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), vec!["one", "two"]);
}
