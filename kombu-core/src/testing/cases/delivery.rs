//! Cases 7-18: a message's round trip and its life in a queue: order, ack, reject, restore, prefetch, sharing, priorities, purge, TTL, fairness, cancel.

use super::*;

pub(super) fn round_trip(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn fifo(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn ack_removes(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn reject(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn unacked_restored(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn prefetch(ctx: &Ctx) -> Check<Verdict> {
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
    let c = Consumer::new(&conn, [q.clone()]).channel(cch).prefetch(2).on_message(move |m| {
        if let Ok(mut h) = h.lock() {
            h.push(m);
        }
    });
    let sub = c.consume().ctx("consume")?;
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
    sub.cancel().ctx("cancel")?;
    Ok(Verdict::Pass)
}

pub(super) fn two_consumers(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn priorities(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn purge(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn ttl(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn fair_queues(ctx: &Ctx) -> Check<Verdict> {
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
    let c = Consumer::new(&conn, [qa, qb]).prefetch(1).on_message(move |m| {
        if let Ok(mut s) = s.lock() {
            s.push(String::from_utf8_lossy(&m.body).into_owned());
        }
        let _ = m.ack();
    });
    let sub = c.consume().ctx("consume")?;
    drain_until(&conn, || seen.lock().map(|s| s.len() >= 10).unwrap_or(false))?;
    sub.cancel().ctx("cancel")?;
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

pub(super) fn cancel(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    let (sub, seen) = recorder(&conn, vec![q.clone()])?;
    publish(&ch, "", &q.name, text("before"))?;
    drain_until(&conn, || seen.lock().map(|s| !s.is_empty()).unwrap_or(false))?;
    sub.cancel().ctx("cancel")?;
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
