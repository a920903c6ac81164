//! Kombu's JSON message envelope, as Python Kombu's virtual transports (Redis and others) store a message.
//!
//! ```json
//! {"body": "eyJoZWxsbyI6IDF9", "content-encoding": "utf-8", "content-type": "application/json",
//!  "headers": {"h": "v"},
//!  "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "ex", "routing_key": "a.b"},
//!                 "priority": 3, "body_encoding": "base64", "delivery_tag": "da30b664-..."}}
//! ```
//!
//! Pure: bytes in, values out. Unknown properties and delivery-info fields are kept, so a message that
//! passes through Rust reaches Python unchanged.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fields::FieldTable;
use crate::message::{DeliveryInfo, DeliveryMode, DeliveryTag, Message, Properties};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The envelope property in which kombu-rs counts a message's earlier deliveries (incremented each time
/// a Redis consumer restores it); Python Kombu keeps unknown properties and ignores them.
pub const DELIVERY_COUNT: &str = "x-delivery-count";

/// The envelope: one JSON object per message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The body: base64 text when `properties.body_encoding` is `base64`, the body itself otherwise.
    pub body: String,
    /// Character encoding of the decoded body.
    #[serde(rename = "content-encoding", default)]
    pub content_encoding: Option<String>,
    /// MIME type of the decoded body.
    #[serde(rename = "content-type", default)]
    pub content_type: Option<String>,
    /// Application headers.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub headers: FieldTable,
    /// Properties, delivery info and transport bookkeeping.
    #[serde(default)]
    pub properties: EnvelopeProperties,
}

/// The `properties` object of the envelope.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EnvelopeProperties {
    /// 1 transient, 2 persistent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_mode: Option<u8>,
    /// Exchange and routing key it was published with.
    #[serde(default)]
    pub delivery_info: EnvelopeDeliveryInfo,
    /// Priority (Kombu writes 0 when none was given).
    #[serde(default)]
    pub priority: Option<u8>,
    /// `base64` when the body is base64 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<String>,
    /// The delivery tag (Kombu's Redis transport: a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_tag: Option<String>,
    /// Correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Reply-to queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Expiration in milliseconds, as text (AMQP's form, which Kombu's Producer writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    /// Message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Timestamp, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<serde_json::Number>,
    /// AMQP `type` (Kombu's Producer keeps every property under its AMQP name).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// AMQP `app_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// AMQP `user_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// AMQP `cluster_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Any other properties, kept as they are.
    #[serde(flatten)]
    pub extra: FieldTable,
}

/// The `delivery_info` object of the envelope.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EnvelopeDeliveryInfo {
    /// Exchange name.
    #[serde(default)]
    pub exchange: String,
    /// Routing key.
    #[serde(default)]
    pub routing_key: String,
    /// Set by Kombu when it restores an unacknowledged message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivered: Option<bool>,
    /// Any other fields, kept as they are.
    #[serde(flatten)]
    pub extra: FieldTable,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<FieldTable, D::Error> {
    Ok(Option::<FieldTable>::deserialize(d)?.unwrap_or_default())
}

/// The members of an envelope after its body, serialized straight from the borrowed message (no copies
/// of its parts). The body is written by hand before them (see [`Envelope::write_message`]).
#[derive(Serialize)]
struct EnvelopeRest<'a> {
    #[serde(rename = "content-encoding")]
    content_encoding: Option<&'a str>,
    #[serde(rename = "content-type")]
    content_type: Option<&'a str>,
    headers: &'a FieldTable,
    properties: PropertiesOut<'a>,
}

#[derive(Serialize)]
struct PropertiesOut<'a> {
    delivery_mode: u8,
    delivery_info: DeliveryInfoOut<'a>,
    priority: u8,
    body_encoding: &'static str,
    delivery_tag: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    message_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_id: Option<&'a str>,
    #[serde(flatten)]
    extra: &'a FieldTable,
}

#[derive(Serialize)]
struct DeliveryInfoOut<'a> {
    exchange: &'a str,
    routing_key: &'a str,
}

/// About what an envelope's members but the body and headers take (content type, properties, tag).
const ENVELOPE_MEMBERS: usize = 384;

