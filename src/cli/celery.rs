//! `kombu celery`: sends a task a Celery worker runs (`send`), optionally waiting for its result, and reads a
//! result from Celery's Redis result backend (`result`).

use serde_json::{json, Value};

use super::args::{CeleryCommand, CelerySendArgs};
use super::{connect, Io, Outcome, EXIT_OK, EXIT_TIMED_OUT};
use crate::celery::{RpcBackend, Task, TaskResult};
use kombu_core::ErrorKind;

/// Runs `kombu celery ...`.
pub(crate) fn run(command: &CeleryCommand, io: &mut Io<'_>) -> Outcome {
    match command {
        CeleryCommand::Send(a) => send(a, io),
        #[cfg(feature = "redis")]
        CeleryCommand::Result(a) => {
            let backend = crate::celery::RedisBackend::open(&a.backend)?;
            let waited = match a.timeout {
                Some(t) => backend.wait(&a.id, t).map(Some),
                None => backend.get(&a.id),
            };
            print_result(waited, io)
        }
    }
}

/// An argument as JSON when it parses as JSON, else as a string (`2` is a number, `hello` a string).
fn argument(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn send(a: &CelerySendArgs, io: &mut Io<'_>) -> Outcome {
    let conn = connect(&a.url)?;
    let args: Vec<Value> = a.args.iter().map(|s| argument(s)).collect();
    let mut task = Task::new(&a.task).args(args).queue(&a.queue);
    if let Some(k) = &a.kwargs {
        let kwargs: Value = serde_json::from_str(k)
            .map_err(|e| kombu_core::Error::invalid(format!("--kwargs is not a JSON object: {e}")))?;
        task = task.kwargs(kwargs);
    }
    if let Some(id) = &a.id {
        task = task.id(id.clone());
    }
    if let Some(d) = a.countdown {
        task = task.countdown(d);
    }
    if let Some(d) = a.expires {
        task = task.expires(d);
    }
    if let Some(p) = a.priority {
        task = task.priority(p);
    }
    let rpc = match (a.wait, a.backend.as_str()) {
        (Some(_), "rpc://" | "rpc") => Some(RpcBackend::new(&conn)?),
        _ => None,
    };
    if let Some(r) = &rpc {
        task = task.reply_to(r);
    }
    let sent = task.send(&conn)?;
    let Some(timeout) = a.wait else {
        writeln!(io.stdout, "{}", sent.id)?;
        conn.close()?;
        return Ok(EXIT_OK);
    };
    let waited = match &rpc {
        Some(r) => r.wait(&sent.id, timeout),
        None => redis_backend(&a.backend)?.wait(&sent.id, timeout),
    };
    drop(rpc);
    let outcome = print_result(waited.map(Some), io);
    conn.close()?;
    outcome
}

#[cfg(feature = "redis")]
fn redis_backend(url: &str) -> kombu_core::Result<crate::celery::RedisBackend> {
    crate::celery::RedisBackend::open(url)
}

#[cfg(not(feature = "redis"))]
fn redis_backend(url: &str) -> kombu_core::Result<std::convert::Infallible> {
    Err(kombu_core::Error::invalid(format!("result backend '{url}': only rpc:// without the `redis` feature")))
}

/// Prints a result as one line of JSON (`id`, `state`, `result`, `traceback`, `date_done`); a missing
/// one or a wait that timed out is exit status 3.
fn print_result(result: kombu_core::Result<Option<TaskResult>>, io: &mut Io<'_>) -> Outcome {
    let r = match result {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(EXIT_TIMED_OUT),
        Err(e) if e.kind() == ErrorKind::Timeout => return Ok(EXIT_TIMED_OUT),
        Err(e) => return Err(e.into()),
    };
    let line = json!({
        "id": r.task_id,
        "state": r.state.name(),
        "result": r.result,
        "traceback": r.traceback,
        "date_done": r.date_done,
    });
    writeln!(io.stdout, "{line}")?;
    Ok(EXIT_OK)
}
