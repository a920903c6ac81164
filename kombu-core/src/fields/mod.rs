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

mod json;
#[cfg(test)]
mod tests;

use std::fmt;
use std::ops::Index;
use std::str::FromStr;

use crate::error::{Error, Result};

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
        let refuse = || Error::invalid(format!("'{s}' is not a decimal a header can hold (scale 0-255, 32-bit value)"));
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
