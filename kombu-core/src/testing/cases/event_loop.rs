//! Cases 19, 20 and 32: the Hub and `drain_events`: two backends and a timer on one Hub, the drain timeout, a silent broker that delays nobody.

use super::*;

pub(super) fn hub_two_backends(ctx: &Ctx) -> Check<Verdict> {
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
        let c = Consumer::new(conn, [q.clone()]).on_message(move |m| {
            if let Ok(mut c) = c2.lock() {
                c[i] += 1;
            }
            let _ = m.ack();
        });
        let sub = c.consume().ctx("consume")?;
        consumers.push((sub, ch, q));
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

pub(super) fn drain_timeout(ctx: &Ctx) -> Check<Verdict> {
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

/// A loopback listener that accepts connections and never answers, for `for_how_long`; its port.
pub(super) fn silent_listener(for_how_long: Duration) -> Check<u16> {
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

pub(super) fn silent_broker(ctx: &Ctx) -> Check<Verdict> {
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
    let c = Consumer::new(&conn, [q.clone()]).on_message(move |m| {
        let i: usize = String::from_utf8_lossy(&m.body).parse().unwrap_or(usize::MAX);
        let at = s.lock().ok().and_then(|s| s.get(i).copied());
        if let (Some(at), Ok(mut g)) = (at, g.lock()) {
            g.push(at.elapsed());
        }
        let _ = m.ack();
    });
    let sub = c.consume().ctx("consume")?;
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
    sub.cancel().ctx("cancel")?;
    Ok(Verdict::Pass)
}
