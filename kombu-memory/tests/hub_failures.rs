//! One bad message never stops a Hub: it is dead-lettered, and the other connections' consumers and the
//! timers go on.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kombu_core::{Connection, Consumer, Hub, Message, PoisonPolicy, Queue};

kombu_core::register_transport!(kombu_memory::DESCRIPTOR);

#[test]
fn an_undecodable_message_with_no_error_handler_stops_nothing() {
    let (a, b) =
        (Connection::open("memory://hub-failures-a").unwrap(), Connection::open("memory://hub-failures-b").unwrap());
    let (qa, qb) = (Queue::new("qa"), Queue::new("qb"));
    let mut hub = Hub::new().unwrap();
    a.register_with_event_loop(&mut hub).unwrap();
    b.register_with_event_loop(&mut hub).unwrap();
    let errors = Rc::new(Cell::new(0));
    let e = errors.clone();
    hub.on_error(move |_| e.set(e.get() + 1));
    let good_a: Arc<Mutex<Vec<i64>>> = Arc::default();
    let got_b: Arc<Mutex<usize>> = Arc::default();
    let (ga, gb) = (good_a.clone(), got_b.clone());
    let ca = Consumer::new(&a, [qa.clone()]).callback(move |v: serde_json::Value, m| {
        ga.lock().unwrap().push(v["n"].as_i64().unwrap_or(-1));
        m.ack().unwrap();
    });
    let _sub_a = ca.consume().unwrap();
    let cb = Consumer::new(&b, [qb.clone()]).on_message(move |m| {
        *gb.lock().unwrap() += 1;
        m.ack().unwrap();
    });
    let _sub_b = cb.consume().unwrap();
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    hub.call_repeatedly(Duration::from_millis(5), move || t.set(t.get() + 1));

    let json = |b: String| Message::new(b).content_type("application/json").content_encoding("utf-8");
    let (cha, chb) = (a.channel().unwrap(), b.channel().unwrap());
    for body in [r#"{"n": 1}"#, r#"{"n": "#, r#"{"n": 3}"#] {
        cha.publish(json(body.to_owned()), "", "qa", &Default::default()).unwrap();
    }
    for i in 0..50 {
        chb.publish(json(format!(r#"{{"i": {i}}}"#)), "", "qb", &Default::default()).unwrap();
    }
    // run_for returns Ok: the bad message is no error of the loop.
    hub.run_for(Duration::from_millis(300)).unwrap();
    assert_eq!(*good_a.lock().unwrap(), vec![1, 3], "A's consumer went on after the bad message");
    assert_eq!(*got_b.lock().unwrap(), 50, "B's consumer was not stopped by A's bad message");
    assert!(ticks.get() >= 10, "the timer kept its schedule ({} ticks)", ticks.get());
    assert_eq!(errors.get(), 0, "a dead-lettered message is not an error of the loop");
    let dlq = PoisonPolicy::default().dead_letter_queue("qa");
    let dead = cha.get(&dlq, false).unwrap().expect("the undecodable message is in the dead-letter queue");
    assert_eq!(&dead.body[..], br#"{"n": "#);
    assert!(dead.headers["x-kombu-dead-letter-reason"].as_str().unwrap().contains("serialization"));
    dead.ack().unwrap();
}
