//! Cases 30-31: one `ErrorKind` per condition on every backend (through both APIs), and transport options
//! checked.

use super::*;

/// `url` with one more query option.
fn with_option(url: &str, name: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{name}={value}")
}

/// A misspelling of `name` (one letter dropped from its middle) that no declared option is nearer to.
fn misspelling(name: &str, specs: &[OptionSpec]) -> Option<String> {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() < 4 {
        return None;
    }
    let mut typo = chars.clone();
    typo.remove(chars.len() / 2);
    let typo: String = typo.into_iter().collect();
    let clear = specs
        .iter()
        .filter(|s| s.name != name)
        .all(|s| s.name != typo && strsim::damerau_levenshtein(&typo, s.name) > 1);
    clear.then_some(typo)
}

pub(super) fn options_checked(ctx: &Ctx) -> Check<Verdict> {
    let scheme = ctx.url().split("://").next().unwrap_or("").to_owned();
    let transport = crate::testing::registry().get(&scheme).ctx("transport")?;
    let Some(specs) = transport.options() else {
        return skip(format!("transport {} declares no options table", transport.name()));
    };
    let refused = |url: &str, expect: &str| -> Check {
        match Connection::open(url) {
            Err(e) if e.kind() == ErrorKind::InvalidArgument && e.to_string().contains(expect) => Ok(()),
            Err(e) => fail(format!("{url}: error does not say \"{expect}\": {e}")),
            Ok(_) => fail(format!("{url} opened")),
        }
    };
    let unknown = "kombu_conformance_no_such_option";
    refused(&with_option(ctx.url(), unknown, "1"), &format!("unknown option '{unknown}'"))?;
    if specs.is_empty() {
        return skip(format!(
            "transport {} declares no options (an unknown one is refused; none to misspell or set out of range)",
            transport.name()
        ));
    }
    // A misspelled real option names the real one.
    let Some((name, typo)) = specs.iter().find_map(|s| misspelling(s.name, specs).map(|t| (s.name, t))) else {
        return fail("no declared option has a clear misspelling (names shorter than 4 letters or too alike)");
    };
    refused(&with_option(ctx.url(), &typo, "1"), &format!("did you mean '{name}'?"))?;
    // An out-of-range value names the option and its value; the greatest allowed value opens.
    let ranged = specs.iter().find_map(|s| match s.kind {
        OptionKind::Seconds { max, .. } => {
            Some((s.name, format!("{}", max.as_secs_f64() * 10.0 + 1e9), format!("{}", max.as_secs_f64())))
        }
        _ => None,
    });
    let ranged = ranged.or_else(|| {
        specs.iter().find_map(|s| match s.kind {
            OptionKind::Count { max, .. } if max < u64::MAX => Some((s.name, (max + 1).to_string(), max.to_string())),
            _ => None,
        })
    });
    if let Some((name, bad, good)) = ranged {
        refused(&with_option(ctx.url(), name, &bad), &format!("'{name}={bad}'"))?;
        refused(&with_option(ctx.url(), name, "not-a-number"), &format!("'{name}=not-a-number'"))?;
        if let OptionKind::Seconds { .. } =
            specs.iter().find(|s| s.name == name).map(|s| s.kind).unwrap_or(OptionKind::Text)
        {
            for v in ["1e20", "inf", "NaN", "-1"] {
                refused(&with_option(ctx.url(), name, v), &format!("'{name}={v}'"))?;
            }
        }
        let url = with_option(ctx.url(), name, &good);
        Connection::open(&url).ctx(&format!("open {url} (the greatest allowed value)"))?;
    }
    Ok(Verdict::Pass)
}

/// `Err` of `kind` (and recoverable or not, as the kind is), or a failure naming what came instead.
fn expect_kind<T: std::fmt::Debug>(what: &str, got: crate::Result<T>, kind: ErrorKind) -> Check {
    match got {
        Err(e) if e.kind() == kind && e.is_recoverable() == matches!(kind, ErrorKind::Connection) => Ok(()),
        Err(e) => fail(format!("{what}: expected {kind:?}, got {:?} ({e:#})", e.kind())),
        Ok(v) => fail(format!("{what}: expected {kind:?}, got Ok({v:?})")),
    }
}

