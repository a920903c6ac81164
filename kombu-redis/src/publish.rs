//! Publishing: each message becomes a plan (push to known lists, route server-side, or PUBLISH for a
//! fanout exchange), and plans run as one pipeline.
//!
//! One publish is one command and less than a round trip: a direct or topic exchange is routed by the
//! ROUTE script beside its binding set, so no binding table is read or cached by the client, and the
//! reply is read later by the channel's [`Publisher`] (a window of unanswered publishes). A batch reads
//! the binding sets of its exchanges once (one round trip for the whole batch), routes in Rust by AMQP
//! rules, and sends plain variadic LPUSHes, consecutive messages to the same lists sharing one command.

use std::collections::HashMap;

use kombu_core::envelope::Envelope;
use kombu_core::routing::{headers_match, topic_matches};
use kombu_core::{ExchangeKind, FieldTable, Message, Outgoing, Result};

use crate::connection::Shared;
use crate::keys::{self, Member};
use crate::payload::new_tag;
use crate::scripts::scripts;

/// Most payloads one command carries.
const MAX_RUN: usize = 1000;

/// The binding sets of some exchanges, as read at one moment.
pub(crate) type Tables = HashMap<String, Vec<Member>>;

/// How one message (or a run of messages) is published.
#[derive(Debug, PartialEq)]
pub(crate) enum Plan {
    /// LPUSH the payloads to each list (none: the message is dropped).
    Push { keys: Vec<String>, payloads: Vec<Vec<u8>> },
    /// Route by the binding set server-side (direct, topic).
    Route { binding: String, kind: &'static str, routing_key: String, suffix: String, payloads: Vec<Vec<u8>> },
    /// PUBLISH to a fanout channel.
    Fanout { topic: String, payload: Vec<u8> },
}

impl Plan {
    /// Folds `next` into this plan when both go to the same place, keeping the order of a batch.
    fn absorb(&mut self, next: Plan) -> Option<Plan> {
        match (self, next) {
            (Plan::Push { keys, payloads }, Plan::Push { keys: k2, payloads: p2 })
                if *keys == k2 && payloads.len() < MAX_RUN =>
            {
                payloads.extend(p2);
                None
            }
            (
                Plan::Route { binding, kind, routing_key, suffix, payloads },
                Plan::Route { binding: b2, kind: k2, routing_key: r2, suffix: s2, payloads: p2 },
            ) if *binding == b2 && *kind == k2 && *routing_key == r2 && *suffix == s2 && payloads.len() < MAX_RUN => {
                payloads.extend(p2);
                None
            }
            (_, next) => Some(next),
        }
    }

