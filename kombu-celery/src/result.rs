//! Task results: [`TaskResult`] (Celery's result meta), and the backends that wait for one:
//! [`RpcBackend`] (`rpc://`) and [`RedisBackend`] (Celery's Redis result backend, feature `redis`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kombu_core::{Channel, Connection, Error, Queue, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The longest a wait may be asked to last (a day); longer is a mistake.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 3600);

/// How long the reply queue of an [`RpcBackend`] lives unused (Celery's `result_expires` default, a day).
const REPLY_QUEUE_EXPIRES: Duration = Duration::from_secs(24 * 3600);

/// A task's state, as Celery names them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Waiting, or unknown.
    Pending,
    /// Received by a worker.
    Received,
    /// Started (with `task_track_started`).
    Started,
    /// Done; the result is its return value.
    Success,
    /// Raised; the result describes the exception.
    Failure,
    /// To be retried.
    Retry,
    /// Revoked (or expired before it ran).
    Revoked,
    /// A custom state of the task's own.
    Other(String),
}

impl State {
    fn from_name(name: &str) -> State {
        // The inverse of `name`.
        match name {
            "PENDING" => State::Pending,
            "RECEIVED" => State::Received,
            "STARTED" => State::Started,
            "SUCCESS" => State::Success,
            "FAILURE" => State::Failure,
            "RETRY" => State::Retry,
            "REVOKED" => State::Revoked,
            other => State::Other(other.to_owned()),
        }
    }

    /// Celery's name of the state (`SUCCESS`, `FAILURE`, ...).
    pub fn name(&self) -> &str {
        match self {
            State::Pending => "PENDING",
            State::Received => "RECEIVED",
            State::Started => "STARTED",
            State::Success => "SUCCESS",
            State::Failure => "FAILURE",
            State::Retry => "RETRY",
            State::Revoked => "REVOKED",
            State::Other(name) => name,
        }
    }

    /// Whether it is final (success, failure, revoked): no other result will follow.
    pub fn is_ready(&self) -> bool {
        matches!(self, State::Success | State::Failure | State::Revoked)
    }
}

/// A task's result: Celery's result meta (`status`, `result`, `traceback`, `children`, `date_done`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskResult {
    /// The task id.
    pub task_id: String,
    /// Its state.
    pub state: State,
    /// The return value on success; on failure, the exception (`exc_type`, `exc_message`, `exc_module`).
    pub result: Value,
    /// The traceback of a failure.
    pub traceback: Option<String>,
    /// When it finished (ISO 8601).
    pub date_done: Option<String>,
    /// Other fields (`children`, `group_id`, `parent_id`, and the extended result's).
    pub extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    task_id: Option<String>,
    status: String,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    traceback: Option<String>,
    #[serde(default)]
    date_done: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl TaskResult {
    /// Parses Celery's result meta (JSON); `id` is used when the meta has no `task_id` (the Redis backend's).
    pub fn from_json(bytes: &[u8], id: Option<&str>) -> Result<TaskResult> {
        let meta: Meta =
            serde_json::from_slice(bytes).map_err(|e| Error::serialization(format!("not a Celery result: {e}")))?;
        Self::from_meta(meta, id)
    }

    fn from_meta(meta: Meta, id: Option<&str>) -> Result<TaskResult> {
        let task_id = meta
            .task_id
            .or_else(|| id.map(str::to_owned))
            .ok_or_else(|| Error::serialization("a Celery result without a task id"))?;
        Ok(TaskResult {
            task_id,
            state: State::from_name(&meta.status),
            result: meta.result,
            traceback: meta.traceback,
            date_done: meta.date_done,
            extra: meta.extra,
        })
    }

    /// The return value of a successful task, or the failure.
    pub fn into_value(self) -> std::result::Result<Value, Box<TaskFailure>> {
        match self.state {
            State::Success => Ok(self.result),
            state => Err(Box::new(TaskFailure {
                task_id: self.task_id,
                exc_type: self.result.get("exc_type").and_then(Value::as_str).map(str::to_owned),
                exc_message: self.result.get("exc_message").cloned().unwrap_or(Value::Null),
                traceback: self.traceback,
                state,
            })),
        }
    }
}

