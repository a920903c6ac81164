//! `kombu transports`: every registered transport with its aliases, origin and capabilities.

use std::io::Write;

use kombu_core::registry::{Origin, TransportInfo};
use kombu_core::{Capabilities, PriorityOrder, Registry};
use serde_json::{json, Value};

use super::args::TransportsArgs;
use super::{Io, Outcome, EXIT_OK};

/// Runs `kombu transports`.
pub(crate) fn run(args: &TransportsArgs, io: &mut Io<'_>) -> Outcome {
    let transports = Registry::global().transports();
    // After the global registry exists: creating it loads `KOMBU_PLUGINS`.
    let failed = failed_plugins();
    if args.json {
        let list: Vec<Value> = transports.iter().map(transport_json).collect();
        let failed: Vec<Value> = failed.iter().map(|(path, reason)| json!({"path": path, "reason": reason})).collect();
        writeln!(io.stdout, "{}", json!({"transports": list, "failed_plugins": failed}))?;
    } else {
        write_transports_text(&transports, io.stdout)?;
        if !failed.is_empty() {
            writeln!(io.stdout)?;
            writeln!(io.stdout, "plugins that failed to load (KOMBU_PLUGINS):")?;
            for (path, reason) in &failed {
                writeln!(io.stdout, "  {path}: {reason}")?;
            }
        }
    }
    if !failed.is_empty() {
        let n = failed.len();
        let s = if n == 1 { "" } else { "s" };
        writeln!(io.stderr, "warning: {n} plugin{s} failed to load (listed with the transports)")?;
    }
    Ok(EXIT_OK)
}

/// The plugins of `KOMBU_PLUGINS` that failed to load, as (path, reason).
fn failed_plugins() -> Vec<(String, String)> {
    #[cfg(feature = "plugins")]
    {
        kombu_core::plugin::env_failures().into_iter().map(|f| (f.path.display().to_string(), f.reason)).collect()
    }
    #[cfg(not(feature = "plugins"))]
    {
        Vec::new()
    }
}

fn write_transports_text(transports: &[TransportInfo], out: &mut dyn Write) -> std::io::Result<()> {
    if transports.is_empty() {
        writeln!(out, "no transports are registered (enable a backend feature: memory, redis, amqp)")?;
    }
    for (i, t) in transports.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        write_text(t, out)?;
    }
    Ok(())
}

fn write_text(t: &TransportInfo, out: &mut dyn Write) -> std::io::Result<()> {
    let c = &t.capabilities;
    let port = t.default_port.map_or_else(|| "none".to_owned(), |p| p.to_string());
    let kinds: Vec<&str> = c.exchange_kinds.iter().map(|k| k.as_str()).collect();
    writeln!(out, "{} ({})", t.name, t.origin)?;
    writeln!(out, "  aliases:         {}", t.aliases.join(", "))?;
    writeln!(out, "  default port:    {port}")?;
    writeln!(out, "  exchange types:  {}", kinds.join(", "))?;
    writeln!(out, "  priorities:      {}", priority_text(c))?;
    writeln!(out, "  message TTL:     {}", yes_no(c.message_ttl))?;
    writeln!(out, "  dead-lettering:  {}", yes_no(c.dead_letter))?;
    writeln!(out, "  heartbeats:      {}", yes_no(c.heartbeats))?;
    writeln!(out, "  event-driven:    {}", yes_no(c.event_driven))?;
    writeln!(out, "  external broker: {}", yes_no(c.external_broker))
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn priority_text(c: &Capabilities) -> String {
    match &c.priority {
        None => "no".to_owned(),
        Some(PriorityOrder::HighestFirst) => "yes, highest first".to_owned(),
        Some(PriorityOrder::LowestFirstInBands(steps)) => {
            let steps: Vec<String> = steps.iter().map(u8::to_string).collect();
            format!("yes, lowest first in bands starting at {}", steps.join(", "))
        }
        Some(other) => format!("yes ({other:?})"),
    }
}

/// One transport as JSON (`kombu transports --json` prints an array of these).
fn transport_json(t: &TransportInfo) -> Value {
    let c = &t.capabilities;
    let priority = match &c.priority {
        None => Value::Null,
        Some(PriorityOrder::HighestFirst) => json!({"order": "highest_first"}),
        Some(PriorityOrder::LowestFirstInBands(steps)) => json!({"order": "lowest_first_in_bands", "steps": steps}),
        Some(other) => json!({"order": format!("{other:?}")}),
    };
    json!({
        "name": t.name,
        "aliases": t.aliases,
        "origin": t.origin.to_string(),
        "plugin_path": match &t.origin {
            Origin::Plugin(path) => Value::String(path.display().to_string()),
            _ => Value::Null,
        },
        "default_port": t.default_port,
        "capabilities": {
            "exchange_types": c.exchange_kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "priority": priority,
            "message_ttl": c.message_ttl,
            "dead_letter": c.dead_letter,
            "heartbeats": c.heartbeats,
            "event_driven": c.event_driven,
            "external_broker": c.external_broker,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_orders_are_spelled_out() {
        let c = Capabilities::new().priority(PriorityOrder::LowestFirstInBands(vec![0, 3, 6, 9]));
        assert_eq!(priority_text(&c), "yes, lowest first in bands starting at 0, 3, 6, 9");
        assert_eq!(priority_text(&Capabilities::new()), "no");
    }
}
