//! `kombu declare`, `kombu delete` and `kombu purge`: exchanges, queues and bindings on any broker.

use kombu_core::{Error, Exchange};

use super::args::{BindingArgs, DeclareCommand, DeleteCommand, PurgeArgs};
use super::publish::{exchange, fields, queue};
use super::{connect, Io, Outcome, EXIT_OK};

/// Runs `kombu declare exchange|queue|binding`.
pub(crate) fn declare(command: &DeclareCommand, io: &mut Io<'_>) -> Outcome {
    match command {
        DeclareCommand::Exchange(a) => {
            refuse_default(&a.name)?;
            let ex = exchange(&a.name, &a.exchange_opts).auto_delete(a.auto_delete);
            let conn = connect(&a.url)?;
            conn.default_channel()?.declare_exchange(&ex, a.passive)?;
            let verb = if a.passive { "exchange exists" } else { "declared exchange" };
            writeln!(io.stdout, "{verb} '{}' ({})", ex.name, ex.kind)?;
            conn.close()?;
        }
        DeclareCommand::Queue(a) => {
            let mut q = queue(&a.name, &a.queue_opts);
            if let Some(ex) = &a.exchange {
                q = q.bind(exchange(ex, &a.exchange_opts), &a.routing_key);
            }
            let conn = connect(&a.url)?;
            let ch = conn.default_channel()?;
            let info = if a.passive { ch.declare_queue(&q, true)? } else { ch.declare(&q)? };
            let verb = if a.passive { "queue exists" } else { "declared queue" };
            writeln!(
                io.stdout,
                "{verb} '{}' ({} messages, {} consumers)",
                info.name, info.message_count, info.consumer_count
            )?;
            conn.close()?;
        }
        DeclareCommand::Binding(a) => {
            let arguments = fields("argument", &a.arguments, &a.json_arguments)?;
            let conn = connect(&a.url)?;
            conn.default_channel()?.bind_queue(&a.queue, &a.exchange, &a.routing_key, &arguments)?;
            writeln!(io.stdout, "bound {}", describe(a))?;
            conn.close()?;
        }
    }
    Ok(EXIT_OK)
}

/// Runs `kombu delete exchange|queue|binding`.
pub(crate) fn delete(command: &DeleteCommand, io: &mut Io<'_>) -> Outcome {
    match command {
        DeleteCommand::Exchange(a) => {
            refuse_default(&a.name)?;
            let conn = connect(&a.url)?;
            conn.default_channel()?.delete_exchange(&a.name, a.if_unused)?;
            writeln!(io.stdout, "deleted exchange '{}'", a.name)?;
            conn.close()?;
        }
        DeleteCommand::Queue(a) => {
            let conn = connect(&a.url)?;
            let n = conn.default_channel()?.delete_queue(&a.name, a.if_unused, a.if_empty)?;
            writeln!(io.stdout, "deleted queue '{}' ({n} messages)", a.name)?;
            conn.close()?;
        }
        DeleteCommand::Binding(a) => {
            let arguments = fields("argument", &a.arguments, &a.json_arguments)?;
            let conn = connect(&a.url)?;
            conn.default_channel()?.unbind_queue(&a.queue, &a.exchange, &a.routing_key, &arguments)?;
            writeln!(io.stdout, "unbound {}", describe(a))?;
            conn.close()?;
        }
    }
    Ok(EXIT_OK)
}

/// Runs `kombu purge`.
pub(crate) fn purge(args: &PurgeArgs, io: &mut Io<'_>) -> Outcome {
    let conn = connect(&args.url)?;
    let n = conn.default_channel()?.purge_queue(&args.queue)?;
    writeln!(io.stdout, "purged {n} messages from queue '{}'", args.queue)?;
    conn.close()?;
    Ok(EXIT_OK)
}

fn describe(a: &BindingArgs) -> String {
    format!("queue '{}' to exchange '{}' with routing key '{}'", a.queue, a.exchange, a.routing_key)
}

/// The default exchange always exists and cannot be declared or deleted.
fn refuse_default(name: &str) -> Result<(), Error> {
    if Exchange::direct(name).is_default() {
        return Err(Error::invalid("the default exchange (empty name) cannot be declared or deleted"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_exchange_is_refused() {
        assert!(refuse_default("").is_err());
        assert!(refuse_default("logs").is_ok());
    }
}
