//! The cases of CONFORMANCE.md, one function each, in one table.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{bodies, drain_queue, fail, get_wait, is_kind, Check, Context, Ctx, Verdict, SETTLE, WAIT};
use crate::connection::{Connection, RetryPolicy};
use crate::consumer::Consumer;
use crate::entity::{Binding, Exchange, ExchangeKind, Queue};
use crate::error::ErrorKind;
use crate::fields::{Decimal, FieldTable, FieldValue};
use crate::hub::Hub;
use crate::message::{DeliveryMode, Message};
use crate::options::{OptionKind, OptionSpec};
use crate::poison::PoisonPolicy;
use crate::producer::Producer;
use crate::serialization::Accept;
use crate::transport::{Channel, PriorityOrder, PublishOptions};

pub(crate) struct Case {
    pub(crate) number: u32,
    pub(crate) name: &'static str,
    pub(crate) run: fn(&Ctx) -> Check<Verdict>,
}

macro_rules! cases {
    ($($n:literal $name:literal $f:ident),* $(,)?) => {
        pub(crate) const CASES: &[Case] = &[$(Case { number: $n, name: $name, run: $f }),*];
    };
}

cases! {
    1 "direct routing" direct_routing,
    2 "topic routing" topic_routing,
    3 "fanout routing" fanout_routing,
    4 "headers routing" headers_routing,
    5 "unroutable message is dropped" unroutable,
    6 "unbind and queue delete stop delivery" unbind_and_delete,
    7 "message round trip" round_trip,
    8 "FIFO within a queue" fifo,
    9 "ack removes for good" ack_removes,
    10 "reject with and without requeue" reject,
    11 "unacked message comes back when its channel closes" unacked_restored,
    12 "prefetch limits unacked deliveries" prefetch,
    13 "two consumers share a queue without duplicates" two_consumers,
    14 "priorities" priorities,
    15 "purge" purge,
    16 "message TTL" ttl,
    17 "consumer on several queues is fair" fair_queues,
    18 "cancel stops delivery" cancel,
    19 "one Hub drives two backends with a timer" hub_two_backends,
    20 "drain_events timeout" drain_timeout,
    21 "serializers and compression round trip" content_round_trip,
    22 "accept list refuses without losing" accept_list,
    23 "undecodable body does not stop the consumer" decode_error,
    24 "bad URLs and unknown schemes" bad_urls,
    25 "failover and retry policy" failover,
    26 "consumer survives a broker restart" restart,
    27 "unhandled messages go to on_error or the dead-letter queue" poison_dead_letter,
    28 "max_redeliveries sends a message to the dead-letter queue" max_redeliveries,
    31 "unknown or out-of-range options are errors" options_checked,
    30 "one condition, one ErrorKind on every backend: closed channel, closed connection, passive declare of a missing queue or exchange, refused credentials, refused connection" one_kind_per_condition,
    32 "a silent broker on the same Hub delays no other connection" silent_broker,
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
fn bound_queues(ctx: &Ctx, ch: &Arc<dyn Channel>, exchange: &Exchange, bindings: Vec<Binding>) -> Check<Vec<String>> {
    let mut names = Vec::new();
    for b in bindings {
        let q = Queue::new(ctx.name("q")).durable(false).binding(Binding { exchange: exchange.clone(), ..b });
        ch.declare(&q).ctx("declare queue")?;
        names.push(q.name);
    }
    Ok(names)
}

fn direct_routing(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let ex = Exchange::direct(ctx.name("ex")).durable(false);
    let qs = bound_queues(ctx, &ch, &ex, vec![Binding::new(ex.clone(), "a"), Binding::new(ex.clone(), "b")])?;
    publish(&ch, &ex.name, "a", text("to-a"))?;
    publish(&ch, &ex.name, "c", text("to-nobody"))?;
    let a = drain_queue(&ch, &qs[0])?;
    let b = drain_queue(&ch, &qs[1])?;
    if bodies(&a) != ["to-a"] || !b.is_empty() {
        return fail(format!("queue 'a' got {:?}, queue 'b' got {:?}", bodies(&a), bodies(&b)));
    }
    Ok(Verdict::Pass)
}

fn topic_routing(ctx: &Ctx) -> Check<Verdict> {
    if let Some(s) = need_kind(ctx, ExchangeKind::Topic) {
        return s;
    }
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let ex = Exchange::topic(ctx.name("ex")).durable(false);
    let patterns = ["a.#", "a.*", "#"];
    let qs = bound_queues(ctx, &ch, &ex, patterns.iter().map(|p| Binding::new(ex.clone(), *p)).collect())?;
    for key in ["a", "a.b", "a.b.c", "x.y"] {
        publish(&ch, &ex.name, key, text(key))?;
    }
    let want: [&[&str]; 3] = [&["a", "a.b", "a.b.c"], &["a.b"], &["a", "a.b", "a.b.c", "x.y"]];
    for ((q, pattern), want) in qs.iter().zip(patterns).zip(want) {
        let got: BTreeSet<String> = bodies(&drain_queue(&ch, q)?).into_iter().collect();
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        if got != want {
            return fail(format!("binding '{pattern}' took {got:?}, expected {want:?}"));
        }
    }
    Ok(Verdict::Pass)
}

/// What a recorder saw: (consumer tag, body) per delivery.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Starts a consumer on each queue that records bodies (and acks).
fn recorder(conn: &Connection, queues: Vec<Queue>) -> Check<(Consumer, Seen)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let mut c = Consumer::new(conn, queues).on_message(move |m: Message| {
        let body = String::from_utf8_lossy(&m.body).into_owned();
        let key = m.delivery_info.consumer_tag.as_deref().unwrap_or_default().to_owned();
        if let Ok(mut s) = s.lock() {
            s.push((key, body));
        }
        let _ = m.ack();
    });
    c.consume().ctx("consume")?;
    Ok((c, seen))
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

/// Lets consumers settle in (subscriptions of pub/sub-based transports), expecting nothing yet.
fn settle(conn: &Connection) -> Check {
    match conn.drain_events(Some(SETTLE)) {
        Ok(_) | Err(_) => Ok(()),
    }
}

fn fanout_routing(ctx: &Ctx) -> Check<Verdict> {
    if let Some(s) = need_kind(ctx, ExchangeKind::Fanout) {
        return s;
    }
    let conn = ctx.open()?;
    let ex = Exchange::fanout(ctx.name("ex")).durable(false);
    let queues: Vec<Queue> =
        (0..3).map(|i| Queue::new(ctx.name("q")).durable(false).bind(ex.clone(), format!("ignored{i}"))).collect();
    let (consumer, seen) = recorder(&conn, queues)?;
    settle(&conn)?;
    let ch = conn.channel().ctx("channel")?;
    publish(&ch, &ex.name, "any.key", text("copy"))?;
    drain_until(&conn, || seen.lock().map(|s| s.len() >= 3).unwrap_or(false))?;
    std::thread::sleep(SETTLE);
    let _ = conn.drain_events(Some(Duration::from_millis(50)));
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let tags: BTreeSet<&String> = seen.iter().map(|(t, _)| t).collect();
    if seen.len() != 3 || tags.len() != 3 {
        return fail(format!("expected one copy per queue (3), got {seen:?}"));
    }
    drop(consumer);
    Ok(Verdict::Pass)
}

fn headers_routing(ctx: &Ctx) -> Check<Verdict> {
    if let Some(s) = need_kind(ctx, ExchangeKind::Headers) {
        return s;
    }
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let ex = Exchange::headers(ctx.name("ex")).durable(false);
    let bind = |mode: &str| Binding::new(ex.clone(), "").argument("x-match", mode).argument("a", "1").argument("b", 2);
    let qs = bound_queues(ctx, &ch, &ex, vec![bind("all"), bind("any")])?;
    publish(&ch, &ex.name, "", text("both").header("a", "1").header("b", 2))?;
    publish(&ch, &ex.name, "", text("one").header("a", "1"))?;
    publish(&ch, &ex.name, "", text("none").header("c", 3))?;
    let all = bodies(&drain_queue(&ch, &qs[0])?);
    let mut any = bodies(&drain_queue(&ch, &qs[1])?);
    any.sort();
    if all != ["both"] || any != ["both", "one"] {
        return fail(format!("x-match=all took {all:?}, x-match=any took {any:?}"));
    }
    Ok(Verdict::Pass)
}

fn unroutable(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let ex = Exchange::direct(ctx.name("ex")).durable(false);
    ch.declare_exchange(&ex, false).ctx("declare exchange")?;
    publish(&ch, &ex.name, "nobody", text("lost"))?;
    // The channel must still work afterwards.
    let q = Queue::new(ctx.name("q")).durable(false).bind(ex.clone(), "k");
    ch.declare(&q).ctx("declare after unroutable publish")?;
    publish(&ch, &ex.name, "k", text("kept"))?;
    let got = bodies(&drain_queue(&ch, &q.name)?);
    if got != ["kept"] {
        return fail(format!("after an unroutable publish the queue got {got:?}"));
    }
    Ok(Verdict::Pass)
}

fn unbind_and_delete(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let ex = Exchange::direct(ctx.name("ex")).durable(false);
    let q = Queue::new(ctx.name("q")).durable(false).bind(ex.clone(), "k");
    ch.declare(&q).ctx("declare")?;
    publish(&ch, &ex.name, "k", text("one"))?;
    if bodies(&drain_queue(&ch, &q.name)?) != ["one"] {
        return fail("bound queue did not get the message");
    }
    ch.unbind_queue(&q.name, &ex.name, "k", &FieldTable::new()).ctx("unbind")?;
    publish(&ch, &ex.name, "k", text("two"))?;
    let after_unbind = bodies(&drain_queue(&ch, &q.name)?);
    if !after_unbind.is_empty() {
        return fail(format!("unbound queue still got {after_unbind:?}"));
    }
    ch.bind_queue(&q.name, &ex.name, "k", &FieldTable::new()).ctx("bind again")?;
    ch.delete_queue(&q.name, false, false).ctx("delete queue")?;
    ch.declare_queue(&Queue::new(q.name.clone()).durable(false), false).ctx("redeclare without bindings")?;
    publish(&ch, &ex.name, "k", text("three"))?;
    let after_delete = bodies(&drain_queue(&ch, &q.name)?);
    ch.delete_queue(&q.name, false, false).ctx("cleanup")?;
    if !after_delete.is_empty() {
        return fail(format!("a deleted queue's binding survived: the new queue got {after_delete:?}"));
    }
    Ok(Verdict::Pass)
}

fn round_trip(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    let binary: Vec<u8> = (0..=255u8).collect();
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let samples: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("binary", binary, "application/octet-stream", "binary"),
        ("utf-8", "héllo wörld ✓".as_bytes().to_vec(), "text/plain", "utf-8"),
        ("empty", Vec::new(), "application/data", "binary"),
        ("1 MiB", big, "application/octet-stream", "binary"),
    ];
    for (what, body, ct, enc) in samples {
        let mut m = Message::new(body.clone()).content_type(ct).content_encoding(enc).header("h", "v").header("n", 7);
        m.headers.insert("nested", serde_json::json!({"list": [1, "two", true], "x": null}));
        // The typed kinds every backend keeps (on Redis through Kombu's JSON markers).
        m.headers.insert("decimal", Decimal::new(1, 3));
        m.headers.insert("timestamp", FieldValue::Timestamp(1_700_000_000));
        m.headers.insert("bytes", vec![0u8, 0xff]);
        m.headers.insert("big", i64::MAX);
        m.headers.insert("float", 2.5);
        m.headers.insert("void", FieldValue::Void);
        m.properties.correlation_id = Some("corr-1".into());
        m.properties.message_type = Some("kind-1".into());
        m.properties.app_id = Some("app-1".into());
        m.properties.cluster_id = Some("cluster-1".into());
        m.properties.reply_to = Some("replies".into());
        m.properties.message_id = Some("mid-1".into());
        m.properties.timestamp = Some(1_700_000_000);
        m.properties.delivery_mode = Some(DeliveryMode::Persistent);
        let sent = m.clone();
        publish(&ch, "", &q.name, m)?;
        let got = get_wait(&ch, &q.name, WAIT)?.ok_or_else(|| format!("{what}: message did not arrive"))?;
        got.ack().ctx("ack")?;
        if got.body != sent.body {
            return fail(format!("{what}: body changed ({} bytes sent, {} received)", sent.body.len(), got.body.len()));
        }
        if got.content_type != sent.content_type || got.content_encoding != sent.content_encoding {
            return fail(format!(
                "{what}: content type/encoding changed: {:?}/{:?}",
                got.content_type, got.content_encoding
            ));
        }
        for (k, v) in &sent.headers {
            if got.headers.get(k) != Some(v) {
                return fail(format!("{what}: header {k} changed: {:?} -> {:?}", v, got.headers.get(k)));
            }
        }
        let (a, b) = (&sent.properties, &got.properties);
        if a.correlation_id != b.correlation_id
            || a.reply_to != b.reply_to
            || a.message_id != b.message_id
            || a.timestamp != b.timestamp
            || a.delivery_mode != b.delivery_mode
            || a.message_type != b.message_type
            || a.app_id != b.app_id
            || a.cluster_id != b.cluster_id
        {
            return fail(format!("{what}: properties changed: sent {a:?}, got {b:?}"));
        }
    }
    Ok(Verdict::Pass)
}

