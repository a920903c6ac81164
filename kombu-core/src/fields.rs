//! Typed header and argument values ([`FieldValue`], [`FieldTable`]): AMQP 0-9-1's field kinds, with
//! the JSON form Python Kombu writes for them.
//!
//! # JSON form
//!
//! Kombu's JSON serializer (`kombu/utils/json.py`) writes the Python types JSON has no kind for as
//! `{"__type__": marker, "__value__": text}` objects, and the Redis transport stores headers with it. A
//! [`FieldValue`] takes the same form, so Python Kombu reads what kombu-rs writes as the Python value
//! py-amqp would have given it:
//!
//! | kind | JSON written | reads back as |
//! |---|---|---|
//! | `Void` | `null` | `Void` |
//! | `Bool` | `true` / `false` | `Bool` |
//! | `I8` ... `I64` | integer | `I32` when it fits, `I64` otherwise (py-amqp's kinds for a Python `int`) |
//! | `F32`, `F64` | number (an `F32` as the double it is) | `F64` |
//! | `Decimal` | `{"__type__": "decimal", "__value__": "0.001"}` (Python's `str(Decimal)`) | `Decimal` |
//! | `String` | string | `String` |
//! | `Bytes` | `{"__type__": "bytes", "__value__": text}` when UTF-8, else `"base64"` and base64 text | `Bytes` |
//! | `Timestamp` | `{"__type__": "datetime", "__value__": "2024-01-31T12:00:00"}` (naive UTC, as py-amqp gives Python) | `Timestamp` |
//! | `Array` | array | `Array` |
//! | `Table` | object | `Table` |
//!
//! Reading, a `__type__` object becomes a typed value only when writing that value gives back the same
//! JSON; any other (a `datetime` with microseconds or a UTC offset, a `date`, a `uuid`, a decimal AMQP
//! cannot hold such as `1E+3`) stays the [`FieldValue::Table`] it is, so a message passed on through
//! kombu-rs reaches Python unchanged. Integers above `i64::MAX` read as `F64` (AMQP has no kind for
//! them); floats that are not finite write as `null`; a timestamp after year 9999 (past Python's
//! `datetime`) writes as its number of seconds.
//!
//! ```
//! use kombu_core::{Decimal, FieldTable, FieldValue};
//! let mut h = FieldTable::new();
//! h.insert("price", Decimal::new(1, 3));
//! h.insert("at", FieldValue::Timestamp(1_700_000_000));
//! h.insert("raw", vec![0xffu8, 0]);
//! let json = serde_json::Value::from(&h);
//! assert_eq!(json["price"], serde_json::json!({"__type__": "decimal", "__value__": "0.001"}));
//! assert_eq!(json["at"]["__value__"], "2023-11-14T22:13:20");
//! assert_eq!(json["raw"]["__type__"], "base64");
//! assert_eq!(FieldTable::from(json.as_object().unwrap().clone()), h);
//! ```

use std::fmt;
use std::ops::Index;
use std::str::FromStr;

use base64::Engine as _;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A header or argument value: one of AMQP 0-9-1's field kinds, as RabbitMQ and py-amqp use them.
///
/// These are all of AMQP 0-9-1's kinds as RabbitMQ reads them. It has no unsigned 64-bit kind (RabbitMQ
/// reads `l` and `L` as signed), so there is none here: a `u64` converts with [`TryFrom`]. Equality is exact (an `I32(1)` is not an `I64(1)`); comparing with a Rust number
/// (`value == 5`) compares the number, whatever the integer kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum FieldValue {
    /// No value (AMQP void `V`, JSON `null`, Python `None`).
    #[default]
    Void,
    /// A boolean (`t`).
    Bool(bool),
    /// A signed 8-bit integer (`b`).
    I8(i8),
    /// An unsigned 8-bit integer (`B`).
    U8(u8),
    /// A signed 16-bit integer (`s`).
    I16(i16),
    /// An unsigned 16-bit integer (`u`).
    U16(u16),
    /// A signed 32-bit integer (`I`; py-amqp writes Python ints in this range so).
    I32(i32),
    /// An unsigned 32-bit integer (`i`).
    U32(u32),
    /// A signed 64-bit integer (`l`).
    I64(i64),
    /// A 32-bit float (`f`).
    F32(f32),
    /// A 64-bit float (`d`; py-amqp writes Python floats so).
    F64(f64),
    /// A decimal (`D`; Python's `Decimal`).
    Decimal(Decimal),
    /// UTF-8 text (long string `S`).
    String(String),
    /// Bytes (byte array `x`; Python's `bytes`).
    Bytes(Vec<u8>),
    /// Seconds since the Unix epoch (`T`; Python's `datetime`, naive UTC).
    Timestamp(u64),
    /// A list of values (`A`).
    Array(Vec<FieldValue>),
    /// A nested table (`F`).
    Table(FieldTable),
}

