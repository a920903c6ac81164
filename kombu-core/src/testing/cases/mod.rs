//! The cases of CONFORMANCE.md, one function each, in one table.
//! The cases live in one file per topic; this file has the table and the helpers they share.

#[cfg(feature = "tokio")]
mod aio;
mod api;
mod connecting;
mod content;
mod dead_letter;
mod delivery;
mod errors;
mod event_loop;
mod routing;
mod seam;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{bodies, fail, get_wait, is_kind, Check, Context, Ctx, Verdict, SETTLE, WAIT};
use crate::connection::{Connection, RetryPolicy};
use crate::consumer::{Consumer, Subscription};
use crate::entity::{Binding, Exchange, ExchangeKind, Queue};
use crate::error::ErrorKind;
use crate::fields::{Decimal, FieldTable, FieldValue};
use crate::hub::Hub;
use crate::message::{DeliveryMode, Message};
use crate::options::{OptionKind, OptionSpec};
use crate::poison::PoisonPolicy;
use crate::serialization::Accept;
use crate::transport::{Channel, PriorityOrder, PublishOptions};

#[cfg(feature = "tokio")]
use aio::*;
use api::*;
use connecting::*;
use content::*;
use dead_letter::*;
use delivery::*;
use errors::*;
use event_loop::*;
use routing::*;
use seam::*;

pub(crate) struct Case {
    pub(crate) number: u32,
    pub(crate) name: &'static str,
    pub(crate) run: Run,
}

/// How a case runs.
pub(crate) enum Run {
    /// Through the one API it is about.
    One(fn(&Ctx) -> Check<Verdict>),
    /// Through the seam, over the given API.
    Through(fn(&Ctx, Api) -> Check<Verdict>, Api),
}

impl Run {
    pub(crate) fn call(&self, ctx: &Ctx) -> Check<Verdict> {
        match self {
            Run::One(f) => f(ctx),
            Run::Through(f, api) => f(ctx, *api),
        }
    }
}

/// A case of the table: written against the seam (`both`: through the blocking API under its number,
/// and through the async API under 100 + its number), or against the blocking API.
macro_rules! blocking_entry {
    ($n:literal $name:literal $f:ident) => {
        Case { number: $n, name: $name, run: Run::One($f) }
    };
    ($n:literal $name:literal $f:ident both) => {
        Case { number: $n, name: $name, run: Run::Through($f, Api::Blocking) }
    };
}

#[cfg(feature = "tokio")]
macro_rules! async_entry {
    ($n:literal $name:literal $f:ident) => {
        None
    };
    ($n:literal $name:literal $f:ident both) => {
        Some(Case { number: $n + 100, name: concat!($name, " (async)"), run: Run::Through($f, Api::Async) })
    };
}

macro_rules! cases {
    ($($n:literal $name:literal $f:ident $($both:ident)?),* $(,)?) => {
        const BLOCKING: &[Case] = &[$(blocking_entry!($n $name $f $($both)?)),*];
        /// The cases written against the seam, through the async API.
        #[cfg(feature = "tokio")]
        const THROUGH_ASYNC: &[Option<Case>] = &[$(async_entry!($n $name $f $($both)?)),*];
        #[cfg(not(feature = "tokio"))]
        const THROUGH_ASYNC: &[Option<Case>] = &[];
    };
}

/// The async API's own cases (feature `tokio`), numbered from 40.
#[cfg(feature = "tokio")]
const ASYNC: &[Case] = &[
    Case { number: 40, name: "async publish, stream, ack and reject round trip", run: Run::One(aio_round_trip) },
    Case { number: 41, name: "async calls never block the runtime", run: Run::One(aio_never_blocks) },
    Case {
        number: 42,
        name: "async publishers and consumers on a multi-thread runtime count every message once",
        run: Run::One(aio_concurrent),
    },
    Case {
        number: 43,
        name: "async cancel returns what was not handed out, a dropped stream its unacked",
        run: Run::One(aio_cancel_and_drop),
    },
    Case { number: 44, name: "async stream holds at most the prefetch window", run: Run::One(aio_back_pressure) },
    Case { number: 45, name: "async SimpleQueue get with a time-out", run: Run::One(aio_simple_queue) },
];
#[cfg(not(feature = "tokio"))]
const ASYNC: &[Case] = &[];

