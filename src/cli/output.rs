//! The JSON form of a received message that `kombu consume` prints, one object per line.

use base64::Engine as _;
use kombu_core::{DeliveryTag, Message};
use serde_json::{Map, Value};

/// A message as one JSON object: body (decompressed; text when it is UTF-8, base64 otherwise, or a JSON value
/// with `decode_json` and a JSON, msgpack or yaml content type), `body_encoding` saying which, content type and
/// encoding, headers (in Kombu's JSON: a decimal, timestamp or bytes value as its `{"__type__", "__value__"}`
/// object), properties and delivery info.
pub fn message_json(message: &Message, decode_json: bool) -> Value {
    // A body whose compression header is wrong is shown as it came rather than not at all.
    let body = message.decompressed_body().unwrap_or_else(|_| message.body.clone());
    // Structured bodies (JSON, and msgpack and yaml where built in) are shown as the JSON value they hold.
    let structured = matches!(
        message.content_type.as_deref(),
        Some("application/json" | "application/x-msgpack" | "application/x-yaml")
    );
    let decoded = (decode_json && structured)
        .then(|| kombu_core::serialization::decode::<Value>(message.content_type.as_deref(), &body).ok())
        .flatten();
    let (body, encoding) = match (decoded, std::str::from_utf8(&body)) {
        (Some(v), _) => (v, "json"),
        (None, Ok(text)) => (Value::String(text.to_owned()), "text"),
        (None, Err(_)) => (Value::String(base64::engine::general_purpose::STANDARD.encode(&body)), "base64"),
    };
    let mut out = Map::new();
    out.insert("body".into(), body);
    out.insert("body_encoding".into(), encoding.into());
    out.insert("content_type".into(), opt_str(message.content_type.as_deref()));
    out.insert("content_encoding".into(), opt_str(message.content_encoding.as_deref()));
    out.insert("headers".into(), Value::from(&message.headers));
    out.insert("properties".into(), Value::Object(properties(message)));
    out.insert("delivery_info".into(), Value::Object(delivery_info(message)));
    Value::Object(out)
}

fn opt_str(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

fn properties(message: &Message) -> Map<String, Value> {
    let p = &message.properties;
    let mut out = Map::new();
    if let Some(mode) = p.delivery_mode {
        out.insert("delivery_mode".into(), mode.as_u8().into());
    }
    if let Some(priority) = p.priority {
        out.insert("priority".into(), priority.into());
    }
    if let Some(id) = &p.correlation_id {
        out.insert("correlation_id".into(), id.clone().into());
    }
    if let Some(to) = &p.reply_to {
        out.insert("reply_to".into(), to.clone().into());
    }
    if let Some(ttl) = p.expiration {
        // Seconds, as Kombu's `publish(expiration=...)` takes them.
        out.insert("expiration".into(), ttl.as_secs_f64().into());
    }
    if let Some(id) = &p.message_id {
        out.insert("message_id".into(), id.clone().into());
    }
    if let Some(ts) = p.timestamp {
        out.insert("timestamp".into(), ts.into());
    }
    let names =
        [("type", &p.message_type), ("app_id", &p.app_id), ("user_id", &p.user_id), ("cluster_id", &p.cluster_id)];
    for (name, value) in names {
        if let Some(v) = value {
            out.insert(name.into(), v.clone().into());
        }
    }
    for (k, v) in &p.extra {
        out.entry(k).or_insert_with(|| Value::from(v));
    }
    out
}

fn delivery_info(message: &Message) -> Map<String, Value> {
    let d = &message.delivery_info;
    let mut out = Map::new();
    out.insert("exchange".into(), d.exchange.as_ref().into());
    out.insert("routing_key".into(), d.routing_key.as_ref().into());
    out.insert("redelivered".into(), d.redelivered.into());
    let tag = match &d.delivery_tag {
        DeliveryTag::Number(n) => Value::from(*n),
        other => Value::String(other.to_string()),
    };
    out.insert("delivery_tag".into(), tag);
    out.insert("consumer_tag".into(), opt_str(d.consumer_tag.as_deref()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kombu_core::{DeliveryInfo, DeliveryMode};
    use std::time::Duration;

    #[test]
    fn text_body_with_everything() {
        let mut m = Message::new(r#"{"a": 1}"#).content_type("application/json").content_encoding("utf-8");
        m.headers.insert("h", "v");
        m.headers.insert("d", kombu_core::Decimal::new(1, 3));
        m.properties.message_type = Some("kind".into());
        m.properties.priority = Some(5);
        m.properties.delivery_mode = Some(DeliveryMode::Persistent);
        m.properties.expiration = Some(Duration::from_millis(1500));
        m.properties.extra.insert("body_encoding", "base64");
        m.delivery_info = DeliveryInfo::new("ex", "rk");
        m.delivery_info.delivery_tag = DeliveryTag::Text("abc".into());
        let j = message_json(&m, false);
        assert_eq!(j["body"], r#"{"a": 1}"#);
        assert_eq!(j["body_encoding"], "text");
        assert_eq!(j["content_type"], "application/json");
        assert_eq!(j["content_encoding"], "utf-8");
        assert_eq!(j["headers"]["h"], "v");
        assert_eq!(j["headers"]["d"], serde_json::json!({"__type__": "decimal", "__value__": "0.001"}));
        assert_eq!(j["properties"]["type"], "kind");
        assert_eq!(j["properties"]["priority"], 5);
        assert_eq!(j["properties"]["delivery_mode"], 2);
        assert_eq!(j["properties"]["expiration"], 1.5);
        assert_eq!(j["properties"]["body_encoding"], "base64");
        assert_eq!(j["delivery_info"]["exchange"], "ex");
        assert_eq!(j["delivery_info"]["routing_key"], "rk");
        assert_eq!(j["delivery_info"]["delivery_tag"], "abc");
        assert_eq!(j["delivery_info"]["redelivered"], false);
        assert_eq!(j["delivery_info"]["consumer_tag"], Value::Null);

        let decoded = message_json(&m, true);
        assert_eq!(decoded["body"]["a"], 1);
        assert_eq!(decoded["body_encoding"], "json");
    }

    #[test]
    fn binary_body_is_base64() {
        let m = Message::new(vec![0xffu8, 0x00, 0x41]);
        let j = message_json(&m, true);
        assert_eq!(j["body"], "/wBB");
        assert_eq!(j["body_encoding"], "base64");
        assert_eq!(j["content_type"], Value::Null);
        assert_eq!(j["delivery_info"]["delivery_tag"], 0);
    }

    #[test]
    fn compressed_body_is_shown_decompressed() {
        let (z, header) = kombu_core::serialization::compress("zlib", b"hello").unwrap();
        let m = Message::new(z).content_type("text/plain").header("compression", header);
        assert_eq!(message_json(&m, false)["body"], "hello");
        // A wrong compression header does not hide the body.
        let m = Message::new("plain").header("compression", "application/x-gzip");
        assert_eq!(message_json(&m, false)["body"], "plain");
    }
}
