//! `kombu publish`: sends a body from the command line or stdin to an exchange, with headers and properties.

use kombu_core::{DeliveryMode, Error, Exchange, FieldTable, FieldValue, Producer, Queue};

use super::args::{ExchangeOpts, PublishArgs, QueueOpts, SerializerArg};
use super::{key_value, Io, Outcome, EXIT_OK};

/// Runs `kombu publish`.
pub(crate) fn run(args: &PublishArgs, io: &mut Io<'_>) -> Outcome {
    // A bad URL is reported first; the broker is contacted only once the message is known to be good.
    let conn = crate::Connection::open(&args.url)?;
    let body = read_body(&args.body, io)?;
    let (body, content_type, content_encoding) = encode_body(body, args.serializer)?;
    let content_type = args.content_type.as_deref().unwrap_or(&content_type);
    let content_encoding = args.content_encoding.as_deref().unwrap_or(&content_encoding);
    let headers = fields("header", &args.headers, &args.json_headers)?;
    let exchange = exchange(&args.exchange, &args.exchange_opts);
    let queue = args.queue.as_ref().map(|q| queue(q, &args.queue_opts).bind(exchange.clone(), &args.routing_key));

    conn.connect()?;
    let producer = Producer::new(&conn)?.exchange(exchange.clone()).auto_declare(false);
    if !args.no_declare {
        // Only what is missing, or what the flags ask for: the exchange and queue may be another program's.
        let exchange_asked = args.exchange_opts.transient_exchange;
        super::entities::ensure_exchange(&conn, &exchange, exchange_asked)?;
        if let Some(q) = &queue {
            super::entities::ensure_queue(&conn, q, args.queue_opts.asked(), exchange_asked)?;
        }
    }
    let mode = if args.transient_message { DeliveryMode::Transient } else { DeliveryMode::Persistent };
    for _ in 0..args.count {
        let mut p = producer
            .publish_bytes(body.clone())
            .routing_key(&args.routing_key)
            .content_type(content_type, content_encoding)
            .headers(headers.clone())
            .delivery_mode(mode);
        p = p.confirm_timeout((!args.no_confirm).then_some(args.confirm_timeout));
        if let Some(n) = args.priority {
            p = p.priority(n);
        }
        if let Some(name) = &args.compression {
            p = p.compression(name);
        }
        if let Some(id) = &args.correlation_id {
            p = p.correlation_id(id.clone());
        }
        if let Some(to) = &args.reply_to {
            p = p.reply_to(to.clone());
        }
        if let Some(id) = &args.message_id {
            p = p.message_id(id.clone());
        }
        if let Some(ttl) = args.expiration {
            p = p.expiration(ttl);
        }
        p.send()?;
    }
    let plural = if args.count == 1 { "" } else { "s" };
    writeln!(
        io.stdout,
        "published {} message{plural} to exchange '{}' with routing key '{}'",
        args.count, args.exchange, args.routing_key
    )?;
    conn.close()?;
    Ok(EXIT_OK)
}

/// The body: the argument itself, or all of stdin for `-`.
fn read_body(arg: &str, io: &mut Io<'_>) -> Result<Vec<u8>, Error> {
    if arg != "-" {
        return Ok(arg.as_bytes().to_vec());
    }
    let mut body = Vec::new();
    io.stdin.read_to_end(&mut body).map_err(|e| {
        Error::with_source(kombu_core::ErrorKind::InvalidArgument, "cannot read the body from stdin", e)
    })?;
    Ok(body)
}

/// Checks that the body is what the serializer says (JSON for the structured ones), and returns the body to
/// send (msgpack and yaml transcoded from the JSON given), its content type and encoding.
pub(crate) fn encode_body(body: Vec<u8>, serializer: SerializerArg) -> Result<(Vec<u8>, String, String), Error> {
    let json = |name: &str| {
        serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| {
            Error::invalid(format!(
                "the body is not valid JSON ({e}); --serializer {name} takes JSON{}",
                if name == "json" { "; use --serializer text or raw to send it as is" } else { "" }
            ))
        })
    };
    let transcode = |name: &str| -> Result<(Vec<u8>, String, String), Error> {
        let (encoded, ct, enc) = kombu_core::serialization::encode(name, &json(name)?)?;
        Ok((encoded.to_vec(), ct.to_string(), enc.to_string()))
    };
    let fixed = |ct: &str, enc: &str| (ct.to_owned(), enc.to_owned());
    let (ct, enc) = match serializer {
        SerializerArg::Json => {
            json("json")?;
            fixed("application/json", "utf-8")
        }
        SerializerArg::Text => {
            std::str::from_utf8(&body)
                .map_err(|e| Error::invalid(format!("the body is not UTF-8 text ({e}); use --serializer raw")))?;
            fixed("text/plain", "utf-8")
        }
        SerializerArg::Raw => fixed("application/data", "binary"),
        SerializerArg::Msgpack => return transcode("msgpack"),
        SerializerArg::Yaml => return transcode("yaml"),
    };
    Ok((body, ct, enc))
}

