//! Cases 1-6: routing by exchange kind (direct, topic, fanout, headers), unroutable messages, unbind and delete.

use super::*;

pub(super) fn direct_routing(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn topic_routing(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn fanout_routing(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn headers_routing(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn unroutable(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn unbind_and_delete(ctx: &Ctx) -> Check<Verdict> {
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