/// A task that did not succeed: what [`TaskResult::into_value`] gives for a failed or revoked task.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskFailure {
    /// The task id.
    pub task_id: String,
    /// Its state (failure, revoked, ...).
    pub state: State,
    /// The exception's type (`ValueError`), for a failure.
    pub exc_type: Option<String>,
    /// The exception's arguments.
    pub exc_message: Value,
    /// The traceback.
    pub traceback: Option<String>,
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.exc_type {
            Some(t) => write!(f, "task {} failed: {t}: {}", self.task_id, self.exc_message),
            None => write!(f, "task {} did not succeed: {:?}", self.task_id, self.state),
        }
    }
}

impl std::error::Error for TaskFailure {}

fn check_wait(timeout: Duration) -> Result<Instant> {
    if timeout > LONGEST_WAIT {
        return Err(Error::invalid(format!("a wait of {timeout:?} is longer than a day")));
    }
    Ok(Instant::now() + timeout)
}

/// Sleeps for the next step of a poll: 1 ms doubling to 50 ms, never past `deadline`. False when it passed.
fn pause(step: &mut Duration, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return false;
    }
    std::thread::sleep((*step).min(left));
    *step = (*step * 2).min(Duration::from_millis(50));
    true
}

fn timed_out(id: &str, timeout: Duration) -> Error {
    Error::timeout(format!("no result for task {id} within {timeout:?}"))
}

/// Celery's `rpc://` result backend: results come back as messages on a queue of this client's, matched to
/// their task by correlation id. Give it to [`Task::reply_to`](crate::Task::reply_to).
///
/// The queue (`kombu-rs.reply.<uuid>`, durable, auto-deleted, expiring after a day unused, as Celery's) is
/// declared by [`new`](RpcBackend::new) and deleted when the backend is dropped. Results of other tasks
/// that arrive while waiting are kept for their own `wait`. Waiting polls the queue (1 to 50 ms apart).
pub struct RpcBackend {
    channel: Arc<dyn Channel>,
    queue: String,
    arrived: Mutex<HashMap<String, TaskResult>>,
}

impl fmt::Debug for RpcBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcBackend").field("queue", &self.queue).finish_non_exhaustive()
    }
}

impl RpcBackend {
    /// Declares a reply queue on `connection`.
    pub fn new(connection: &Connection) -> Result<RpcBackend> {
        let queue = format!("kombu-rs.reply.{}", uuid::Uuid::new_v4());
        let channel = connection.channel()?;
        channel.declare(&Self::reply_queue(&queue))?;
        Ok(RpcBackend { channel, queue, arrived: Mutex::new(HashMap::new()) })
    }

    fn reply_queue(name: &str) -> Queue {
        Queue::new(name).durable(true).auto_delete(true).expires(REPLY_QUEUE_EXPIRES)
    }

    /// The reply queue's name (the tasks' `reply_to`).
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Waits for the final result of task `id` (success, failure or revoked), at most `timeout` (up to a
    /// day); intermediate states are skipped. An error of kind `Timeout` when none came in time.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<TaskResult> {
        let deadline = check_wait(timeout)?;
        let mut step = Duration::from_millis(1);
        loop {
            if let Some(r) = self.arrived.lock().unwrap_or_else(|e| e.into_inner()).remove(id) {
                return Ok(r);
            }
            match self.channel.get(&self.queue, false)? {
                Some(message) => {
                    let parsed = message.decode::<Value>().and_then(|v| {
                        serde_json::from_value::<Meta>(v).map_err(|e| Error::serialization(e.to_string()))
                    });
                    let corr = message.properties.correlation_id.clone();
                    // A reply is taken off the queue whatever it holds: it is for this client alone.
                    message.ack()?;
                    match parsed.and_then(|meta| TaskResult::from_meta(meta, corr.as_deref())) {
                        Ok(r) if !r.state.is_ready() => {}
                        Ok(r) if r.task_id == id => return Ok(r),
                        Ok(r) => {
                            self.arrived.lock().unwrap_or_else(|e| e.into_inner()).insert(r.task_id.clone(), r);
                        }
                        Err(e) => {
                            tracing::warn!("reply queue {}: dropped a message that is not a result: {e}", self.queue)
                        }
                    }
                    step = Duration::from_millis(1);
                }
                None => {
                    if !pause(&mut step, deadline) {
                        return Err(timed_out(id, timeout));
                    }
                }
            }
        }
    }
}

