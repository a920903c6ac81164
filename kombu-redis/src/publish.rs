//! Publishing: each message has a destination (lists to push to, a binding set to route by
//! server-side, or a fanout channel to PUBLISH to), consecutive messages for one destination form a
//! run carried by one command, and commands are written as one pipeline.
//!
//! One publish is one command and less than a round trip: a direct or topic exchange is routed by the
//! ROUTE script beside its binding set, so no binding table is read or cached by the client, and the
//! reply is read later by the channel's [`Publisher`] (a window of unanswered publishes). A batch reads
//! the binding sets of its exchanges once (one round trip for the whole batch), routes in Rust by AMQP
//! rules, and sends plain variadic LPUSHes. Each envelope is serialized into a reused buffer and copied
//! once into its command, which is packed once into the bytes written to the socket.

use std::collections::HashMap;

use kombu_core::envelope::Envelope;
use kombu_core::routing::{headers_match, topic_matches};
use kombu_core::{ExchangeKind, FieldTable, Message, Outgoing, Result};

use bytes::Bytes;

use crate::connection::Shared;
use crate::keys::{self, Member};
use crate::payload::new_tag;
use crate::scripts::scripts;

/// Most payloads one command carries.
pub(crate) const MAX_RUN: usize = 1000;

/// The binding sets of some exchanges, as read at one moment.
pub(crate) type Tables = HashMap<String, Vec<Member>>;

/// Where one message goes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Destination {
    /// LPUSH to each list (none: the message is dropped).
    Lists(Vec<String>),
    /// Routed by the binding set server-side (direct, topic).
    Route { binding: String, kind: &'static str, routing_key: String, suffix: String },
    /// PUBLISH to a fanout channel.
    Fanout(String),
}

impl Destination {
    /// Gives `each` argument of the command that carries messages there, before their payloads
    /// (`prefix`: the global key prefix, `sep`: the separator of binding members); `None` when it drops
    /// them (a list of no queues). Of several lists, the first (see [`Run::into_commands`]).
    fn head<'a>(&'a self, prefix: &'a str, sep: &'a str, mut each: impl FnMut(&'a [u8])) -> Option<()> {
        match self {
            Destination::Lists(keys) => {
                let key = keys.first()?;
                each(b"LPUSH");
                each(key.as_bytes());
            }
            Destination::Route { binding, kind, routing_key, suffix } => {
                let args = [scripts().route.get_hash(), "1", binding, kind, routing_key, suffix, prefix, sep];
                each(b"EVALSHA");
                args.iter().for_each(|a| each(a.as_bytes()));
            }
            Destination::Fanout(topic) => {
                each(b"PUBLISH");
                each(topic.as_bytes());
            }
        }
        Some(())
    }

    /// Whether one command carries a message there, with more payloads after it when more messages go
    /// the same way (one list, or routed server-side; not a fanout PUBLISH).
    pub(crate) fn joinable(&self) -> bool {
        match self {
            Destination::Lists(keys) => keys.len() == 1,
            Destination::Route { .. } => true,
            Destination::Fanout(_) => false,
        }
    }
}

/// Consecutive messages for one destination, each envelope written straight into the command that
/// carries them (no copy of a payload until the command is packed for the socket).
struct Run {
    destination: Destination,
    cmd: redis::Cmd,
    len: usize,
}

impl Run {
    /// An empty run for `destination` (`prefix`: the global key prefix, `sep`: the separator of binding
    /// members); `None` when it drops its messages (a list of no queues).
    fn new(destination: Destination, prefix: &str, sep: &str) -> Option<Run> {
        let mut cmd = redis::Cmd::new();
        destination.head(prefix, sep, |arg| {
            cmd.arg(arg);
        })?;
        Some(Run { destination, cmd, len: 0 })
    }

    /// Whether the next message, going to `destination`, joins this run (a PUBLISH carries one message).
    fn takes(&self, destination: &Destination) -> bool {
        self.len < MAX_RUN && !matches!(destination, Destination::Fanout(_)) && self.destination == *destination
    }

    /// Writes the envelope of `message` as the run's next payload (through `scratch`, a buffer reused
    /// from message to message).
    fn push(&mut self, message: &Message, exchange: &str, routing_key: &str, scratch: &mut Vec<u8>) -> Result<()> {
        scratch.clear();
        Envelope::write_message(message, exchange, routing_key, &new_tag(), scratch)?;
        self.cmd.arg(&scratch[..]);
        self.len += 1;
        Ok(())
    }

