//! SimpleQueue on the memory backend: put, get (blocking with timeout), get_nowait, qsize, clear, and
//! unacknowledged messages coming back when it closes.

use std::time::{Duration, Instant};

use kombu_core::{Connection, ErrorKind, SimpleQueue};

kombu_core::register_transport!(kombu_memory::DESCRIPTOR);

fn open(vhost: &str) -> Connection {
    Connection::open(&format!("memory://{vhost}")).unwrap()
}

#[test]
fn put_get_qsize_clear() {
    let conn = open("simple-1");
    let mut q = SimpleQueue::new(&conn, "simple").unwrap();
    q.put(&serde_json::json!({"n": 1})).unwrap();
    q.put("two").unwrap();
    q.put_bytes(vec![0u8, 1, 2]).unwrap();
    assert_eq!(q.qsize().unwrap(), 3);
    let first = q.get(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(first.decode::<serde_json::Value>().unwrap()["n"], 1);
    first.ack().unwrap();
    let second = q.get_nowait().unwrap().expect("second message");
    assert_eq!(second.decode::<String>().unwrap(), "two");
    second.ack().unwrap();
    q.put("four").unwrap();
    // The third message is already fetched (buffered, unacknowledged); only "four" is ready.
    assert_eq!(q.clear().unwrap(), 1);
    assert_eq!(q.qsize().unwrap(), 0);
}

#[test]
fn get_times_out_then_sees_a_late_message() {
    let conn = open("simple-2");
    let mut q = SimpleQueue::new(&conn, "late").unwrap();
    let start = Instant::now();
    let err = q.get(Some(Duration::from_millis(150))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert!(q.get_nowait().unwrap().is_none());
    let t = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(100));
        let other = Connection::open("memory://simple-2").unwrap();
        SimpleQueue::new(&other, "late").unwrap().put("hello").unwrap();
    });
    let m = q.get(Some(Duration::from_secs(5))).unwrap();
    t.join().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "hello");
    m.ack().unwrap();
}

#[test]
fn unacked_messages_return_when_closed() {
    let conn = open("simple-3");
    let mut q = SimpleQueue::new(&conn, "back").unwrap();
    q.put("a").unwrap();
    q.put("b").unwrap();
    let a = q.get(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(a.decode::<String>().unwrap(), "a");
    drop(a);
    q.close().unwrap();
    let mut again = SimpleQueue::new(&conn, "back").unwrap();
    assert_eq!(again.qsize().unwrap(), 2);
    let first = again.get(Some(Duration::from_secs(1))).unwrap();
    assert!(first.delivery_info.redelivered);
    assert_eq!(first.decode::<String>().unwrap(), "a");
}
