//! Putting unacknowledged messages back: the visibility-timeout sweep over Kombu's `unacked_index`
//! (under `unacked_mutex`, routed as Kombu routes a restore), and the recovery of consumer requests whose
//! replies were lost with their socket.

use kombu_core::envelope::Envelope;
use kombu_core::routing::{headers_match, topic_matches};
use kombu_core::{ExchangeKind, FieldTable, Result};

use crate::connection::Shared;
use crate::keys;
use crate::payload::{mark_redelivered, now_secs, parse_unacked};
use crate::scripts::scripts;

/// The queues a restored message goes to: the routing key's queue for the default exchange, else the
/// exchange's bound queues that take it (the exchange's type as declared on this connection, direct if
/// unknown, as in Kombu).
fn route(shared: &Shared, exchange: &str, routing_key: &str, payload: &[u8]) -> Result<Vec<String>> {
    if exchange.is_empty() {
        return Ok(vec![routing_key.to_owned()]);
    }
    let key = keys::binding_key(&shared.opts.global_keyprefix, exchange);
    let members: Vec<Vec<u8>> = shared.pool.run("SMEMBERS", |c| redis::cmd("SMEMBERS").arg(&key).query(c))?;
    let kind = shared.exchange_kind(exchange);
    let headers = || Envelope::parse(payload).map(|e| e.headers).unwrap_or_default();
    let mut out: Vec<String> = members
        .iter()
        .filter_map(|m| keys::parse_member(m, &shared.opts.sep))
        .filter(|m| match kind {
            ExchangeKind::Topic => topic_matches(&m.routing_key, routing_key),
            ExchangeKind::Fanout => true,
            ExchangeKind::Headers => {
                let args: FieldTable = serde_json::from_str(&m.pattern).unwrap_or_default();
                headers_match(&args, &headers())
            }
            _ => m.routing_key == routing_key,
        })
        .map(|m| m.queue)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Runs the RESTORE script for one tag: pushes `payload` to `lists` if the tag is still recorded.
fn restore_tag(shared: &Shared, tag: &str, payload: &[u8], lists: &[String], front: bool) -> Result<bool> {
    let o = &shared.opts;
    let mut inv = scripts().restore.prepare_invoke();
    inv.key(&o.unacked_key).key(&o.unacked_index_key);
    for l in lists {
        inv.key(l);
    }
    inv.arg(tag).arg(payload).arg(if front { "R" } else { "L" });
    let n: i64 = shared.pool.run("restore", |c| inv.invoke(c))?;
    Ok(n == 1)
}

/// Restores messages delivered longer than the visibility timeout ago and never acknowledged (Kombu's
/// `restore_visible`). Returns how many went back. Does nothing while another client holds the mutex.
pub(crate) fn restore_visible(shared: &Shared) -> Result<usize> {
    let o = &shared.opts;
    let token = uuid::Uuid::new_v4().to_string();
    let locked: Option<String> = shared.pool.run("unacked_mutex", |c| {
        redis::cmd("SET")
            .arg(&o.unacked_mutex_key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(o.unacked_mutex_expire.as_millis().max(1) as u64)
            .query(c)
    })?;
    if locked.is_none() {
        return Ok(0);
    }
    let result = sweep(shared);
    let unlock = shared
        .pool
        .run("unacked_mutex", |c| scripts().unlock.key(&o.unacked_mutex_key).arg(&token).invoke::<i64>(c).map(|_| ()));
    let n = result?;
    unlock?;
    Ok(n)
}

fn sweep(shared: &Shared) -> Result<usize> {
    let o = &shared.opts;
    let ceil = now_secs() - o.visibility_timeout.as_secs_f64();
    let tags: Vec<String> = shared.pool.run("ZRANGEBYSCORE", |c| {
        redis::cmd("ZRANGEBYSCORE")
            .arg(&o.unacked_index_key)
            .arg("-inf")
            .arg(format!("{ceil:.6}"))
            .arg("LIMIT")
            .arg(0)
            .arg(o.unacked_restore_limit)
            .query(c)
    })?;
    let mut restored = 0;
    for tag in tags {
        let raw: Option<Vec<u8>> =
            shared.pool.run("HGET", |c| redis::cmd("HGET").arg(&o.unacked_key).arg(&tag).query(c))?;
        let Some(raw) = raw else {
            shared.pool.run("ZREM", |c| redis::cmd("ZREM").arg(&o.unacked_index_key).arg(&tag).query::<()>(c))?;
            continue;
        };
        let Some(entry) = parse_unacked(&raw) else {
            tracing::warn!("unacked entry {tag} is not [payload, exchange, routing_key]; left in place");
            continue;
        };
        let queues = route(shared, &entry.exchange, &entry.routing_key, &entry.payload)?;
        if queues.is_empty() {
            tracing::warn!(
                "unacked message {tag} (exchange '{}', routing key '{}') routes to no queue; left in unacked",
                entry.exchange,
                entry.routing_key
            );
            continue;
        }
        let (payload, priority) = mark_redelivered(&entry.payload);
        let step = keys::priority_step(priority, &o.priority_steps);
        let lists: Vec<String> = queues.iter().map(|q| keys::queue_key(&o.global_keyprefix, q, step, &o.sep)).collect();
        if restore_tag(shared, &tag, &payload, &lists, true)? {
            restored += 1;
        }
    }
    if restored > 0 {
        tracing::info!("restored {restored} messages whose visibility timeout passed");
    }
    Ok(restored)
}

/// Puts back the messages taken by consumer requests whose replies were never read (the socket dropped,
/// or the poller stopped with requests in flight): they are recorded in `unacked` and listed in this
/// connection's in-flight hash under the request id. They go back to the front of the list they came
/// from, unmarked (no consumer saw them).
pub(crate) fn recover_requests(shared: &Shared, requests: &[String]) -> Result<usize> {
    if requests.is_empty() {
        return Ok(0);
    }
    let o = &shared.opts;
    let inflight = shared.inflight_key();
    let mut restored = 0;
    for req in requests {
        let listed: Option<String> =
            shared.pool.run("HGET", |c| redis::cmd("HGET").arg(&inflight).arg(req).query(c))?;
        let Some(listed) = listed else { continue };
        let pairs: Vec<String> = serde_json::from_str(&listed).unwrap_or_default();
        for pair in pairs.chunks(2) {
            let [list, tag] = pair else { continue };
            let raw: Option<Vec<u8>> =
                shared.pool.run("HGET", |c| redis::cmd("HGET").arg(&o.unacked_key).arg(tag).query(c))?;
            let Some(entry) = raw.as_deref().and_then(parse_unacked) else { continue };
            if restore_tag(shared, tag, &entry.payload, std::slice::from_ref(list), true)? {
                restored += 1;
            }
        }
        shared.pool.run("HDEL", |c| redis::cmd("HDEL").arg(&inflight).arg(req).query::<()>(c))?;
    }
    if restored > 0 {
        tracing::info!("put back {restored} messages taken by requests whose replies were lost");
    }
    Ok(restored)
}