/// An AMQP decimal: `value / 10^scale` (py-amqp's `Decimal`). Displays as Python's `str(Decimal)`.
///
/// ```
/// use kombu_core::Decimal;
/// assert_eq!(Decimal::new(-35, 1).to_string(), "-3.5");
/// assert_eq!(Decimal::new(1, 7).to_string(), "1E-7");
/// assert_eq!("0.001".parse::<Decimal>().unwrap(), Decimal::new(1, 3));
/// assert!("1E+3".parse::<Decimal>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Decimal {
    /// The number of decimal digits after the point.
    pub scale: u8,
    /// The unscaled value.
    pub value: i32,
}

impl Decimal {
    /// `value / 10^scale`.
    pub fn new(value: i32, scale: u8) -> Self {
        Decimal { scale, value }
    }

    /// The nearest float.
    pub fn to_f64(self) -> f64 {
        f64::from(self.value) / 10f64.powi(i32::from(self.scale))
    }
}

impl fmt::Display for Decimal {
    /// Python's `str(Decimal)`: plain notation unless the exponent is below -6 (`1E-7`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.value.unsigned_abs().to_string();
        let exponent = -i64::from(self.scale);
        let adjusted = exponent + digits.len() as i64 - 1;
        if self.value < 0 {
            f.write_str("-")?;
        }
        if adjusted < -6 {
            let (first, rest) = digits.split_at(1);
            let point = if rest.is_empty() { "" } else { "." };
            return write!(f, "{first}{point}{rest}E{adjusted}");
        }
        let point = digits.len() as i64 + exponent;
        if exponent == 0 {
            f.write_str(&digits)
        } else if point <= 0 {
            write!(f, "0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            write!(f, "{int}.{frac}")
        }
    }
}

impl FromStr for Decimal {
    type Err = Error;

    /// Reads Python's decimal text; only what [`Display`](fmt::Display) writes back the same is taken.
    fn from_str(s: &str) -> Result<Decimal> {
        let refuse = || Error::invalid(format!("'{s}' is not a decimal AMQP can hold (scale 0-255, 32-bit value)"));
        let (negative, unsigned) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (mantissa, exp) = match unsigned.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i64>().map_err(|_| refuse())?),
            None => (unsigned, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(refuse());
        }
        let scale = u8::try_from(frac.len() as i64 - exp).map_err(|_| refuse())?;
        let magnitude: i64 = format!("{int}{frac}").parse().map_err(|_| refuse())?;
        let value = i32::try_from(if negative { -magnitude } else { magnitude }).map_err(|_| refuse())?;
        let d = Decimal { scale, value };
        if d.to_string() == s {
            Ok(d)
        } else {
            Err(refuse())
        }
    }
}

/// Python's `datetime.isoformat()` of a naive UTC datetime of whole seconds, or `None` after year 9999.
fn format_timestamp(seconds: u64) -> Option<String> {
    let days = seconds / 86_400;
    let rem = seconds % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).ok()?);
    (y <= 9999).then(|| format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60))
}

