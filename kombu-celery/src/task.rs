//! Sending tasks: [`Task`], the builder of a protocol-2 task message, and [`Signature`], a task to run
//! after another (callbacks, errbacks, chains).

use std::time::Duration;

use kombu_core::{Connection, Error, Exchange, Producer, Queue, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::result::RpcBackend;

/// The queue, exchange and routing key Celery sends to and a worker reads from unless configured otherwise.
pub const DEFAULT_QUEUE: &str = "celery";

/// The longest countdown, expiry or time limit a task may be given (ten years): anything longer is a mistake.
const LONGEST: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A task to run after another, as Celery writes signatures (`celery.canvas.Signature` as a dict).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// The task's name.
    pub task: String,
    /// Positional arguments (the parent's result is prepended unless `immutable`).
    #[serde(default)]
    pub args: Vec<Value>,
    /// Keyword arguments.
    #[serde(default)]
    pub kwargs: Map<String, Value>,
    /// Publishing options (`queue`, `priority`, `countdown`, ...).
    #[serde(default)]
    pub options: Map<String, Value>,
    /// The canvas type (`None` for a plain task).
    #[serde(default)]
    pub subtask_type: Option<String>,
    /// Whether the parent's result is left out of the arguments.
    #[serde(default)]
    pub immutable: bool,
}

impl Signature {
    /// A signature of the task `name`, with no arguments.
    pub fn new(name: impl Into<String>) -> Signature {
        Signature {
            task: name.into(),
            args: Vec::new(),
            kwargs: Map::new(),
            options: Map::new(),
            subtask_type: None,
            immutable: false,
        }
    }

    /// Its positional arguments (anything that serializes to a JSON array).
    pub fn args(mut self, args: impl Serialize) -> Result<Signature> {
        self.args = to_array(&args)?;
        Ok(self)
    }

    /// Leaves the parent's result out of its arguments (Celery's `.si()`).
    pub fn immutable(mut self) -> Signature {
        self.immutable = true;
        self
    }
}

/// What [`Task::send`] published: the id to wait for the result by.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentTask {
    /// The task id (also the message's correlation id).
    pub id: String,
    /// The queue it was sent to.
    pub queue: String,
}

/// A protocol-2 task message, built as Celery's `apply_async` builds it, sent with [`send`](Task::send).
///
/// Errors in what is given (arguments that are not a list, a countdown past ten years, ...) are kept and
/// reported by `send`, which then publishes nothing.
///
/// ```
/// use std::time::Duration;
/// use kombu_celery::{Signature, Task};
/// let task = Task::new("tasks.add")
///     .args((2, 3))
///     .countdown(Duration::from_secs(10))
///     .expires(Duration::from_secs(60))
///     .priority(5)
///     .link(Signature::new("tasks.log"));
/// assert_eq!(task.name(), "tasks.add");
/// ```
#[derive(Debug, Clone)]
pub struct Task {
    name: String,
    id: String,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
    eta: Option<OffsetDateTime>,
    expires: Option<OffsetDateTime>,
    retries: u32,
    priority: Option<u8>,
    root_id: Option<String>,
    parent_id: Option<String>,
    group: Option<String>,
    group_index: Option<u32>,
    callbacks: Vec<Signature>,
    errbacks: Vec<Signature>,
    chain: Vec<Signature>,
    time_limit: Option<Duration>,
    soft_time_limit: Option<Duration>,
    reply_to: Option<String>,
    queue: String,
    ignore_result: bool,
    shadow: Option<String>,
    serializer: String,
    compression: Option<String>,
    error: Option<String>,
}

impl Task {
    /// A task message for the task `name`, with a new id, to the queue `celery`.
    pub fn new(name: impl Into<String>) -> Task {
        Task {
            name: name.into(),
            id: uuid::Uuid::new_v4().to_string(),
            args: Vec::new(),
            kwargs: Map::new(),
            eta: None,
            expires: None,
            retries: 0,
            priority: None,
            root_id: None,
            parent_id: None,
            group: None,
            group_index: None,
            callbacks: Vec::new(),
            errbacks: Vec::new(),
            chain: Vec::new(),
            time_limit: None,
            soft_time_limit: None,
            reply_to: None,
            queue: DEFAULT_QUEUE.to_owned(),
            ignore_result: false,
            shadow: None,
            serializer: "json".to_owned(),
            compression: None,
            error: None,
        }
    }

