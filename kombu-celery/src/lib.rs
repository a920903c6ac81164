//! Celery's message protocol for kombu-rs: send tasks that a Celery worker runs, read the task messages
//! Celery clients send, and wait for results, on any broker kombu-rs speaks.
//!
//! - [`Task`]: a typed builder for protocol-2 task messages (Celery 4 and later): name, args, kwargs, id,
//!   countdown or eta, expires, retries, priority, root and parent ids, group, callbacks and errbacks, time
//!   limits; published to the queue and exchange Celery uses (`celery` by default).
//! - [`TaskMessage`]: a received task message parsed, of either protocol Celery 5 reads (2, and the
//!   body-only protocol 1).
//! - Results: [`RpcBackend`] (Celery's `rpc://`: replies on a queue of the client's, by correlation id) and,
//!   with the `redis` feature, [`RedisBackend`] (Celery's Redis result backend, `celery-task-meta-<id>`),
//!   each waiting with a timeout. [`TaskResult`] is Celery's result meta.
//!
//! ```no_run
//! use std::time::Duration;
//! use kombu_celery::{RpcBackend, Task};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = kombu_core::Connection::open("amqp://guest:guest@localhost:5672//")?;
//! let results = RpcBackend::new(&conn)?;
//! let sent = Task::new("tasks.add").args([2, 3]).countdown(Duration::from_secs(1)).reply_to(&results).send(&conn)?;
//! let result = results.wait(&sent.id, Duration::from_secs(10))?;
//! assert_eq!(result.into_value()?, 5);
//! # Ok(()) }
//! ```
//!
//! What goes on the wire is what Celery 5.7 writes (`celery/app/amqp.py`, `as_task_v2`): the headers
//! `lang`, `task`, `id`, `shadow`, `eta`, `expires`, `group`, `group_index`, `retries`, `timelimit`,
//! `root_id`, `parent_id`, `argsrepr`, `kwargsrepr`, `origin`, `ignore_result`, `replaced_task_nesting`,
//! `stamped_headers`, `stamps`; the body `[args, kwargs, {callbacks, errbacks, chain, chord}]` as JSON; the
//! properties `correlation_id` (the task id) and `reply_to`. Times are ISO 8601 in UTC.

#![deny(missing_docs)]

mod message;
mod result;
mod task;

pub use message::{Protocol, TaskMessage};
#[cfg(feature = "redis")]
pub use result::RedisBackend;
pub use result::{RpcBackend, State, TaskFailure, TaskResult};
pub use task::{SentTask, Signature, Task, DEFAULT_QUEUE};