    /// The commands that carry out the plan.
    fn commands(&self, prefix: &str) -> Vec<redis::Cmd> {
        match self {
            Plan::Push { keys, payloads } => keys
                .iter()
                .map(|k| {
                    let mut c = redis::cmd("LPUSH");
                    c.arg(k).arg(payloads);
                    c
                })
                .collect(),
            Plan::Route { binding, kind, routing_key, suffix, payloads } => {
                let mut c = redis::cmd("EVALSHA");
                c.arg(scripts().route.get_hash())
                    .arg(1)
                    .arg(binding)
                    .arg(*kind)
                    .arg(routing_key)
                    .arg(suffix)
                    .arg(prefix)
                    .arg(payloads);
                vec![c]
            }
            Plan::Fanout { topic, payload } => {
                let mut c = redis::cmd("PUBLISH");
                c.arg(topic).arg(payload);
                vec![c]
            }
        }
    }
}

/// The queues of `members` that take a message (AMQP rules; a fanout exchange takes every queue).
pub(crate) fn route_members(
    kind: ExchangeKind,
    members: &[Member],
    routing_key: &str,
    headers: &FieldTable,
) -> Vec<String> {
    let mut out: Vec<String> = members
        .iter()
        .filter(|m| match kind {
            ExchangeKind::Topic => topic_matches(&m.routing_key, routing_key),
            ExchangeKind::Fanout => true,
            ExchangeKind::Headers => {
                let args: FieldTable = serde_json::from_str(&m.pattern).unwrap_or_default();
                headers_match(&args, headers)
            }
            _ => m.routing_key == routing_key,
        })
        .map(|m| m.queue.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Reads the binding sets of `exchanges` in one round trip.
pub(crate) fn fetch_tables<'a>(shared: &Shared, exchanges: impl IntoIterator<Item = &'a str>) -> Result<Tables> {
    let mut names: Vec<&str> = exchanges.into_iter().filter(|e| !e.is_empty()).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Ok(Tables::new());
    }
    let prefix = &shared.opts.global_keyprefix;
    let mut p = redis::pipe();
    for e in &names {
        p.cmd("SMEMBERS").arg(keys::binding_key(prefix, e));
    }
    let sets: Vec<Vec<Vec<u8>>> = shared.pool.run("SMEMBERS", |c| p.query(c))?;
    Ok(names
        .into_iter()
        .zip(sets)
        .map(|(e, set)| (e.to_owned(), set.iter().filter_map(|m| keys::parse_member(m)).collect()))
        .collect())
}

/// The plan for one message. With `tables`, direct, topic and headers exchanges are routed here;
/// without, direct and topic are routed server-side and headers read their binding set now.
pub(crate) fn plan(
    shared: &Shared,
    message: &Message,
    exchange: &str,
    routing_key: &str,
    tables: Option<&Tables>,
) -> Result<Plan> {
    let o = &shared.opts;
    let tag = new_tag();
    let mut payload = Vec::with_capacity(256 + message.body.len() * 4 / 3);
    Envelope::write_message(message, exchange, routing_key, &tag, &mut payload);
    let step = keys::priority_step(message.properties.priority.unwrap_or(0), &o.priority_steps);
    let prefix = &o.global_keyprefix;
    if exchange.is_empty() {
        return Ok(Plan::Push { keys: vec![keys::queue_key(prefix, routing_key, step)], payloads: vec![payload] });
    }
    let kind = shared.exchange_kind(exchange);
    if kind == ExchangeKind::Fanout {
        let topic = keys::fanout_topic(prefix, &o.fanout_prefix, exchange, routing_key, o.fanout_patterns);
        return Ok(Plan::Fanout { topic, payload });
    }
    let fetched;
    let tables = match (tables, kind) {
        (Some(t), _) => Some(t),
        (None, ExchangeKind::Headers) => {
            fetched = fetch_tables(shared, [exchange])?;
            Some(&fetched)
        }
        (None, _) => None,
    };
    if let Some(tables) = tables {
        let members = tables.get(exchange).map(Vec::as_slice).unwrap_or_default();
        let queues = route_members(kind, members, routing_key, &message.headers);
        let keys = queues.iter().map(|q| keys::queue_key(prefix, q, step)).collect();
        return Ok(Plan::Push { keys, payloads: vec![payload] });
    }
    Ok(Plan::Route {
        binding: keys::binding_key(prefix, exchange),
        kind: if kind == ExchangeKind::Topic { "topic" } else { "direct" },
        routing_key: routing_key.to_owned(),
        suffix: keys::step_suffix(step),
        payloads: vec![payload],
    })
}

/// Publishes one message on the channel's publisher: written at once, its reply read later (see
/// [`Publisher`]) unless `wait`.
pub(crate) fn publish_one(
    shared: &Shared,
    publisher: &mut Publisher,
    message: &Message,
    exchange: &str,
    routing_key: &str,
    wait: bool,
) -> Result<()> {
    let plan = plan(shared, message, exchange, routing_key, None)?;
    let commands: Vec<Vec<u8>> =
        plan.commands(&shared.opts.global_keyprefix).iter().map(redis::Cmd::get_packed_command).collect();
    publisher.send(shared, commands, wait)
}

/// Most publishes whose replies are not read yet.
const WINDOW: usize = 128;

/// A channel's publishing connection. A publish is written to the socket at once, so the server runs it
/// right away, but its reply is read later: when `WINDOW` replies are due, before any other operation of
/// the channel (so the channel reads its own writes), or at once when the caller asks for a
/// confirmation. Publishing thus costs less than a round trip each. A reply that never comes (the
/// connection dropped) makes the publisher reconnect and send the unanswered commands again (at least
/// once); an error reply is reported by the next call.
#[derive(Default)]
pub(crate) struct Publisher {
    con: Option<redis::Connection>,
    unanswered: std::collections::VecDeque<Vec<u8>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("unanswered", &self.unanswered.len()).finish()
    }
}