    fn fail(mut self, why: String) -> Task {
        self.error.get_or_insert(why);
        self
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The task id (a new UUID unless set with [`id`](Task::id)).
    pub fn task_id(&self) -> &str {
        &self.id
    }

    /// Sets the task id.
    pub fn id(mut self, id: impl Into<String>) -> Task {
        self.id = id.into();
        self
    }

    /// Positional arguments: anything that serializes to a JSON array (a tuple, an array, a `Vec`).
    pub fn args(mut self, args: impl Serialize) -> Task {
        match to_array(&args) {
            Ok(a) => {
                self.args = a;
                self
            }
            Err(e) => self.fail(e.message().to_owned()),
        }
    }

    /// Keyword arguments: anything that serializes to a JSON object (a struct, a map).
    pub fn kwargs(mut self, kwargs: impl Serialize) -> Task {
        match serde_json::to_value(&kwargs) {
            Ok(Value::Object(map)) => {
                self.kwargs = map;
                self
            }
            Ok(other) => self.fail(format!("task kwargs must be an object, not {other}")),
            Err(e) => self.fail(format!("task kwargs cannot be serialized: {e}")),
        }
    }

    /// One keyword argument.
    pub fn kwarg(mut self, key: impl Into<String>, value: impl Serialize) -> Task {
        match serde_json::to_value(&value) {
            Ok(v) => {
                self.kwargs.insert(key.into(), v);
                self
            }
            Err(e) => self.fail(format!("task kwarg cannot be serialized: {e}")),
        }
    }

    /// Runs no earlier than `delay` from now (Celery's `countdown`: sent as an `eta`).
    pub fn countdown(self, delay: Duration) -> Task {
        match after(delay, "countdown") {
            Ok(at) => Task { eta: Some(at), ..self },
            Err(e) => self.fail(e),
        }
    }

    /// Runs no earlier than `at` (Celery's `eta`).
    pub fn eta(mut self, at: std::time::SystemTime) -> Task {
        self.eta = Some(at.into());
        self
    }

    /// Is dropped (revoked by the worker) if not started within `ttl` from now.
    pub fn expires(self, ttl: Duration) -> Task {
        match after(ttl, "expires") {
            Ok(at) => Task { expires: Some(at), ..self },
            Err(e) => self.fail(e),
        }
    }

    /// Is dropped if not started by `at`.
    pub fn expires_at(mut self, at: std::time::SystemTime) -> Task {
        self.expires = Some(at.into());
        self
    }

    /// How many times it was retried (0 for a first run).
    pub fn retries(mut self, n: u32) -> Task {
        self.retries = n;
        self
    }

    /// The message priority (0-255; Celery on Redis uses 0-9, 0 first; RabbitMQ, higher first, up to the
    /// queue's `x-max-priority`).
    pub fn priority(mut self, priority: u8) -> Task {
        self.priority = Some(priority);
        self
    }

    /// The id of the first task of the workflow (itself by default).
    pub fn root_id(mut self, id: impl Into<String>) -> Task {
        self.root_id = Some(id.into());
        self
    }

    /// The id of the task that sent this one.
    pub fn parent_id(mut self, id: impl Into<String>) -> Task {
        self.parent_id = Some(id.into());
        self
    }

    /// The group it belongs to, and its index there.
    pub fn group(mut self, id: impl Into<String>, index: Option<u32>) -> Task {
        self.group = Some(id.into());
        self.group_index = index;
        self
    }

    /// A task to run with its result when it succeeds (Celery's `link`).
    pub fn link(mut self, callback: Signature) -> Task {
        self.callbacks.push(callback);
        self
    }

    /// A task to run when it fails (Celery's `link_error`).
    pub fn link_error(mut self, errback: Signature) -> Task {
        self.errbacks.push(errback);
        self
    }

    /// The rest of a chain, run after it in order (Celery keeps the chain's remaining tasks reversed: the
    /// next one last; give them here in the order they run).
    pub fn chain(mut self, rest: impl IntoIterator<Item = Signature>) -> Task {
        let mut rest: Vec<Signature> = rest.into_iter().collect();
        rest.reverse();
        self.chain = rest;
        self
    }

    /// Hard time limit: the worker kills the task after it (not supported by the `solo` pool).
    pub fn time_limit(self, limit: Duration) -> Task {
        match limit_secs(limit, "time_limit") {
            Ok(_) => Task { time_limit: Some(limit), ..self },
            Err(e) => self.fail(e),
        }
    }

    /// Soft time limit: the task gets `SoftTimeLimitExceeded` after it.
    pub fn soft_time_limit(self, limit: Duration) -> Task {
        match limit_secs(limit, "soft_time_limit") {
            Ok(_) => Task { soft_time_limit: Some(limit), ..self },
            Err(e) => self.fail(e),
        }
    }

    /// Where the worker sends the result, for Celery's `rpc://` backend.
    pub fn reply_to(mut self, backend: &RpcBackend) -> Task {
        self.reply_to = Some(backend.queue().to_owned());
        self
    }

    /// The reply queue by name (what [`reply_to`](Task::reply_to) sets from a backend).
    pub fn reply_to_queue(mut self, queue: impl Into<String>) -> Task {
        self.reply_to = Some(queue.into());
        self
    }

    /// The queue to send to, which is also the exchange (direct) and routing key, as Celery routes a task to
    /// a queue by name. `celery` by default.
    pub fn queue(mut self, name: impl Into<String>) -> Task {
        self.queue = name.into();
        self
    }

    /// Asks the worker not to store the result.
    pub fn ignore_result(mut self, yes: bool) -> Task {
        self.ignore_result = yes;
        self
    }

    /// The name the worker logs it under, instead of its task name.
    pub fn shadow(mut self, name: impl Into<String>) -> Task {
        self.shadow = Some(name.into());
        self
    }

    /// The serializer of the body (`json` by default; `msgpack` and `yaml` where built in).
    pub fn serializer(mut self, name: impl Into<String>) -> Task {
        self.serializer = name.into();
        self
    }

    /// Compresses the body (`zlib`, `bzip2`, `lzma`, `brotli`, `zstd`).
    pub fn compression(mut self, name: impl Into<String>) -> Task {
        self.compression = Some(name.into());
        self
    }

    /// The headers a Celery 5 worker reads, in protocol 2.
    pub fn headers(&self) -> Map<String, Value> {
        // `argsrepr` and `kwargsrepr` are for people reading logs and monitors: JSON text does.
        let secs = |d: Option<Duration>| d.map(|d| json!(d.as_secs_f64())).unwrap_or(Value::Null);
        let mut h = Map::new();
        h.insert("lang".into(), "py".into());
        h.insert("task".into(), self.name.clone().into());
        h.insert("id".into(), self.id.clone().into());
        h.insert("shadow".into(), self.shadow.clone().into());
        h.insert("eta".into(), self.eta.map(iso8601).into());
        h.insert("expires".into(), self.expires.map(iso8601).into());
        h.insert("group".into(), self.group.clone().into());
        h.insert("group_index".into(), self.group_index.into());
        h.insert("retries".into(), self.retries.into());
        h.insert("timelimit".into(), json!([secs(self.time_limit), secs(self.soft_time_limit)]));
        h.insert("root_id".into(), self.root_id.clone().unwrap_or_else(|| self.id.clone()).into());
        h.insert("parent_id".into(), self.parent_id.clone().into());
        h.insert("argsrepr".into(), Value::Array(self.args.clone()).to_string().into());
        h.insert("kwargsrepr".into(), Value::Object(self.kwargs.clone()).to_string().into());
        h.insert("origin".into(), origin().into());
        h.insert("ignore_result".into(), self.ignore_result.into());
        h.insert("replaced_task_nesting".into(), 0.into());
        h.insert("stamped_headers".into(), Value::Null);
        h.insert("stamps".into(), Value::Object(Map::new()));
        h
    }

    /// The body: `[args, kwargs, {callbacks, errbacks, chain, chord}]`.
    pub fn body(&self) -> Value {
        let list = |s: &[Signature]| if s.is_empty() { Value::Null } else { json!(s) };
        json!([
            self.args,
            self.kwargs,
            {"callbacks": list(&self.callbacks), "errbacks": list(&self.errbacks), "chain": list(&self.chain), "chord": null}
        ])
    }

    /// Publishes it with `producer` to its queue (declared first, durable, as Celery declares it).
    pub fn publish(&self, producer: &Producer) -> Result<SentTask> {
        if let Some(why) = &self.error {
            return Err(Error::invalid(format!("task {}: {why}", self.name)));
        }
        let exchange = Exchange::direct(&self.queue);
        let queue = Queue::with_exchange(&self.queue, exchange.clone(), &self.queue);
        let body = self.body();
        let mut p = producer
            .publish(&body)
            .exchange(&exchange)
            .routing_key(&self.queue)
            .declare(&queue)
            .serializer(&self.serializer)
            .correlation_id(self.id.clone())
            .reply_to(self.reply_to.clone().unwrap_or_default());
        for (k, v) in self.headers() {
            p = p.header(k, v);
        }
        if let Some(n) = self.priority {
            p = p.priority(n);
        }
        if let Some(c) = &self.compression {
            p = p.compression(c);
        }
        p.send()?;
        Ok(SentTask { id: self.id.clone(), queue: self.queue.clone() })
    }

    /// Publishes it on `connection` (a producer for this one message; keep a [`Producer`] and use
    /// [`publish`](Task::publish) to send many).
    pub fn send(&self, connection: &Connection) -> Result<SentTask> {
        self.publish(&Producer::new(connection)?)
    }
}

/// The arguments as a JSON array, or an error saying what they were.
fn to_array(args: &impl Serialize) -> Result<Vec<Value>> {
    match serde_json::to_value(args) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(Value::Null) => Ok(Vec::new()),
        Ok(other) => Err(Error::invalid(format!("task args must be a list, not {other}"))),
        Err(e) => Err(Error::invalid(format!("task args cannot be serialized: {e}"))),
    }
}

