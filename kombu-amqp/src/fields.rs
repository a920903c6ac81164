//! kombu's field values ([`FieldValue`], [`FieldTable`]) to AMQP field values and back: pure, no I/O.
//!
//! Every kind maps to its own AMQP kind, so a value written reads back the same (letters as RabbitMQ
//! and py-amqp read them):
//!
//! | kombu | AMQP |
//! |---|---|
//! | `Void` | void `V` |
//! | `Bool` | boolean `t` |
//! | `I8`, `U8`, `I16`, `U16`, `I32`, `U32`, `I64` | `b`, `B`, `s`, `u`, `I`, `i`, `l` |
//! | `F32`, `F64` | float `f`, double `d` |
//! | `Decimal` | decimal `D` (scale and signed 32-bit value) |
//! | `String` | long-string `S` |
//! | `Bytes` | byte-array `x` |
//! | `Timestamp` | timestamp `T` |
//! | `Array`, `Table` | field-array `A`, field-table `F` |
//!
//! Reading, a long string that is not UTF-8 is `Bytes` (as py-amqp reads it), and `L` (py-amqp's letter
//! for a large int) is `I64`. A key longer than 255 bytes has no AMQP form and is refused.

use kombu_core::{Decimal, Error, FieldTable, FieldValue, Result};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable as AmqpTable, LongString, ShortString};

/// A short string (at most 255 bytes) for an AMQP field named `what`, or an `InvalidArgument` error.
pub fn short_string(s: &str, what: &str) -> Result<ShortString> {
    ShortString::try_new(s).map_err(|_| {
        let shown: String = s.chars().take(40).collect();
        Error::invalid(format!("{what} '{shown}...' is {} bytes; AMQP allows at most 255", s.len()))
    })
}

/// A kombu table as an AMQP field table.
pub fn to_amqp_table(table: &FieldTable) -> Result<AmqpTable> {
    let mut out = AmqpTable::default();
    for (k, v) in table {
        out.insert(short_string(k, "table key")?, to_amqp_value(v)?);
    }
    Ok(out)
}

/// A kombu value as an AMQP field value.
pub fn to_amqp_value(value: &FieldValue) -> Result<AMQPValue> {
    Ok(match value {
        FieldValue::Void => AMQPValue::Void,
        FieldValue::Bool(b) => AMQPValue::Boolean(*b),
        FieldValue::I8(i) => AMQPValue::ShortShortInt(*i),
        FieldValue::U8(i) => AMQPValue::ShortShortUInt(*i),
        FieldValue::I16(i) => AMQPValue::ShortInt(*i),
        FieldValue::U16(i) => AMQPValue::ShortUInt(*i),
        FieldValue::I32(i) => AMQPValue::LongInt(*i),
        FieldValue::U32(i) => AMQPValue::LongUInt(*i),
        FieldValue::I64(i) => AMQPValue::LongLongInt(*i),
        FieldValue::F32(f) => AMQPValue::Float(*f),
        FieldValue::F64(f) => AMQPValue::Double(*f),
        // amq-protocol keeps the value's four bytes in a `u32`; they are the signed value's.
        FieldValue::Decimal(d) => {
            AMQPValue::DecimalValue(DecimalValue { scale: d.scale, value: u32::from_ne_bytes(d.value.to_ne_bytes()) })
        }
        FieldValue::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        FieldValue::Bytes(b) => AMQPValue::ByteArray(ByteArray::from(b.as_slice())),
        FieldValue::Timestamp(t) => AMQPValue::Timestamp(*t),
        FieldValue::Array(items) => {
            AMQPValue::FieldArray(FieldArray::from(items.iter().map(to_amqp_value).collect::<Result<Vec<_>>>()?))
        }
        FieldValue::Table(t) => AMQPValue::FieldTable(to_amqp_table(t)?),
    })
}

/// An AMQP field table as a kombu table.
pub fn from_amqp_table(table: &AmqpTable) -> FieldTable {
    table.into_iter().map(|(k, v)| (k.as_str(), from_amqp_value(v))).collect()
}

