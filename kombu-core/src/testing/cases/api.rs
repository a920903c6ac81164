//! Cases 33-34: the user API leaves no traps: a dropped subscription stops delivery and a consumer consumes
//! again after a cancel (the blocking `Consumer`); a forwarded message arrives as it was received (through
//! both APIs).

use super::*;

pub(super) fn consume_again(ctx: &Ctx) -> Check<Verdict> {
    let conn = ctx.open()?;
    let ch = conn.channel().ctx("channel")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&q).ctx("declare")?;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let consumer = Consumer::new(&conn, [q.clone()]).on_message(move |m| {
        s.lock().unwrap_or_else(|e| e.into_inner()).push(String::from_utf8_lossy(&m.body).into_owned());
        let _ = m.ack();
    });
    let got = || seen.lock().map(|s| s.clone()).unwrap_or_default();
    drop(consumer.consume().ctx("consume")?);
    publish(&ch, "", &q.name, text("one"))?;
    let _ = conn.drain_events(Some(SETTLE));
    if !got().is_empty() {
        return fail(format!("a dropped subscription still delivered {:?}", got()));
    }
    let sub = consumer.consume().ctx("consume after a drop")?;
    drain_until(&conn, || got().len() == 1)?;
    sub.cancel().ctx("cancel")?;
    publish(&ch, "", &q.name, text("two"))?;
    let _ = conn.drain_events(Some(SETTLE));
    if got().len() != 1 {
        return fail(format!("a cancelled subscription still delivered: {:?}", got()));
    }
    let sub = consumer.consume().ctx("consume after a cancel")?;
    drain_until(&conn, || got().len() == 2)?;
    sub.cancel().ctx("cancel")?;
    if got() != ["one", "two"] {
        return fail(format!("the consumer's callback got {:?}, expected [\"one\", \"two\"]", got()));
    }
    Ok(Verdict::Pass)
}

pub(super) fn forward(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let ch = conn.channel().ctx("channel")?;
    let first = Queue::new(ctx.name("q")).durable(false);
    ch.declare(&first).ctx("declare")?;
    let producer = conn.producer(None, Some("zlib")).ctx("producer")?;
    let mut headers = FieldTable::new();
    headers.insert("h", "v");
    headers.insert("nested", serde_json::json!({"list": [1, "two", true], "x": null}));
    let how = Sending {
        routing_key: &first.name,
        headers,
        priority: Some(3),
        correlation_id: Some("corr-1"),
        reply_to: Some("replies"),
        message_id: Some("mid-1"),
        timestamp: Some(1_700_000_000),
        ..Sending::default()
    };
    producer.send(Body::Value(&serde_json::json!({"n": 1, "text": "héllo"})), &how).ctx("publish")?;
    let received = get_within(&*ch, &first.name, WAIT)?.ok_or("the published message did not arrive")?;
    // Neither the relay's serializer nor its compression may touch a forwarded message; it declares the
    // exchange and the queue it forwards to, as for any publish.
    let ex = Exchange::direct(ctx.name("ex")).durable(false);
    let target = Queue::with_exchange(ctx.name("q"), ex.clone(), "relayed").durable(false);
    let relay = conn.producer(Some("text"), Some("gzip")).ctx("relay producer")?;
    let how = Sending { exchange: Some(&ex), routing_key: "relayed", declare: Some(&target), ..Sending::default() };
    relay.send(Body::Forward(&received), &how).ctx("forward")?;
    received.ack().ctx("ack")?;
    let got = get_within(&*ch, &target.name, WAIT)?.ok_or("the forwarded message did not arrive")?;
    got.ack().ctx("ack forwarded")?;
    if got.body != received.body {
        return fail(format!("body changed: {} bytes received, {} forwarded", received.body.len(), got.body.len()));
    }
    if (&got.content_type, &got.content_encoding) != (&received.content_type, &received.content_encoding) {
        return fail(format!(
            "content type/encoding changed: {:?}/{:?} -> {:?}/{:?}",
            received.content_type, received.content_encoding, got.content_type, got.content_encoding
        ));
    }
    if got.headers != received.headers {
        return fail(format!("headers changed: {:?} -> {:?}", received.headers, got.headers));
    }
    if got.properties != received.properties {
        return fail(format!("properties changed: {:?} -> {:?}", received.properties, got.properties));
    }
    if (&*got.delivery_info.exchange, &*got.delivery_info.routing_key) != (ex.name.as_str(), "relayed") {
        return fail(format!("forwarded with delivery info {:?}", got.delivery_info));
    }
    let value: serde_json::Value = got.decode().ctx("decode forwarded")?;
    if value != serde_json::json!({"n": 1, "text": "héllo"}) {
        return fail(format!("forwarded body decodes to {value}"));
    }
    Ok(Verdict::Pass)
}