/// The suite's URL with its password replaced by a wrong one (a user name, if any, kept), for a transport
/// whose broker takes credentials.
fn with_wrong_password(url: &str) -> Check<String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("suite URL {url}: {e}"))?;
    u.set_password(Some("kombu-conformance-wrong-password")).map_err(|()| format!("{url} cannot hold a password"))?;
    Ok(u.into())
}

/// The suite's URL pointing at a loopback port with nothing listening.
fn with_refused_port(url: &str) -> Check<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))?
        .port();
    on_loopback_port(url, port)
}

pub(super) fn one_kind_per_condition(ctx: &Ctx, api: Api) -> Check<Verdict> {
    let conn = api.open(ctx)?;
    let q = Queue::new(ctx.name("q")).durable(false);
    let ex = Exchange::new(ctx.name("ex"), ExchangeKind::Direct).durable(false);

    // A channel the program closed: State (not recoverable), for every operation.
    let ch = conn.channel().ctx("channel")?;
    ch.declare(&q).ctx("declare")?;
    ch.close().ctx("close channel")?;
    expect_kind("declare on a closed channel", ch.declare(&q), ErrorKind::State)?;
    expect_kind("publish on a closed channel", ch.publish(text("x"), "", &q.name), ErrorKind::State)?;
    expect_kind("get on a closed channel", ch.get(&q.name), ErrorKind::State)?;

    // A passive declare of what does not exist: NotFound (each on a fresh channel: AMQP closes it).
    let missing = Queue::new(ctx.name("missing")).durable(false);
    let ch = conn.channel().ctx("channel")?;
    expect_kind("passive declare of a missing queue", ch.declare_queue(&missing, true), ErrorKind::NotFound)?;
    let ch = conn.channel().ctx("channel")?;
    let missing_ex = Exchange::new(ctx.name("missing-ex"), ExchangeKind::Direct);
    expect_kind("passive declare of a missing exchange", ch.declare_exchange(&missing_ex, true), ErrorKind::NotFound)?;
    let ch = conn.channel().ctx("channel")?;
    ch.declare_exchange(&ex, false).ctx("declare exchange")?;
    ch.declare_exchange(&ex, true).ctx("passive declare of an existing exchange")?;
    ch.declare_queue(&q, true).ctx("passive declare of an existing queue")?;
    ch.delete_queue(&q.name).ctx("delete queue")?;
    ch.delete_exchange(&ex.name).ctx("delete exchange")?;

    // A connection the program closed: State, for its channels and for a new channel.
    let ch = conn.channel().ctx("channel")?;
    conn.close().ctx("close connection")?;
    expect_kind("declare on a channel of a closed connection", ch.declare(&q), ErrorKind::State)?;
    expect_kind("publish on a channel of a closed connection", ch.publish(text("x"), "", &q.name), ErrorKind::State)?;
    expect_kind("a channel of a closed connection", conn.channel().map(|_| ()), ErrorKind::State)?;

    if !ctx.caps().external_broker {
        return skip(
            "closed channel, closed connection and passive declares passed; refused credentials and refused \
                     connection do not apply: the transport has no network broker, so its URL has no credentials \
                     or port to get wrong",
        );
    }
    // Wrong credentials: AccessRefused (not recoverable: a retry cannot help).
    let bad = with_wrong_password(ctx.url())?;
    expect_kind("connecting with a wrong password", api.connect_once(&bad)?, ErrorKind::AccessRefused)?;
    // Nothing listening: Connection, recoverable.
    let refused = with_refused_port(ctx.url())?;
    expect_kind("connecting to a port with nothing listening", api.connect_once(&refused)?, ErrorKind::Connection)?;
    Ok(Verdict::Pass)
}