/// A field table (headers, binding arguments) from `KEY=VALUE` strings and `KEY=JSON` values (in Kombu's
/// JSON, so `{"__type__": "decimal", "__value__": "0.001"}` is a decimal).
pub(crate) fn fields(what: &str, strings: &[String], json: &[String]) -> Result<FieldTable, Error> {
    let mut out = FieldTable::new();
    for h in strings {
        let (k, v) = key_value(what, h)?;
        out.insert(k, v);
    }
    for h in json {
        let (k, v) = key_value(what, h)?;
        let value: FieldValue =
            serde_json::from_str(v).map_err(|e| Error::invalid(format!("{what} '{k}': '{v}' is not JSON: {e}")))?;
        out.insert(k, value);
    }
    Ok(out)
}

/// The exchange named on the command line.
pub(crate) fn exchange(name: &str, opts: &ExchangeOpts) -> Exchange {
    Exchange::new(name, opts.kind).durable(!opts.transient_exchange)
}

/// The queue named on the command line, without bindings.
pub(crate) fn queue(name: &str, opts: &QueueOpts) -> Queue {
    let mut q = Queue::new(name).durable(!opts.transient).auto_delete(opts.auto_delete);
    if let Some(n) = opts.max_priority {
        q = q.max_priority(n);
    }
    if let Some(ttl) = opts.message_ttl {
        q = q.message_ttl(ttl);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_against_the_serializer() {
        let types = |body: &[u8], s| encode_body(body.to_vec(), s).map(|(_, ct, enc)| (ct, enc));
        let pair = |ct: &str, enc: &str| (ct.to_owned(), enc.to_owned());
        assert_eq!(types(br#"{"a": 1}"#, SerializerArg::Json).unwrap(), pair("application/json", "utf-8"));
        let e = types(b"hello", SerializerArg::Json).unwrap_err();
        assert!(e.to_string().contains("--serializer text"), "{e}");
        assert_eq!(types(b"hello", SerializerArg::Text).unwrap(), pair("text/plain", "utf-8"));
        assert!(types(&[0xff, 0xfe], SerializerArg::Text).is_err());
        assert_eq!(types(&[0xff, 0xfe], SerializerArg::Raw).unwrap(), pair("application/data", "binary"));
    }

    #[test]
    fn msgpack_and_yaml_bodies_are_given_as_json_and_transcoded() {
        let (body, ct, enc) = encode_body(br#"{"a": [1, "x"]}"#.to_vec(), SerializerArg::Msgpack).unwrap();
        assert_eq!((ct.as_str(), enc.as_str()), ("application/x-msgpack", "binary"));
        assert_eq!(body, b"\x81\xa1a\x92\x01\xa1x");
        let (body, ct, _) = encode_body(br#"{"a": 1}"#.to_vec(), SerializerArg::Yaml).unwrap();
        assert_eq!((ct.as_str(), body.as_slice()), ("application/x-yaml", &b"a: 1\n"[..]));
        let e = encode_body(b"not json".to_vec(), SerializerArg::Msgpack).unwrap_err();
        assert!(e.to_string().contains("--serializer msgpack takes JSON"), "{e}");
    }

    #[test]
    fn headers_are_strings_or_json() {
        let h = fields("header", &["a=1".into(), "b=x=y".into()], &["n=3".into(), "l=[1,\"z\"]".into()]).unwrap();
        assert_eq!(h["a"], "1");
        assert_eq!(h["b"], "x=y");
        assert_eq!(h["n"], 3);
        assert_eq!(h["l"][1], "z");
        let typed = fields("header", &[], &[r#"d={"__type__": "decimal", "__value__": "0.001"}"#.into()]).unwrap();
        assert_eq!(typed["d"], FieldValue::Decimal(kombu_core::Decimal::new(1, 3)));
        assert!(fields("header", &["novalue".into()], &[]).is_err());
        let e = fields("header", &[], &["n=oops".into()]).unwrap_err();
        assert!(e.to_string().contains("header 'n'"), "{e}");
    }
}