fn is_socket_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal()
}

impl Publisher {
    fn connection(&mut self, shared: &Shared) -> Result<&mut redis::Connection> {
        if self.con.is_none() {
            self.con = Some(shared.pool.connect()?);
        }
        self.con.as_mut().ok_or_else(|| kombu_core::Error::connection("no publishing connection"))
    }

    /// Writes `commands` (one message) and, if `wait` or the window is full, reads every due reply.
    pub(crate) fn send(&mut self, shared: &Shared, commands: Vec<Vec<u8>>, wait: bool) -> Result<()> {
        if commands.is_empty() {
            // Routed to no queue: dropped, as AMQP drops it.
            return if wait { self.settle(shared) } else { Ok(()) };
        }
        if self.unanswered.len() >= WINDOW {
            self.settle(shared)?;
        } else if self.con.is_none() && !self.unanswered.is_empty() {
            // An earlier failure left publishes unconfirmed: send them again before anything new.
            self.resend(shared)?;
        }
        let mut bytes = Vec::with_capacity(commands.iter().map(Vec::len).sum());
        for c in &commands {
            bytes.extend_from_slice(c);
        }
        let con = self.connection(shared)?;
        let written = con.send_packed_command(&bytes);
        self.unanswered.extend(commands);
        if let Err(e) = written {
            tracing::debug!("publishing connection failed on write ({e}); sending again on a new one");
            self.con = None;
            return self.resend(shared);
        }
        if wait {
            self.settle(shared)?;
        }
        Ok(())
    }

