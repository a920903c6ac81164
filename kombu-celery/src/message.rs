//! Reading task messages: [`TaskMessage`], what a Celery client (`delay`, `apply_async`, `send_task`) or
//! [`Task`](crate::Task) sent, in either protocol a Celery 5 worker reads.

use kombu_core::{Error, Message, Result};
use serde_json::{Map, Value};

/// The task message protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// Protocol 1 (Celery 3): everything in the body, a dict.
    V1,
    /// Protocol 2 (Celery 4 and later, the default): metadata in headers, `[args, kwargs, embed]` as body.
    V2,
}

/// A task message, parsed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskMessage {
    /// The protocol it came in.
    pub protocol: Protocol,
    /// The task's name.
    pub task: String,
    /// The task id.
    pub id: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Not to run before this time (ISO 8601, as sent).
    pub eta: Option<String>,
    /// Not to run after this time (ISO 8601, as sent).
    pub expires: Option<String>,
    /// Times retried.
    pub retries: u64,
    /// The first task of the workflow.
    pub root_id: Option<String>,
    /// The task that sent it.
    pub parent_id: Option<String>,
    /// Its group.
    pub group: Option<String>,
    /// Hard and soft time limits, in seconds.
    pub time_limit: (Option<f64>, Option<f64>),
    /// Tasks to run with its result (signatures as dicts).
    pub callbacks: Vec<Value>,
    /// Tasks to run if it fails.
    pub errbacks: Vec<Value>,
    /// The rest of its chain (Celery's order: the next task last).
    pub chain: Vec<Value>,
    /// The chord it is part of.
    pub chord: Option<Value>,
    /// Where to send the result (`rpc://`), from the message's `reply_to`.
    pub reply_to: Option<String>,
    /// Who sent it (`gen<pid>@<host>`; protocol 2).
    pub origin: Option<String>,
    /// Whether the sender asked for no result.
    pub ignore_result: bool,
}

/// A header of `message` as a JSON value (`None` for a missing or null one).
fn header(message: &Message, key: &str) -> Option<Value> {
    message.headers.get(key).map(Value::from).filter(|v| !v.is_null())
}

fn text(v: Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn list(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    }
}

fn limits(v: Option<&Value>) -> (Option<f64>, Option<f64>) {
    let a = list(v);
    (a.first().and_then(Value::as_f64), a.get(1).and_then(Value::as_f64))
}

impl TaskMessage {
    /// Parses a received message (decompressed and decoded by its content type: json, msgpack, yaml).
    /// A message that is not a task message is an error of kind `Serialization` saying what is missing.
    pub fn from_message(message: &Message) -> Result<TaskMessage> {
        let body: Value = message.decode()?;
        let reply_to = message.properties.reply_to.clone().filter(|r| !r.is_empty());
        match (text(header(message, "task")), text(header(message, "id"))) {
            (Some(task), Some(id)) => Self::v2(message, body, task, id, reply_to),
            _ => Self::v1(body, reply_to),
        }
    }

    fn v2(message: &Message, body: Value, task: String, id: String, reply_to: Option<String>) -> Result<TaskMessage> {
        let not_v2 = || Error::serialization(format!("task {id}: the body is not [args, kwargs, embed]"));
        let Value::Array(parts) = body else { return Err(not_v2()) };
        let mut parts = parts.into_iter();
        let args = match parts.next() {
            Some(Value::Array(a)) => a,
            _ => return Err(not_v2()),
        };
        let kwargs = match parts.next() {
            Some(Value::Object(k)) => k,
            None => Map::new(),
            _ => return Err(not_v2()),
        };
        let embed = parts.next().unwrap_or(Value::Null);
        Ok(TaskMessage {
            protocol: Protocol::V2,
            task,
            id,
            args,
            kwargs,
            eta: text(header(message, "eta")),
            expires: text(header(message, "expires")),
            retries: header(message, "retries").and_then(|v| v.as_u64()).unwrap_or(0),
            root_id: text(header(message, "root_id")),
            parent_id: text(header(message, "parent_id")),
            group: text(header(message, "group")),
            time_limit: limits(header(message, "timelimit").as_ref()),
            callbacks: list(embed.get("callbacks")),
            errbacks: list(embed.get("errbacks")),
            chain: list(embed.get("chain")),
            chord: embed.get("chord").filter(|c| !c.is_null()).cloned(),
            reply_to,
            origin: text(header(message, "origin")),
            ignore_result: header(message, "ignore_result").and_then(|v| v.as_bool()).unwrap_or(false),
        })
    }

