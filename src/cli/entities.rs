//! What the CLI declares: nothing that already exists. Operators point `kombu publish` and `kombu consume` at
//! exchanges and queues other programs declared, with whatever durability and arguments they chose; the
//! tool checks each one passively (on a channel of its own, since a failed passive declare closes an AMQP
//! channel) and declares only what is missing, or what the command's flags ask for. Bindings are always
//! made (binding twice is harmless, and no broker refuses a binding for the queue's arguments).

use kombu_core::{Channel, Connection, Error, ErrorKind, Exchange, Queue};

/// Whether `check` (a passive declare) finds the entity: false on `NotFound`, an error for anything else.
fn exists(conn: &Connection, check: impl FnOnce(&dyn Channel) -> Result<(), Error>) -> Result<bool, Error> {
    let ch = conn.channel()?;
    let found = match check(&*ch) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    };
    // A channel a failed check closed cannot be closed again; nothing depends on it either way.
    let _ = ch.close();
    found
}

/// Declares `exchange` unless it exists; with `asked` (the user gave its flags) declares it as given.
pub(crate) fn ensure_exchange(conn: &Connection, exchange: &Exchange, asked: bool) -> Result<(), Error> {
    if exchange.is_default() {
        return Ok(());
    }
    if asked || !exists(conn, |ch| ch.declare_exchange(exchange, true))? {
        conn.default_channel()?.declare_exchange(exchange, false)?;
    }
    Ok(())
}

/// Declares `queue` (and the exchanges of its bindings) unless it exists, with `asked` as given; then binds
/// it as its bindings say.
pub(crate) fn ensure_queue(conn: &Connection, queue: &Queue, asked: bool, exchange_asked: bool) -> Result<(), Error> {
    for b in &queue.bindings {
        ensure_exchange(conn, &b.exchange, exchange_asked)?;
    }
    let ch = conn.default_channel()?;
    if asked || !exists(conn, |c| c.declare_queue(queue, true).map(drop))? {
        ch.declare_queue(queue, false)?;
    }
    for b in queue.bindings.iter().filter(|b| !b.exchange.is_default()) {
        ch.bind_queue(&queue.name, &b.exchange.name, &b.routing_key, &b.arguments)?;
    }
    Ok(())
}