fn fifo(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    let sent: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    for b in &sent {
        publish(&ch, "", &q.name, text(b))?;
    }
    let got = bodies(&drain_queue(&ch, &q.name)?);
    if got != sent {
        return fail(format!("order changed: {got:?}"));
    }
    Ok(Verdict::Pass)
}

fn ack_removes(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    publish(&ch, "", &q.name, text("once"))?;
    let m = get_wait(&ch, &q.name, WAIT)?.ok_or("message did not arrive")?;
    m.ack().ctx("ack")?;
    if m.ack().is_ok() {
        return fail("a second ack of the same message succeeded");
    }
    ch.close().ctx("close")?;
    let ch2 = conn.channel().ctx("second channel")?;
    if let Some(again) = get_wait(&ch2, &q.name, SETTLE)? {
        return fail(format!("acked message seen again: {:?}", String::from_utf8_lossy(&again.body)));
    }
    Ok(Verdict::Pass)
}

fn reject(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    publish(&ch, "", &q.name, text("bounce"))?;
    let m = get_wait(&ch, &q.name, WAIT)?.ok_or("message did not arrive")?;
    if m.delivery_info.redelivered {
        return fail("first delivery is marked redelivered");
    }
    m.reject(true).ctx("reject(requeue)")?;
    let again = get_wait(&ch, &q.name, WAIT)?.ok_or("requeued message did not come back")?;
    if !again.delivery_info.redelivered || &again.body[..] != b"bounce" {
        return fail(format!("requeued message: redelivered={}", again.delivery_info.redelivered));
    }
    again.reject(false).ctx("reject(drop)")?;
    if let Some(m) = get_wait(&ch, &q.name, SETTLE)? {
        return fail(format!("rejected message came back: {:?}", String::from_utf8_lossy(&m.body)));
    }
    Ok(Verdict::Pass)
}

