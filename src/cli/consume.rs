//! `kombu consume`: receives messages from a queue and prints each as one line of JSON, acknowledging it
//! only once its line is written; stops after `--count` messages or `--timeout` seconds.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kombu_core::{Consumer, ErrorKind, Message};

use super::args::ConsumeArgs;
use super::output::message_json;
use super::publish::{exchange, queue};
use super::{connect, Failure, Io, Outcome, EXIT_OK, EXIT_TIMED_OUT};

/// Unacknowledged messages the broker may hand over at once when no `--count` bounds it.
const DEFAULT_PREFETCH: u16 = 100;

/// Runs `kombu consume`.
pub(crate) fn run(args: &ConsumeArgs, io: &mut Io<'_>) -> Outcome {
    let mut q = queue(&args.queue, &args.queue_opts);
    if let Some(ex) = &args.exchange {
        q = q.bind(exchange(ex, &args.exchange_opts), &args.routing_key);
    }
    let conn = connect(&args.url)?;
    if args.passive {
        conn.default_channel()?.declare_queue(&q, true)?;
    } else {
        // Only what is missing, or what the flags ask for: the queue may be another program's.
        super::entities::ensure_queue(&conn, &q, args.queue_opts.asked(), args.exchange_opts.transient_exchange)?;
    }
    let inbox: Arc<Mutex<VecDeque<Message>>> = Arc::default();
    let sink = inbox.clone();
    let prefetch = args.count.map_or(DEFAULT_PREFETCH, |n| u16::try_from(n).unwrap_or(u16::MAX));
    let consumer = Consumer::new(&conn, [q])
        .auto_declare(false)
        .prefetch(prefetch)
        .on_message(move |m| sink.lock().unwrap_or_else(|e| e.into_inner()).push_back(m));
    let subscription = consumer.consume()?;

    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut printed = 0u64;
    let mut timed_out = false;
    let result = loop {
        if args.count.is_some_and(|n| printed >= n) {
            break Ok(());
        }
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if wait == Some(Duration::ZERO) {
            timed_out = true;
            break Ok(());
        }
        match conn.drain_events(wait) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Timeout => timed_out = true,
            Err(e) => break Err(Failure::from(e)),
        }
        if let Err(e) = print_ready(&inbox, args, &mut printed, io) {
            break Err(e);
        }
        if timed_out {
            break Ok(());
        }
    };
    // Whatever arrived beyond what was wanted (or was not printed) goes back to the queue.
    let cancelled = subscription.cancel();
    requeue_all(&inbox);
    let closed = conn.close();
    result?;
    cancelled?;
    closed?;
    let satisfied = match args.count {
        Some(n) => printed >= n,
        None => printed > 0 || !timed_out,
    };
    Ok(if satisfied { EXIT_OK } else { EXIT_TIMED_OUT })
}

/// Prints (and settles) the messages received so far, up to `--count`; leaves the rest in the inbox.
fn print_ready(
    inbox: &Mutex<VecDeque<Message>>,
    args: &ConsumeArgs,
    printed: &mut u64,
    io: &mut Io<'_>,
) -> Result<(), Failure> {
    loop {
        if args.count.is_some_and(|n| *printed >= n) {
            return Ok(());
        }
        let Some(m) = inbox.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else { return Ok(()) };
        if args.no_ack {
            m.ack()?;
        }
        let line = message_json(&m, args.decode_json).to_string();
        if let Err(e) = writeln!(io.stdout, "{line}").and_then(|()| io.stdout.flush()) {
            if !args.no_ack {
                settle_back(&m);
            }
            return Err(e.into());
        }
        *printed += 1;
        if !args.no_ack {
            m.ack()?;
        }
    }
}

fn requeue_all(inbox: &Mutex<VecDeque<Message>>) {
    let rest: Vec<Message> = inbox.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
    for m in &rest {
        settle_back(m);
    }
}

/// Puts a message that was not printed back in its queue now. If that fails, closing the connection
/// returns it all the same (an unacknowledged message is never lost), so the error is not reported.
fn settle_back(m: &Message) {
    let _ = m.requeue();
}
