//! kombu messages to AMQP basic properties and back: pure, no I/O.
//!
//! Kombu's `Message` fields map one to one onto AMQP basic properties (`headers` is py-amqp's
//! `application_headers`). `expiration` travels as milliseconds in a string, as the AMQP spec and
//! RabbitMQ want; AMQP `type` is [`Properties::message_type`]. [`Properties::extra`] has no place in
//! AMQP: its keys are dropped with a debug log (an expiration that is not a number of milliseconds
//! reads into it, under `expiration`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kombu_core::{DeliveryInfo, DeliveryMode, DeliveryTag, Message, Properties, Result};
use lapin::types::ShortString;
use lapin::BasicProperties;

use crate::fields::{from_amqp_table, short_string, to_amqp_table};

/// The AMQP basic properties of an outgoing message.
pub fn to_basic_properties(message: &Message) -> Result<BasicProperties> {
    let mut p = BasicProperties::default();
    if let Some(ct) = &message.content_type {
        p = p.with_content_type(short_string(ct, "content type")?);
    }
    if let Some(enc) = &message.content_encoding {
        p = p.with_content_encoding(short_string(enc, "content encoding")?);
    }
    if !message.headers.is_empty() {
        p = p.with_headers(to_amqp_table(&message.headers)?);
    }
    let props = &message.properties;
    if let Some(mode) = props.delivery_mode {
        p = p.with_delivery_mode(mode.as_u8());
    }
    if let Some(prio) = props.priority {
        p = p.with_priority(prio);
    }
    if let Some(id) = &props.correlation_id {
        p = p.with_correlation_id(short_string(id, "correlation id")?);
    }
    if let Some(to) = &props.reply_to {
        p = p.with_reply_to(short_string(to, "reply-to")?);
    }
    if let Some(ttl) = props.expiration {
        p = p.with_expiration(short_string(&ttl.as_millis().to_string(), "expiration")?);
    }
    if let Some(id) = &props.message_id {
        p = p.with_message_id(short_string(id, "message id")?);
    }
    if let Some(ts) = props.timestamp {
        p = p.with_timestamp(ts);
    }
    if let Some(kind) = &props.message_type {
        p = p.with_type(short_string(kind, "message type")?);
    }
    if let Some(id) = &props.app_id {
        p = p.with_app_id(short_string(id, "app id")?);
    }
    if let Some(user) = &props.user_id {
        p = p.with_user_id(short_string(user, "user id")?);
    }
    if let Some(id) = &props.cluster_id {
        p = p.with_cluster_id(short_string(id, "cluster id")?);
    }
    for key in props.extra.keys() {
        tracing::debug!("property '{key}' is not an AMQP basic property; dropped");
    }
    Ok(p)
}

/// Where a received message came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<'a> {
    /// Channel-local delivery tag.
    pub delivery_tag: u64,
    /// Exchange it was published to.
    pub exchange: &'a str,
    /// Routing key it was published with.
    pub routing_key: &'a str,
    /// Delivered before.
    pub redelivered: bool,
    /// Consumer it was delivered to (none for basic.get).
    pub consumer_tag: Option<Arc<str>>,
}

/// The names a consumer's messages share (`Arc<str>`): the last exchange, routing key, content type and
/// content encoding seen, reused while the next message carries the same, so a stream of alike messages
/// allocates none of them.
#[derive(Debug, Default)]
pub struct SharedNames {
    exchange: Option<Arc<str>>,
    routing_key: Option<Arc<str>>,
    content_type: Option<Arc<str>>,
    content_encoding: Option<Arc<str>>,
}

fn share(last: &mut Option<Arc<str>>, name: &str) -> Arc<str> {
    match last {
        Some(l) if &**l == name => l.clone(),
        _ => {
            let fresh: Arc<str> = Arc::from(name);
            *last = Some(fresh.clone());
            fresh
        }
    }
}

/// A received message from its body, AMQP properties and envelope.
pub fn to_message(body: Vec<u8>, props: &BasicProperties, envelope: Envelope<'_>, names: &mut SharedNames) -> Message {
    let mut m = Message::new(Bytes::from(body));
    m.content_type = props.content_type().as_ref().map(|s| share(&mut names.content_type, s.as_str()));
    m.content_encoding = props.content_encoding().as_ref().map(|s| share(&mut names.content_encoding, s.as_str()));
    if let Some(h) = props.headers() {
        m.headers = from_amqp_table(h);
    }
    let mut out = Properties::default();
    out.delivery_mode = props.delivery_mode().map(DeliveryMode::from_u8);
    out.priority = *props.priority();
    out.correlation_id = text(props.correlation_id());
    out.reply_to = text(props.reply_to());
    if let Some(exp) = props.expiration() {
        match exp.as_str().trim().parse::<u64>() {
            Ok(ms) => out.expiration = Some(Duration::from_millis(ms)),
            Err(_) => {
                out.extra.insert("expiration", exp.as_str());
            }
        }
    }
    out.message_id = text(props.message_id());
    out.timestamp = *props.timestamp();
    out.message_type = text(props.kind());
    out.app_id = text(props.app_id());
    out.user_id = text(props.user_id());
    out.cluster_id = text(props.cluster_id());
    m.properties = out;
    let mut info = DeliveryInfo::default();
    info.exchange = share(&mut names.exchange, envelope.exchange);
    info.routing_key = share(&mut names.routing_key, envelope.routing_key);
    info.redelivered = envelope.redelivered;
    // RabbitMQ counts deliveries on quorum queues (`x-delivery-count`, absent on the first one);
    // classic queues only say "redelivered".
    info.redeliveries = match m.headers.get("x-delivery-count").and_then(kombu_core::FieldValue::as_u64) {
        Some(n) => Some(n.min(u64::from(u32::MAX)) as u32),
        None if !envelope.redelivered => Some(0),
        None => None,
    };
    info.delivery_tag = DeliveryTag::Number(envelope.delivery_tag);
    info.consumer_tag = envelope.consumer_tag;
    m.delivery_info = info;
    m
}