fn unacked_restored(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    publish(&ch, "", &q.name, text("keep-me"))?;
    let m = get_wait(&ch, &q.name, WAIT)?.ok_or("message did not arrive")?;
    drop(m);
    ch.close().ctx("close")?;
    let ch2 = conn.channel().ctx("second channel")?;
    let back = get_wait(&ch2, &q.name, WAIT)?.ok_or("unacked message was lost when its channel closed")?;
    back.ack().ctx("ack")?;
    if !back.delivery_info.redelivered {
        return fail("restored message is not marked redelivered");
    }
    Ok(Verdict::Pass)
}

fn prefetch(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let q = Queue::new(ctx.name("q")).durable(false);
    let ch = conn.channel().ctx("channel")?;
    ch.declare(&q).ctx("declare")?;
    for i in 0..6 {
        publish(&ch, "", &q.name, text(&format!("p{i}")))?;
    }
    let held: Arc<Mutex<Vec<Message>>> = Arc::default();
    let h = held.clone();
    let cch = conn.channel().ctx("consumer channel")?;
    let mut c = Consumer::new(&conn, [q.clone()]).channel(cch).prefetch(2).on_message(move |m| {
        if let Ok(mut h) = h.lock() {
            h.push(m);
        }
    });
    c.consume().ctx("consume")?;
    let count = || held.lock().map(|h| h.len()).unwrap_or(0);
    drain_until(&conn, || count() >= 2)?;
    let end = Instant::now() + SETTLE;
    while Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(50)));
    }
    if count() != 2 {
        return fail(format!("with prefetch 2 the consumer holds {} unacked messages", count()));
    }
    let first = held.lock().map_err(|_| "lock")?.remove(0);
    first.ack().ctx("ack")?;
    drain_until(&conn, || count() >= 2)?;
    let end = Instant::now() + SETTLE;
    while Instant::now() < end {
        let _ = conn.drain_events(Some(Duration::from_millis(50)));
    }
    if count() != 2 {
        return fail(format!("after one ack the consumer holds {} (expected 2)", count()));
    }
    for m in held.lock().map_err(|_| "lock")?.drain(..) {
        m.ack().ctx("ack")?;
    }
    c.cancel().ctx("cancel")?;
    Ok(Verdict::Pass)
}

fn two_consumers(ctx: &Ctx) -> Check<Verdict> {
    let q = Queue::new(ctx.name("q")).durable(false);
    let a = ctx.open()?;
    let b = ctx.open()?;
    let ch = a.channel().ctx("channel")?;
    ch.declare(&q).ctx("declare")?;
    let (ca, sa) = recorder(&a, vec![q.clone()])?;
    let (cb, sb) = recorder(&b, vec![q.clone()])?;
    let n = 20;
    for i in 0..n {
        publish(&ch, "", &q.name, text(&format!("m{i}")))?;
    }
    let total = || sa.lock().map(|s| s.len()).unwrap_or(0) + sb.lock().map(|s| s.len()).unwrap_or(0);
    let end = Instant::now() + WAIT;
    while total() < n && Instant::now() < end {
        let _ = a.drain_events(Some(Duration::from_millis(20)));
        let _ = b.drain_events(Some(Duration::from_millis(20)));
    }
    drop((ca, cb));
    let mut all: Vec<String> = sa.lock().map_err(|_| "lock")?.iter().map(|(_, b)| b.clone()).collect();
    all.extend(sb.lock().map_err(|_| "lock")?.iter().map(|(_, b)| b.clone()));
    let unique: BTreeSet<&String> = all.iter().collect();
    if all.len() != n || unique.len() != n {
        return fail(format!("{} deliveries, {} distinct, expected {n} of each", all.len(), unique.len()));
    }
    Ok(Verdict::Pass)
}

fn priorities(ctx: &Ctx) -> Check<Verdict> {
    let Some(order) = ctx.caps().priority.clone() else { return skip("transport declares no priorities") };
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false).max_priority(9);
    ch.declare(&q).ctx("declare")?;
    let sent: [u8; 7] = [0, 2, 5, 9, 3, 0, 9];
    for (i, p) in sent.iter().enumerate() {
        publish(&ch, "", &q.name, text(&format!("{p}:{i}")).priority(*p))?;
    }
    std::thread::sleep(Duration::from_millis(50));
    let got = bodies(&drain_queue(&ch, &q.name)?);
    let mut want: Vec<(usize, u8, usize)> = sent.iter().enumerate().map(|(i, p)| (0, *p, i)).collect();
    match &order {
        PriorityOrder::HighestFirst => want.sort_by_key(|(_, p, i)| (std::cmp::Reverse(*p), *i)),
        PriorityOrder::LowestFirstInBands(steps) => {
            let band = |p: u8| steps.iter().rposition(|s| *s <= p).unwrap_or(0);
            want.sort_by_key(|(_, p, i)| (band(*p), *i));
        }
    }
    let want: Vec<String> = want.iter().map(|(_, p, i)| format!("{p}:{i}")).collect();
    if got != want {
        return fail(format!("order {got:?}, expected {want:?} ({order:?})"));
    }
    Ok(Verdict::Pass)
}