    /// The commands that carry the run: one, or one LPUSH per list when the message goes to several.
    fn into_commands(self) -> Vec<redis::Cmd> {
        let Destination::Lists(keys) = &self.destination else { return vec![self.cmd] };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys.iter().skip(1) {
            let mut c = redis::cmd("LPUSH");
            c.arg(key);
            // The first two arguments are LPUSH and the first key; the payloads follow.
            for arg in self.cmd.args_iter().skip(2) {
                if let redis::Arg::Simple(bytes) = arg {
                    c.arg(bytes);
                }
            }
            out.push(c);
        }
        out.insert(0, self.cmd);
        out
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
        .map(|(e, set)| (e.to_owned(), set.iter().filter_map(|m| keys::parse_member(m, &shared.opts.sep)).collect()))
        .collect())
}

/// Where `message` goes. With `tables`, direct, topic and headers exchanges are routed here; without,
/// direct and topic are routed server-side and headers read their binding set now. `kind` is the
/// exchange's kind, when the caller knows it.
pub(crate) fn destination(
    shared: &Shared,
    message: &Message,
    exchange: &str,
    routing_key: &str,
    kind: ExchangeKind,
    tables: Option<&Tables>,
) -> Result<Destination> {
    let o = &shared.opts;
    let step = keys::priority_step(message.properties.priority.unwrap_or(0), &o.priority_steps);
    let prefix = &o.global_keyprefix;
    if exchange.is_empty() {
        return Ok(Destination::Lists(vec![keys::queue_key(prefix, routing_key, step, &o.sep)]));
    }
    if kind == ExchangeKind::Fanout {
        return Ok(Destination::Fanout(keys::fanout_topic(
            prefix,
            &o.fanout_prefix,
            exchange,
            routing_key,
            o.fanout_patterns,
        )));
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
        return Ok(Destination::Lists(queues.iter().map(|q| keys::queue_key(prefix, q, step, &o.sep)).collect()));
    }
    Ok(Destination::Route {
        binding: keys::binding_key(prefix, exchange),
        kind: if kind == ExchangeKind::Topic { "topic" } else { "direct" },
        routing_key: routing_key.to_owned(),
        suffix: keys::step_suffix(step, &o.sep),
    })
}

/// The commands that publish one message (for the channel's [`Publisher`], or a group of confirmed
/// publishes: `gather.rs`).
pub(crate) fn commands_of(
    shared: &Shared,
    message: &Message,
    exchange: &str,
    routing_key: &str,
) -> Result<Vec<redis::Cmd>> {
    let kind = shared.exchange_kind(exchange);
    let dest = destination(shared, message, exchange, routing_key, kind, None)?;
    commands_to(shared, dest, message, exchange, routing_key)
}

/// The commands that publish one message to `dest` (none: it is dropped).
pub(crate) fn commands_to(
    shared: &Shared,
    dest: Destination,
    message: &Message,
    exchange: &str,
    routing_key: &str,
) -> Result<Vec<redis::Cmd>> {
    Ok(match Run::new(dest, &shared.opts.global_keyprefix, &shared.opts.sep) {
        Some(mut run) => {
            run.push(message, exchange, routing_key, &mut Vec::new())?;
            run.into_commands()
        }
        None => Vec::new(),
    })
}

/// One message to `dest` (see [`Destination::joinable`]) as a publish the async link may carry in one
/// command with the publishes to the same place around it.
pub(crate) fn joinable(
    shared: &Shared,
    dest: Destination,
    message: &Message,
    exchange: &str,
    routing_key: &str,
) -> Result<Option<crate::wire::Joinable>> {
    let (mut head, mut args) = (Vec::with_capacity(256), 0);
    let head_of = |arg: &[u8]| {
        crate::resp::bulk(&mut head, arg);
        args += 1;
    };
    if dest.head(&shared.opts.global_keyprefix, &shared.opts.sep, head_of).is_none() {
        return Ok(None);
    }
    // The envelope's room: the body in base64 and about 500 bytes of properties, headers and tags.
    let mut payload = Vec::with_capacity(message.body.len() / 3 * 4 + 768);
    Envelope::write_message(message, exchange, routing_key, &new_tag(), &mut payload)?;
    Ok(Some(crate::wire::Joinable::new(head, args, payload)))
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
    con: Option<crate::command::CommandConnection>,
    /// Each unanswered command as packed, a slice of the bytes written.
    unanswered: std::collections::VecDeque<Bytes>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("unanswered", &self.unanswered.len()).finish()
    }
}

/// An error met after this call's commands were written: a lost connection or a time-out may have come
/// after the server ran them (and they stay unanswered, to be sent again), so the messages may be on the
/// server; a refusal (an error reply) means the command did not run.
pub(crate) fn after_write(e: kombu_core::Error) -> kombu_core::Error {
    let maybe = e.is_recoverable();
    e.with_may_have_reached_broker(maybe)
}

pub(crate) fn is_socket_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal()
}

/// A `READONLY` reply to a publish: the server is a replica now (a failover moved the master), the
/// publish did not run, and this connection will refuse every other one.
fn is_readonly(e: &redis::ServerError) -> bool {
    e.code() == "READONLY"
}

