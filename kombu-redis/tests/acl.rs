//! Redis ACL users (`redis://user:password@host`) on a redis-server of the test's own: an ACL user publishes
//! and consumes (command and consumer sockets alike authenticate with `AUTH user password`); a wrong
//! password and a user without the rights kombu needs get clear `AccessRefused` errors.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::PrivateRedis;
use kombu_core::{Connection, Consumer, ErrorKind, Producer, Queue, RetryPolicy};

fn acl(server: &PrivateRedis, rule: &[&str]) {
    let mut c = redis::Client::open(server.url().as_str()).unwrap().get_connection().unwrap();
    redis::cmd("ACL").arg("SETUSER").arg(rule).query::<()>(&mut c).unwrap();
}

#[test]
fn an_acl_user_publishes_and_consumes_and_bad_credentials_are_refused() {
    let server = PrivateRedis::start();
    acl(&server, &["app", "on", ">s3cret", "~*", "&*", "+@all"]);
    acl(&server, &["reader", "on", ">pw", "~*", "-@all", "+get"]);
    let url = |user: &str, pass: &str| format!("redis://{user}:{pass}@127.0.0.1:{}/0", server.port);

    let conn = Connection::open(&url("app", "s3cret")).unwrap();
    let q = Queue::new("acl.q");
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let _sub = Consumer::new(&conn, [q.clone()])
        .callback(move |body: String, m| {
            g.lock().unwrap().push(body);
            m.ack().unwrap();
        })
        .consume()
        .unwrap();
    Producer::new(&conn).unwrap().publish("as app").routing_key("acl.q").declare(&q).send().unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().is_empty() {
        assert!(Instant::now() < end, "the ACL user's consumer got nothing");
        let _ = conn.drain_events(Some(Duration::from_millis(100)));
    }
    assert_eq!(*got.lock().unwrap(), ["as app"]);

    let wrong = Connection::builder(&url("app", "nope")).retry(RetryPolicy::none()).open().unwrap();
    let e = wrong.connect().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AccessRefused, "{e:#}");
    let weak = Connection::builder(&url("reader", "pw")).retry(RetryPolicy::none()).open().unwrap();
    let e = weak.channel().and_then(|ch| ch.declare(&Queue::new("acl.q2")).map(drop)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AccessRefused, "{e:#}");
    assert!(format!("{e:#}").contains("no permissions"), "{e:#}");
}