/// The seconds of `YYYY-MM-DDTHH:MM:SS` (naive UTC), when it is exactly what [`format_timestamp`] writes.
fn parse_timestamp(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(range)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y < 1970 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = u64::try_from(days_from_civil(y as i64, mo as u32, d as u32)).ok()?;
    let seconds = days * 86_400 + h * 3600 + mi * 60 + sec;
    // Refuses days past the month's end (2023-02-30), which the arithmetic would carry into the next.
    (format_timestamp(seconds).as_deref() == Some(s)).then_some(seconds)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years of 146097 days).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a number of days since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl FieldValue {
    /// The integer kind py-amqp writes for a Python `int`: `I32` when it fits, `I64` otherwise. JSON
    /// integers read so.
    pub fn int(i: i64) -> FieldValue {
        i32::try_from(i).map_or(FieldValue::I64(i), FieldValue::I32)
    }

    /// The text of a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::String(s) => Some(s),
            _ => None,
        }
    }
    /// The value of a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            FieldValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// The value of any integer kind.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            FieldValue::I8(i) => i.into(),
            FieldValue::U8(i) => i.into(),
            FieldValue::I16(i) => i.into(),
            FieldValue::U16(i) => i.into(),
            FieldValue::I32(i) => i.into(),
            FieldValue::U32(i) => i.into(),
            FieldValue::I64(i) => i,
            _ => return None,
        })
    }
    /// The value of any integer kind that is not negative.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_i64().and_then(|i| u64::try_from(i).ok())
    }
    /// The value of a float, integer or decimal, as a float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            FieldValue::F32(f) => Some(f.into()),
            FieldValue::F64(f) => Some(f),
            FieldValue::Decimal(d) => Some(d.to_f64()),
            _ => self.as_i64().map(|i| i as f64),
        }
    }
    /// The bytes of `Bytes`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            FieldValue::Bytes(b) => Some(b),
            _ => None,
        }
    }
    /// The items of an `Array`.
    pub fn as_array(&self) -> Option<&[FieldValue]> {
        match self {
            FieldValue::Array(items) => Some(items),
            _ => None,
        }
    }
    /// The table of a `Table`.
    pub fn as_table(&self) -> Option<&FieldTable> {
        match self {
            FieldValue::Table(t) => Some(t),
            _ => None,
        }
    }
    /// Whether it is `Void`.
    pub fn is_void(&self) -> bool {
        matches!(self, FieldValue::Void)
    }

    /// Equality for matching (headers exchanges): integers compare by value whatever their kind (JSON
    /// has one integer kind), other values exactly.
    pub fn same_value(&self, other: &FieldValue) -> bool {
        match (self.as_i64(), other.as_i64()) {
            (Some(a), Some(b)) => a == b,
            _ => self == other,
        }
    }

    /// The typed value a Kombu `{"__type__", "__value__"}` table stands for, when it writes back the same.
    fn from_kombu_marker(table: &FieldTable) -> Option<FieldValue> {
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

static VOID: FieldValue = FieldValue::Void;

impl Index<&str> for FieldValue {
    type Output = FieldValue;
    /// The value under `key` of a `Table`; `Void` for a missing key or another kind.
    fn index(&self, key: &str) -> &FieldValue {
        self.as_table().and_then(|t| t.get(key)).unwrap_or(&VOID)
    }
}

impl Index<usize> for FieldValue {
    type Output = FieldValue;
    /// The item at `i` of an `Array`; `Void` past its end or for another kind.
    fn index(&self, i: usize) -> &FieldValue {
        self.as_array().and_then(|a| a.get(i)).unwrap_or(&VOID)
    }
}

macro_rules! from_scalar {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for FieldValue {
            fn from(v: $t) -> Self {
                FieldValue::$variant(v)
            }
        }
    )*};
}
from_scalar!(bool => Bool, i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32, i64 => I64,
    f32 => F32, f64 => F64, Decimal => Decimal, String => String, Vec<u8> => Bytes, Vec<FieldValue> => Array,
    FieldTable => Table);

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::String(s.to_owned())
    }
}
impl From<&String> for FieldValue {
    fn from(s: &String) -> Self {
        FieldValue::String(s.clone())
    }
}
impl From<&[u8]> for FieldValue {
    fn from(b: &[u8]) -> Self {
        FieldValue::Bytes(b.to_vec())
    }
}
impl<T: Into<FieldValue>> From<Option<T>> for FieldValue {
    /// `None` is `Void`.
    fn from(v: Option<T>) -> Self {
        v.map_or(FieldValue::Void, Into::into)
    }
}
impl<T: Into<FieldValue>> FromIterator<T> for FieldValue {
    /// An `Array`.
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        FieldValue::Array(iter.into_iter().map(Into::into).collect())
    }
}
impl TryFrom<u64> for FieldValue {
    type Error = Error;
    /// An `I64`; above `i64::MAX` an `InvalidArgument` error (AMQP has no kind for it).
    fn try_from(v: u64) -> Result<Self> {
        i64::try_from(v)
            .map(FieldValue::I64)
            .map_err(|_| Error::invalid(format!("{v} is too large for a field value (the largest is {})", i64::MAX)))
    }
}

