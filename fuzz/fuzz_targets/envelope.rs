//! Fuzz target: Kombu's JSON envelope (`kombu_core::envelope`). Any bytes: `Envelope::parse` and
//! `into_message` return errors, never panic; a message that decodes is written again with
//! `Envelope::write_message` and must read back the same.

#![no_main]

use kombu_core::envelope::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = Envelope::parse(data) else { return };
    // The owned form serializes and parses back to itself.
    let again = Envelope::parse(&envelope.to_vec()).expect("an envelope's own JSON parses");
    assert_eq!(again, envelope, "to_vec/parse round trip");
    let redelivered = envelope.redelivered();
    let priority = envelope.priority();
    let Ok(message) = envelope.into_message() else { return };
    assert_eq!(message.delivery_info.redelivered, redelivered);
    assert_eq!(message.properties.priority.unwrap_or(0), priority);

    // The publish path writes what the consume path reads.
    let info = &message.delivery_info;
    let tag = info.delivery_tag.to_string();
    let mut json = Vec::new();
    Envelope::write_message(&message, &info.exchange, &info.routing_key, &tag, &mut json)
        .expect("a decoded message can be written again");
    let back = Envelope::parse(&json).expect("write_message writes an envelope").into_message().expect("and a message");
    assert_eq!(back.body, message.body);
    assert_eq!(back.content_type, message.content_type);
    assert_eq!(back.content_encoding, message.content_encoding);
    assert_eq!(back.headers, message.headers);
    assert_eq!(back.delivery_info.exchange, message.delivery_info.exchange);
    assert_eq!(back.delivery_info.routing_key, message.delivery_info.routing_key);
    assert_eq!(back.delivery_info.delivery_tag.to_string(), tag);
    let (p, q) = (&back.properties, &message.properties);
    assert_eq!(p.correlation_id, q.correlation_id);
    assert_eq!(p.reply_to, q.reply_to);
    assert_eq!(p.message_id, q.message_id);
    assert_eq!(p.timestamp, q.timestamp);
    assert_eq!(p.expiration, q.expiration);
    assert_eq!(p.priority, Some(q.priority.unwrap_or(0)));
    assert_eq!(p.extra, q.extra);
});
