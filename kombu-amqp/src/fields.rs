//! JSON values (kombu's [`FieldTable`]) to AMQP field values and back: pure, no I/O.
//!
//! The mapping follows py-amqp so Python Kombu reads what kombu-rs writes and the other way round:
//!
//! | JSON | AMQP (written) | AMQP (read) |
//! |---|---|---|
//! | `null` | void `V` | void |
//! | bool | boolean `t` | boolean |
//! | integer in `i32` | long-int `I` | every integer type (`b B s u I i l T`) |
//! | other integer in `i64` | long-long-int `l` | |
//! | float | double `d` | float `f`, double `d`, decimal `D` (scale and signed 32-bit value) |
//! | string | long-string `S` | short-string, long-string (invalid UTF-8 is replaced) |
//! | array | field-array `A` | field-array |
//! | object | field-table `F` | field-table |
//! | array of numbers 0-255 | (written as field-array) | byte-array `x` |
//!
//! An integer above `i64::MAX` has no AMQP field type and is refused; so is a key longer than 255 bytes.
//! A float that is not finite (NaN, infinity) has no JSON form and reads as `null`.

use kombu_core::{Error, FieldTable, Result};
use lapin::types::{AMQPValue, DecimalValue, FieldArray, FieldTable as AmqpTable, LongString, ShortString};
use serde_json::{Map, Number, Value};

/// A short string (at most 255 bytes) for an AMQP field named `what`, or an `InvalidArgument` error.
pub fn short_string(s: &str, what: &str) -> Result<ShortString> {
    ShortString::try_new(s).map_err(|_| {
        let shown: String = s.chars().take(40).collect();
        Error::invalid(format!("{what} '{shown}...' is {} bytes; AMQP allows at most 255", s.len()))
    })
}

/// A JSON table as an AMQP field table.
pub fn to_amqp_table(table: &FieldTable) -> Result<AmqpTable> {
    let mut out = AmqpTable::default();
    for (k, v) in table {
        out.insert(short_string(k, "table key")?, to_amqp_value(v)?);
    }
    Ok(out)
}

/// A JSON value as an AMQP field value.
pub fn to_amqp_value(value: &Value) -> Result<AMQPValue> {
    Ok(match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => number_to_amqp(n)?,
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        Value::Array(items) => {
            let values = items.iter().map(to_amqp_value).collect::<Result<Vec<_>>>()?;
            AMQPValue::FieldArray(FieldArray::from(values))
        }
        Value::Object(map) => AMQPValue::FieldTable(to_amqp_table(map)?),
    })
}

fn number_to_amqp(n: &Number) -> Result<AMQPValue> {
    if let Some(i) = n.as_i64() {
        return Ok(match i32::try_from(i) {
            Ok(small) => AMQPValue::LongInt(small),
            Err(_) => AMQPValue::LongLongInt(i),
        });
    }
    if n.is_u64() {
        return Err(Error::invalid(format!(
            "integer {n} is too large for an AMQP field (the largest is {})",
            i64::MAX
        )));
    }
    match n.as_f64() {
        Some(f) => Ok(AMQPValue::Double(f)),
        None => Err(Error::invalid(format!("number {n} has no AMQP field type"))),
    }
}

/// An AMQP field table as a JSON table.
pub fn from_amqp_table(table: &AmqpTable) -> FieldTable {
    table.into_iter().map(|(k, v)| (k.as_str().to_owned(), from_amqp_value(v))).collect::<Map<_, _>>()
}

/// An AMQP field value as a JSON value.
pub fn from_amqp_value(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::from(*i),
        AMQPValue::ShortShortUInt(i) => Value::from(*i),
        AMQPValue::ShortInt(i) => Value::from(*i),
        AMQPValue::ShortUInt(i) => Value::from(*i),
        AMQPValue::LongInt(i) => Value::from(*i),
        AMQPValue::LongUInt(i) => Value::from(*i),
        AMQPValue::LongLongInt(i) => Value::from(*i),
        AMQPValue::Timestamp(t) => Value::from(*t),
        AMQPValue::Float(f) => float(f64::from(*f)),
        AMQPValue::Double(f) => float(*f),
        AMQPValue::DecimalValue(d) => float(decimal_to_f64(d)),
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::FieldArray(items) => Value::Array(items.as_slice().iter().map(from_amqp_value).collect()),
        AMQPValue::FieldTable(t) => Value::Object(from_amqp_table(t)),
        AMQPValue::ByteArray(b) => Value::Array(b.as_slice().iter().map(|x| Value::from(*x)).collect()),
        AMQPValue::Void => Value::Null,
    }
}

