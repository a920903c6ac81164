//! One Hub drives a memory consumer, a Redis consumer and an AMQP consumer together, with a timer
//! firing while messages flow (against the real Redis and RabbitMQ).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kombu::{Connection, Consumer, Hub, Producer, Queue};

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("one_hub.{what}.{}.{nanos}", std::process::id())
}

#[test]
fn one_hub_drives_memory_redis_and_amqp() {
    let urls = ["memory://one-hub", "redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1:5672//"];
    let mut hub = Hub::new().unwrap();
    let counts: Arc<Mutex<[usize; 3]>> = Arc::default();
    let mut keep = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let conn = Connection::open(url).unwrap();
        conn.register_with_event_loop(&mut hub).unwrap();
        let queue = Queue::new(unique("q")).durable(false).auto_delete(i == 2);
        let c = counts.clone();
        let consumer = Consumer::new(&conn, [queue.clone()]).on_message(move |m| {
            assert_eq!(&m.body[..], b"ping");
            c.lock().unwrap()[i] += 1;
            m.ack().unwrap();
        });
        let subscription = consumer.consume().unwrap();
        let producer = Producer::new(&conn).unwrap().routing_key(queue.name.clone());
        keep.push((conn, subscription, producer, queue));
    }
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    hub.call_repeatedly(Duration::from_millis(25), move || t.set(t.get() + 1));
    let start = Instant::now();
    for round in 0..20 {
        for (_, _, producer, _) in &keep {
            producer.publish_bytes("ping").send().unwrap();
        }
        if round % 5 == 0 {
            hub.run_for(Duration::from_millis(25)).unwrap();
        }
    }
    while *counts.lock().unwrap() != [20, 20, 20] && start.elapsed() < Duration::from_secs(10) {
        hub.run_for(Duration::from_millis(25)).unwrap();
    }
    hub.run_for(Duration::from_millis(100)).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(*counts.lock().unwrap(), [20, 20, 20], "deliveries per backend (memory, redis, amqp)");
    let expected = (elapsed.as_millis() / 25) as u32;
    assert!(
        ticks.get() >= expected / 2 && ticks.get() <= expected + 2,
        "timer fired {} times in {elapsed:?}, every 25 ms expected",
        ticks.get()
    );
    for (conn, subscription, _, queue) in keep {
        subscription.cancel().unwrap();
        let _ = conn.default_channel().and_then(|ch| ch.delete_queue(&queue.name, false, false));
    }
}