fn purge(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    for i in 0..5 {
        publish(&ch, "", &q.name, text(&format!("m{i}")))?;
    }
    let end = Instant::now() + WAIT;
    while ch.declare_queue(&q, true).ctx("passive declare")?.message_count < 5 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let n = ch.purge_queue(&q.name).ctx("purge")?;
    if n != 5 {
        return fail(format!("purge reported {n}, expected 5"));
    }
    if let Some(m) = get_wait(&ch, &q.name, SETTLE)? {
        return fail(format!("message left after purge: {:?}", String::from_utf8_lossy(&m.body)));
    }
    Ok(Verdict::Pass)
}

fn ttl(ctx: &Ctx) -> Check<Verdict> {
    if !ctx.caps().message_ttl {
        return skip("transport declares no message TTL");
    }
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false).message_ttl(Duration::from_millis(150));
    ch.declare(&q).ctx("declare")?;
    publish(&ch, "", &q.name, text("expires-by-queue-ttl"))?;
    let mut short = text("expires-by-message");
    short.properties.expiration = Some(Duration::from_millis(100));
    let q2 = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q2).ctx("declare")?;
    publish(&ch, "", &q2.name, short)?;
    publish(&ch, "", &q2.name, text("lives"))?;
    std::thread::sleep(Duration::from_millis(400));
    let a = bodies(&drain_queue(&ch, &q.name)?);
    let b = bodies(&drain_queue(&ch, &q2.name)?);
    if !a.is_empty() || b != ["lives"] {
        return fail(format!("after expiry: queue-ttl queue gave {a:?}, per-message queue gave {b:?}"));
    }
    Ok(Verdict::Pass)
}

fn fair_queues(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let qa = Queue::new(ctx.name("qa")).durable(false);
    let qb = Queue::new(ctx.name("qb")).durable(false);
    ch.declare(&qa).ctx("declare")?;
    ch.declare(&qb).ctx("declare")?;
    for i in 0..20 {
        publish(&ch, "", &qa.name, text(&format!("a{i}")))?;
        publish(&ch, "", &qb.name, text(&format!("b{i}")))?;
    }
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let mut c = Consumer::new(&conn, [qa, qb]).prefetch(1).on_message(move |m| {
        if let Ok(mut s) = s.lock() {
            s.push(String::from_utf8_lossy(&m.body).into_owned());
        }
        let _ = m.ack();
    });
    c.consume().ctx("consume")?;
    drain_until(&conn, || seen.lock().map(|s| s.len() >= 10).unwrap_or(false))?;
    c.cancel().ctx("cancel")?;
    let first10: Vec<String> = seen.lock().map_err(|_| "lock")?.iter().take(10).cloned().collect();
    let from_a = first10.iter().filter(|b| b.starts_with('a')).count();
    if !(3..=7).contains(&from_a) {
        return fail(format!(
            "first 10 deliveries took {from_a} from one queue and {} from the other: {first10:?}",
            10 - from_a
        ));
    }
    Ok(Verdict::Pass)
}

fn cancel(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    let (mut c, seen) = recorder(&conn, vec![q.clone()])?;
    publish(&ch, "", &q.name, text("before"))?;
    drain_until(&conn, || seen.lock().map(|s| !s.is_empty()).unwrap_or(false))?;
    c.cancel().ctx("cancel")?;
    for i in 0..3 {
        publish(&ch, "", &q.name, text(&format!("after{i}")))?;
    }
    let _ = conn.drain_events(Some(SETTLE));
    let n = seen.lock().map(|s| s.len()).unwrap_or(0);
    if n != 1 {
        return fail(format!("cancelled consumer got {} messages after cancel", n - 1));
    }
    let left = drain_queue(&ch, &q.name)?;
    if left.len() != 3 {
        return fail(format!("{} of 3 messages stayed in the queue after cancel", left.len()));
    }
    Ok(Verdict::Pass)
}

fn hub_two_backends(ctx: &Ctx) -> Check<Verdict> {
    let Some(peer) = ctx.peer() else { return skip("no peer URL given for a second backend") };
    let conns = [ctx.open()?, Connection::open(peer).ctx("open peer")?];
    let mut hub = Hub::new().ctx("hub")?;
    let mut consumers = Vec::new();
    let counts: Arc<Mutex<[usize; 2]>> = Arc::default();
    for (i, conn) in conns.iter().enumerate() {
        conn.register_with_event_loop(&mut hub).ctx("register with hub")?;
        let q = Queue::new(ctx.name("q")).durable(false);
        let ch = conn.channel().ctx("channel")?;
        ch.declare(&q).ctx("declare")?;
        let c2 = counts.clone();
        let mut c = Consumer::new(conn, [q.clone()]).on_message(move |m| {
            if let Ok(mut c) = c2.lock() {
                c[i] += 1;
            }
            let _ = m.ack();
        });
        c.consume().ctx("consume")?;
        consumers.push((c, ch, q));
    }
    let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let t = ticks.clone();
    hub.call_repeatedly(Duration::from_millis(20), move || t.set(t.get() + 1));
    let start = Instant::now();
    let mut sent = 0;
    while Instant::now() - start < WAIT {
        if sent < 10 {
            for (_, ch, q) in &consumers {
                publish(ch, "", &q.name, text("tick"))?;
            }
            sent += 1;
        }
        hub.run_for(Duration::from_millis(20)).ctx("run hub")?;
        let c = *counts.lock().map_err(|_| "lock")?;
        if c == [10, 10] && Instant::now() - start >= Duration::from_millis(200) {
            break;
        }
    }
    let c = *counts.lock().map_err(|_| "lock")?;
    let elapsed = start.elapsed();
    let expected_ticks = (elapsed.as_millis() / 20) as u32;
    if c != [10, 10] {
        return fail(format!("deliveries per backend {c:?}, expected [10, 10]"));
    }
    if ticks.get() < expected_ticks / 2 || ticks.get() > expected_ticks + 2 {
        return fail(format!("timer fired {} times in {} ms (every 20 ms expected)", ticks.get(), elapsed.as_millis()));
    }
    Ok(Verdict::Pass)
}