/// Whether case `number` runs alone (see `Turn`): the ones that time the machine.
pub(crate) fn runs_alone(number: u32) -> bool {
    // 32: a silent broker delays no other connection; 41: no async call blocks the runtime.
    matches!(number, 32 | 41)
}

/// Every case: the blocking API's, the async API's own, then the seam's cases through the async API.
pub(crate) fn all() -> impl Iterator<Item = &'static Case> {
    BLOCKING.iter().chain(ASYNC).chain(THROUGH_ASYNC.iter().flatten())
}

cases! {
    1 "direct routing" direct_routing both,
    2 "topic routing" topic_routing both,
    3 "fanout routing" fanout_routing both,
    4 "headers routing" headers_routing both,
    5 "unroutable message is dropped" unroutable both,
    6 "unbind and queue delete stop delivery" unbind_and_delete both,
    7 "message round trip" round_trip both,
    8 "FIFO within a queue" fifo both,
    9 "ack removes for good" ack_removes both,
    10 "reject with and without requeue" reject both,
    11 "unacked message comes back when its channel closes" unacked_restored both,
    12 "prefetch limits unacked deliveries" prefetch both,
    13 "two consumers share a queue without duplicates" two_consumers both,
    14 "priorities" priorities both,
    15 "purge" purge both,
    16 "message TTL" ttl both,
    17 "consumer on several queues is fair" fair_queues both,
    18 "cancel stops delivery" cancel both,
    19 "one Hub drives two backends with a timer" hub_two_backends,
    20 "drain_events timeout" drain_timeout,
    21 "serializers and compression round trip" content_round_trip both,
    22 "accept list refuses without losing" accept_list both,
    23 "undecodable body does not stop the consumer" decode_error,
    24 "bad URLs and unknown schemes" bad_urls,
    25 "failover and retry policy" failover,
    26 "consumer survives a broker restart" restart,
    27 "unhandled messages go to on_error or the dead-letter queue" poison_dead_letter,
    28 "max_redeliveries sends a message to the dead-letter queue" max_redeliveries both,
    31 "unknown or out-of-range options are errors" options_checked,
    30 "one condition, one ErrorKind on every backend: closed channel, closed connection, passive declare of a missing queue or exchange, refused credentials, refused connection" one_kind_per_condition both,
    32 "a silent broker on the same Hub delays no other connection" silent_broker,
    33 "a dropped subscription stops delivery; a cancelled consumer consumes again" consume_again,
    34 "a forwarded message arrives as it was received" forward both,
}

fn text(body: &str) -> Message {
    Message::new(body.to_owned()).content_type("text/plain").content_encoding("utf-8")
}

fn publish(ch: &Arc<dyn Channel>, ex: &str, key: &str, m: Message) -> Check {
    ch.publish(m, ex, key, &PublishOptions::default()).ctx(&format!("publish to '{ex}' with key '{key}'"))
}

fn skip(why: impl Into<String>) -> Check<Verdict> {
    Ok(Verdict::Skip(why.into()))
}

fn need_kind(ctx: &Ctx, kind: ExchangeKind) -> Option<Check<Verdict>> {
    (!ctx.caps().supports(kind)).then(|| skip(format!("transport declares no {kind} exchanges")))
}

/// Declares `exchange` and one queue per binding key; returns the queue names.
fn bound_queues(ctx: &Ctx, ch: &dyn Chan, exchange: &Exchange, bindings: Vec<Binding>) -> Check<Vec<String>> {
    let mut names = Vec::new();
    for b in bindings {
        let q = Queue::new(ctx.name("q")).durable(false).binding(Binding { exchange: exchange.clone(), ..b });
        ch.declare(&q).ctx("declare queue")?;
        names.push(q.name);
    }
    Ok(names)
}

/// What a recorder saw: (consumer tag, body) per delivery.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Starts a consumer on each queue that records bodies (and acks).
fn recorder(conn: &Connection, queues: Vec<Queue>) -> Check<(Subscription, Seen)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let c = Consumer::new(conn, queues).on_message(move |m: Message| {
        let body = String::from_utf8_lossy(&m.body).into_owned();
        let key = m.delivery_info.consumer_tag.as_deref().unwrap_or_default().to_owned();
        if let Ok(mut s) = s.lock() {
            s.push((key, body));
        }
        let _ = m.ack();
    });
    let sub = c.consume().ctx("consume")?;
    Ok((sub, seen))
}