fn text(s: &Option<ShortString>) -> Option<String> {
    s.as_ref().map(|s| s.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kombu_core::{Decimal, FieldValue};
    use serde_json::json;

    fn full_message() -> Message {
        let mut m = Message::new("body")
            .content_type("application/json")
            .content_encoding("utf-8")
            .header("h", "v")
            .header("n", json!({"deep": [1, 2.5, null]}))
            .header("d", Decimal::new(1, 3))
            .header("at", FieldValue::Timestamp(1_700_000_000))
            .header("raw", vec![0u8, 0xff])
            .priority(7);
        m.properties.delivery_mode = Some(DeliveryMode::Persistent);
        m.properties.correlation_id = Some("corr".into());
        m.properties.reply_to = Some("replies".into());
        m.properties.expiration = Some(Duration::from_millis(1500));
        m.properties.message_id = Some("mid".into());
        m.properties.timestamp = Some(1_700_000_000);
        m.properties.message_type = Some("kind".into());
        m.properties.app_id = Some("app".into());
        m.properties.user_id = Some("guest".into());
        m.properties.cluster_id = Some("cluster".into());
        m
    }

    fn envelope() -> Envelope<'static> {
        Envelope {
            delivery_tag: 9,
            exchange: "ex",
            routing_key: "rk",
            redelivered: true,
            consumer_tag: Some(Arc::from("ctag")),
        }
    }

    #[test]
    fn properties_round_trip() {
        let m = full_message();
        let props = to_basic_properties(&m).unwrap();
        assert_eq!(props.expiration().as_ref().map(|s| s.as_str()), Some("1500"));
        assert_eq!(*props.delivery_mode(), Some(2));
        let mut names = SharedNames::default();
        let back = to_message(b"body".to_vec(), &props, envelope(), &mut names);
        assert_eq!(back.body, m.body);
        assert_eq!(back.content_type, m.content_type);
        assert_eq!(back.content_encoding, m.content_encoding);
        assert_eq!(back.headers, m.headers);
        assert_eq!(back.properties, m.properties);
        assert_eq!(back.delivery_info.delivery_tag, DeliveryTag::Number(9));
        assert!(back.delivery_info.redelivered);
        assert_eq!(back.delivery_info.consumer_tag.as_deref(), Some("ctag"));
        assert_eq!(&*back.delivery_info.exchange, "ex");
        // The next alike message shares its names with this one.
        let next = to_message(Vec::new(), &props, envelope(), &mut names);
        assert!(Arc::ptr_eq(&next.delivery_info.exchange, &back.delivery_info.exchange));
        assert!(Arc::ptr_eq(next.content_type.as_ref().unwrap(), back.content_type.as_ref().unwrap()));
        let mut other = envelope();
        other.routing_key = "other";
        let third = to_message(Vec::new(), &props, other, &mut names);
        assert_eq!(&*third.delivery_info.routing_key, "other");
    }

    #[test]
    fn empty_message_has_no_properties() {
        let props = to_basic_properties(&Message::new("")).unwrap();
        assert_eq!(props, BasicProperties::default());
        let back = to_message(Vec::new(), &props, envelope(), &mut SharedNames::default());
        assert!(back.headers.is_empty());
        assert_eq!(back.properties, Properties::default());
    }

    #[test]
    fn odd_values_are_kept_or_refused_not_panicked() {
        let props = BasicProperties::default().with_expiration("soon".into());
        let back = to_message(Vec::new(), &props, envelope(), &mut SharedNames::default());
        assert_eq!(back.properties.expiration, None);
        assert_eq!(back.properties.extra["expiration"], "soon");

        let long = Message::new("").content_type("x".repeat(300));
        assert!(to_basic_properties(&long).is_err());
        let mut odd = Message::new("");
        odd.properties.extra.insert("unknown", "x");
        assert_eq!(to_basic_properties(&odd).unwrap(), BasicProperties::default());
        let mut long = Message::new("");
        long.properties.app_id = Some("a".repeat(256));
        assert!(to_basic_properties(&long).is_err());
    }
}
