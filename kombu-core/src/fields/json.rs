//! The JSON form of field values (the module docs' table): Kombu's `{"__type__", "__value__"}` markers,
//! serde's `Serialize`/`Deserialize`, and the conversions from and to `serde_json`.

use std::fmt;

use base64::Engine as _;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{FieldTable, FieldValue};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Python's `datetime.isoformat()` of a naive UTC datetime of whole seconds, or `None` after year 9999.
pub(super) fn format_timestamp(seconds: u64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).ok()?).ok()?;
    (at.year() <= 9999).then(|| {
        let (date, t) = (at.date(), at.time());
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            date.year(),
            u8::from(date.month()),
            date.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    })
}

/// The seconds of `YYYY-MM-DDTHH:MM:SS` (naive UTC), when it is exactly what [`format_timestamp`] writes.
pub(super) fn parse_timestamp(s: &str) -> Option<u64> {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let at = time::PrimitiveDateTime::parse(s, FORMAT).ok()?.assume_utc();
    let seconds = u64::try_from(at.unix_timestamp()).ok()?;
    // Only the one spelling `format_timestamp` writes (no sign, four-digit year) reads as a timestamp.
    (format_timestamp(seconds).as_deref() == Some(s)).then_some(seconds)
}

impl FieldValue {
    /// The typed value a Kombu `{"__type__", "__value__"}` table stands for, when it writes back the same.
    pub(super) fn from_kombu_marker(table: &FieldTable) -> Option<FieldValue> {
        if table.len() != 2 {
            return None;
        }
        let marker = table.get("__type__")?.as_str()?;
        let text = table.get("__value__")?.as_str()?;
        match marker {
            "decimal" => text.parse().ok().map(FieldValue::Decimal),
            "datetime" => parse_timestamp(text).map(FieldValue::Timestamp),
            "bytes" => Some(FieldValue::Bytes(text.as_bytes().to_vec())),
            "base64" => {
                let bytes = B64.decode(text).ok()?;
                (std::str::from_utf8(&bytes).is_err() && B64.encode(&bytes) == text).then_some(FieldValue::Bytes(bytes))
            }
            _ => None,
        }
    }
}

// ---- serde: the JSON form of the module docs --------------------------------------------------------

fn marker<S: Serializer>(s: S, marker: &str, text: &str) -> std::result::Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("__type__", marker)?;
    m.serialize_entry("__value__", text)?;
    m.end()
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            FieldValue::Void => s.serialize_unit(),
            FieldValue::Bool(b) => s.serialize_bool(*b),
            FieldValue::F32(f) => s.serialize_f64(f64::from(*f)),
            FieldValue::F64(f) => s.serialize_f64(*f),
            FieldValue::Decimal(d) => marker(s, "decimal", &d.to_string()),
            FieldValue::String(text) => s.serialize_str(text),
            FieldValue::Bytes(b) => match std::str::from_utf8(b) {
                Ok(text) => marker(s, "bytes", text),
                Err(_) => marker(s, "base64", &B64.encode(b)),
            },
            FieldValue::Timestamp(t) => match format_timestamp(*t) {
                Some(text) => marker(s, "datetime", &text),
                None => s.serialize_u64(*t),
            },
            FieldValue::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            FieldValue::Table(t) => t.serialize(s),
            FieldValue::I8(i) => s.serialize_i8(*i),
            FieldValue::U8(i) => s.serialize_u8(*i),
            FieldValue::I16(i) => s.serialize_i16(*i),
            FieldValue::U16(i) => s.serialize_u16(*i),
            FieldValue::I32(i) => s.serialize_i32(*i),
            FieldValue::U32(i) => s.serialize_u32(*i),
            FieldValue::I64(i) => s.serialize_i64(*i),
        }
    }
}

impl Serialize for FieldTable {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = FieldValue;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<FieldValue, E> {
        Ok(FieldValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<FieldValue, E> {
        Ok(FieldValue::int(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<FieldValue, E> {
        Ok(i64::try_from(v).map_or(FieldValue::F64(v as f64), FieldValue::int))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<FieldValue, E> {
        Ok(FieldValue::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<FieldValue, E> {
        Ok(FieldValue::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<FieldValue, E> {
        Ok(FieldValue::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<FieldValue, E> {
        Ok(FieldValue::Bytes(v.to_vec()))
    }
    fn visit_unit<E>(self) -> std::result::Result<FieldValue, E> {
        Ok(FieldValue::Void)
    }
    fn visit_none<E>(self) -> std::result::Result<FieldValue, E> {
        Ok(FieldValue::Void)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<FieldValue, D::Error> {
        FieldValue::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<FieldValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(FieldValue::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<FieldValue, A::Error> {
        let table = TableVisitor.visit_map(map)?;
        Ok(FieldValue::from_kombu_marker(&table).unwrap_or(FieldValue::Table(table)))
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct TableVisitor;

impl<'de> Visitor<'de> for TableVisitor {
    type Value = FieldTable;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of header values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<FieldTable, A::Error> {
        let mut t = FieldTable::new();
        while let Some((k, v)) = map.next_entry::<String, FieldValue>()? {
            t.insert(k, v);
        }
        Ok(t)
    }
}

impl<'de> Deserialize<'de> for FieldTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(TableVisitor)
    }
}

// ---- serde_json conversions (the same JSON form) ----------------------------------------------------

impl From<serde_json::Value> for FieldValue {
    /// The value the JSON stands for, as kombu reads a Redis envelope (see the module docs).
    fn from(v: serde_json::Value) -> Self {
        // A serde_json value deserializes as any JSON text does; it has no error of its own to give.
        FieldValue::deserialize(v).unwrap_or_default()
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for FieldTable {
    fn from(m: serde_json::Map<String, serde_json::Value>) -> Self {
        m.into_iter().map(|(k, v)| (k, FieldValue::from(v))).collect()
    }
}

impl From<&FieldValue> for serde_json::Value {
    /// The JSON kombu writes for the value (see the module docs).
    fn from(v: &FieldValue) -> Self {
        // Every value serializes: keys are strings, and non-finite floats become null.
        serde_json::to_value(v).unwrap_or_default()
    }
}

impl From<&FieldTable> for serde_json::Value {
    fn from(t: &FieldTable) -> Self {
        serde_json::to_value(t).unwrap_or_default()
    }
}
