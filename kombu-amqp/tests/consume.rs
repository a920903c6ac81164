//! Consumers against a real RabbitMQ: deliveries bridged into `drain_events` and the Hub, acks and
//! requeues, prefetch, cancel, fairness, and a channel the broker closes under a consumer.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{connect, unique};
use kombu_core::{Consumer, ErrorKind, Hub, Message, Producer, PublishOptions, Queue};

fn temp_queue(name: &str) -> Queue {
    Queue::new(name).durable(false).expires(Duration::from_secs(120))
}

fn confirmed() -> PublishOptions {
    let mut o = PublishOptions::default();
    o.confirm_timeout = Some(Duration::from_secs(10));
    o
}

type Inbox = Arc<Mutex<Vec<Message>>>;

fn collecting(conn: &kombu_core::Connection, queue: &Queue, ack: bool) -> (Consumer, Inbox) {
    let inbox: Inbox = Arc::default();
    let sink = inbox.clone();
    let consumer = Consumer::new(conn, [queue.clone()]).on_message(move |m| {
        if ack {
            m.ack().expect("ack");
        }
        sink.lock().expect("inbox").push(m);
    });
    (consumer, inbox)
}

fn drain_until(conn: &kombu_core::Connection, inbox: &Inbox, n: usize, within: Duration) {
    let count = || inbox.lock().expect("inbox").len();
    common::drain_until(conn, within, || format!("only {} of {n} messages arrived", count()), || count() >= n);
}

