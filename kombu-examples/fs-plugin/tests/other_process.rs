//! Messages written by another process reach a consumer by polling: here a message file is dropped into
//! a queue directory by hand (Kombu's JSON envelope, renamed into `ready/` as any writer must), so no
//! wake-up of this process announces it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kombu_core::{Connection, Consumer, ErrorKind, Message, Queue};

#[test]
fn a_file_written_by_another_process_is_delivered_by_polling() {
    common::load_global();
    let dir = common::fresh_dir("outside");
    let conn = Connection::open(&format!("filesystem://localhost{}?polling_interval=0.05", dir.display())).unwrap();
    let queue = Queue::new("outside");
    conn.channel().unwrap().declare(&queue).unwrap();
    let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [queue]).on_message(move |m: Message| {
        s.lock().unwrap().push((String::from_utf8_lossy(&m.body).into_owned(), m.delivery_info.redelivered));
        m.ack().unwrap();
    });
    let subscription = consumer.consume().unwrap();
    let err = conn.drain_events(Some(Duration::from_millis(150))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);

    let envelope = r#"{"body": "ZnJvbSBvdXRzaWRl", "content-type": "text/plain", "content-encoding": "utf-8",
        "headers": {}, "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": "outside"}}}"#;
    let staged = dir.join("tmp").join("outside.tmp");
    std::fs::write(&staged, envelope).unwrap();
    let name = format!("000-{:020}-{:010}-{:020}-r.msg", 1, 4_000_000, 0);
    std::fs::rename(&staged, dir.join("queues/outside/ready").join(name)).unwrap();

    let end = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().is_empty() && Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(50)));
    }
    assert_eq!(*seen.lock().unwrap(), [("from outside".to_owned(), true)]);
    subscription.cancel().unwrap();
    conn.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