impl Drop for RpcBackend {
    fn drop(&mut self) {
        if let Err(e) = self.channel.delete_queue(&self.queue, false, false) {
            tracing::debug!("reply queue {}: not deleted ({e}); it expires after a day unused", self.queue);
        }
    }
}

/// Celery's Redis result backend: the result of task `<id>` is the JSON string at `celery-task-meta-<id>`.
#[cfg(feature = "redis")]
pub struct RedisBackend {
    connection: Mutex<redis::Connection>,
    prefix: String,
}

#[cfg(feature = "redis")]
impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

#[cfg(feature = "redis")]
fn redis_error(what: &str, e: redis::RedisError) -> Error {
    let kind = if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
        kombu_core::ErrorKind::Connection
    } else {
        kombu_core::ErrorKind::Channel
    };
    Error::with_source(kind, format!("Redis result backend: {what}"), e)
}

#[cfg(feature = "redis")]
impl RedisBackend {
    /// Connects to the Redis server at `url` (`redis://host:port/db`, as Celery's `result_backend`).
    pub fn open(url: &str) -> Result<RedisBackend> {
        let client = redis::Client::open(url).map_err(|e| redis_error("bad URL", e))?;
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .map_err(|e| redis_error("cannot connect", e))?;
        Ok(RedisBackend { connection: Mutex::new(connection), prefix: String::new() })
    }

    /// Celery's `result_backend_transport_options={'global_keyprefix': ...}`: put before every key.
    pub fn global_keyprefix(mut self, prefix: impl Into<String>) -> RedisBackend {
        self.prefix = prefix.into();
        self
    }

    /// The key of task `id`'s result.
    pub fn key(&self, id: &str) -> String {
        format!("{}celery-task-meta-{id}", self.prefix)
    }

    /// The stored result of task `id`, in whatever state, if there is one.
    pub fn get(&self, id: &str) -> Result<Option<TaskResult>> {
        let mut conn = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let raw: Option<Vec<u8>> =
            redis::cmd("GET").arg(self.key(id)).query(&mut *conn).map_err(|e| redis_error("GET", e))?;
        raw.map(|bytes| TaskResult::from_json(&bytes, Some(id))).transpose()
    }

    /// Waits for the final result of task `id`, at most `timeout` (up to a day), polling its key (1 to
    /// 50 ms apart). An error of kind `Timeout` when none came in time.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<TaskResult> {
        let deadline = check_wait(timeout)?;
        let mut step = Duration::from_millis(1);
        loop {
            if let Some(r) = self.get(id)?.filter(|r| r.state.is_ready()) {
                return Ok(r);
            }
            if !pause(&mut step, deadline) {
                return Err(timed_out(id, timeout));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celery_meta_parses_and_failures_say_what_was_raised() {
        let ok = TaskResult::from_json(
            br#"{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "2026-12-01T10:00:00+00:00", "task_id": "t"}"#,
            None,
        )
        .unwrap();
        assert_eq!(ok.state, State::Success);
        assert_eq!(ok.extra["children"], serde_json::json!([]));
        assert_eq!(ok.into_value().unwrap(), 5);

        let failed = TaskResult::from_json(
            br#"{"status": "FAILURE", "result": {"exc_type": "ZeroDivisionError", "exc_message": ["division by zero"], "exc_module": "builtins"}, "traceback": "Traceback..."}"#,
            Some("t2"),
        )
        .unwrap();
        let e = failed.into_value().unwrap_err();
        assert_eq!(e.task_id, "t2");
        assert_eq!(e.to_string(), "task t2 failed: ZeroDivisionError: [\"division by zero\"]");
        assert!(TaskResult::from_json(b"{}", None).is_err());
        assert!(TaskResult::from_json(br#"{"status": "SUCCESS"}"#, None).unwrap_err().to_string().contains("task id"));
        assert!(State::Revoked.is_ready() && !State::Started.is_ready());
    }

    #[test]
    fn waits_are_range_checked() {
        assert!(check_wait(Duration::from_secs(2 * 24 * 3600)).is_err());
    }
}
