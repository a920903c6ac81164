//! Cases 21-23: serializers and compression, the accept list, and bodies that do not decode (21 and 22
//! through both APIs, 22's error handler and 23 through the blocking API's callbacks alone).

use super::*;

pub(super) fn content_round_trip(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    let producer = conn.producer(None, None).ctx("producer")?;
    let to = || Sending { routing_key: &q.name, ..Sending::default() };
    let value = serde_json::json!({"int": 1, "float": 2.5, "s": "ünï", "list": [1, [2]], "null": null, "t": true});
    producer.send(Body::Value(&value), &to()).ctx("publish json")?;
    let raw: Vec<u8> = vec![0, 159, 146, 150, 255];
    producer.send(Body::Bytes(raw.clone()), &to()).ctx("publish raw")?;
    let big = serde_json::json!({"p": "x".repeat(10_000)});
    producer.send(Body::Value(&big), &Sending { compression: Some("zlib"), ..to() }).ctx("publish compressed")?;
    let got = take_all(&*ch, &q.name)?;
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

pub(super) fn accept_list(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let q = Queue::new(ctx.name("q")).durable(false);
    let ch = conn.channel().ctx("channel")?;
    ch.declare(&q).ctx("declare")?;
    send(&*ch, "", &q.name, text("not json"))?;
    let how = Consume { accept: Some(Accept::new(["json"]).ctx("accept")?), ..Consume::default() };
    let mut stream = conn.consume(vec![q.clone()], how).ctx("consume")?;
    // With no error handler, the poison policy moves it to the queue's dead-letter queue.
    let dlq = PoisonPolicy::default().dead_letter_queue(&q.name);
    let dead = wait_dead_letter_of(&*conn, &mut *stream, &dlq)?;
    if dead.body != "not json".as_bytes() || dead.content_type.as_deref() != Some("text/plain") {
        return fail(format!("dead-lettered message changed: {dead:?}"));
    }
    stream.cancel().ctx("cancel")?;
    drop(stream);
    if let Some(m) = get_within(&*ch, &q.name, SETTLE)? {
        return fail(format!("refused message is in its queue as well as dead-lettered: {m:?}"));
    }
    match api {
        // The async consumer has no error handler: what it refuses goes to the poison policy.
        Api::Blocking => accept_list_error_handler(ctx, &q),
        #[cfg(feature = "tokio")]
        Api::Async => Ok(Verdict::Pass),
    }
}

/// With an error handler, the handler gets the refused message and decides.
fn accept_list_error_handler(ctx: &Ctx, q: &Queue) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
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