macro_rules! eq_number {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for FieldValue {
            fn eq(&self, other: &$t) -> bool {
                self.as_i64().is_some_and(|i| i128::from(i) == i128::from(*other))
            }
        }
    )*};
}
eq_number!(i8, u8, i16, u16, i32, u32, i64, u64);

impl PartialEq<f64> for FieldValue {
    fn eq(&self, other: &f64) -> bool {
        matches!(self, FieldValue::F32(_) | FieldValue::F64(_)) && self.as_f64() == Some(*other)
    }
}
impl PartialEq<bool> for FieldValue {
    fn eq(&self, other: &bool) -> bool {
        self.as_bool() == Some(*other)
    }
}
impl PartialEq<str> for FieldValue {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}
impl PartialEq<&str> for FieldValue {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}
impl PartialEq<String> for FieldValue {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == Some(other.as_str())
    }
}

/// A table of named values: message headers, properties kombu has no field for, entity arguments.
/// Keys keep their insertion order (the order on the wire, and Python's dict order); equality ignores it.
///
/// ```
/// use kombu_core::{FieldTable, FieldValue};
/// let mut t: FieldTable = [("a", 1)].into_iter().collect();
/// t.insert("b", "two");
/// assert_eq!(t["a"], 1);
/// assert_eq!(t.get("b").and_then(FieldValue::as_str), Some("two"));
/// assert_eq!(t.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["a", "b"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct FieldTable {
    entries: Vec<(String, FieldValue)>,
}

impl FieldTable {
    /// An empty table.
    pub fn new() -> Self {
        FieldTable::default()
    }
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// The value under `key`, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut FieldValue> {
        self.entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    /// Sets `key` to `value` (in place when it has one, at the end otherwise); returns the old value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Option<FieldValue> {
        let key = key.into();
        let value = value.into();
        match self.get_mut(&key) {
            Some(old) => Some(std::mem::replace(old, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }
    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(at).1)
    }
    /// The entries in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }
    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }
}

impl PartialEq for FieldTable {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Index<&str> for FieldTable {
    type Output = FieldValue;
    /// The value under `key`; panics when there is none (use [`get`](FieldTable::get) otherwise).
    fn index(&self, key: &str) -> &FieldValue {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no '{key}' in the field table"),
        }
    }
}

/// The entries of a [`FieldTable`], in order.
#[derive(Debug, Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, (String, FieldValue)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a FieldValue);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_str(), v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<'a> IntoIterator for &'a FieldTable {
    type Item = (&'a str, &'a FieldValue);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for FieldTable {
    type Item = (String, FieldValue);
    type IntoIter = std::vec::IntoIter<(String, FieldValue)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: Into<String>, V: Into<FieldValue>> FromIterator<(K, V)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut t = FieldTable::new();
        t.extend(iter);
        t
    }
}

impl<K: Into<String>, V: Into<FieldValue>> Extend<(K, V)> for FieldTable {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn every_kind() -> FieldTable {
        let mut nested = FieldTable::new();
        nested.insert("list", FieldValue::Array(vec![1.into(), "two".into(), true.into(), FieldValue::Void]));
        nested.insert("deeper", [("x", -1)].into_iter().collect::<FieldTable>());
        let mut t = FieldTable::new();
        t.insert("void", FieldValue::Void);
        t.insert("bool", true);
        t.insert("i64", i64::MIN);
        t.insert("f64", 2.5);
        t.insert("whole", 2.0);
        t.insert("decimal", Decimal::new(-35, 1));
        t.insert("small", Decimal::new(1, 3));
        t.insert("string", "ünï");
        t.insert("utf8_bytes", b"abc".as_slice());
        t.insert("bytes", vec![0u8, 0xff, 7]);
        t.insert("timestamp", FieldValue::Timestamp(1_700_000_000));
        t.insert("epoch", FieldValue::Timestamp(0));
        t.insert("nested", nested);
        t
    }