/// Runs `drain_events` until `done` says so or `WAIT` passes.
fn drain_until(conn: &Connection, done: impl Fn() -> bool) -> Check {
    let end = Instant::now() + WAIT;
    while !done() {
        if Instant::now() >= end {
            return fail("timed out waiting for deliveries");
        }
        match conn.drain_events(Some(Duration::from_millis(100))) {
            Ok(_) => {}
            Err(e) if is_kind(&e, ErrorKind::Timeout) => {}
            Err(e) => return fail(format!("drain_events: {e}")),
        }
    }
    Ok(())
}

/// A fresh queue holding three JSON messages, `{"n": 1}`, one that does not decode, and `{"n": 3}`.
fn good_bad_good(ctx: &Ctx) -> Check<(Connection, Arc<dyn Channel>, Queue)> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    let json = |b: &str| Message::new(b.to_owned()).content_type("application/json").content_encoding("utf-8");
    publish(&ch, "", &q.name, json(r#"{"n": 1}"#))?;
    publish(&ch, "", &q.name, json(r#"{"n": "#))?;
    publish(&ch, "", &q.name, json(r#"{"n": 3}"#))?;
    Ok((conn, ch, q))
}

/// Waits, draining `conn`'s events, for a message in the dead-letter queue `dlq`; deletes `dlq` after.
fn wait_dead_letter(conn: &Connection, dlq: &str) -> Check<Message> {
    let end = Instant::now() + WAIT;
    // Its own channel: a get from a queue that does not exist yet closes an AMQP channel.
    let mut ch = conn.channel().ctx("channel")?;
    loop {
        match conn.drain_events(Some(Duration::from_millis(50))) {
            Ok(_) => {}
            Err(e) if is_kind(&e, ErrorKind::Timeout) => {}
            Err(e) => return fail(format!("drain_events returned an error for an unhandled message: {e}")),
        }
        match ch.get(dlq, false) {
            Ok(Some(m)) => {
                m.ack().ctx("ack dead-lettered message")?;
                let _ = ch.delete_queue(dlq, false, false);
                return Ok(m);
            }
            Ok(None) => {}
            Err(_) => ch = conn.channel().ctx("channel")?,
        }
        if Instant::now() >= end {
            return fail(format!("nothing arrived in the dead-letter queue '{dlq}'"));
        }
    }
}

/// Waits, the consumer running meanwhile, for a message in the dead-letter queue `dlq`; deletes `dlq`
/// after. A delivery to the consumer meanwhile is a failure: what it refuses must not reach it.
fn wait_dead_letter_of(conn: &dyn Conn, stream: &mut dyn Stream, dlq: &str) -> Check<Delivery> {
    let end = Instant::now() + WAIT;
    // Its own channel: a get from a queue that does not exist yet closes an AMQP channel.
    let mut ch = conn.channel().ctx("channel")?;
    loop {
        if let Some(m) = stream.next(Duration::from_millis(50)).ctx("consume")? {
            return fail(format!("a message the consumer refuses reached it: {m:?}"));
        }
        match ch.get(dlq) {
            Ok(Some(m)) => {
                m.ack().ctx("ack dead-lettered message")?;
                let _ = ch.delete_queue(dlq);
                return Ok(m);
            }
            Ok(None) => {}
            Err(_) => ch = conn.channel().ctx("channel")?,
        }
        if Instant::now() >= end {
            return fail(format!("nothing arrived in the dead-letter queue '{dlq}'"));
        }
    }
}

/// The suite's URL pointing at `port` on 127.0.0.1.
fn on_loopback_port(url: &str, port: u16) -> Check<String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("suite URL {url}: {e}"))?;
    u.set_host(Some("127.0.0.1")).map_err(|e| format!("{url}: {e}"))?;
    u.set_port(Some(port)).map_err(|()| format!("{url} cannot hold a port"))?;
    Ok(u.into())
}
