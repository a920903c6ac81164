//! `kombu get`: takes one message from a queue without declaring anything, prints it as one line of JSON,
//! and then acknowledges it (or, with `--requeue`, puts it back). A message whose line cannot be written
//! goes back to the queue.

use std::time::{Duration, Instant};

use super::args::GetArgs;
use super::output::message_json;
use super::{connect, Io, Outcome, EXIT_OK, EXIT_TIMED_OUT};

/// Runs `kombu get`.
pub(crate) fn run(args: &GetArgs, io: &mut Io<'_>) -> Outcome {
    let conn = connect(&args.url)?;
    let ch = conn.channel()?;
    let deadline = Instant::now() + args.timeout.unwrap_or(Duration::ZERO);
    let mut pause = Duration::from_millis(5);
    let message = loop {
        if let Some(m) = ch.get(&args.queue, false)? {
            break Some(m);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break None;
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(100));
    };
    let Some(m) = message else {
        conn.close()?;
        return Ok(EXIT_TIMED_OUT);
    };
    let line = message_json(&m, args.decode_json).to_string();
    if let Err(e) = writeln!(io.stdout, "{line}").and_then(|()| io.stdout.flush()) {
        m.requeue()?;
        return Err(e.into());
    }
    if args.requeue {
        m.requeue()?;
    } else {
        m.ack()?;
    }
    conn.close()?;
    Ok(EXIT_OK)
}