fn drain_timeout(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    let (_c, seen) = recorder(&conn, vec![q.clone()])?;
    let start = Instant::now();
    match conn.drain_events(Some(Duration::from_millis(200))) {
        Err(e) if is_kind(&e, ErrorKind::Timeout) => {}
        other => return fail(format!("drain_events on an empty queue returned {other:?}")),
    }
    if start.elapsed() < Duration::from_millis(195) {
        return fail(format!("drain_events timed out early, after {:?}", start.elapsed()));
    }
    let url = ctx.url().to_owned();
    let qname = q.name.clone();
    let publisher = std::thread::spawn(move || -> crate::Result<()> {
        std::thread::sleep(Duration::from_millis(150));
        let conn = Connection::open(&url)?;
        conn.channel()?.publish(text("late"), "", &qname, &PublishOptions::default())
    });
    let start = Instant::now();
    let got = conn.drain_events(Some(WAIT));
    let waited = start.elapsed();
    publisher.join().map_err(|_| "publisher thread panicked")?.ctx("publish from another thread")?;
    match got {
        Ok(n) if n >= 1 => {}
        other => return fail(format!("drain_events with a message coming returned {other:?}")),
    }
    if waited < Duration::from_millis(100) {
        return fail(format!("drain_events returned after {waited:?}, before the message was published"));
    }
    if seen.lock().map(|s| s.len()).unwrap_or(0) != 1 {
        return fail("callback did not run for the message");
    }
    Ok(Verdict::Pass)
}

fn content_round_trip(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    let producer = Producer::on_channel(ch.clone()).routing_key(q.name.clone());
    let value = serde_json::json!({"int": 1, "float": 2.5, "s": "ünï", "list": [1, [2]], "null": null, "t": true});
    producer.publish(&value).send().ctx("publish json")?;
    let raw: Vec<u8> = vec![0, 159, 146, 150, 255];
    producer.publish_bytes(raw.clone()).send().ctx("publish raw")?;
    let big = serde_json::json!({"p": "x".repeat(10_000)});
    producer.publish(&big).compression("zlib").send().ctx("publish compressed")?;
    let got = drain_queue(&ch, &q.name)?;
    if got.len() != 3 {
        return fail(format!("{} of 3 messages arrived", got.len()));
    }
    let v: serde_json::Value = got[0].decode().ctx("decode json")?;
    if v != value {
        return fail(format!("json changed: {v}"));
    }
    if got[1].body[..] != raw[..] || got[1].content_type.as_deref() != Some("application/data") {
        return fail(format!("raw body changed: {:?} ({:?})", &got[1].body[..], got[1].content_type));
    }
    if got[2].headers.get("compression").and_then(|c| c.as_str()) != Some("application/x-gzip") {
        return fail(format!("compressed message lacks the compression header: {:?}", got[2].headers));
    }
    if got[2].body.len() >= 10_000 {
        return fail("compressed body is not smaller");
    }
    let b: serde_json::Value = got[2].decode().ctx("decode compressed")?;
    if b != big {
        return fail("compressed json changed");
    }
    Ok(Verdict::Pass)
}

