//! Request and reply on every backend: `RpcClient::call` against a server that answers with
//! `Message::reply`, replies matched by correlation id (a late reply to a timed-out call is not taken for the
//! next one), RabbitMQ's direct reply-to, and `SimpleQueue::existing` on a queue declared elsewhere.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kombu::{Connection, Consumer, ErrorKind, Queue, RpcClient, SimpleQueue};

const URLS: [&str; 3] = ["memory://rpc", "redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1:5672//"];

fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("kombu-rs.rpc-test.{what}.{}.{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A server on `queue` that doubles numbers; a request of 0 is answered only after `slow` (late).
fn serve(conn: &Connection, queue: &str, slow: Duration) -> kombu::Subscription {
    Consumer::new(conn, [Queue::new(queue)])
        .callback(move |n: u64, request| {
            if n == 0 {
                std::thread::sleep(slow);
            }
            request.reply(&(n * 2)).unwrap();
            request.ack().unwrap();
        })
        .consume()
        .unwrap()
}

#[test]
fn calls_get_their_own_replies_on_every_backend() {
    for (url, own_queue) in URLS.iter().map(|u| (*u, false)).chain([(URLS[2], true)]) {
        let conn = Connection::open(url).unwrap();
        let queue = unique("double");
        let _server = serve(&conn, &queue, Duration::from_millis(300));
        let rpc = if own_queue { RpcClient::with_reply_queue(&conn) } else { RpcClient::new(&conn) }.unwrap();
        // RabbitMQ's direct reply-to unless asked for a queue of its own; a reply queue elsewhere.
        let direct = url.starts_with("amqp") && !own_queue;
        assert_eq!(rpc.reply_to() == "amq.rabbitmq.reply-to", direct, "{url}: {}", rpc.reply_to());
        for n in [1u64, 20, 300] {
            let reply = rpc.call(rpc.producer().publish(&n).routing_key(&queue), Duration::from_secs(10)).unwrap();
            assert_eq!(reply.decode::<u64>().unwrap(), n * 2, "{url}");
        }
        // A call that times out; its late reply must not be taken as the next call's.
        let started = Instant::now();
        let e = rpc.call(rpc.producer().publish(&0u64).routing_key(&queue), Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{url}: {e}");
        assert!(started.elapsed() < Duration::from_secs(5), "{url}");
        let reply = rpc.call(rpc.producer().publish(&7u64).routing_key(&queue), Duration::from_secs(10)).unwrap();
        assert_eq!(reply.decode::<u64>().unwrap(), 14, "{url}: the late reply was taken for this call");

        let e = rpc.call(rpc.producer().publish(&1u64).routing_key(&queue), Duration::from_secs(7200)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{url}");
        conn.channel().unwrap().delete_queue(&queue, false, false).unwrap();
    }
}

#[test]
fn rabbitmqs_direct_reply_to_needs_no_reply_queue() {
    let conn = Connection::open("amqp://guest:guest@127.0.0.1:5672//").unwrap();
    let queue = unique("direct");
    let _server = serve(&conn, &queue, Duration::ZERO);
    let rpc = RpcClient::new(&conn).unwrap();
    let reply = rpc.call(rpc.producer().publish(&5u64).routing_key(&queue), Duration::from_secs(10)).unwrap();
    assert_eq!(reply.decode::<u64>().unwrap(), 10);
    // RabbitMQ names the reply-to per channel: the reply came through the pseudo-queue, no queue declared.
    assert!(reply.delivery_info.routing_key.starts_with("amq.rabbitmq.reply-to."), "{:?}", reply.delivery_info);
    conn.channel().unwrap().delete_queue(&queue, false, false).unwrap();
}

#[test]
fn a_reply_needs_a_reply_to() {
    let conn = Connection::open("memory://rpc-no-reply-to").unwrap();
    let mut q = SimpleQueue::new(&conn, "plain").unwrap();
    q.put(&1).unwrap();
    let m = q.get(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(m.reply(&2).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(m.detached().reply(&2).unwrap_err().kind(), ErrorKind::InvalidArgument);
    m.ack().unwrap();
}

#[test]
fn simple_queue_existing_declares_nothing() {
    // A transient queue with a TTL: a durable redeclaration would be refused by RabbitMQ.
    let conn = Connection::open("amqp://guest:guest@127.0.0.1:5672//").unwrap();
    let name = unique("existing");
    conn.channel().unwrap().declare(&Queue::new(&name).durable(false).message_ttl(Duration::from_secs(60))).unwrap();
    let mut q = SimpleQueue::existing(&conn, &name).unwrap();
    q.put(&"hello").unwrap();
    let m = q.get(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "hello");
    m.ack().unwrap();
    let e = SimpleQueue::existing(&conn, &unique("missing")).unwrap().get(Some(Duration::from_secs(2))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    conn.channel().unwrap().delete_queue(&name, false, false).unwrap();
}
