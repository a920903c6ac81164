//! Putting unacknowledged messages back: the visibility-timeout sweep over Kombu's `unacked_index`
//! (under `unacked_mutex`, routed as Kombu routes a restore), and the recovery of consumer requests whose
//! replies were lost with their socket.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use kombu_core::envelope::Envelope;
use kombu_core::routing::{headers_match, topic_matches};
use kombu_core::{ExchangeKind, FieldTable, Result};

use crate::connection::{lock, Shared};
use crate::keys;
use crate::payload::{mark_redelivered, now_secs, parse_unacked, score};
use crate::scripts::scripts;

/// The binding set of an exchange, as the restore sweep routes by it.
type Members = Vec<keys::Member>;

/// The queues a restored message goes to: the routing key's queue for the default exchange, else the
/// exchange's bound queues that take it (the exchange's type as declared on this connection, direct if
/// unknown, as in Kombu). `members` caches each exchange's binding set for one sweep.
fn route(
    shared: &Shared,
    members: &mut HashMap<String, Members>,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
) -> Result<Vec<String>> {
    if exchange.is_empty() {
        return Ok(vec![routing_key.to_owned()]);
    }
    if !members.contains_key(exchange) {
        let key = keys::binding_key(&shared.opts.global_keyprefix, exchange);
        let raw: Vec<Vec<u8>> = shared.pool.run("SMEMBERS", |c| redis::cmd("SMEMBERS").arg(&key).query(c))?;
        members
            .insert(exchange.to_owned(), raw.iter().filter_map(|m| keys::parse_member(m, &shared.opts.sep)).collect());
    }
    let kind = shared.exchange_kind(exchange);
    let headers = || Envelope::parse(payload).map(|e| e.headers).unwrap_or_default();
    let mut out: Vec<String> = members
        .get(exchange)
        .into_iter()
        .flatten()
        .filter(|m| match kind {
            ExchangeKind::Topic => topic_matches(&m.routing_key, routing_key),
            ExchangeKind::Fanout => true,
            ExchangeKind::Headers => {
                let args: FieldTable = serde_json::from_str(&m.pattern).unwrap_or_default();
                headers_match(&args, &headers())
            }
            _ => m.routing_key == routing_key,
        })
        .map(|m| m.queue.clone())
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

/// Runs [`restore_visible`] on a thread of its own unless one is running, so that the Hub never waits
/// for a sweep's round trips.
pub(crate) fn sweep_in_background(shared: &Arc<Shared>) {
    if shared.sweeping.swap(true, Ordering::AcqRel) {
        return;
    }
    let sh = shared.clone();
    let spawned = std::thread::Builder::new().name("kombu-redis-restore".into()).spawn(move || {
        if let Err(e) = restore_visible(&sh) {
            tracing::warn!("restoring messages past their visibility timeout: {e:#}");
        }
        sh.sweeping.store(false, Ordering::Release);
    });
    if let Err(e) = spawned {
        shared.sweeping.store(false, Ordering::Release);
        tracing::warn!("cannot start the restore sweep: {e}");
    }
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

/// The list where the sweep puts `unacked` entries it cannot restore (unreadable, or routed to no
/// queue): `unacked.dlq` after the global prefix, an ordinary list Python Kombu can read as a queue.
pub(crate) fn unrestorable_list(shared: &Shared) -> String {
    format!("{}.dlq", shared.opts.unacked_key)
}

/// One sweep: at most `unacked_restore_limit` of the oldest entries past the visibility timeout, read
/// in one round trip and put back (or dead-lettered) in one pipeline, so that nothing at the head of
/// the index can keep the entries behind it from being restored.
fn sweep(shared: &Shared) -> Result<usize> {
    let o = &shared.opts;
    let ceil = now_secs() - o.visibility_timeout.as_secs_f64();
    let tags: Vec<String> = shared.pool.run("ZRANGEBYSCORE", |c| {
        redis::cmd("ZRANGEBYSCORE")
            .arg(&o.unacked_index_key)
            .arg("-inf")
            .arg(score(ceil))
            .arg("LIMIT")
            .arg(0)
            .arg(o.unacked_restore_limit)
            .query(c)
    })?;
    if tags.is_empty() {
        return Ok(0);
    }
    let raws: Vec<Option<Vec<u8>>> =
        shared.pool.run("HMGET", |c| redis::cmd("HMGET").arg(&o.unacked_key).arg(&tags).query(c))?;
    let dlq = unrestorable_list(shared);
    let mut members = HashMap::new();
    let mut p = redis::pipe();
    // The scripts are loaded first on the same connection, so the EVALSHAs after them cannot miss.
    p.cmd("SCRIPT").arg("LOAD").arg(crate::scripts::RESTORE).ignore();
    p.cmd("SCRIPT").arg("LOAD").arg(crate::scripts::DEAD_LETTER).ignore();
    let (mut restored, mut dead) = (0, 0);
    for (tag, raw) in tags.iter().zip(raws) {
        let Some(raw) = raw else {
            p.cmd("ZREM").arg(&o.unacked_index_key).arg(tag).ignore();
            continue;
        };
        let Some(entry) = parse_unacked(&raw) else {
            tracing::error!("unacked entry {tag} is not [payload, exchange, routing_key]; moved to '{dlq}'");
            dead_letter_cmd(&mut p, shared, tag, &raw, &dlq);
            dead += 1;
            continue;
        };
        let queues = route(shared, &mut members, &entry.exchange, &entry.routing_key, &entry.payload)?;
        if queues.is_empty() {
            tracing::error!(
                "unacked message {tag} (exchange '{}', routing key '{}') routes to no queue; moved to '{dlq}'",
                entry.exchange,
                entry.routing_key
            );
            dead_letter_cmd(&mut p, shared, tag, &entry.payload, &dlq);
            dead += 1;
            continue;
        }
        let (payload, priority) = mark_redelivered(&entry.payload);
        let step = keys::priority_step(priority, &o.priority_steps);
        p.cmd("EVALSHA").arg(scripts().restore.get_hash()).arg(2 + queues.len());
        p.arg(&o.unacked_key).arg(&o.unacked_index_key);
        for q in &queues {
            p.arg(keys::queue_key(&o.global_keyprefix, q, step, &o.sep));
        }
        p.arg(tag).arg(payload).arg("R").ignore();
        restored += 1;
    }
    shared.pool.run("restore", |c| p.query::<()>(c))?;
    if restored > 0 {
        tracing::info!("restored {restored} messages whose visibility timeout passed");
    }
    Ok(restored + dead)
}

/// Adds to `p` the move of one `unacked` entry's payload to the list `to`, byte for byte.
fn dead_letter_cmd(p: &mut redis::Pipeline, shared: &Shared, tag: &str, payload: &[u8], to: &str) {
    let o = &shared.opts;
    p.cmd("EVALSHA").arg(scripts().dead_letter.get_hash()).arg(3);
    p.arg(&o.unacked_key).arg(&o.unacked_index_key).arg(to).arg(tag).arg(payload).arg("0").ignore();
}

/// Puts back the messages taken by consumer requests whose replies were never read (the socket dropped,
/// or the poller stopped with requests in flight): they are recorded in `unacked` and listed in this
/// connection's in-flight hash under the request id. They go back to the front of the list they came
/// from, unmarked (no consumer saw them).
pub(crate) fn recover_requests(shared: &Shared, inflight: &str, requests: &[String]) -> Result<usize> {
    if requests.is_empty() {
        return Ok(0);
    }
    let o = &shared.opts;
    let mut restored = 0;
    for req in requests {
        let listed: Option<String> = shared.pool.run("HGET", |c| redis::cmd("HGET").arg(inflight).arg(req).query(c))?;
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
        shared.pool.run("HDEL", |c| redis::cmd("HDEL").arg(inflight).arg(req).query::<()>(c))?;
    }
    if restored > 0 {
        tracing::info!("put back {restored} messages taken by requests whose replies were lost");
    }
    Ok(restored)
}

/// Requests whose messages could not be put back yet (the server was away), by server address and
/// database: the next connection to that server puts them back ([`recover_parked`]). Until then they
/// are in `unacked`, where the visibility timeout would restore them anyway.
type Parked = Vec<(String, String, Vec<String>)>;

fn parked() -> &'static Mutex<Parked> {
    static PARKED: OnceLock<Mutex<Parked>> = OnceLock::new();
    PARKED.get_or_init(|| Mutex::new(Vec::new()))
}

fn server_of(shared: &Shared) -> String {
    format!("{}/{}", shared.opts.address(), shared.opts.db)
}

/// Puts back, on a thread of its own, the messages taken by requests whose replies were lost with a
/// socket (the event loop must not wait for it); what cannot be put back now is parked for the next
/// connection to the same server.
pub(crate) fn recover_in_background(shared: &Arc<Shared>, requests: Vec<String>) {
    if requests.is_empty() {
        return;
    }
    let sh = shared.clone();
    let run = move || {
        let inflight = sh.inflight_key();
        if let Err(e) = recover_requests(&sh, &inflight, &requests) {
            tracing::warn!(
                "cannot put back the messages of {} lost requests yet ({e:#}); on reconnect",
                requests.len()
            );
            lock(parked()).push((server_of(&sh), inflight, requests));
        }
    };
    if let Err(e) = std::thread::Builder::new().name("kombu-redis-recover".into()).spawn(run) {
        tracing::warn!("cannot start putting back lost requests: {e}; the visibility timeout will");
    }
}

/// Puts back what earlier connections to this server parked (called when a connection opens).
pub(crate) fn recover_parked(shared: &Shared) {
    let server = server_of(shared);
    let mine: Parked = {
        let mut all = lock(parked());
        let (mine, rest) = all.drain(..).partition(|(s, _, _)| *s == server);
        *all = rest;
        mine
    };
    for (server, inflight, requests) in mine {
        if let Err(e) = recover_requests(shared, &inflight, &requests) {
            tracing::warn!("cannot put back the messages of {} lost requests yet: {e:#}", requests.len());
            lock(parked()).push((server, inflight, requests));
        }
    }
}