fn after(delay: Duration, what: &str) -> std::result::Result<OffsetDateTime, String> {
    if delay > LONGEST {
        return Err(format!("{what} of {delay:?} is past the limit of ten years"));
    }
    let delay = time::Duration::try_from(delay).map_err(|e| format!("{what}: {e}"))?;
    OffsetDateTime::now_utc().checked_add(delay).ok_or_else(|| format!("{what} is out of range"))
}

fn limit_secs(limit: Duration, what: &str) -> std::result::Result<f64, String> {
    if limit.is_zero() || limit > LONGEST {
        return Err(format!("{what} must be between 1 ns and ten years, not {limit:?}"));
    }
    Ok(limit.as_secs_f64())
}

/// A time as Python's `datetime.isoformat()` writes an aware UTC one: `2026-12-01T11:20:00.123456+00:00`.
pub(crate) fn iso8601(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

/// Celery's `anon_nodename()`: `gen<pid>@<hostname>`.
fn origin() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("gen{}@{host}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_body_are_celerys_protocol_2() {
        let t = Task::new("tasks.add")
            .id("id-1")
            .args((2, 3))
            .kwarg("z", true)
            .retries(1)
            .time_limit(Duration::from_secs(30))
            .link(Signature::new("tasks.log"));
        let h = t.headers();
        assert_eq!(h["task"], "tasks.add");
        assert_eq!(h["id"], "id-1");
        assert_eq!(h["root_id"], "id-1");
        assert_eq!(h["lang"], "py");
        assert_eq!(h["retries"], 1);
        assert_eq!(h["timelimit"], json!([30.0, null]));
        assert_eq!(h["eta"], Value::Null);
        assert_eq!(h["argsrepr"], "[2,3]");
        assert!(h["origin"].as_str().unwrap().starts_with("gen"));
        assert_eq!(h.len(), 19, "the 19 headers of as_task_v2");
        let body = t.body();
        assert_eq!(body[0], json!([2, 3]));
        assert_eq!(body[1], json!({"z": true}));
        assert_eq!(body[2]["callbacks"][0]["task"], "tasks.log");
        assert_eq!(body[2]["errbacks"], Value::Null);
    }

    #[test]
    fn times_are_python_isoformat_in_utc() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_764_588_000_123_456_789).unwrap();
        assert_eq!(iso8601(at), "2025-12-01T11:20:00.123456+00:00");
        let t = Task::new("x").countdown(Duration::from_secs(60));
        let eta = t.headers()["eta"].as_str().unwrap().to_owned();
        let parsed = OffsetDateTime::parse(&eta, &time::format_description::well_known::Rfc3339).unwrap();
        let ahead = parsed - OffsetDateTime::now_utc();
        assert!(ahead > time::Duration::seconds(55) && ahead <= time::Duration::seconds(60), "{ahead}");
    }

    #[test]
    fn bad_arguments_are_reported_by_send_not_sent() {
        assert!(Task::new("x").args("not a list").error.unwrap().contains("must be a list"));
        assert!(Task::new("x").kwargs([1, 2]).error.unwrap().contains("must be an object"));
        assert!(Task::new("x").countdown(Duration::from_secs(u64::MAX)).error.unwrap().contains("ten years"));
        assert!(Task::new("x").time_limit(Duration::ZERO).error.is_some());
        // The first error is the one reported.
        let t = Task::new("x").args(5).kwargs(5);
        assert!(t.error.unwrap().contains("args"));
    }

    #[test]
    fn a_chain_is_kept_in_celerys_reversed_order() {
        let t = Task::new("a").chain([Signature::new("b"), Signature::new("c")]);
        assert_eq!(t.body()[2]["chain"][0]["task"], "c");
        assert_eq!(t.body()[2]["chain"][1]["task"], "b");
    }
}
