//! Cases 24-26: bad URLs and unknown schemes, failover with the retry policy, a consumer across a broker restart.

use super::*;

pub(super) fn bad_urls(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn failover(ctx: &Ctx) -> Check<Verdict> {
    let down = crate::testing::down::install();
    let before = down.attempts();
    let list = format!("{}://nowhere;{}", crate::testing::DOWN_SCHEME, ctx.url());
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
    let only_down = format!("{}://a;{}://b", crate::testing::DOWN_SCHEME, crate::testing::DOWN_SCHEME);
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

pub(super) fn restart(ctx: &Ctx) -> Check<Verdict> {
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
