//! Cases 27-28: unhandled messages and the dead-letter queue (the blocking API's callbacks), and
//! `max_redeliveries` (through both APIs).

use super::*;

pub(super) fn poison_dead_letter(ctx: &Ctx) -> Check<Verdict> {
    let (conn, ch, q) = good_bad_good(ctx)?;
    let good: Arc<Mutex<Vec<i64>>> = Arc::default();
    let g = good.clone();
    let c = Consumer::new(&conn, [q.clone()]).callback(move |v: serde_json::Value, m| {
        if let Ok(mut g) = g.lock() {
            g.push(v["n"].as_i64().unwrap_or(-1));
        }
        let _ = m.ack();
    });
    let sub = c.consume().ctx("consume")?;
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
    sub.cancel().ctx("cancel")?;
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
    let c = Consumer::new(conn, [q.clone()]).callback(|_: serde_json::Value, m| {
        let _ = m.ack();
    });
    let sub = c.consume().ctx("consume")?;
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
    sub.cancel().ctx("cancel")?;
    Ok(())
}

pub(super) fn max_redeliveries(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    send(&*ch, "", &q.name, text("boomerang"))?;
    let policy = PoisonPolicy::default().with_max_redeliveries(Some(2));
    let how = Consume { poison: Some(policy.clone()), ..Consume::default() };
    let mut stream = conn.consume(vec![q.clone()], how).ctx("consume")?;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let m = stream.next(WAIT).ctx("consume")?.ok_or_else(|| format!("after {seen:?} no redelivery came"))?;
        seen.push(m.delivery_info.redeliveries);
        if m.delivery_info.redeliveries.is_none() {
            m.reject(true).ctx("requeue")?;
            stream.cancel().ctx("cancel")?;
            drop(stream);
            let _ = ch.purge_queue(&q.name);
            return skip("the backend does not count redeliveries (DeliveryInfo::redeliveries is None)");
        }
        m.reject(true).ctx("requeue")?;
    }
    let dead = wait_dead_letter_of(&*conn, &mut *stream, &policy.dead_letter_queue(&q.name))?;
    if seen != [Some(0), Some(1), Some(2)] {
        return fail(format!(
            "the consumer saw deliveries with redeliveries {seen:?}; expected [0, 1, 2] then the dead-letter queue"
        ));
    }
    if &dead.body[..] != b"boomerang" {
        return fail("dead-lettered body changed");
    }
    stream.cancel().ctx("cancel")?;
    Ok(Verdict::Pass)
}