    #[test]
    fn json_round_trip_keeps_every_json_kind() {
        let t = every_kind();
        let text = serde_json::to_string(&t).unwrap();
        let back: FieldTable = serde_json::from_str(&text).unwrap();
        assert_eq!(back, t);
        assert!(matches!(back["whole"], FieldValue::F64(_)));
        assert_eq!(FieldTable::from(serde_json::Value::from(&t).as_object().unwrap().clone()), t);
        // Order is kept, as Python keeps a dict's.
        assert_eq!(back.keys().collect::<Vec<_>>(), t.keys().collect::<Vec<_>>());
    }

    #[test]
    fn writes_what_python_kombu_writes() {
        // Python: json.dumps({...}, cls=kombu.utils.json.JSONEncoder) of the same values.
        let v = serde_json::Value::from(&every_kind());
        assert_eq!(v["decimal"], json!({"__type__": "decimal", "__value__": "-3.5"}));
        assert_eq!(v["small"], json!({"__type__": "decimal", "__value__": "0.001"}));
        assert_eq!(v["utf8_bytes"], json!({"__type__": "bytes", "__value__": "abc"}));
        assert_eq!(v["bytes"], json!({"__type__": "base64", "__value__": "AP8H"}));
        assert_eq!(v["timestamp"], json!({"__type__": "datetime", "__value__": "2023-11-14T22:13:20"}));
        assert_eq!(v["epoch"]["__value__"], "1970-01-01T00:00:00");
        assert_eq!(v["void"], json!(null));
        assert_eq!(v["nested"], json!({"list": [1, "two", true, null], "deeper": {"x": -1}}));
    }

    #[test]
    fn narrow_kinds_read_back_as_json_has_them() {
        let t: FieldTable = [
            ("i8", FieldValue::I8(-8)),
            ("u16", FieldValue::U16(65535)),
            ("u32", FieldValue::U32(u32::MAX)),
            ("f32", FieldValue::F32(0.5)),
        ]
        .into_iter()
        .collect();
        let back: FieldTable = serde_json::from_slice(&serde_json::to_vec(&t).unwrap()).unwrap();
        assert_eq!(back["i8"], FieldValue::I32(-8));
        assert_eq!(back["u32"], FieldValue::I64(u32::MAX.into()));
        assert_eq!(back["f32"], FieldValue::F64(0.5));
        assert!(back["u16"].same_value(&t["u16"]));
        assert_eq!(back["u16"], 65535);
    }

    #[test]
    fn markers_that_would_not_write_back_the_same_stay_tables() {
        for odd in [
            json!({"__type__": "datetime", "__value__": "2024-01-01T00:00:00.123456"}),
            json!({"__type__": "datetime", "__value__": "2024-01-01T00:00:00+00:00"}),
            json!({"__type__": "datetime", "__value__": "2023-02-30T00:00:00"}),
            json!({"__type__": "datetime", "__value__": "1969-12-31T23:59:59"}),
            json!({"__type__": "date", "__value__": "2024-01-01"}),
            json!({"__type__": "uuid", "__value__": {"hex": "00"}}),
            json!({"__type__": "decimal", "__value__": "1E+3"}),
            json!({"__type__": "decimal", "__value__": "-0"}),
            json!({"__type__": "decimal", "__value__": "NaN"}),
            json!({"__type__": "decimal", "__value__": "99999999999"}),
            json!({"__type__": "base64", "__value__": "YWJj"}),
            json!({"__type__": "decimal", "__value__": "1", "extra": 1}),
        ] {
            let v = FieldValue::from(odd.clone());
            assert!(matches!(v, FieldValue::Table(_)), "{odd} read as {v:?}");
            assert_eq!(serde_json::Value::from(&v), odd);
        }
    }

