//! Cases 1-6: routing by exchange kind (direct, topic, fanout, headers), unroutable messages, unbind and
//! delete; through both APIs.

use super::*;

pub(super) fn direct_routing(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let ex = Exchange::direct(ctx.name("ex")).durable(false);
    let qs = bound_queues(ctx, &*ch, &ex, vec![Binding::new(ex.clone(), "a"), Binding::new(ex.clone(), "b")])?;
    send(&*ch, &ex.name, "a", text("to-a"))?;
    send(&*ch, &ex.name, "c", text("to-nobody"))?;
    let a = take_all(&*ch, &qs[0])?;
    let b = take_all(&*ch, &qs[1])?;
    if bodies(&a) != ["to-a"] || !b.is_empty() {
        return fail(format!("queue 'a' got {:?}, queue 'b' got {:?}", bodies(&a), bodies(&b)));
    }
    Ok(Verdict::Pass)
}

pub(super) fn topic_routing(ctx: &Ctx, api: Api) -> Check<Verdict> {
    if let Some(s) = need_kind(ctx, ExchangeKind::Topic) {
        return s;
    }
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let ex = Exchange::topic(ctx.name("ex")).durable(false);
    let patterns = ["a.#", "a.*", "#"];
    let qs = bound_queues(ctx, &*ch, &ex, patterns.iter().map(|p| Binding::new(ex.clone(), *p)).collect())?;
    for key in ["a", "a.b", "a.b.c", "x.y"] {
        send(&*ch, &ex.name, key, text(key))?;
    }
    let want: [&[&str]; 3] = [&["a", "a.b", "a.b.c"], &["a.b"], &["a", "a.b", "a.b.c", "x.y"]];
    for ((q, pattern), want) in qs.iter().zip(patterns).zip(want) {
        let got: BTreeSet<String> = bodies(&take_all(&*ch, q)?).into_iter().collect();
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        if got != want {
            return fail(format!("binding '{pattern}' took {got:?}, expected {want:?}"));
        }
    }
    Ok(Verdict::Pass)
}

pub(super) fn fanout_routing(ctx: &Ctx, api: Api) -> Check<Verdict> {
    if let Some(s) = need_kind(ctx, ExchangeKind::Fanout) {
        return s;
    }
    let conn = api.open(ctx)?;
    let ex = Exchange::fanout(ctx.name("ex")).durable(false);
    let queues: Vec<Queue> =
        (0..3).map(|i| Queue::new(ctx.name("q")).durable(false).bind(ex.clone(), format!("ignored{i}"))).collect();
    let mut stream = conn.consume(queues, Consume::default()).ctx("consume")?;
    // Lets the consumers settle in (subscriptions of pub/sub-based transports); nothing is there yet.
    if let Some(m) = stream.next(SETTLE).ctx("consume")? {
        return fail(format!("a delivery before any publish: {m:?}"));
    }
    let ch = conn.channel().ctx("channel")?;
    send(&*ch, &ex.name, "any.key", text("copy"))?;
    let mut tags = BTreeSet::new();
    while let Some(m) = stream.next(if tags.len() < 3 { WAIT } else { SETTLE }).ctx("consume")? {
        m.ack().ctx("ack")?;
        let tag = m.delivery_info.consumer_tag.as_deref().unwrap_or_default().to_owned();
        if &m.body[..] != b"copy" || !tags.insert(tag.clone()) {
            return fail(format!("expected one copy per queue (3), got a second on '{tag}' or another body: {m:?}"));
        }
    }
    if tags.len() != 3 {
        return fail(format!("expected one copy per queue (3), got {}", tags.len()));
    }
    stream.cancel().ctx("cancel")?;
    Ok(Verdict::Pass)
}

pub(super) fn headers_routing(ctx: &Ctx, api: Api) -> Check<Verdict> {
    if let Some(s) = need_kind(ctx, ExchangeKind::Headers) {
        return s;
    }
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let ex = Exchange::headers(ctx.name("ex")).durable(false);
    let bind = |mode: &str| Binding::new(ex.clone(), "").argument("x-match", mode).argument("a", "1").argument("b", 2);
    let qs = bound_queues(ctx, &*ch, &ex, vec![bind("all"), bind("any")])?;
    send(&*ch, &ex.name, "", text("both").header("a", "1").header("b", 2))?;
    send(&*ch, &ex.name, "", text("one").header("a", "1"))?;
    send(&*ch, &ex.name, "", text("none").header("c", 3))?;
    let all = bodies(&take_all(&*ch, &qs[0])?);
    let mut any = bodies(&take_all(&*ch, &qs[1])?);
    any.sort();
    if all != ["both"] || any != ["both", "one"] {
        return fail(format!("x-match=all took {all:?}, x-match=any took {any:?}"));
    }
    Ok(Verdict::Pass)
}

pub(super) fn unroutable(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let ex = Exchange::direct(ctx.name("ex")).durable(false);
    ch.declare_exchange(&ex, false).ctx("declare exchange")?;
    send(&*ch, &ex.name, "nobody", text("lost"))?;
    // The channel must still work afterwards.
    let q = Queue::new(ctx.name("q")).durable(false).bind(ex.clone(), "k");
    ch.declare(&q).ctx("declare after unroutable publish")?;
    send(&*ch, &ex.name, "k", text("kept"))?;
    let got = bodies(&take_all(&*ch, &q.name)?);
    if got != ["kept"] {
        return fail(format!("after an unroutable publish the queue got {got:?}"));
    }
    Ok(Verdict::Pass)
}

pub(super) fn unbind_and_delete(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let ex = Exchange::direct(ctx.name("ex")).durable(false);
    let q = Queue::new(ctx.name("q")).durable(false).bind(ex.clone(), "k");
    ch.declare(&q).ctx("declare")?;
    send(&*ch, &ex.name, "k", text("one"))?;
    if bodies(&take_all(&*ch, &q.name)?) != ["one"] {
        return fail("bound queue did not get the message");
    }
    ch.unbind_queue(&q.name, &ex.name, "k").ctx("unbind")?;
    send(&*ch, &ex.name, "k", text("two"))?;
    let after_unbind = bodies(&take_all(&*ch, &q.name)?);
    if !after_unbind.is_empty() {
        return fail(format!("unbound queue still got {after_unbind:?}"));
    }
    ch.bind_queue(&q.name, &ex.name, "k").ctx("bind again")?;
    ch.delete_queue(&q.name).ctx("delete queue")?;
    ch.declare_queue(&Queue::new(q.name.clone()).durable(false), false).ctx("redeclare without bindings")?;
    send(&*ch, &ex.name, "k", text("three"))?;
    let after_delete = bodies(&take_all(&*ch, &q.name)?);
    ch.delete_queue(&q.name).ctx("cleanup")?;
    if !after_delete.is_empty() {
        return fail(format!("a deleted queue's binding survived: the new queue got {after_delete:?}"));
    }
    Ok(Verdict::Pass)
}