impl Publisher {
    fn connection(&mut self, shared: &Shared) -> Result<&mut crate::command::CommandConnection> {
        if self.con.is_none() {
            self.con = Some(shared.pool.connect()?);
        }
        self.con.as_mut().ok_or_else(|| kombu_core::Error::connection("no publishing connection"))
    }

    /// Writes `commands` in one write and, if `wait` or the window is full, reads every due reply.
    ///
    /// An error says whether `commands` may have reached the server
    /// ([`may_have_reached_broker`](kombu_core::Error::may_have_reached_broker)): not when it came before they
    /// were written (an earlier publish's refusal, no connection); maybe when the connection failed after.
    pub(crate) fn send(&mut self, shared: &Shared, commands: &[redis::Cmd], wait: bool) -> Result<()> {
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
        let size: usize = commands.iter().flat_map(redis::Cmd::args_iter).map(|a| arg_len(&a) + 16).sum();
        let mut packed = Vec::with_capacity(size + 16);
        let mut ends = Vec::with_capacity(commands.len());
        for c in commands {
            c.write_packed_command(&mut packed);
            ends.push(packed.len());
        }
        let packed = Bytes::from(packed);
        let con = self.connection(shared)?;
        let written = con.send_packed_command(&packed);
        let mut start = 0;
        for end in ends {
            self.unanswered.push_back(packed.slice(start..end));
            start = end;
        }
        if let Err(e) = written {
            tracing::debug!("publishing connection failed on write ({e}); sending again on a new one");
            self.con = None;
            return self.resend(shared).map_err(after_write);
        }
        if wait {
            self.settle(shared).map_err(after_write)?;
            self.replicated(shared).map_err(after_write)?;
        }
        Ok(())
    }