fn accept_list(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let q = Queue::new(ctx.name("q")).durable(false);
    let ch = conn.channel().ctx("channel")?;
    ch.declare(&q).ctx("declare")?;
    publish(&ch, "", &q.name, text("not json"))?;
    let ran = Arc::new(Mutex::new(0));
    let r = ran.clone();
    let cch = conn.channel().ctx("consumer channel")?;
    let mut c = Consumer::new(&conn, [q.clone()])
        .channel(cch.clone())
        .accept(Accept::new(["json"]).ctx("accept")?)
        .on_message(move |_| *r.lock().unwrap_or_else(|e| e.into_inner()) += 1);
    c.consume().ctx("consume")?;
    // With no error handler, the poison policy moves it to the queue's dead-letter queue.
    let dlq = PoisonPolicy::default().dead_letter_queue(&q.name);
    let dead = wait_dead_letter(&conn, &dlq)?;
    if *ran.lock().map_err(|_| "lock")? != 0 {
        return fail("callback ran for a refused content type");
    }
    if dead.body != "not json".as_bytes() || dead.content_type.as_deref() != Some("text/plain") {
        return fail(format!("dead-lettered message changed: {dead:?}"));
    }
    c.cancel().ctx("cancel")?;
    cch.close().ctx("close consumer channel")?;
    if let Some(m) = get_wait(&ch, &q.name, SETTLE)? {
        return fail(format!("refused message is in its queue as well as dead-lettered: {m:?}"));
    }
    // With an error handler, the handler gets the message and decides.
    publish(&ch, "", &q.name, text("again"))?;
    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let h = handled.clone();
    let mut c = Consumer::new(&conn, [q.clone()])
        .accept(Accept::new(["json"]).ctx("accept")?)
        .on_message(|_| {})
        .on_error(move |e, m| {
            if let Ok(mut h) = h.lock() {
                h.push(format!("{:?}:{}", e.kind(), String::from_utf8_lossy(&m.body)));
            }
            let _ = m.reject(false);
        });
    c.consume().ctx("consume")?;
    drain_until(&conn, || handled.lock().map(|h| !h.is_empty()).unwrap_or(false))?;
    let h = handled.lock().map_err(|_| "lock")?.clone();
    if h != ["ContentDisallowed:again"] {
        return fail(format!("error handler saw {h:?}"));
    }
    Ok(Verdict::Pass)
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

fn decode_error(ctx: &Ctx) -> Check<Verdict> {
    let (conn, _ch, q) = good_bad_good(ctx)?;
    let good: Arc<Mutex<Vec<i64>>> = Arc::default();
    let bad: Arc<Mutex<usize>> = Arc::default();
    let (g, b) = (good.clone(), bad.clone());
    let mut c = Consumer::new(&conn, [q.clone()])
        .callback(move |v: serde_json::Value, m| {
            if let Ok(mut g) = g.lock() {
                g.push(v["n"].as_i64().unwrap_or(-1));
            }
            let _ = m.ack();
        })
        .on_error(move |e, m| {
            if e.kind() == ErrorKind::Serialization {
                *b.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            }
            let _ = m.reject(false);
        });
    c.consume().ctx("consume")?;
    drain_until(&conn, || good.lock().map(|g| g.len() >= 2).unwrap_or(false))?;
    let g = good.lock().map_err(|_| "lock")?.clone();
    let b = *bad.lock().map_err(|_| "lock")?;
    if g != [1, 3] || b != 1 {
        return fail(format!("decoded {g:?} and {b} errors; expected [1, 3] and 1 error"));
    }
    Ok(Verdict::Pass)
}

fn bad_urls(ctx: &Ctx) -> Check<Verdict> {
    let scheme = ctx.url().split("://").next().unwrap_or("").to_owned();
    let typo = format!("{scheme}x://localhost");
    match Connection::open(&typo) {
        Err(e) if e.kind() == ErrorKind::UnknownTransport => {
            if !e.to_string().contains(&format!("did you mean '{scheme}'")) {
                return fail(format!("unknown scheme error does not suggest '{scheme}': {e}"));
            }
        }
        other => return fail(format!("{typo} opened: {other:?}")),
    }
    let rest = ctx.url().split_once("://").map(|x| x.1).unwrap_or("");
    for bad in [
        format!("{scheme}://[::1"),
        format!("{scheme}://host:99999/"),
        format!("{scheme}:{rest}"),
        format!("{scheme}://ho st/"),
        String::new(),
        ";;".to_owned(),
    ] {
        match Connection::open(&bad) {
            Err(e) if e.kind() == ErrorKind::InvalidArgument => {}
            other => return fail(format!("malformed URL {bad:?} gave {other:?}")),
        }
    }
    Ok(Verdict::Pass)
}

fn failover(ctx: &Ctx) -> Check<Verdict> {
    let down = super::down::install();
    let before = down.attempts();
    let list = format!("{}://nowhere;{}", super::DOWN_SCHEME, ctx.url());
    let conn = Connection::builder(&list).retry(RetryPolicy::none()).open().ctx("open failover list")?;
    conn.connect().ctx("connect through failover")?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare on the second URL")?;
    if down.attempts() != before + 1 {
        return fail(format!("down URL tried {} times, expected once", down.attempts() - before));
    }
    let policy = RetryPolicy::default().max_retries(Some(2)).intervals(
        Duration::from_millis(30),
        Duration::from_millis(30),
        Duration::from_millis(100),
    );
    let only_down = format!("{}://a;{}://b", super::DOWN_SCHEME, super::DOWN_SCHEME);
    let conn = Connection::builder(&only_down).retry(policy).open().ctx("open down list")?;
    let before = down.attempts();
    let start = Instant::now();
    match conn.connect() {
        Err(e) if e.kind() == ErrorKind::Connection => {}
        other => return fail(format!("connecting to brokers that are down gave {other:?}")),
    }
    let attempts = down.attempts() - before;
    if attempts != 6 {
        return fail(format!("2 URLs x (1 + 2 retries) should be 6 attempts, were {attempts}"));
    }
    if start.elapsed() < Duration::from_millis(90) {
        return fail(format!("retries did not wait their intervals ({:?})", start.elapsed()));
    }
    Ok(Verdict::Pass)
}

fn restart(ctx: &Ctx) -> Check<Verdict> {
    if !ctx.caps().external_broker {
        return skip("the broker runs in-process and cannot restart");
    }
    let Some(hook) = ctx.restart_hook() else { return skip("no restart hook given") };
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(true);
    ch.declare(&q).ctx("declare")?;
    for i in 0..3 {
        let mut m = text(&format!("r{i}"));
        m.properties.delivery_mode = Some(DeliveryMode::Persistent);
        publish(&ch, "", &q.name, m)?;
    }
    std::thread::sleep(Duration::from_millis(100));
    hook().ctx("restart broker")?;
    let (c, seen) = recorder(&conn, vec![q.clone()])?;
    let end = Instant::now() + WAIT * 2;
    while seen.lock().map(|s| s.len()).unwrap_or(0) < 3 && Instant::now() < end {
        match conn.drain_events(Some(Duration::from_millis(100))) {
            Ok(_) => {}
            Err(e) if e.is_recoverable() => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return fail(format!("after restart: {e}")),
        }
    }
    drop(c);
    let got: BTreeSet<String> = seen.lock().map_err(|_| "lock")?.iter().map(|(_, b)| b.clone()).collect();
    let _ = conn.channel().and_then(|ch| ch.delete_queue(&q.name, false, false));
    if got.len() != 3 {
        return fail(format!("after a restart the consumer got {got:?}, expected r0, r1, r2"));
    }
    Ok(Verdict::Pass)
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

fn poison_dead_letter(ctx: &Ctx) -> Check<Verdict> {
    let (conn, ch, q) = good_bad_good(ctx)?;
    let good: Arc<Mutex<Vec<i64>>> = Arc::default();
    let g = good.clone();
    let mut c = Consumer::new(&conn, [q.clone()]).callback(move |v: serde_json::Value, m| {
        if let Ok(mut g) = g.lock() {
            g.push(v["n"].as_i64().unwrap_or(-1));
        }
        let _ = m.ack();
    });
    c.consume().ctx("consume")?;
    let dlq = PoisonPolicy::default().dead_letter_queue(&q.name);
    let dead = wait_dead_letter(&conn, &dlq)?;
    drain_until(&conn, || good.lock().map(|g| g.len() >= 2).unwrap_or(false))?;
    if &dead.body[..] != br#"{"n": "# {
        return fail(format!("dead-lettered body changed: {:?}", String::from_utf8_lossy(&dead.body)));
    }
    let g = good.lock().map_err(|_| "lock")?.clone();
    if g != [1, 3] {
        return fail(format!("the consumer did not go on: decoded {g:?}, expected [1, 3]"));
    }
    c.cancel().ctx("cancel")?;
    if let Some(m) = get_wait(&ch, &q.name, SETTLE)? {
        return fail(format!("undecodable message also stayed in its queue: {m:?}"));
    }
    if ctx.caps().dead_letter {
        broker_dead_letter(ctx, &conn)?;
    }
    Ok(Verdict::Pass)
}

/// Where the broker dead-letters (a queue declared with a dead-letter exchange), the poison policy
/// uses the queue's own dead-letter exchange.
fn broker_dead_letter(ctx: &Ctx, conn: &Connection) -> Check {
    let ch = conn.channel().ctx("channel")?;
    let dlx = Exchange::new(ctx.name("dlx"), ExchangeKind::Fanout).durable(false);
    let target = Queue::new(ctx.name("dlx-target")).durable(false).binding(Binding::new(dlx.clone(), ""));
    ch.declare(&target).ctx("declare the dead-letter exchange's queue")?;
    let q = Queue::new(ctx.name("q")).durable(false).dead_letter(dlx.name.clone(), None);
    let mut c = Consumer::new(conn, [q.clone()]).callback(|_: serde_json::Value, m| {
        let _ = m.ack();
    });
    c.consume().ctx("consume")?;
    let bad = Message::new(&b"{not json"[..]).content_type("application/json").content_encoding("utf-8");
    publish(&ch, "", &q.name, bad)?;
    let end = Instant::now() + WAIT;
    loop {
        conn.drain_events(Some(Duration::from_millis(50)))
            .or_else(|e| if is_kind(&e, ErrorKind::Timeout) { Ok(0) } else { Err(e) })
            .ctx("drain")?;
        if let Some(m) = ch.get(&target.name, false).ctx("get from the dead-letter exchange's queue")? {
            m.ack().ctx("ack")?;
            break;
        }
        if Instant::now() >= end {
            return fail("a refused message from a queue with a dead-letter exchange did not reach that exchange");
        }
    }
    c.cancel().ctx("cancel")?;
    Ok(())
}

fn max_redeliveries(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    publish(&ch, "", &q.name, text("boomerang"))?;
    let seen: Arc<Mutex<Vec<Option<u32>>>> = Arc::default();
    let s = seen.clone();
    let policy = PoisonPolicy::default().with_max_redeliveries(Some(2));
    let mut c = Consumer::new(&conn, [q.clone()]).poison_policy(policy.clone()).on_message(move |m| {
        if let Ok(mut s) = s.lock() {
            s.push(m.delivery_info.redeliveries);
        }
        let _ = m.requeue();
    });
    c.consume().ctx("consume")?;
    drain_until(&conn, || seen.lock().map(|s| s.len() >= 2).unwrap_or(false))?;
    if seen.lock().map_err(|_| "lock")?.iter().any(Option::is_none) {
        c.cancel().ctx("cancel")?;
        let _ = ch.purge_queue(&q.name);
        return skip("the backend does not count redeliveries (DeliveryInfo::redeliveries is None)");
    }
    let dead = wait_dead_letter(&conn, &policy.dead_letter_queue(&q.name))?;
    let s = seen.lock().map_err(|_| "lock")?.clone();
    if s != [Some(0), Some(1), Some(2)] {
        return fail(format!(
            "callback saw deliveries with redeliveries {s:?}; expected [0, 1, 2] then the dead-letter queue"
        ));
    }
    if &dead.body[..] != b"boomerang" {
        return fail("dead-lettered body changed");
    }
    Ok(Verdict::Pass)
}

/// `url` with one more query option.
fn with_option(url: &str, name: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{name}={value}")
}

/// A misspelling of `name` (one letter dropped from its middle) that no declared option is nearer to.
fn misspelling(name: &str, specs: &[OptionSpec]) -> Option<String> {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() < 4 {
        return None;
    }
    let mut typo = chars.clone();
    typo.remove(chars.len() / 2);
    let typo: String = typo.into_iter().collect();
    let clear = specs
        .iter()
        .filter(|s| s.name != name)
        .all(|s| s.name != typo && strsim::damerau_levenshtein(&typo, s.name) > 1);
    clear.then_some(typo)
}

fn options_checked(ctx: &Ctx) -> Check<Verdict> {
    let scheme = ctx.url().split("://").next().unwrap_or("").to_owned();
    let transport = super::registry().get(&scheme).ctx("transport")?;
    let Some(specs) = transport.options() else {
        return skip(format!("transport {} declares no options table", transport.name()));
    };
    let refused = |url: &str, expect: &str| -> Check {
        match Connection::open(url) {
            Err(e) if e.kind() == ErrorKind::InvalidArgument && e.to_string().contains(expect) => Ok(()),
            Err(e) => fail(format!("{url}: error does not say \"{expect}\": {e}")),
            Ok(_) => fail(format!("{url} opened")),
        }
    };
    let unknown = "kombu_conformance_no_such_option";
    refused(&with_option(ctx.url(), unknown, "1"), &format!("unknown option '{unknown}'"))?;
    if specs.is_empty() {
        return skip(format!(
            "transport {} declares no options (an unknown one is refused; none to misspell or set out of range)",
            transport.name()
        ));
    }
    // A misspelled real option names the real one.
    let Some((name, typo)) = specs.iter().find_map(|s| misspelling(s.name, specs).map(|t| (s.name, t))) else {
        return fail("no declared option has a clear misspelling (names shorter than 4 letters or too alike)");
    };
    refused(&with_option(ctx.url(), &typo, "1"), &format!("did you mean '{name}'?"))?;
    // An out-of-range value names the option and its value; the greatest allowed value opens.
    let ranged = specs.iter().find_map(|s| match s.kind {
        OptionKind::Seconds { max, .. } => {
            Some((s.name, format!("{}", max.as_secs_f64() * 10.0 + 1e9), format!("{}", max.as_secs_f64())))
        }
        _ => None,
    });
    let ranged = ranged.or_else(|| {
        specs.iter().find_map(|s| match s.kind {
            OptionKind::Count { max, .. } if max < u64::MAX => Some((s.name, (max + 1).to_string(), max.to_string())),
            _ => None,
        })
    });
    if let Some((name, bad, good)) = ranged {
        refused(&with_option(ctx.url(), name, &bad), &format!("'{name}={bad}'"))?;
        refused(&with_option(ctx.url(), name, "not-a-number"), &format!("'{name}=not-a-number'"))?;
        if let OptionKind::Seconds { .. } =
            specs.iter().find(|s| s.name == name).map(|s| s.kind).unwrap_or(OptionKind::Text)
        {
            for v in ["1e20", "inf", "NaN", "-1"] {
                refused(&with_option(ctx.url(), name, v), &format!("'{name}={v}'"))?;
            }
        }
        let url = with_option(ctx.url(), name, &good);
        Connection::open(&url).ctx(&format!("open {url} (the greatest allowed value)"))?;
    }
    Ok(Verdict::Pass)
}

/// `Err` of `kind` (and recoverable or not, as the kind is), or a failure naming what came instead.
fn expect_kind<T: std::fmt::Debug>(what: &str, got: crate::Result<T>, kind: ErrorKind) -> Check {
    match got {
        Err(e) if e.kind() == kind && e.is_recoverable() == matches!(kind, ErrorKind::Connection) => Ok(()),
        Err(e) => fail(format!("{what}: expected {kind:?}, got {:?} ({e:#})", e.kind())),
        Ok(v) => fail(format!("{what}: expected {kind:?}, got Ok({v:?})")),
    }
}

/// The suite's URL with its password replaced by a wrong one (a user name, if any, kept), for a transport
/// whose broker takes credentials.
fn with_wrong_password(url: &str) -> Check<String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("suite URL {url}: {e}"))?;
    u.set_password(Some("kombu-conformance-wrong-password")).map_err(|()| format!("{url} cannot hold a password"))?;
    Ok(u.into())
}

