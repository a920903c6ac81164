//! Cases 21-23: serializers and compression, the accept list, and bodies that do not decode.

use super::*;

pub(super) fn content_round_trip(ctx: &Ctx) -> Check<Verdict> {
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

pub(super) fn accept_list(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let q = Queue::new(ctx.name("q")).durable(false);
    let ch = conn.channel().ctx("channel")?;
    ch.declare(&q).ctx("declare")?;
    publish(&ch, "", &q.name, text("not json"))?;
    let ran = Arc::new(Mutex::new(0));
    let r = ran.clone();
    let cch = conn.channel().ctx("consumer channel")?;
    let c = Consumer::new(&conn, [q.clone()])
        .channel(cch.clone())
        .accept(Accept::new(["json"]).ctx("accept")?)
        .on_message(move |_| *r.lock().unwrap_or_else(|e| e.into_inner()) += 1);
    let sub = c.consume().ctx("consume")?;
    // With no error handler, the poison policy moves it to the queue's dead-letter queue.
    let dlq = PoisonPolicy::default().dead_letter_queue(&q.name);
    let dead = wait_dead_letter(&conn, &dlq)?;
    if *ran.lock().map_err(|_| "lock")? != 0 {
        return fail("callback ran for a refused content type");
    }
    if dead.body != "not json".as_bytes() || dead.content_type.as_deref() != Some("text/plain") {
        return fail(format!("dead-lettered message changed: {dead:?}"));
    }
    sub.cancel().ctx("cancel")?;
    cch.close().ctx("close consumer channel")?;
    if let Some(m) = get_wait(&ch, &q.name, SETTLE)? {
        return fail(format!("refused message is in its queue as well as dead-lettered: {m:?}"));
    }
    // With an error handler, the handler gets the message and decides.
    publish(&ch, "", &q.name, text("again"))?;
    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let h = handled.clone();
    let c = Consumer::new(&conn, [q.clone()]).accept(Accept::new(["json"]).ctx("accept")?).on_message(|_| {}).on_error(
        move |e, m| {
            if let Ok(mut h) = h.lock() {
                h.push(format!("{:?}:{}", e.kind(), String::from_utf8_lossy(&m.body)));
            }
            let _ = m.reject(false);
        },
    );
    let _sub = c.consume().ctx("consume")?;
    drain_until(&conn, || handled.lock().map(|h| !h.is_empty()).unwrap_or(false))?;
    let h = handled.lock().map_err(|_| "lock")?.clone();
    if h != ["ContentDisallowed:again"] {
        return fail(format!("error handler saw {h:?}"));
    }
    Ok(Verdict::Pass)
}

pub(super) fn decode_error(ctx: &Ctx) -> Check<Verdict> {
    let (conn, _ch, q) = good_bad_good(ctx)?;
    let good: Arc<Mutex<Vec<i64>>> = Arc::default();
    let bad: Arc<Mutex<usize>> = Arc::default();
    let (g, b) = (good.clone(), bad.clone());
    let c = Consumer::new(&conn, [q.clone()])
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
    let _sub = c.consume().ctx("consume")?;
    drain_until(&conn, || good.lock().map(|g| g.len() >= 2).unwrap_or(false))?;
    let g = good.lock().map_err(|_| "lock")?.clone();
    let b = *bad.lock().map_err(|_| "lock")?;
    if g != [1, 3] || b != 1 {
        return fail(format!("decoded {g:?} and {b} errors; expected [1, 3] and 1 error"));
    }
    Ok(Verdict::Pass)
}
