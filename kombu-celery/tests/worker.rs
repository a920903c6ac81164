//! A real Celery 5 worker (`--pool=solo`, `tests/celery_app.py`) runs tasks that kombu-celery sends, on
//! Redis and RabbitMQ, and the results come back through Celery's Redis result backend and `rpc://`;
//! tasks sent by Celery's own `send_task` are read by the parser.

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::{app_dir, unique, Worker};

use kombu_celery::{Protocol, RedisBackend, RpcBackend, State, Task, TaskMessage};
use kombu_core::{Connection, Producer};
use serde_json::{json, Value};

kombu_core::register_transport!(kombu_redis::DESCRIPTOR);
kombu_core::register_transport!(kombu_amqp::DESCRIPTOR);

const REDIS: &str = "redis://127.0.0.1:6379/0";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672//";
const WAIT: Duration = Duration::from_secs(30);

fn open(url: &str) -> Connection {
    Connection::open(url).unwrap()
}

/// Sends the same tasks through `send` and waits through `wait`: add, kwargs and options, countdown,
/// expiry, failure.
fn exercise(
    worker: &Worker,
    producer: &Producer,
    send: impl Fn(Task) -> Task,
    wait: impl Fn(&str) -> kombu_core::Result<kombu_celery::TaskResult>,
) {
    let task = |name: &str| send(Task::new(name).queue(&worker.queue));

    let sent = task("kombu_rs.add").args((2, 3)).publish(producer).unwrap();
    assert_eq!(wait(&sent.id).unwrap().into_value().unwrap(), 5);

    let started = Instant::now();
    let sent = task("kombu_rs.echo")
        .args(("a", 1))
        .kwargs(json!({"k": [true, null]}))
        .countdown(Duration::from_secs(2))
        .expires(Duration::from_secs(120))
        .priority(3)
        .retries(2)
        .root_id("the-root")
        .parent_id("the-parent")
        .publish(producer)
        .unwrap();
    let echoed = wait(&sent.id).unwrap().into_value().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1900), "ran before its countdown: {:?}", started.elapsed());
    assert_eq!(echoed["args"], json!(["a", 1]));
    assert_eq!(echoed["kwargs"], json!({"k": [true, null]}));
    assert_eq!(echoed["retries"], 2);
    assert_eq!(echoed["id"], sent.id.as_str());
    assert_eq!(echoed["root_id"], "the-root");
    assert_eq!(echoed["parent_id"], "the-parent");
    assert_eq!(echoed["priority"], 3);
    assert!(echoed["eta"].as_str().is_some_and(|e| e.ends_with("+00:00")), "{echoed}");
    assert!(echoed["expires"].as_str().is_some(), "{echoed}");

    let sent = task("kombu_rs.add")
        .args((1, 1))
        .expires_at(SystemTime::now() - Duration::from_secs(60))
        .publish(producer)
        .unwrap();
    let revoked = wait(&sent.id).unwrap();
    assert_eq!(revoked.state, State::Revoked, "an expired task is revoked, not run: {revoked:?}");

    let sent = task("kombu_rs.fail").args(["told to"]).publish(producer).unwrap();
    let failure = wait(&sent.id).unwrap().into_value().unwrap_err();
    assert_eq!(failure.exc_type.as_deref(), Some("ValueError"));
    assert_eq!(failure.exc_message, json!(["told to"]));
    assert!(failure.traceback.unwrap_or_default().contains("ValueError"));
}

#[test]
fn a_celery_worker_on_redis_runs_our_tasks_and_the_redis_backend_has_the_results() {
    let worker = Worker::start(REDIS, REDIS);
    let conn = open(REDIS);
    let producer = Producer::new(&conn).unwrap();
    let results = RedisBackend::open(REDIS).unwrap();
    exercise(&worker, &producer, |t| t, |id| results.wait(id, WAIT));
    let e = results.wait("no-such-task", Duration::from_millis(50)).unwrap_err();
    assert_eq!(e.kind(), kombu_core::ErrorKind::Timeout);
}

#[test]
fn a_celery_worker_on_rabbitmq_replies_through_rpc() {
    let worker = Worker::start(AMQP, "rpc://");
    let conn = open(AMQP);
    let producer = Producer::new(&conn).unwrap();
    let results = RpcBackend::new(&conn).unwrap();
    exercise(&worker, &producer, |t| t.reply_to(&results), |id| results.wait(id, WAIT));

    // Results of other tasks that arrive while waiting are kept for their own wait.
    let first =
        Task::new("kombu_rs.add").queue(&worker.queue).args((1, 2)).reply_to(&results).publish(&producer).unwrap();
    let second =
        Task::new("kombu_rs.add").queue(&worker.queue).args((3, 4)).reply_to(&results).publish(&producer).unwrap();
    assert_eq!(results.wait(&second.id, WAIT).unwrap().into_value().unwrap(), 7);
    assert_eq!(results.wait(&first.id, WAIT).unwrap().into_value().unwrap(), 3);
}

#[test]
fn what_celerys_send_task_publishes_is_parsed() {
    for url in [REDIS, AMQP] {
        let queue = unique("sent");
        let spec = json!({"name": "kombu_rs.add", "args": [1, 2], "kwargs": {"z": 3}, "queue": queue,
                          "countdown": 30, "expires": 60, "priority": 4});
        let out = Command::new("python3")
            .args(["celery_app.py", "send_task", &spec.to_string()])
            .current_dir(app_dir())
            .env("KOMBU_RS_BROKER", url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let conn = open(url);
        let ch = conn.channel().unwrap();
        let m = ch.get(&queue, false).unwrap().expect("the task message");
        let t = TaskMessage::from_message(&m).unwrap();
        assert_eq!(t.protocol, Protocol::V2);
        assert_eq!((t.task.as_str(), t.id.as_str()), ("kombu_rs.add", id.as_str()));
        assert_eq!(t.args, vec![Value::from(1), Value::from(2)]);
        assert_eq!(t.kwargs["z"], 3);
        assert!(t.eta.is_some() && t.expires.is_some(), "{t:?}");
        assert_eq!(t.root_id.as_deref(), Some(id.as_str()));
        assert!(t.origin.is_some_and(|o| o.starts_with("gen")));
        assert_eq!(m.properties.priority, Some(4));
        m.ack().unwrap();
        ch.delete_queue(&queue, false, false).unwrap();
    }
}