    /// Reads every due reply. Returns the first error reply, after reading them all.
    pub(crate) fn settle(&mut self, shared: &Shared) -> Result<()> {
        let mut first_err = None;
        let mut noscript = Vec::new();
        while !self.unanswered.is_empty() {
            let Some(con) = self.con.as_mut() else { return self.resend(shared) };
            match con.recv_response() {
                Ok(redis::Value::ServerError(e)) => {
                    let cmd = self.unanswered.pop_front();
                    if e.code() == "NOSCRIPT" {
                        noscript.extend(cmd);
                    } else {
                        first_err.get_or_insert(kombu_core::Error::channel(format!("publish refused by redis: {e:?}")));
                    }
                }
                Ok(_) => {
                    self.unanswered.pop_front();
                }
                Err(e) if is_socket_error(&e) => {
                    tracing::debug!("publishing connection failed ({e}); sending unanswered publishes again");
                    self.con = None;
                    self.resend(shared)?;
                }
                Err(e) => {
                    self.unanswered.pop_front();
                    first_err.get_or_insert(crate::client::map_err("publish", e));
                }
            }
        }
        if !noscript.is_empty() {
            // The script cache was flushed: those did not run. Load it and send them again.
            let con = self.connection(shared)?;
            scripts().route.load(con).map_err(|e| crate::client::map_err("SCRIPT LOAD", e))?;
            for cmd in noscript {
                redis::ConnectionLike::req_packed_command(con, &cmd)
                    .map_err(|e| crate::client::map_err("publish", e))?;
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends every unanswered command again on a new connection, waiting for each reply. If that fails
    /// they stay unanswered, to be sent by the next call.
    fn resend(&mut self, shared: &Shared) -> Result<()> {
        let mut con = shared.pool.connect()?;
        while let Some(cmd) = self.unanswered.front() {
            match redis::ConnectionLike::req_packed_command(&mut con, cmd) {
                Ok(_) => {}
                Err(e) if is_socket_error(&e) => return Err(crate::client::map_err("publish", e)),
                Err(e) => tracing::warn!("publish sent again was refused: {e}"),
            }
            self.unanswered.pop_front();
        }
        self.con = Some(con);
        Ok(())
    }
}

/// Publishes a batch: one round trip for the binding sets of its exchanges, then the messages in runs of
/// up to 1,000 per command, written while the next run is prepared, and every reply read at the end.
pub(crate) fn publish_batch(shared: &Shared, publisher: &mut Publisher, batch: &[Outgoing]) -> Result<()> {
    let routed = batch.iter().map(|o| o.exchange.as_str()).filter(|e| shared.exchange_kind(e) != ExchangeKind::Fanout);
    let tables = fetch_tables(shared, routed)?;
    let prefix = &shared.opts.global_keyprefix;
    for chunk in batch.chunks(MAX_RUN) {
        let mut plans: Vec<Plan> = Vec::new();
        for o in chunk {
            let next = plan(shared, &o.message, &o.exchange, &o.routing_key, Some(&tables))?;
            let rest = match plans.last_mut() {
                Some(last) => last.absorb(next),
                None => Some(next),
            };
            plans.extend(rest);
        }
        let commands: Vec<Vec<u8>> =
            plans.iter().flat_map(|p| p.commands(prefix)).map(|c| c.get_packed_command()).collect();
        publisher.send(shared, commands, false)?;
    }
    publisher.settle(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(rk: &str, pattern: &str, q: &str) -> Member {
        Member { routing_key: rk.into(), pattern: pattern.into(), queue: q.into() }
    }

    #[test]
    fn routes_by_amqp_rules() {
        let none = FieldTable::new();
        let m = [member("a.#", "", "qa"), member("a.*", "", "qs"), member("a.#", "", "qa"), member("b", "", "qb")];
        assert_eq!(route_members(ExchangeKind::Topic, &m, "a", &none), vec!["qa"]);
        assert_eq!(route_members(ExchangeKind::Topic, &m, "a.x", &none), vec!["qa", "qs"]);
        assert_eq!(route_members(ExchangeKind::Direct, &m, "b", &none), vec!["qb"]);
        assert_eq!(route_members(ExchangeKind::Fanout, &m, "", &none), vec!["qa", "qb", "qs"]);
        let h = [member("", r#"{"x-match":"any","k":"v"}"#, "qh")];
        let headers: FieldTable = serde_json::from_str(r#"{"k":"v"}"#).unwrap();
        assert_eq!(route_members(ExchangeKind::Headers, &h, "", &headers), vec!["qh"]);
        assert!(route_members(ExchangeKind::Headers, &h, "", &none).is_empty());
    }

    #[test]
    fn runs_of_one_destination_share_a_command() {
        let push = |k: &str, p: &str| Plan::Push { keys: vec![k.into()], payloads: vec![p.as_bytes().to_vec()] };
        let mut a = push("q", "1");
        assert!(a.absorb(push("q", "2")).is_none());
        assert_eq!(a.absorb(push("r", "3")), Some(push("r", "3")));
        assert_eq!(a, Plan::Push { keys: vec!["q".into()], payloads: vec![b"1".to_vec(), b"2".to_vec()] });
        let mut big = Plan::Push { keys: vec!["q".into()], payloads: vec![Vec::new(); MAX_RUN] };
        assert!(big.absorb(push("q", "x")).is_some());
    }
}
