//! Property tests of the pure wire code: URL parsing, topic matching, Kombu's envelope. Arbitrary input
//! never panics, and what is written reads back the same.

use kombu_core::envelope::Envelope;
use kombu_core::routing::{headers_match, topic_matches};
use kombu_core::{BrokerUrl, FieldTable, Message};
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
            m.headers.insert(k.clone(), v.clone().into());
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
        bind.insert("x-match".into(), if any_mode { "any" } else { "all" }.into());
        let mut msg = FieldTable::new();
        for (i, k) in keys.iter().enumerate() {
            bind.insert(k.clone(), i.into());
            if i % 2 == 0 {
                msg.insert(k.clone(), i.into());
            }
        }
        let _ = headers_match(&bind, &msg);
    }
}
