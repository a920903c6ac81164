//! Cases 7-18: a message's round trip and its life in a queue: order, ack, reject, restore, prefetch,
//! sharing, priorities, purge, TTL, fairness, cancel; through both APIs.

use super::*;

pub(super) fn round_trip(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
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
        send(&*ch, "", &q.name, m)?;
        let got = get_within(&*ch, &q.name, WAIT)?.ok_or_else(|| format!("{what}: message did not arrive"))?;
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

pub(super) fn fifo(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    let sent: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    for b in &sent {
        send(&*ch, "", &q.name, text(b))?;
    }
    let got = bodies(&take_all(&*ch, &q.name)?);
    if got != sent {
        return fail(format!("order changed: {got:?}"));
    }
    Ok(Verdict::Pass)
}

pub(super) fn ack_removes(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    send(&*ch, "", &q.name, text("once"))?;
    let m = get_within(&*ch, &q.name, WAIT)?.ok_or("message did not arrive")?;
    m.ack().ctx("ack")?;
    if m.ack().is_ok() {
        return fail("a second ack of the same message succeeded");
    }
    ch.close().ctx("close")?;
    let ch2 = conn.channel().ctx("second channel")?;
    if let Some(again) = get_within(&*ch2, &q.name, SETTLE)? {
        return fail(format!("acked message seen again: {:?}", String::from_utf8_lossy(&again.body)));
    }
    Ok(Verdict::Pass)
}

pub(super) fn reject(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    send(&*ch, "", &q.name, text("bounce"))?;
    let m = get_within(&*ch, &q.name, WAIT)?.ok_or("message did not arrive")?;
    if m.delivery_info.redelivered {
        return fail("first delivery is marked redelivered");
    }
    m.reject(true).ctx("reject(requeue)")?;
    let again = get_within(&*ch, &q.name, WAIT)?.ok_or("requeued message did not come back")?;
    if !again.delivery_info.redelivered || &again.body[..] != b"bounce" {
        return fail(format!("requeued message: redelivered={}", again.delivery_info.redelivered));
    }
    again.reject(false).ctx("reject(drop)")?;
    if let Some(m) = get_within(&*ch, &q.name, SETTLE)? {
        return fail(format!("rejected message came back: {:?}", String::from_utf8_lossy(&m.body)));
    }
    Ok(Verdict::Pass)
}

pub(super) fn unacked_restored(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    send(&*ch, "", &q.name, text("keep-me"))?;
    let m = get_within(&*ch, &q.name, WAIT)?.ok_or("message did not arrive")?;
    drop(m);
    ch.close().ctx("close")?;
    let ch2 = conn.channel().ctx("second channel")?;
    let back = get_within(&*ch2, &q.name, WAIT)?.ok_or("unacked message was lost when its channel closed")?;
    back.ack().ctx("ack")?;
    if !back.delivery_info.redelivered {
        return fail("restored message is not marked redelivered");
    }
    Ok(Verdict::Pass)
}

pub(super) fn prefetch(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let q = Queue::new(ctx.name("q")).durable(false);
    let ch = conn.channel().ctx("channel")?;
    ch.declare(&q).ctx("declare")?;
    for i in 0..6 {
        send(&*ch, "", &q.name, text(&format!("p{i}")))?;
    }
    let mut stream =
        conn.consume(vec![q.clone()], Consume { prefetch: Some(2), ..Consume::default() }).ctx("consume")?;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(stream.next(WAIT).ctx("consume")?.ok_or("with prefetch 2 not two messages came")?);
    }
    if let Some(m) = stream.next(SETTLE).ctx("consume")? {
        return fail(format!("with prefetch 2 and none acked a third message came: {m:?}"));
    }
    held.remove(0).ack().ctx("ack")?;
    held.push(stream.next(WAIT).ctx("consume")?.ok_or("after one ack no further message came")?);
    if let Some(m) = stream.next(SETTLE).ctx("consume")? {
        return fail(format!("after one ack of two a second further message came: {m:?}"));
    }
    for m in held {
        m.ack().ctx("ack")?;
    }
    stream.cancel().ctx("cancel")?;
    Ok(Verdict::Pass)
}

pub(super) fn two_consumers(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let q = Queue::new(ctx.name("q")).durable(false);
    let a = api.open(ctx)?;
    let b = api.open(ctx)?;
    let ch = a.channel().ctx("channel")?;
    ch.declare(&q).ctx("declare")?;
    let mut sa = a.consume(vec![q.clone()], Consume::default()).ctx("consume")?;
    let mut sb = b.consume(vec![q.clone()], Consume::default()).ctx("consume")?;
    let n = 20;
    for i in 0..n {
        send(&*ch, "", &q.name, text(&format!("m{i}")))?;
    }
    let mut all = Vec::new();
    let end = Instant::now() + WAIT;
    while all.len() < n && Instant::now() < end {
        for stream in [&mut sa, &mut sb] {
            if let Some(m) = stream.next(Duration::from_millis(20)).ctx("consume")? {
                m.ack().ctx("ack")?;
                all.push(String::from_utf8_lossy(&m.body).into_owned());
            }
        }
    }
    sa.cancel().ctx("cancel")?;
    sb.cancel().ctx("cancel")?;
    let unique: BTreeSet<&String> = all.iter().collect();
    if all.len() != n || unique.len() != n {
        return fail(format!("{} deliveries, {} distinct, expected {n} of each", all.len(), unique.len()));
    }
    Ok(Verdict::Pass)
}

