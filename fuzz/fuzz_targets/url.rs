//! Fuzz target: broker URLs and transport options. Any text goes through Kombu's failover parser
//! (`kombu_core::url::parse_failover`), and every URL it yields through the Redis option reader
//! (`RedisOptions::from_url`) and the AMQP one (`kombu_amqp::options::parse`, under each AMQP scheme):
//! errors, never panics.

#![no_main]

use kombu_core::url::parse_failover;
use kombu_core::BrokerUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // One URL alone parses as the failover list's only member.
    if !text.contains(';') {
        let one = text.parse::<BrokerUrl>();
        let list = parse_failover(text);
        match (&one, &list) {
            (Ok(u), Ok(l)) => assert_eq!(std::slice::from_ref(u), l.as_slice()),
            (Err(_), Err(_)) => {}
            _ => panic!("{text:?}: parse gives {one:?}, parse_failover gives {list:?}"),
        }
    }
    let Ok(urls) = parse_failover(text) else { return };
    for url in urls {
        let _ = url.to_string();
        let _ = kombu_redis::RedisOptions::from_url(&url).map(|o| o.address());
        for scheme in ["amqp", "amqps", "pyamqp"] {
            let mut u = url.clone();
            u.scheme = scheme.to_owned();
            if let Ok(params) = kombu_amqp::options::parse(&u) {
                assert_eq!(params.tls(), scheme == "amqps" || u.bool_option("ssl").ok().flatten() == Some(true));
            }
        }
    }
});
