//! The `kombu` command-line tool: publish, consume, declare, delete, purge, list transports and bench, on any
//! broker kombu-rs can reach by URL. All the work is in the `kombu` crate's `cli` module.

use std::io::{self, Write};
use std::process::ExitCode;

/// With `count-allocations`, the allocator counts, for `kombu bench`'s allocations per message.
#[cfg(feature = "count-allocations")]
#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

fn main() -> ExitCode {
    // The handles, not their locks: a lock held for the whole run would hang every other thread that
    // writes there (a panic's message on a runtime's worker, a progress bar).
    let (mut stdin, mut stderr) = (io::stdin(), io::stderr());
    let mut stdout = io::BufWriter::new(io::stdout());
    let code = kombu::cli::run(
        std::env::args_os(),
        &mut kombu::cli::Io { stdin: &mut stdin, stdout: &mut stdout, stderr: &mut stderr },
    );
    // `run` has flushed (and reported any failure to write) already.
    let _ = stdout.flush();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