/// Appends `bytes` in base64, with no intermediate string.
fn write_base64(bytes: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let too_big = || Error::serialization(format!("a body of {} bytes is too big to encode", bytes.len()));
    let start = out.len();
    out.resize(start + base64::encoded_len(bytes.len(), true).ok_or_else(too_big)?, 0);
    let n = B64.encode_slice(bytes, &mut out[start..]).map_err(|_| too_big())?;
    out.truncate(start + n);
    Ok(())
}

impl Envelope {
    /// Appends the JSON of the envelope for `message` published to `exchange` with `routing_key`, tagged
    /// `delivery_tag`, to `out`: the same bytes as `from_message(..).to_vec()`, written without copying
    /// the message's parts (the publish path of the Redis backend). On an error `out` is left as it was.
    ///
    /// ```
    /// use kombu_core::{envelope::Envelope, Message};
    ///
    /// let mut json = Vec::new();
    /// Envelope::write_message(&Message::new("hi"), "ex", "rk", "tag-1", &mut json).unwrap();
    /// assert!(json.starts_with(br#"{"body":"aGk=","#));
    /// assert_eq!(Envelope::parse(&json).unwrap().into_message().unwrap().body, "hi");
    /// ```
    pub fn write_message(
        message: &Message,
        exchange: &str,
        routing_key: &str,
        delivery_tag: &str,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let p = &message.properties;
        let rest = EnvelopeRest {
            content_encoding: message.content_encoding.as_deref(),
            content_type: message.content_type.as_deref(),
            headers: &message.headers,
            properties: PropertiesOut {
                delivery_mode: p.delivery_mode.unwrap_or_default().as_u8(),
                delivery_info: DeliveryInfoOut { exchange, routing_key },
                priority: p.priority.unwrap_or(0),
                body_encoding: "base64",
                delivery_tag,
                correlation_id: p.correlation_id.as_deref(),
                reply_to: p.reply_to.as_deref(),
                expiration: p.expiration.map(|d| d.as_millis().to_string()),
                message_id: p.message_id.as_deref(),
                timestamp: p.timestamp,
                message_type: p.message_type.as_deref(),
                app_id: p.app_id.as_deref(),
                user_id: p.user_id.as_deref(),
                cluster_id: p.cluster_id.as_deref(),
                extra: &p.extra,
            },
        };
        // The body is written by hand: base64 never needs escaping, and a serializer would scan it for
        // characters to escape all the same (the biggest cost of publishing a large body). The other
        // members follow as a serialized object whose opening brace becomes the comma after the body.
        let start = out.len();
        // Room for the body and the usual members at once: growing by doubling past a large body would
        // allocate (and copy) it once more.
        let encoded = base64::encoded_len(message.body.len(), true).unwrap_or(0);
        out.reserve(encoded + ENVELOPE_MEMBERS + message.headers.len() * 64);
        out.extend_from_slice(br#"{"body":""#);
        if let Err(e) = write_base64(&message.body, out) {
            out.truncate(start);
            return Err(e);
        }
        out.extend_from_slice(b"\"");
        let members = out.len();
        let written = serde_json::to_writer(&mut *out, &rest);
        if written.is_ok() && out.get(members) == Some(&b'{') {
            out[members] = b',';
            return Ok(());
        }
        out.truncate(start);
        let why = written.err().map_or_else(|| "its members are not an object".to_owned(), |e| e.to_string());
        Err(Error::serialization(format!("cannot write the message envelope: {why}")))
    }

    /// The envelope for `message` published to `exchange` with `routing_key`, tagged `delivery_tag`.
    pub fn from_message(message: &Message, exchange: &str, routing_key: &str, delivery_tag: &str) -> Envelope {
        let p = &message.properties;
        Envelope {
            body: B64.encode(&message.body),
            content_encoding: message.content_encoding.as_deref().map(str::to_owned),
            content_type: message.content_type.as_deref().map(str::to_owned),
            headers: message.headers.clone(),
            properties: EnvelopeProperties {
                delivery_mode: Some(p.delivery_mode.unwrap_or_default().as_u8()),
                delivery_info: EnvelopeDeliveryInfo {
                    exchange: exchange.to_owned(),
                    routing_key: routing_key.to_owned(),
                    redelivered: None,
                    extra: FieldTable::new(),
                },
                priority: Some(p.priority.unwrap_or(0)),
                body_encoding: Some("base64".to_owned()),
                delivery_tag: Some(delivery_tag.to_owned()),
                correlation_id: p.correlation_id.clone(),
                reply_to: p.reply_to.clone(),
                expiration: p.expiration.map(|d| d.as_millis().to_string()),
                message_id: p.message_id.clone(),
                timestamp: p.timestamp.map(serde_json::Number::from),
                message_type: p.message_type.clone(),
                app_id: p.app_id.clone(),
                user_id: p.user_id.clone(),
                cluster_id: p.cluster_id.clone(),
                extra: p.extra.clone(),
            },
        }
    }

    /// Parses an envelope; anything that is not one is an error naming what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Envelope> {
        serde_json::from_slice(bytes).map_err(|e| Error::serialization(format!("not a Kombu message envelope: {e}")))
    }