pub(super) fn priorities(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let Some(order) = ctx.caps().priority.clone() else { return skip("transport declares no priorities") };
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false).max_priority(9);
    ch.declare(&q).ctx("declare")?;
    let sent: [u8; 7] = [0, 2, 5, 9, 3, 0, 9];
    for (i, p) in sent.iter().enumerate() {
        send(&*ch, "", &q.name, text(&format!("{p}:{i}")).priority(*p))?;
    }
    std::thread::sleep(Duration::from_millis(50));
    let got = bodies(&take_all(&*ch, &q.name)?);
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

pub(super) fn purge(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    for i in 0..5 {
        send(&*ch, "", &q.name, text(&format!("m{i}")))?;
    }
    let end = Instant::now() + WAIT;
    while ch.declare_queue(&q, true).ctx("passive declare")?.message_count < 5 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let n = ch.purge_queue(&q.name).ctx("purge")?;
    if n != 5 {
        return fail(format!("purge reported {n}, expected 5"));
    }
    if let Some(m) = get_within(&*ch, &q.name, SETTLE)? {
        return fail(format!("message left after purge: {:?}", String::from_utf8_lossy(&m.body)));
    }
    Ok(Verdict::Pass)
}

pub(super) fn ttl(ctx: &Ctx, api: Api) -> Check<Verdict> {
    if !ctx.caps().message_ttl {
        return skip("transport declares no message TTL");
    }
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false).message_ttl(Duration::from_millis(150));
    ch.declare(&q).ctx("declare")?;
    send(&*ch, "", &q.name, text("expires-by-queue-ttl"))?;
    let mut short = text("expires-by-message");
    short.properties.expiration = Some(Duration::from_millis(100));
    let q2 = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q2).ctx("declare")?;
    send(&*ch, "", &q2.name, short)?;
    send(&*ch, "", &q2.name, text("lives"))?;
    std::thread::sleep(Duration::from_millis(400));
    let a = bodies(&take_all(&*ch, &q.name)?);
    let b = bodies(&take_all(&*ch, &q2.name)?);
    if !a.is_empty() || b != ["lives"] {
        return fail(format!("after expiry: queue-ttl queue gave {a:?}, per-message queue gave {b:?}"));
    }
    Ok(Verdict::Pass)
}

pub(super) fn fair_queues(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let qa = Queue::new(ctx.name("qa")).durable(false);
    let qb = Queue::new(ctx.name("qb")).durable(false);
    ch.declare(&qa).ctx("declare")?;
    ch.declare(&qb).ctx("declare")?;
    for i in 0..20 {
        send(&*ch, "", &qa.name, text(&format!("a{i}")))?;
        send(&*ch, "", &qb.name, text(&format!("b{i}")))?;
    }
    let mut stream = conn.consume(vec![qa, qb], Consume { prefetch: Some(1), ..Consume::default() }).ctx("consume")?;
    let mut first10 = Vec::new();
    while first10.len() < 10 {
        let m = stream.next(WAIT).ctx("consume")?.ok_or("timed out waiting for deliveries")?;
        m.ack().ctx("ack")?;
        first10.push(String::from_utf8_lossy(&m.body).into_owned());
    }
    stream.cancel().ctx("cancel")?;
    let from_a = first10.iter().filter(|b| b.starts_with('a')).count();
    if !(3..=7).contains(&from_a) {
        return fail(format!(
            "first 10 deliveries took {from_a} from one queue and {} from the other: {first10:?}",
            10 - from_a
        ));
    }
    Ok(Verdict::Pass)
}

pub(super) fn cancel(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    let mut stream = conn.consume(vec![q.clone()], Consume::default()).ctx("consume")?;
    send(&*ch, "", &q.name, text("before"))?;
    stream.next(WAIT).ctx("consume")?.ok_or("the message published before cancel did not come")?.ack().ctx("ack")?;
    stream.cancel().ctx("cancel")?;
    for i in 0..3 {
        send(&*ch, "", &q.name, text(&format!("after{i}")))?;
    }
    if let Some(m) = stream.next(SETTLE).ctx("consume")? {
        return fail(format!("cancelled consumer got a message after cancel: {m:?}"));
    }
    let left = take_all(&*ch, &q.name)?;
    if left.len() != 3 {
        return fail(format!("{} of 3 messages stayed in the queue after cancel", left.len()));
    }
    Ok(Verdict::Pass)
}