    fn v1(body: Value, reply_to: Option<String>) -> Result<TaskMessage> {
        let Value::Object(mut b) = body else {
            return Err(Error::serialization(
                "not a task message: no `task` and `id` headers (protocol 2) and the body is not a dict (protocol 1)",
            ));
        };
        let mut take_text = |k: &str| text(b.remove(k).filter(|v| !v.is_null()));
        let (Some(task), Some(id)) = (take_text("task"), take_text("id")) else {
            return Err(Error::serialization("not a task message: protocol 1 body without `task` and `id`"));
        };
        let (eta, expires) = (take_text("eta"), take_text("expires"));
        let (group, root_id, parent_id) = (take_text("taskset").or_else(|| take_text("group")), None, None);
        Ok(TaskMessage {
            protocol: Protocol::V1,
            task,
            id,
            args: list(b.get("args")),
            kwargs: match b.get("kwargs") {
                Some(Value::Object(k)) => k.clone(),
                _ => Map::new(),
            },
            eta,
            expires,
            retries: b.get("retries").and_then(Value::as_u64).unwrap_or(0),
            root_id,
            parent_id,
            group,
            time_limit: limits(b.get("timelimit")),
            callbacks: list(b.get("callbacks")),
            errbacks: list(b.get("errbacks")),
            chain: Vec::new(),
            chord: b.get("chord").filter(|c| !c.is_null()).cloned(),
            reply_to,
            origin: None,
            ignore_result: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Signature, Task};

    fn as_received(task: &Task) -> Message {
        let mut m = Message::new(task.body().to_string()).content_type("application/json");
        for (k, v) in task.headers() {
            m = m.header(k, v);
        }
        m.properties.reply_to = Some("replies".into());
        m
    }

    #[test]
    fn a_protocol_2_message_parses_back() {
        let t = Task::new("tasks.add").id("t1").args((1, "two")).kwarg("k", 3).retries(2).link(Signature::new("cb"));
        let parsed = TaskMessage::from_message(&as_received(&t)).unwrap();
        assert_eq!(parsed.protocol, Protocol::V2);
        assert_eq!((parsed.task.as_str(), parsed.id.as_str()), ("tasks.add", "t1"));
        assert_eq!(parsed.args, vec![Value::from(1), Value::from("two")]);
        assert_eq!(parsed.kwargs["k"], 3);
        assert_eq!(parsed.retries, 2);
        assert_eq!(parsed.root_id.as_deref(), Some("t1"));
        assert_eq!(parsed.callbacks[0]["task"], "cb");
        assert_eq!(parsed.reply_to.as_deref(), Some("replies"));
    }

    #[test]
    fn a_protocol_1_message_parses() {
        let body = serde_json::json!({"task": "old.add", "id": "t2", "args": [1], "kwargs": {"a": 1},
            "retries": 0, "eta": "2026-12-01T00:00:00+00:00", "expires": null, "utc": true, "timelimit": [10, 5]});
        let m = Message::new(body.to_string()).content_type("application/json");
        let parsed = TaskMessage::from_message(&m).unwrap();
        assert_eq!(parsed.protocol, Protocol::V1);
        assert_eq!(parsed.task, "old.add");
        assert_eq!(parsed.eta.as_deref(), Some("2026-12-01T00:00:00+00:00"));
        assert_eq!(parsed.expires, None);
        assert_eq!(parsed.time_limit, (Some(10.0), Some(5.0)));
    }

    #[test]
    fn other_messages_are_errors_that_say_why() {
        let m = Message::new("[1, 2]").content_type("application/json");
        let e = TaskMessage::from_message(&m).unwrap_err();
        assert!(e.to_string().contains("not a task message"), "{e}");
        let m = Message::new("{}").content_type("application/json").header("task", "t").header("id", "i");
        assert!(TaskMessage::from_message(&m).unwrap_err().to_string().contains("[args, kwargs, embed]"));
    }
}