    /// The envelope as JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing these plain types cannot fail; fall back to an empty object if it ever did.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Whether Kombu marked it redelivered (in delivery info or the `redelivered` header).
    pub fn redelivered(&self) -> bool {
        self.properties.delivery_info.redelivered.unwrap_or(false)
            || self.headers.get("redelivered").and_then(|v| v.as_bool()).unwrap_or(false)
    }

    /// The priority Kombu stored (0 when none).
    pub fn priority(&self) -> u8 {
        self.properties.priority.unwrap_or(0)
    }

    /// The message it carries (body decoded from base64), not bound to any channel.
    pub fn into_message(self) -> Result<Message> {
        let body = match self.properties.body_encoding.as_deref() {
            Some("base64") => B64
                .decode(self.body.as_bytes())
                .map_err(|e| Error::serialization(format!("envelope body is not valid base64: {e}")))?,
            None | Some("") => self.body.into_bytes(),
            Some(other) => return Err(Error::serialization(format!("unknown envelope body encoding '{other}'"))),
        };
        let redelivered = self.properties.delivery_info.redelivered.unwrap_or(false)
            || self.headers.get("redelivered").and_then(|v| v.as_bool()).unwrap_or(false);
        let mut p = self.properties;
        // Deliveries before this one: counted by kombu-rs on each restore (Python Kombu ignores the key);
        // a message marked redelivered by something that does not count (Python Kombu) is unknown.
        let counted = p.extra.remove(DELIVERY_COUNT).and_then(|v| v.as_u64()).map(|n| n.min(u32::MAX as u64) as u32);
        let redeliveries = counted.or((!redelivered).then_some(0));
        let expiration = match p.expiration.as_deref() {
            Some(ms) => Some(Duration::from_millis(
                ms.trim().parse::<f64>().map_err(|_| Error::serialization(format!("bad expiration '{ms}'")))?.max(0.0)
                    as u64,
            )),
            None => None,
        };
        let mut message = Message::new(body);
        message.content_type = self.content_type.map(Into::into);
        message.content_encoding = self.content_encoding.map(Into::into);
        message.headers = self.headers;
        message.properties = Properties {
            delivery_mode: p.delivery_mode.map(DeliveryMode::from_u8),
            priority: p.priority,
            correlation_id: p.correlation_id,
            reply_to: p.reply_to,
            expiration,
            message_id: p.message_id,
            timestamp: p.timestamp.and_then(|t| t.as_u64().or_else(|| t.as_f64().map(|f| f.max(0.0) as u64))),
            message_type: p.message_type,
            app_id: p.app_id,
            user_id: p.user_id,
            cluster_id: p.cluster_id,
            extra: p.extra,
        };
        message.delivery_info = DeliveryInfo {
            exchange: p.delivery_info.exchange.into(),
            routing_key: p.delivery_info.routing_key.into(),
            redelivered,
            delivery_tag: DeliveryTag::Text(Arc::from(p.delivery_tag.unwrap_or_default())),
            consumer_tag: None,
            redeliveries,
        };
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Exactly as Python Kombu 5.7 stores a message on Redis (see DESIGN.md).
    const PY: &str = r#"{"body": "eyJoZWxsbyI6IDF9", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"h": "v"}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "peek_ex", "routing_key": "a.b"}, "priority": 3, "body_encoding": "base64", "delivery_tag": "da30b664-1ff6-469c-9d0b-5b42741886ce"}}"#;

    #[test]
    fn numbers_survive_a_pass_through_rust() {
        // Found by the `envelope` fuzz target: an integer past u64 reads as a float, and serde_json's
        // default (approximate) float parsing read the float kombu-rs itself wrote back as another one,
        // one unit in the last place away. With exact parsing a header keeps its value through any number
        // of parse/write rounds, and reads as the float Rust (and Python's float()) make of the text.
        let json = br#"{"body": "aGVsbG8=", "headers": {"t": 1700000008188888888888888888888888888888888888888, "f": 1.700000008188889e48}, "properties": {"timestamp": 1.7e9}}"#;
        let first = Envelope::parse(json).unwrap();
        let second = Envelope::parse(&first.to_vec()).unwrap();
        assert_eq!(second, first);
        assert_eq!(first.headers["t"].as_f64(), Some(1700000008188888888888888888888888888888888888888.0));
        assert_eq!(first.headers["f"].as_f64(), Some(1.700000008188889e48));
        let m = first.into_message().unwrap();
        let mut out = Vec::new();
        Envelope::write_message(&m, "", "", "tag", &mut out).unwrap();
        assert_eq!(Envelope::parse(&out).unwrap().headers, m.headers);
    }

    #[test]
    fn reads_python_kombu_message() {
        let m = Envelope::parse(PY.as_bytes()).unwrap().into_message().unwrap();
        assert_eq!(&m.body[..], br#"{"hello": 1}"#);
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(m.headers["h"], "v");
        assert_eq!(m.properties.priority, Some(3));
        assert_eq!(m.properties.delivery_mode, Some(DeliveryMode::Persistent));
        assert_eq!(&*m.delivery_info.exchange, "peek_ex");
        assert_eq!(&*m.delivery_info.routing_key, "a.b");
        assert_eq!(m.delivery_info.delivery_tag.to_string(), "da30b664-1ff6-469c-9d0b-5b42741886ce");
        assert!(!m.delivery_info.redelivered);
    }

    // Python Kombu 5.7 on Redis: publish({'hello': 1}, headers={'at': datetime(2023, 11, 14, 22, 13, 20),
    // 'd': Decimal('0.001'), 'b': b'\x00\xff', 't': b'abc'}, type='kind', app_id='app', user_id='guest',
    // cluster_id='c1', priority=3).
    const PY_TYPED: &str = r#"{"body": "eyJoZWxsbyI6IDF9", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"at": {"__type__": "datetime", "__value__": "2023-11-14T22:13:20"}, "d": {"__type__": "decimal", "__value__": "0.001"}, "b": {"__type__": "base64", "__value__": "AP8="}, "t": {"__type__": "bytes", "__value__": "abc"}}, "properties": {"type": "kind", "app_id": "app", "user_id": "guest", "cluster_id": "c1", "delivery_mode": 2, "delivery_info": {"exchange": "probe_hdr_ex", "routing_key": "k"}, "priority": 3, "body_encoding": "base64", "delivery_tag": "22dd704e-4533-432b-98a9-3976f09d5e47"}}"#;

    #[test]
    fn typed_headers_and_every_property_as_python_writes_them() {
        use crate::{Decimal, FieldValue};
        let m = Envelope::parse(PY_TYPED.as_bytes()).unwrap().into_message().unwrap();
        assert_eq!(m.headers["at"], FieldValue::Timestamp(1_700_000_000));
        assert_eq!(m.headers["d"], FieldValue::Decimal(Decimal::new(1, 3)));
        assert_eq!(m.headers["b"], FieldValue::Bytes(vec![0, 0xff]));
        assert_eq!(m.headers["t"], FieldValue::Bytes(b"abc".to_vec()));
        let p = &m.properties;
        assert_eq!(p.message_type.as_deref(), Some("kind"));
        assert_eq!(p.app_id.as_deref(), Some("app"));
        assert_eq!(p.user_id.as_deref(), Some("guest"));
        assert_eq!(p.cluster_id.as_deref(), Some("c1"));
        assert!(p.extra.is_empty(), "{:?}", p.extra);
        // Written again, it is the JSON Python wrote.
        let mut out = Vec::new();
        Envelope::write_message(&m, "probe_hdr_ex", "k", "22dd704e-4533-432b-98a9-3976f09d5e47", &mut out).unwrap();
        let ours: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(PY_TYPED).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn writes_what_python_writes() {
        let m = Message::new(&br#"{"hello": 1}"#[..])
            .content_type("application/json")
            .content_encoding("utf-8")
            .header("h", "v")
            .priority(3);
        let env = Envelope::from_message(&m, "peek_ex", "a.b", "da30b664-1ff6-469c-9d0b-5b42741886ce");
        let ours: serde_json::Value = serde_json::from_slice(&env.to_vec()).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(PY).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn write_message_writes_the_same_bytes() {
        let mut m =
            Message::new(&b"\x00binary\xff"[..]).content_type("application/x-thing").header("k", "v").priority(7);
        m.properties.correlation_id = Some("c".into());
        m.properties.expiration = Some(Duration::from_millis(1500));
        m.properties.timestamp = Some(5);
        m.properties.extra.insert("custom", serde_json::json!([1, {"a": null}]));
        m.properties.message_type = Some("kind".into());
        m.properties.app_id = Some("app".into());
        m.properties.user_id = Some("guest".into());
        m.properties.cluster_id = Some("c1".into());
        m.headers.insert("d", crate::Decimal::new(1, 3));
        m.headers.insert("at", crate::FieldValue::Timestamp(1_700_000_000));
        m.headers.insert("raw", vec![0u8, 0xff]);
        let mut fast = Vec::new();
        Envelope::write_message(&m, "ex", "rk", "tag-9", &mut fast).unwrap();
        assert_eq!(fast, Envelope::from_message(&m, "ex", "rk", "tag-9").to_vec());
        let plain = Message::new("x");
        let mut fast = Vec::new();
        Envelope::write_message(&plain, "", "q", "t", &mut fast).unwrap();
        assert_eq!(fast, Envelope::from_message(&plain, "", "q", "t").to_vec());
        // Bodies of every length modulo 3, large ones, and the empty body.
        for len in [0, 767, 768, 769, 2000, 2001, 2002] {
            let big = Message::new((0..len).map(|i| (i * 7 % 256) as u8).collect::<Vec<u8>>());
            let mut fast = Vec::new();
            Envelope::write_message(&big, "ex", "rk", "t", &mut fast).unwrap();
            assert_eq!(fast, Envelope::from_message(&big, "ex", "rk", "t").to_vec(), "body of {len} bytes");
        }
    }

    #[test]
    fn keeps_unknown_fields_and_marks_redelivery() {
        let raw = r#"{"body": "aGk=", "content-type": "text/plain", "headers": {"redelivered": true},
            "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": "q", "x": 1},
            "custom": [1,2], "timestamp": 1700000000.5}}"#;
        let env = Envelope::parse(raw.as_bytes()).unwrap();
        assert!(env.redelivered());
        assert_eq!(env.properties.delivery_info.extra["x"], 1);
        let m = env.into_message().unwrap();
        assert!(m.delivery_info.redelivered);
        assert_eq!(m.properties.extra["custom"][1], 2);
        assert_eq!(m.properties.timestamp, Some(1_700_000_000));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(Envelope::parse(b"not json").is_err());
        assert!(Envelope::parse(b"{}").is_err());
        let bad_b64 = r#"{"body": "!!!", "properties": {"body_encoding": "base64"}}"#;
        assert!(Envelope::parse(bad_b64.as_bytes()).unwrap().into_message().is_err());
        let null_headers = r#"{"body": "x", "headers": null}"#;
        assert_eq!(&Envelope::parse(null_headers.as_bytes()).unwrap().into_message().unwrap().body[..], b"x");
    }
}