/// An AMQP field value as a kombu value.
pub fn from_amqp_value(value: &AMQPValue) -> FieldValue {
    match value {
        AMQPValue::Boolean(b) => FieldValue::Bool(*b),
        AMQPValue::ShortShortInt(i) => FieldValue::I8(*i),
        AMQPValue::ShortShortUInt(i) => FieldValue::U8(*i),
        AMQPValue::ShortInt(i) => FieldValue::I16(*i),
        AMQPValue::ShortUInt(i) => FieldValue::U16(*i),
        AMQPValue::LongInt(i) => FieldValue::I32(*i),
        AMQPValue::LongUInt(i) => FieldValue::U32(*i),
        AMQPValue::LongLongInt(i) => FieldValue::I64(*i),
        AMQPValue::Timestamp(t) => FieldValue::Timestamp(*t),
        AMQPValue::Float(f) => FieldValue::F32(*f),
        AMQPValue::Double(f) => FieldValue::F64(*f),
        // A SIGNED 32-bit value (py-amqp packs `Decimal('-3.5')` as scale 1, value -35 with `>Bi`).
        AMQPValue::DecimalValue(d) => {
            FieldValue::Decimal(Decimal::new(i32::from_ne_bytes(d.value.to_ne_bytes()), d.scale))
        }
        AMQPValue::ShortString(s) => FieldValue::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(text) => FieldValue::String(text.to_owned()),
            Err(_) => FieldValue::Bytes(s.as_bytes().to_vec()),
        },
        AMQPValue::FieldArray(items) => FieldValue::Array(items.as_slice().iter().map(from_amqp_value).collect()),
        AMQPValue::FieldTable(t) => FieldValue::Table(from_amqp_table(t)),
        AMQPValue::ByteArray(b) => FieldValue::Bytes(b.as_slice().to_vec()),
        AMQPValue::Void => FieldValue::Void,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::generation::gen_field_table;
    use lapin::types::parsing::parse_field_table;

    /// Every kind, nested.
    fn every_kind() -> FieldTable {
        let mut inner = FieldTable::new();
        inner.insert("deep", FieldValue::Array(vec![FieldValue::U8(1), FieldValue::Void, "x".into()]));
        [
            ("void", FieldValue::Void),
            ("bool", true.into()),
            ("i8", FieldValue::I8(i8::MIN)),
            ("u8", FieldValue::U8(u8::MAX)),
            ("i16", FieldValue::I16(-300)),
            ("u16", FieldValue::U16(u16::MAX)),
            ("i32", FieldValue::I32(i32::MIN)),
            ("u32", FieldValue::U32(u32::MAX)),
            ("i64", FieldValue::I64(i64::MIN)),
            ("f32", FieldValue::F32(0.25)),
            ("f64", FieldValue::F64(-1e300)),
            ("decimal", Decimal::new(-35, 1).into()),
            ("decimal_min", Decimal::new(i32::MIN, 255).into()),
            ("string", "héllo ✓".into()),
            ("empty", "".into()),
            ("bytes", vec![0u8, 0xff, b'a'].into()),
            ("timestamp", FieldValue::Timestamp(1_700_000_000)),
            ("array", FieldValue::Array(vec![1.into(), FieldValue::Array(vec![])])),
            ("table", FieldValue::Table(inner)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn every_kind_round_trips_through_the_wire() {
        let t = every_kind();
        let amqp = to_amqp_table(&t).unwrap();
        let bytes = cookie_factory::gen_simple(gen_field_table(&amqp), Vec::new()).unwrap();
        let (rest, parsed) = parse_field_table(bytes.as_slice()).unwrap();
        assert!(rest.is_empty());
        assert_eq!(from_amqp_table(&parsed), t);
    }

    #[test]
    fn kinds_use_rabbitmq_letters() {
        let amqp = to_amqp_table(&every_kind()).unwrap();
        let bytes = cookie_factory::gen_simple(gen_field_table(&amqp), Vec::new()).unwrap();
        let letter_after = |key: &str| {
            let at = bytes.windows(key.len() + 1).position(|w| w[0] as usize == key.len() && &w[1..] == key.as_bytes());
            at.map(|i| bytes[i + 1 + key.len()] as char)
        };
        for (key, letter) in [
            ("i8", 'b'),
            ("u8", 'B'),
            ("i16", 's'),
            ("u16", 'u'),
            ("i32", 'I'),
            ("u32", 'i'),
            ("i64", 'l'),
            ("f32", 'f'),
            ("f64", 'd'),
            ("decimal", 'D'),
            ("string", 'S'),
            ("bytes", 'x'),
            ("timestamp", 'T'),
            ("void", 'V'),
        ] {
            assert_eq!(letter_after(key), Some(letter), "{key}");
        }
    }

    #[test]
    fn refuses_what_amqp_cannot_hold() {
        let mut t = FieldTable::new();
        t.insert("k".repeat(256), 1);
        assert_eq!(to_amqp_table(&t).unwrap_err().kind(), kombu_core::ErrorKind::InvalidArgument);
        assert!(short_string(&"é".repeat(200), "name").is_err());
        assert!(short_string(&"a".repeat(255), "name").is_ok());
    }

    #[test]
    fn decimals_as_py_amqp_writes_them() {
        // py-amqp's bytes for headers={'d': Decimal('-3.5')}: 'D', scale 1, value -35 as a big-endian i32.
        let wire = b"\x00\x00\x00\x08\x01dD\x01\xff\xff\xff\xdd";
        let (rest, table) = parse_field_table(&wire[..]).expect("parses");
        assert!(rest.is_empty());
        let headers = from_amqp_table(&table);
        assert_eq!(headers["d"], FieldValue::Decimal(Decimal::new(-35, 1)));
        // Sent on, it is the same decimal.
        assert_eq!(to_amqp_value(&headers["d"]).unwrap(), table.inner()[&ShortString::from("d")]);
    }

    #[test]
    fn reads_what_py_amqp_and_others_send() {
        let cases = [
            (AMQPValue::ShortString("short".into()), FieldValue::from("short")),
            (AMQPValue::LongString(LongString::from(vec![0x66, 0xff])), FieldValue::Bytes(vec![0x66, 0xff])),
            (AMQPValue::LongString(LongString::from("text")), FieldValue::from("text")),
            (AMQPValue::ByteArray(ByteArray::from(vec![1u8, 2])), FieldValue::Bytes(vec![1, 2])),
        ];
        for (amqp, expected) in cases {
            assert_eq!(from_amqp_value(&amqp), expected, "{amqp:?}");
        }
        // py-amqp writes an int beyond 32 bits as 'L'; it reads as the i64 it is.
        let wire = b"\x00\x00\x00\x0b\x01nL\xff\xff\xff\xff\xff\xff\xfc\x18";
        let (_, table) = parse_field_table(&wire[..]).expect("parses");
        assert_eq!(from_amqp_table(&table)["n"], FieldValue::I64(-1000));
    }
}
