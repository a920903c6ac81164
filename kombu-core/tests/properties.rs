//! Property tests of the pure wire code: URL parsing, topic matching, Kombu's envelope, header values'
//! JSON form. Arbitrary input never panics, and what is written reads back the same.

use kombu_core::envelope::Envelope;
use kombu_core::routing::{headers_match, topic_matches};
use kombu_core::{BrokerUrl, Decimal, FieldTable, FieldValue, Message};
use proptest::prelude::*;

/// A plain recursive reading of AMQP's topic rules, to check the matcher against.
fn reference(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| reference(rest, &key[skip..])),
        Some((&"*", rest)) => !key.is_empty() && reference(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && reference(rest, &key[1..]),
    }
}

/// Header values of the kinds whose JSON form reads back as the same kind (see `kombu_core::fields`).
fn json_stable_value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        Just(FieldValue::Void),
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i32>().prop_map(FieldValue::I32),
        any::<i64>().prop_filter("beyond i32", |i| i32::try_from(*i).is_err()).prop_map(FieldValue::I64),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(FieldValue::F64),
        (any::<i32>(), any::<u8>()).prop_map(|(v, s)| FieldValue::Decimal(Decimal::new(v, s))),
        "\\PC{0,8}".prop_map(FieldValue::String),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(FieldValue::Bytes),
        (0u64..=253_402_300_799).prop_map(FieldValue::Timestamp),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(FieldValue::Array),
            prop::collection::vec(("[a-z][a-z_]{0,8}", inner), 0..4)
                .prop_map(|entries| FieldValue::Table(entries.into_iter().collect())),
        ]
    })
}

fn words(max: usize, with_wildcards: bool) -> impl Strategy<Value = Vec<String>> {
    let word = if with_wildcards {
        prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("*".to_string()), Just("#".to_string())].boxed()
    } else {
        prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("c".to_string())].boxed()
    };
    prop::collection::vec(word, 1..max)
}

proptest! {
    #[test]
    fn urls_never_panic(s in ".{0,80}") {
        let _ = s.parse::<BrokerUrl>();
        let _ = kombu_core::url::parse_failover(&s);
    }

    #[test]
    fn urls_read_back(
        scheme in "[a-z][a-z0-9+.-]{0,8}",
        user in "[a-zA-Z0-9]{1,8}",
        pass in "[a-zA-Z0-9;:@/ ]{1,12}",
        host in "[a-z][a-z0-9.-]{0,15}",
        port in 1u16..,
        vhost in "[a-zA-Z0-9_]{0,8}",
    ) {
        let pass_enc: String = pass.bytes().map(|b| format!("%{b:02X}")).collect();
        let raw = format!("{scheme}://{user}:{pass_enc}@{host}:{port}/{vhost}");
        let u: BrokerUrl = raw.parse().unwrap();
        prop_assert_eq!(u.scheme, scheme);
        prop_assert_eq!(u.userid.as_deref(), Some(user.as_str()));
        prop_assert_eq!(u.password.as_deref(), Some(pass.as_str()));
        prop_assert_eq!(u.hostname.as_deref(), Some(host.as_str()));
        prop_assert_eq!(u.port, Some(port));
        prop_assert_eq!(u.virtual_host, (!vhost.is_empty()).then_some(vhost));
    }

    #[test]
    fn topic_matcher_agrees_with_reference(pattern in words(6, true), key in words(6, false)) {
        let p = pattern.join(".");
        let k = key.join(".");
        let pw: Vec<&str> = pattern.iter().map(String::as_str).collect();
        let kw: Vec<&str> = key.iter().map(String::as_str).collect();
        prop_assert_eq!(topic_matches(&p, &k), reference(&pw, &kw), "pattern {} key {}", p, k);
    }

    #[test]
    fn envelope_round_trips(
        body in prop::collection::vec(any::<u8>(), 0..512),
        headers in prop::collection::btree_map("[a-z]{1,6}", "[ -~]{0,10}", 0..5),
        priority in 0u8..10,
        ct in "[a-z]{1,8}/[a-z-]{1,8}",
        key in "[a-z.#*]{0,12}",
    ) {
        let mut m = Message::new(body.clone()).content_type(ct.as_str()).content_encoding("binary").priority(priority);
        for (k, v) in &headers {
            m.headers.insert(k.clone(), v.clone());
        }
        let env = Envelope::from_message(&m, "ex", &key, "tag-1");
        let back = Envelope::parse(&env.to_vec()).unwrap().into_message().unwrap();
        prop_assert_eq!(&back.body[..], &body[..]);
        prop_assert_eq!(back.content_type.as_deref(), Some(ct.as_str()));
        prop_assert_eq!(back.properties.priority, Some(priority));
        prop_assert_eq!(&back.headers, &m.headers);
        prop_assert_eq!(&*back.delivery_info.routing_key, key.as_str());
    }

    #[test]
    fn envelope_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(env) = Envelope::parse(&bytes) {
            let _ = env.into_message();
        }
    }

    #[test]
    fn headers_match_never_panics(keys in prop::collection::vec("[a-z-]{1,4}", 0..6), any_mode in any::<bool>()) {
        let mut bind = FieldTable::new();
        bind.insert("x-match", if any_mode { "any" } else { "all" });
        let mut msg = FieldTable::new();
        for (i, k) in keys.iter().enumerate() {
            bind.insert(k.clone(), i as i64);
            if i % 2 == 0 {
                msg.insert(k.clone(), i as i32);
            }
        }
        let _ = headers_match(&bind, &msg);
    }

    #[test]
    fn header_values_round_trip_through_json(value in json_stable_value()) {
        let text = serde_json::to_string(&value).unwrap();
        let back: FieldValue = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &value, "{}", text);
        prop_assert_eq!(serde_json::Value::from(&back), serde_json::from_str::<serde_json::Value>(&text).unwrap());
    }
}