/// The suite's URL pointing at a loopback port with nothing listening.
fn with_refused_port(url: &str) -> Check<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))?
        .port();
    on_loopback_port(url, port)
}

/// The suite's URL pointing at `port` on 127.0.0.1.
fn on_loopback_port(url: &str, port: u16) -> Check<String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("suite URL {url}: {e}"))?;
    u.set_host(Some("127.0.0.1")).map_err(|e| format!("{url}: {e}"))?;
    u.set_port(Some(port)).map_err(|()| format!("{url} cannot hold a port"))?;
    Ok(u.into())
}

fn one_kind_per_condition(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let q = Queue::new(ctx.name("q")).durable(false);
    let ex = Exchange::new(ctx.name("ex"), ExchangeKind::Direct).durable(false);

    // A channel the program closed: State (not recoverable), for every operation.
    let ch = conn.channel().ctx("channel")?;
    ch.declare(&q).ctx("declare")?;
    ch.close().ctx("close channel")?;
    expect_kind("declare on a closed channel", ch.declare(&q), ErrorKind::State)?;
    expect_kind(
        "publish on a closed channel",
        ch.publish(text("x"), "", &q.name, &PublishOptions::default()),
        ErrorKind::State,
    )?;
    expect_kind("get on a closed channel", ch.get(&q.name, false), ErrorKind::State)?;

    // A passive declare of what does not exist: NotFound (each on a fresh channel: AMQP closes it).
    let missing = Queue::new(ctx.name("missing")).durable(false);
    let ch = conn.channel().ctx("channel")?;
    expect_kind("passive declare of a missing queue", ch.declare_queue(&missing, true), ErrorKind::NotFound)?;
    let ch = conn.channel().ctx("channel")?;
    let missing_ex = Exchange::new(ctx.name("missing-ex"), ExchangeKind::Direct);
    expect_kind("passive declare of a missing exchange", ch.declare_exchange(&missing_ex, true), ErrorKind::NotFound)?;
    let ch = conn.channel().ctx("channel")?;
    ch.declare_exchange(&ex, false).ctx("declare exchange")?;
    ch.declare_exchange(&ex, true).ctx("passive declare of an existing exchange")?;
    ch.declare_queue(&q, true).ctx("passive declare of an existing queue")?;
    ch.delete_queue(&q.name, false, false).ctx("delete queue")?;
    ch.delete_exchange(&ex.name, false).ctx("delete exchange")?;

    // A connection the program closed: State, for its channels and for a new channel.
    let ch = conn.channel().ctx("channel")?;
    conn.close().ctx("close connection")?;
    expect_kind("declare on a channel of a closed connection", ch.declare(&q), ErrorKind::State)?;
    expect_kind(
        "publish on a channel of a closed connection",
        ch.publish(text("x"), "", &q.name, &PublishOptions::default()),
        ErrorKind::State,
    )?;
    expect_kind("a channel of a closed connection", conn.channel().map(|_| ()), ErrorKind::State)?;

    if !ctx.caps().external_broker {
        return skip(
            "closed channel, closed connection and passive declares passed; refused credentials and refused \
                     connection do not apply: the transport has no network broker, so its URL has no credentials \
                     or port to get wrong",
        );
    }
    // Wrong credentials: AccessRefused (not recoverable: a retry cannot help).
    let bad = with_wrong_password(ctx.url())?;
    let c = Connection::builder(&bad).retry(RetryPolicy::none()).open().ctx("open with a wrong password")?;
    expect_kind("connecting with a wrong password", c.connect(), ErrorKind::AccessRefused)?;
    // Nothing listening: Connection, recoverable.
    let refused = with_refused_port(ctx.url())?;
    let c = Connection::builder(&refused).retry(RetryPolicy::none()).open().ctx("open a refused port")?;
    expect_kind("connecting to a port with nothing listening", c.connect(), ErrorKind::Connection)?;
    Ok(Verdict::Pass)
}

