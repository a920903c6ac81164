//! Fuzz target: AMQP field conversion (`kombu_amqp::fields`). The first byte picks the direction:
//! - even: the rest is a JSON object (kombu headers in Kombu's JSON, read as a `FieldTable`); if
//!   `to_amqp_table` takes it, it goes to AMQP wire bytes and back (amq-protocol's generator and parser)
//!   and must come out as the same table;
//! - odd: the rest is an AMQP field table on the wire (as a broker sends it); `from_amqp_table` reads
//!   it, and that table, if AMQP can hold it, must survive kombu -> AMQP -> kombu unchanged (compared as
//!   wire bytes, so that a NaN float counts as itself). Decimals are checked against the AMQP 0-9-1
//!   definition (scale u8, signed 32-bit value).

#![no_main]

use kombu_amqp::fields::{from_amqp_table, from_amqp_value, to_amqp_table};
use kombu_core::{Decimal, FieldTable, FieldValue};
use lapin::types::{generation::gen_field_table, parsing::parse_field_table, AMQPValue, DecimalValue};
use libfuzzer_sys::fuzz_target;

fn wire(table: &lapin::types::FieldTable) -> Vec<u8> {
    cookie_factory::gen_simple(gen_field_table(table), Vec::new()).expect("a field table serializes")
}

/// Every decimal in `v`, depth first.
fn decimals<'a>(v: &'a AMQPValue, out: &mut Vec<&'a DecimalValue>) {
    match v {
        AMQPValue::DecimalValue(d) => out.push(d),
        AMQPValue::FieldArray(a) => a.as_slice().iter().for_each(|v| decimals(v, out)),
        AMQPValue::FieldTable(t) => t.into_iter().for_each(|(_, v)| decimals(v, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let Ok(table) = serde_json::from_slice::<FieldTable>(rest) else { return };
        let Ok(amqp) = to_amqp_table(&table) else { return };
        let bytes = wire(&amqp);
        let (left, parsed) = parse_field_table(bytes.as_slice()).expect("our own wire bytes parse");
        assert!(left.is_empty());
        assert_eq!(parsed, amqp, "wire round trip");
        assert_eq!(from_amqp_table(&parsed), table, "kombu -> AMQP -> kombu");
    } else {
        let Ok((_, amqp)) = parse_field_table(rest) else { return };
        let table = from_amqp_table(&amqp);
        if let Ok(again) = to_amqp_table(&table) {
            // Compared as wire bytes: a NaN float from the wire is not equal to itself.
            let twice = to_amqp_table(&from_amqp_table(&again)).expect("what AMQP held, it holds again");
            assert_eq!(wire(&twice), wire(&again), "AMQP -> kombu -> AMQP -> kombu -> AMQP");
        }
        let mut found = Vec::new();
        for (_, v) in &amqp {
            decimals(v, &mut found);
        }
        for d in found {
            let got = from_amqp_value(&AMQPValue::DecimalValue(d.clone()));
            assert_eq!(got, FieldValue::Decimal(Decimal::new(d.value as i32, d.scale)), "decimal {d:?}");
        }
    }
});