/// An AMQP 0-9-1 decimal as a float: `value / 10^scale`, where the value is a SIGNED 32-bit integer
/// (py-amqp packs `Decimal('-3.5')` as scale 1, value -35 with `>Bi`). amq-protocol keeps the four
/// bytes in a `u32`, so they are read back as the `i32` they are. kombu never writes decimals: JSON has
/// none, and floats go out as doubles, as py-amqp writes Python floats.
fn decimal_to_f64(d: &DecimalValue) -> f64 {
    let value = i32::from_ne_bytes(d.value.to_ne_bytes());
    f64::from(value) / 10f64.powi(i32::from(d.scale))
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::ByteArray;
    use serde_json::json;

    fn round_trip(v: Value) -> Value {
        let table = match v {
            Value::Object(m) => m,
            other => panic!("test input must be an object, got {other}"),
        };
        Value::Object(from_amqp_table(&to_amqp_table(&table).expect("encodes")))
    }

    #[test]
    fn json_round_trips_losslessly() {
        let v = json!({
            "s": "text", "empty": "", "utf8": "héllo ✓", "t": true, "f": false, "n": null,
            "small": 7, "neg": -3, "i32max": 2147483647, "big": 2147483648i64, "min": i64::MIN, "max": i64::MAX,
            "float": 1.5, "whole_float": 2.0, "tiny": 1e-300,
            "arr": [1, "a", null, [true, 2.5]], "nested": {"a": {"b": [1, {"c": "d"}]}}, "empty_arr": [], "empty_obj": {}
        });
        let back = round_trip(v.clone());
        assert_eq!(back, v);
        // Floatness survives: 2.0 stays a float, 7 stays an integer.
        assert!(back["whole_float"].is_f64());
        assert!(back["small"].is_i64());
    }

    #[test]
    fn integers_use_py_amqp_types() {
        assert_eq!(to_amqp_value(&json!(5)).unwrap(), AMQPValue::LongInt(5));
        assert_eq!(to_amqp_value(&json!(-2147483648i64)).unwrap(), AMQPValue::LongInt(i32::MIN));
        assert_eq!(to_amqp_value(&json!(1u64 << 40)).unwrap(), AMQPValue::LongLongInt(1 << 40));
        assert_eq!(to_amqp_value(&json!("x")).unwrap(), AMQPValue::LongString("x".into()));
        assert_eq!(to_amqp_value(&json!(0.25)).unwrap(), AMQPValue::Double(0.25));
    }

    #[test]
    fn refuses_what_amqp_cannot_hold() {
        let err = to_amqp_value(&json!(u64::MAX)).unwrap_err();
        assert_eq!(err.kind(), kombu_core::ErrorKind::InvalidArgument);
        let mut t = FieldTable::new();
        t.insert("k".repeat(256), json!(1));
        assert_eq!(to_amqp_table(&t).unwrap_err().kind(), kombu_core::ErrorKind::InvalidArgument);
        assert!(short_string(&"é".repeat(200), "name").is_err());
        assert!(short_string(&"a".repeat(255), "name").is_ok());
    }

    /// An AMQP decimal: scale and a signed 32-bit value (amq-protocol keeps the value's bits in a `u32`).
    fn decimal(scale: u8, value: i32) -> AMQPValue {
        AMQPValue::DecimalValue(DecimalValue { scale, value: u32::from_ne_bytes(value.to_ne_bytes()) })
    }

    #[test]
    fn decimals_are_signed() {
        let cases = [
            (decimal(1, -35), json!(-3.5)),
            (decimal(0, -1), json!(-1.0)),
            (decimal(2, i32::MIN), json!(-21474836.48)),
            (decimal(0, 0), json!(0.0)),
            (decimal(5, 0), json!(0.0)),
            (decimal(2, 125), json!(1.25)),
            (decimal(0, i32::MAX), json!(2147483647.0)),
        ];
        for (amqp, expected) in cases {
            assert_eq!(from_amqp_value(&amqp), expected, "{amqp:?}");
        }
    }

    #[test]
    fn decimals_as_py_amqp_writes_them() {
        // py-amqp's bytes for headers={'d': Decimal('-3.5')}: 'D', scale 1, value -35 as a big-endian i32;
        // before the fix this read as 429496726.1.
        let wire = b"\x00\x00\x00\x08\x01dD\x01\xff\xff\xff\xdd";
        let (rest, table) = lapin::types::parsing::parse_field_table(&wire[..]).expect("parses");
        assert!(rest.is_empty());
        let headers = from_amqp_table(&table);
        assert_eq!(Value::Object(headers.clone()), json!({"d": -3.5}));
        // Sent on, it is a double (kombu writes every float as `d`), still -3.5.
        assert_eq!(to_amqp_value(&headers["d"]).unwrap(), AMQPValue::Double(-3.5));
    }

    #[test]
    fn reads_every_amqp_type() {
        let cases = [
            (AMQPValue::ShortShortInt(-1), json!(-1)),
            (AMQPValue::ShortShortUInt(255), json!(255)),
            (AMQPValue::ShortInt(-300), json!(-300)),
            (AMQPValue::ShortUInt(65535), json!(65535)),
            (AMQPValue::LongUInt(u32::MAX), json!(u32::MAX)),
            (AMQPValue::Timestamp(1_700_000_000), json!(1_700_000_000u64)),
            (AMQPValue::Float(0.5), json!(0.5)),
            (AMQPValue::Float(f32::NAN), Value::Null),
            (AMQPValue::DecimalValue(DecimalValue { scale: 2, value: 125 }), json!(1.25)),
            (AMQPValue::ShortString("short".into()), json!("short")),
            (AMQPValue::LongString(LongString::from(vec![0x66, 0xff])), json!("f\u{fffd}")),
            (AMQPValue::ByteArray(ByteArray::from(vec![1u8, 2])), json!([1, 2])),
            (AMQPValue::Void, Value::Null),
        ];
        for (amqp, expected) in cases {
            assert_eq!(from_amqp_value(&amqp), expected, "{amqp:?}");
        }
    }
}