#[test]
fn drain_events_delivers_in_order_with_redelivered_flag_after_requeue() {
    let conn = connect();
    let q = temp_queue(&unique("q"));
    let producer = Producer::new(&conn).unwrap();
    for i in 0..50 {
        producer.publish(&i).routing_key(&q.name).declare(&q).send().unwrap();
    }
    let requeued = Arc::new(Mutex::new(false));
    let flag = requeued.clone();
    let inbox: Inbox = Arc::default();
    let sink = inbox.clone();
    let consumer = Consumer::new(&conn, [q.clone()]).prefetch(10).on_message(move |m| {
        let mut done = flag.lock().expect("flag");
        if !*done {
            *done = true;
            m.requeue().expect("requeue");
            return;
        }
        m.ack().expect("ack");
        sink.lock().expect("inbox").push(m);
    });
    let subscription = consumer.consume().unwrap();
    drain_until(&conn, &inbox, 50, Duration::from_secs(10));
    let got = inbox.lock().unwrap();
    let values: Vec<i64> = got.iter().map(|m| m.decode::<i64>().unwrap()).collect();
    let redelivered: Vec<i64> =
        got.iter().filter(|m| m.delivery_info.redelivered).map(|m| m.decode().unwrap()).collect();
    assert_eq!(redelivered, [0]);
    let mut sorted = values.clone();
    sorted.sort();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    // Apart from the requeued one, FIFO.
    let rest: Vec<i64> = values.iter().copied().filter(|v| *v != 0).collect();
    assert_eq!(rest, (1..50).collect::<Vec<_>>());
    assert!(got.iter().all(|m| m.delivery_info.consumer_tag.as_deref() == Some(&*subscription.consumer_tags()[0])));
    drop(got);
    subscription.cancel().unwrap();
    conn.channel().unwrap().delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn drain_events_times_out_when_nothing_arrives() {
    let conn = connect();
    let q = temp_queue(&unique("q"));
    let (consumer, _inbox) = collecting(&conn, &q, true);
    let subscription = consumer.consume().unwrap();
    let started = Instant::now();
    let err = conn.drain_events(Some(Duration::from_millis(300))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(300));
    subscription.cancel().unwrap();
    conn.channel().unwrap().delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn prefetch_bounds_unacked_deliveries_and_an_ack_lets_the_next_in() {
    let conn = connect();
    let q = temp_queue(&unique("q"));
    let ch = conn.channel().unwrap();
    ch.declare_queue(&q, false).unwrap();
    for i in 0..5 {
        ch.publish(Message::new(format!("{i}")), "", &q.name, &confirmed()).unwrap();
    }
    let (consumer, inbox) = collecting(&conn, &q, false);
    let consumer = consumer.prefetch(2);
    let subscription = consumer.consume().unwrap();
    drain_until(&conn, &inbox, 2, Duration::from_secs(5));
    let _ = conn.drain_events(Some(Duration::from_millis(300)));
    assert_eq!(inbox.lock().unwrap().len(), 2);
    let first = inbox.lock().unwrap()[0].clone();
    first.ack().unwrap();
    drain_until(&conn, &inbox, 3, Duration::from_secs(5));
    let _ = conn.drain_events(Some(Duration::from_millis(200)));
    assert_eq!(inbox.lock().unwrap().len(), 3);
    subscription.cancel().unwrap();
    drop(inbox);
    let other = conn.channel().unwrap();
    other.delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn cancel_stops_delivery_and_messages_stay_in_the_queue() {
    let conn = connect();
    let q = temp_queue(&unique("q"));
    let ch = conn.channel().unwrap();
    ch.declare_queue(&q, false).unwrap();
    let (consumer, inbox) = collecting(&conn, &q, true);
    let subscription = consumer.consume().unwrap();
    ch.publish(Message::new("one"), "", &q.name, &confirmed()).unwrap();
    drain_until(&conn, &inbox, 1, Duration::from_secs(5));
    subscription.cancel().unwrap();
    for i in 0..3 {
        ch.publish(Message::new(format!("{i}")), "", &q.name, &confirmed()).unwrap();
    }
    let _ = conn.drain_events(Some(Duration::from_millis(200)));
    assert_eq!(inbox.lock().unwrap().len(), 1);
    assert_eq!(ch.declare_queue(&q, true).unwrap().message_count, 3);
    ch.delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn two_consumers_on_one_queue_never_get_the_same_message_and_several_queues_are_served_fairly() {
    let conn = connect();
    let shared = temp_queue(&unique("shared"));
    let other = temp_queue(&unique("other"));
    let ch = conn.channel().unwrap();
    ch.declare_queue(&shared, false).unwrap();
    ch.declare_queue(&other, false).unwrap();
    for i in 0..400 {
        ch.publish(Message::new(format!("s{i}")), "", &shared.name, &PublishOptions::default()).unwrap();
        ch.publish(Message::new(format!("o{i}")), "", &other.name, &PublishOptions::default()).unwrap();
    }
    ch.declare_queue(&shared, true).unwrap();
    let second = conn.channel().unwrap();
    let (c1, inbox1) = collecting(&conn, &shared, true);
    let (c2, inbox2) = collecting(&conn, &shared, true);
    let c1 = c1.prefetch(50);
    let c2 = c2.channel(second).prefetch(50);
    let sub1 = c1.consume().unwrap();
    let sub2 = c2.consume().unwrap();
    let all: Inbox = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while inbox1.lock().unwrap().len() + inbox2.lock().unwrap().len() < 400 {
        assert!(Instant::now() < deadline, "not all shared messages arrived");
        let _ = conn.drain_events(Some(Duration::from_millis(200)));
    }
    for m in inbox1.lock().unwrap().iter().chain(inbox2.lock().unwrap().iter()) {
        all.lock().unwrap().push(m.clone());
    }
    let mut bodies: Vec<Vec<u8>> = all.lock().unwrap().iter().map(|m| m.body.to_vec()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 400, "a message was delivered twice or lost");
    sub1.cancel().unwrap();
    sub2.cancel().unwrap();

    // One consumer on two queues: in the first 100 deliveries both queues show up. The prefetch window is
    // small on purpose: RabbitMQ applies it per queue consumer, and a window as large as a queue would let
    // the broker push that whole queue before the second basic.consume is even registered.
    let order: Arc<Mutex<Vec<char>>> = Arc::default();
    let seen = order.clone();
    let both = Consumer::new(&conn, [shared.clone(), other.clone()]).prefetch(10).on_message(move |m| {
        m.ack().expect("ack");
        seen.lock().expect("order").push(m.body[0] as char);
    });
    for i in 0..200 {
        ch.publish(Message::new(format!("s{i}")), "", &shared.name, &PublishOptions::default()).unwrap();
    }
    ch.declare_queue(&shared, true).unwrap();
    let both_sub = both.consume().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while order.lock().unwrap().len() < 600 {
        assert!(Instant::now() < deadline, "only {} of 600 arrived", order.lock().unwrap().len());
        let _ = conn.drain_events(Some(Duration::from_millis(200)));
    }
    let first: Vec<char> = order.lock().unwrap()[..100].to_vec();
    assert!(first.contains(&'s') && first.contains(&'o'), "one queue starved the other: {first:?}");
    both_sub.cancel().unwrap();
    ch.delete_queue(&shared.name, false, false).unwrap();
    ch.delete_queue(&other.name, false, false).unwrap();
}

/// RabbitMQ finds an acked tag by a scan from the front of the channel's unacked deliveries, so a
/// consumer of many queues that handed out (and acked) them queue by queue made every ack cost the whole
/// window: the 100-queue collapse of issue 18. The deliveries of one channel come in the broker's order.
#[test]
fn a_consumer_of_many_queues_hands_out_its_deliveries_in_the_order_the_broker_sent_them() {
    let conn = connect();
    let queues: Vec<Queue> = (0..5).map(|k| temp_queue(&unique(&format!("order{k}")))).collect();
    let ch = conn.channel().expect("channel");
    for q in &queues {
        ch.declare_queue(q, false).expect("declare");
        for i in 0..60 {
            ch.publish(Message::new(format!("{i}")), "", &q.name, &PublishOptions::default()).expect("publish");
        }
    }
    ch.declare_queue(&queues[0], true).expect("flush");
    let tags: Arc<Mutex<Vec<u64>>> = Arc::default();
    let seen = tags.clone();
    let consumer = Consumer::new(&conn, queues.clone()).prefetch(100).on_message(move |m| {
        m.ack().expect("ack");
        match m.delivery_info.delivery_tag {
            kombu_core::DeliveryTag::Number(n) => seen.lock().expect("tags").push(n),
            ref other => panic!("not an AMQP delivery tag: {other}"),
        }
    });
    let subscription = consumer.consume().expect("consume");
    let count = || tags.lock().expect("tags").len();
    common::drain_until(
        &conn,
        Duration::from_secs(10),
        || format!("only {} of 300 arrived", count()),
        || count() >= 300,
    );
    let tags = tags.lock().expect("tags").clone();
    let out_of_order: Vec<(u64, u64)> = tags.windows(2).filter(|w| w[1] <= w[0]).map(|w| (w[0], w[1])).collect();
    assert!(out_of_order.is_empty(), "handed out after a later tag: {out_of_order:?} in {tags:?}");
    subscription.cancel().expect("cancel");
    for q in &queues {
        ch.delete_queue(&q.name, false, false).expect("delete");
    }
}

#[test]
fn one_hub_drives_an_amqp_consumer_while_a_timer_fires() {
    let conn = connect();
    let q = temp_queue(&unique("q"));
    let mut hub = Hub::new().unwrap();
    conn.register_with_event_loop(&mut hub).unwrap();
    let got = Arc::new(Mutex::new(0usize));
    let count = got.clone();
    let stop = hub.stopper();
    let consumer = Consumer::new(&conn, [q.clone()]).on_message(move |m| {
        m.ack().expect("ack");
        let mut n = count.lock().expect("count");
        *n += 1;
        if *n == 200 {
            stop.stop();
        }
    });
    let subscription = consumer.consume().unwrap();
    let ticks = Rc::new(RefCell::new(0u32));
    let t = ticks.clone();
    hub.call_repeatedly(Duration::from_millis(10), move || *t.borrow_mut() += 1);
    // Publish from another thread while the hub runs.
    let publisher = {
        let conn = conn.clone();
        let q = q.clone();
        std::thread::spawn(move || {
            let ch = conn.channel().expect("channel");
            for i in 0..200 {
                ch.publish(Message::new(format!("{i}")), "", &q.name, &PublishOptions::default()).expect("publish");
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
            ch.declare_queue(&q, true).expect("flush");
        })
    };
    let started = Instant::now();
    hub.run_for(Duration::from_secs(10)).unwrap();
    publisher.join().unwrap();
    assert_eq!(*got.lock().unwrap(), 200);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "the hub did not stop");
    assert!(*ticks.borrow() >= 5, "timer fired {} times in {elapsed:?}", ticks.borrow());
    subscription.cancel().unwrap();
    conn.channel().unwrap().delete_queue(&q.name, false, false).unwrap();
}

#[test]
fn deleting_a_consumed_queue_ends_the_consumer_and_the_connection_goes_on() {
    let conn = connect();
    let q = temp_queue(&unique("q"));
    let (consumer, inbox) = collecting(&conn, &q, true);
    let subscription = consumer.consume().unwrap();
    let ch = conn.channel().unwrap();
    ch.delete_queue(&q.name, false, false).unwrap();
    let _ = conn.drain_events(Some(Duration::from_millis(300)));
    assert!(inbox.lock().unwrap().is_empty());
    assert!(conn.is_connected());
    let q2 = temp_queue(&unique("q2"));
    let (c2, inbox2) = collecting(&conn, &q2, true);
    let sub2 = c2.consume().unwrap();
    ch.publish(Message::new("after"), "", &q2.name, &confirmed()).unwrap();
    drain_until(&conn, &inbox2, 1, Duration::from_secs(5));
    sub2.cancel().unwrap();
    let _ = subscription.cancel();
    ch.delete_queue(&q2.name, false, false).unwrap();
}

#[test]
fn cancel_requeues_what_arrived_but_was_not_handed_to_the_consumer() {
    let conn = connect();
    let q = temp_queue(&unique("q"));
    let ch = conn.channel().unwrap();
    ch.declare_queue(&q, false).unwrap();
    for i in 0..20 {
        ch.publish(Message::new(format!("{i}")), "", &q.name, &confirmed()).unwrap();
    }
    let (consumer, inbox) = collecting(&conn, &q, true);
    let subscription = consumer.consume().unwrap();
    // The broker pushes the messages to the client; nobody drains events, so none reaches the callback.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ch.declare_queue(&q, true).unwrap().message_count > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ch.declare_queue(&q, true).unwrap().message_count, 0, "the broker did not deliver");
    subscription.cancel().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while ch.declare_queue(&q, true).unwrap().message_count < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ch.declare_queue(&q, true).unwrap().message_count, 20);
    assert!(inbox.lock().unwrap().is_empty());
    ch.delete_queue(&q.name, false, false).unwrap();
}
