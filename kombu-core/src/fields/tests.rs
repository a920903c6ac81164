//! Tests of field values: kinds, tables, and the JSON form both ways.

use super::json::*;
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