    #[test]
    fn decimals_display_as_python_does() {
        // Python: str(Decimal(value).scaleb(-scale)).
        let cases = [
            (1, 3, "0.001"),
            (-35, 1, "-3.5"),
            (125, 2, "1.25"),
            (0, 0, "0"),
            (0, 3, "0.000"),
            (0, 7, "0E-7"),
            (1, 6, "0.000001"),
            (1, 7, "1E-7"),
            (123, 9, "1.23E-7"),
            (-5, 8, "-5E-8"),
            (i32::MIN, 2, "-21474836.48"),
            (i32::MAX, 0, "2147483647"),
            (7, 255, "7E-255"),
        ];
        for (value, scale, text) in cases {
            let d = Decimal::new(value, scale);
            assert_eq!(d.to_string(), text);
            assert_eq!(text.parse::<Decimal>().unwrap(), d, "{text}");
        }
        assert_eq!(Decimal::new(-35, 1).to_f64(), -3.5);
        for bad in ["", "-", ".5", "1.", "1e", "+1", "01", "1_0", "2147483648", "1E-256", "1.5e1"] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_calendar_exact() {
        for (seconds, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_709_251_199, "2024-02-29T23:59:59"),
            (4_107_542_400, "2100-03-01T00:00:00"),
            (253_402_300_799, "9999-12-31T23:59:59"),
        ] {
            assert_eq!(format_timestamp(seconds).as_deref(), Some(text));
            assert_eq!(parse_timestamp(text), Some(seconds));
        }
        assert_eq!(format_timestamp(253_402_300_800), None);
        assert_eq!(serde_json::to_string(&FieldValue::Timestamp(u64::MAX)).unwrap(), u64::MAX.to_string());
        for bad in ["2024-1-01T00:00:00", "2024-01-01 00:00:00", "2024-13-01T00:00:00", "2024-01-01T24:00:00"] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers_at_the_edges() {
        let big: FieldValue = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(big, FieldValue::F64(18446744073709551615.0));
        assert_eq!(serde_json::to_string(&FieldValue::F64(f64::NAN)).unwrap(), "null");
        assert!(FieldValue::try_from(u64::MAX).is_err());
        assert_eq!(FieldValue::try_from(5u64).unwrap(), FieldValue::I64(5));
        assert_eq!(serde_json::from_str::<FieldValue>("-2147483648").unwrap(), FieldValue::I32(i32::MIN));
        assert_eq!(serde_json::from_str::<FieldValue>("2147483648").unwrap(), FieldValue::I64(1 << 31));
    }

    #[test]
    fn accessors_and_comparisons() {
        let t = every_kind();
        assert_eq!(t["string"], "ünï");
        assert_eq!(t["bool"], true);
        assert_eq!(t["f64"], 2.5);
        assert_eq!(t["nested"]["list"][1], "two");
        assert!(t["nested"]["missing"][3].is_void());
        assert_eq!(t["nested"]["deeper"]["x"], -1);
        assert_eq!(t["bytes"].as_bytes(), Some(&[0u8, 0xff, 7][..]));
        assert_eq!(FieldValue::U8(3).as_u64(), Some(3));
        assert_eq!(FieldValue::I8(-3).as_u64(), None);
        assert_ne!(FieldValue::I32(1), FieldValue::I64(1));
        assert!(FieldValue::I32(1).same_value(&FieldValue::I64(1)));
        assert_eq!(FieldValue::from(None::<i32>), FieldValue::Void);
        assert_eq!([1, 2].into_iter().collect::<FieldValue>(), FieldValue::Array(vec![1.into(), 2.into()]));
    }

    #[test]
    fn table_edits_and_equality() {
        let mut t = FieldTable::new();
        assert_eq!(t.insert("a", 1), None);
        t.insert("b", 2);
        assert_eq!(t.insert("a", 3), Some(FieldValue::I32(1)));
        assert_eq!(t.keys().collect::<Vec<_>>(), ["a", "b"]);
        let reversed: FieldTable = [("b", 2), ("a", 3)].into_iter().collect();
        assert_eq!(t, reversed);
        assert_eq!(t.remove("a"), Some(FieldValue::I32(3)));
        assert!(!t.contains_key("a"));
        assert_ne!(t, reversed);
        let null: Option<FieldTable> = serde_json::from_str("null").unwrap();
        assert!(null.is_none());
    }
}