/// A loopback listener that accepts connections and never answers, for `for_how_long`; its port.
fn silent_listener(for_how_long: Duration) -> Check<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind a silent listener: {e}"))?;
    let port = listener.local_addr().map_err(|e| format!("silent listener address: {e}"))?.port();
    listener.set_nonblocking(true).map_err(|e| format!("silent listener: {e}"))?;
    std::thread::spawn(move || {
        let end = Instant::now() + for_how_long;
        let mut held = Vec::new();
        while Instant::now() < end {
            match listener.accept() {
                Ok((sock, _)) => held.push(sock),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Ok(port)
}

fn silent_broker(ctx: &Ctx) -> Check<Verdict> {
    if !ctx.caps().external_broker {
        return skip("the transport has no server that could fall silent");
    }
    let silent = on_loopback_port(ctx.url(), silent_listener(WAIT * 4)?)?;
    let silent = Connection::open(&silent).ctx("open the silent URL")?;
    let conn = ctx.open()?;
    let mut hub = Hub::new().ctx("hub")?;
    // Registering a connection to a silent broker must not wait for it.
    let before = Instant::now();
    silent.register_with_event_loop(&mut hub).ctx("register the silent connection")?;
    if before.elapsed() > Duration::from_millis(500) {
        return fail(format!("registering a silent connection took {:?}", before.elapsed()));
    }
    conn.register_with_event_loop(&mut hub).ctx("register")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    let ch = conn.channel().ctx("channel")?;
    ch.declare(&q).ctx("declare")?;
    let got: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let g = got.clone();
    let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let s = sent_at.clone();
    let mut c = Consumer::new(&conn, [q.clone()]).on_message(move |m| {
        let i: usize = String::from_utf8_lossy(&m.body).parse().unwrap_or(usize::MAX);
        let at = s.lock().ok().and_then(|s| s.get(i).copied());
        if let (Some(at), Ok(mut g)) = (at, g.lock()) {
            g.push(at.elapsed());
        }
        let _ = m.ack();
    });
    c.consume().ctx("consume")?;
    let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let t = ticks.clone();
    hub.call_repeatedly(Duration::from_millis(10), move || t.set(t.get() + 1));
    let start = Instant::now();
    let n = 40;
    for i in 0..n {
        sent_at.lock().map_err(|_| "lock")?.push(Instant::now());
        publish(&ch, "", &q.name, text(&i.to_string()))?;
        hub.run_for(Duration::from_millis(10)).ctx("run hub")?;
    }
    let end = Instant::now() + WAIT;
    while got.lock().map_err(|_| "lock")?.len() < n && Instant::now() < end {
        hub.run_for(Duration::from_millis(10)).ctx("run hub")?;
    }
    let elapsed = start.elapsed();
    let mut lat = got.lock().map_err(|_| "lock")?.clone();
    if lat.len() < n {
        return fail(format!("{} of {n} messages arrived while a silent broker shared the Hub", lat.len()));
    }
    lat.sort();
    let worst = lat[lat.len() - 1];
    // Generous bounds (a loaded machine): a loop that waits for the silent broker stalls for seconds.
    if worst > Duration::from_millis(500) {
        return fail(format!("a message took {worst:?} to arrive while a silent broker shared the Hub"));
    }
    let expected = (elapsed.as_millis() / 10) as u32;
    if ticks.get() < expected / 3 {
        return fail(format!("timer fired {} times in {} ms (every 10 ms expected)", ticks.get(), elapsed.as_millis()));
    }
    c.cancel().ctx("cancel")?;
    Ok(Verdict::Pass)
}