    /// With `wait_for_replicas`, waits (Redis `WAIT`) until that many replicas have every write of the
    /// publishing connection, so that a confirmed publish survives a failover: replication is
    /// asynchronous, and what only the old master had is dropped when it rejoins as a replica.
    fn replicated(&mut self, shared: &Shared) -> Result<()> {
        let o = &shared.opts;
        if o.wait_for_replicas == 0 {
            return Ok(());
        }
        let ms = u64::try_from(o.wait_for_replicas_timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        let con = self.connection(shared)?;
        let acked = redis::cmd("WAIT").arg(o.wait_for_replicas).arg(ms).query::<u64>(con);
        let acked = acked.map_err(|e| {
            self.con = None;
            crate::client::map_err("WAIT (wait_for_replicas)", e)
        })?;
        if acked < o.wait_for_replicas as u64 {
            // The replicas may have a new master (a failover): the next publish dials again.
            self.con = None;
            shared.pool.clear();
            return Err(kombu_core::Error::connection(format!(
                "only {acked} of {} replicas of {} acknowledged the publish within {:?} (wait_for_replicas)",
                o.wait_for_replicas,
                shared.dialer.address(),
                o.wait_for_replicas_timeout
            )));
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
                Ok(redis::Value::ServerError(e)) if is_readonly(&e) => {
                    // It did not run, nor did the ones written after it: sent again on a new connection,
                    // dialed again (through Sentinel, to the new master), as after a lost socket.
                    tracing::debug!("publishing connection refused as a replica now ({e:?}); sending again");
                    self.con = None;
                    shared.pool.clear();
                    self.resend(shared)?;
                }
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
                Ok(redis::Value::ServerError(e)) if is_readonly(&e) => {
                    // Still unanswered: the next call sends it again.
                    shared.pool.clear();
                    return Err(kombu_core::Error::connection(format!(
                        "publish refused by redis at {}, a replica now: {e:?}",
                        shared.dialer.address()
                    )));
                }
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

/// What a message's destination depends on, but for headers: exchange, routing key and priority.
type SameRoute<'a> = (&'a str, &'a str, Option<u8>);

/// The length of one command argument.
fn arg_len(arg: &redis::Arg<&[u8]>) -> usize {
    match arg {
        redis::Arg::Simple(bytes) => bytes.len(),
        _ => 20,
    }
}

/// Publishes a batch: one round trip for the binding sets of its exchanges, then the messages in runs of
/// up to 1,000 per command, each chunk written while the next is prepared, and every reply read at the end.
pub(crate) fn publish_batch(shared: &Shared, publisher: &mut Publisher, batch: &[Outgoing]) -> Result<()> {
    // Batches mostly go to one exchange: look a kind up only when the exchange changes.
    let mut last: Option<(&str, ExchangeKind)> = None;
    let kinds: Vec<ExchangeKind> = batch
        .iter()
        .map(|o| match last {
            Some((e, k)) if e == o.exchange => k,
            _ => {
                let k = shared.exchange_kind(&o.exchange);
                last = Some((&o.exchange, k));
                k
            }
        })
        .collect();
    let routed =
        batch.iter().zip(&kinds).filter(|(_, k)| **k != ExchangeKind::Fanout).map(|(o, _)| o.exchange.as_str());
    let tables = fetch_tables(shared, routed)?;
    let prefix = &shared.opts.global_keyprefix;
    let mut scratch = Vec::new();
    // The last destination, with the exchange, routing key and priority it was found for: consecutive
    // messages with the same three go to the same place (except through a headers exchange).
    let mut last: Option<(SameRoute, Destination)> = None;
    // Once a chunk is written, some of the batch may be on the server whatever fails next.
    let mut written = false;
    let some_written = |e: kombu_core::Error, written: bool| {
        let maybe = written || e.may_have_reached_broker();
        e.with_may_have_reached_broker(maybe)
    };
    for (chunk, kinds) in batch.chunks(MAX_RUN).zip(kinds.chunks(MAX_RUN)) {
        let mut commands: Vec<redis::Cmd> = Vec::new();
        let mut run: Option<Run> = None;
        for (o, kind) in chunk.iter().zip(kinds) {
            let (m, ex, rk) = (&o.message, o.exchange.as_str(), o.routing_key.as_str());
            let key = (ex, rk, m.properties.priority);
            let dest = match &last {
                Some((k, d)) if *k == key && *kind != ExchangeKind::Headers => d,
                _ => {
                    let dest =
                        destination(shared, m, ex, rk, *kind, Some(&tables)).map_err(|e| some_written(e, written))?;
                    &last.insert((key, dest)).1
                }
            };
            if !run.as_ref().is_some_and(|r| r.takes(dest)) {
                commands.extend(run.take().map(Run::into_commands).unwrap_or_default());
                run = Run::new(dest.clone(), prefix, &shared.opts.sep);
            }
            if let Some(r) = run.as_mut() {
                r.push(m, ex, rk, &mut scratch).map_err(|e| some_written(e, written))?;
            }
        }
        commands.extend(run.map(Run::into_commands).unwrap_or_default());
        publisher.send(shared, &commands, false).map_err(|e| some_written(e, written))?;
        written = true;
    }
    // A refusal of one message leaves the others of the batch on the server.
    publisher.settle(shared).map_err(|e| if batch.len() > 1 { some_written(e, true) } else { after_write(e) })?;
    publisher.replicated(shared).map_err(after_write)
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
        let list = |k: &str| Destination::Lists(vec![k.into()]);
        let mut run = Run::new(list("q"), "", keys::DEFAULT_SEP).unwrap();
        assert!(run.takes(&list("q")));
        assert!(!run.takes(&list("r")));
        run.push(&Message::new("1"), "", "q", &mut Vec::new()).unwrap();
        run.push(&Message::new("2"), "", "q", &mut Vec::new()).unwrap();
        let [cmd] = &run.into_commands()[..] else { panic!("one command") };
        let args: Vec<&[u8]> =
            cmd.args_iter().filter_map(|a| if let redis::Arg::Simple(b) = a { Some(b) } else { None }).collect();
        assert_eq!(&args[..2], [&b"LPUSH"[..], b"q"]);
        let bodies: Vec<_> =
            args[2..].iter().map(|p| Envelope::parse(p).unwrap().into_message().unwrap().body).collect();
        assert_eq!(bodies, ["1", "2"]);

        let mut full = Run::new(list("q"), "", keys::DEFAULT_SEP).unwrap();
        full.len = MAX_RUN;
        assert!(!full.takes(&list("q")));
        let fanout = Destination::Fanout("t".into());
        assert!(
            !Run::new(fanout.clone(), "", keys::DEFAULT_SEP).unwrap().takes(&fanout),
            "a PUBLISH carries one message"
        );
        assert!(Run::new(Destination::Lists(Vec::new()), "", keys::DEFAULT_SEP).is_none(), "no list: dropped");
    }

    #[test]
    fn a_message_for_several_lists_is_pushed_to_each() {
        let mut run = Run::new(Destination::Lists(vec!["a".into(), "b".into()]), "", keys::DEFAULT_SEP).unwrap();
        run.push(&Message::new("x"), "ex", "rk", &mut Vec::new()).unwrap();
        let commands = run.into_commands();
        let packed: Vec<Vec<u8>> = commands.iter().map(redis::Cmd::get_packed_command).collect();
        assert_eq!(packed.len(), 2);
        assert!(packed[0].starts_with(b"*3\r\n$5\r\nLPUSH\r\n$1\r\na\r\n"));
        assert!(packed[1].starts_with(b"*3\r\n$5\r\nLPUSH\r\n$1\r\nb\r\n"));
        assert_eq!(packed[0][20..], packed[1][20..], "the same payload");
    }
}
