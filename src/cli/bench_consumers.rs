//! `kombu bench --consumers N`: the consume phase with N consumers on the workload's queues, each on a
//! connection of its own (as N worker processes would be) in a thread of its own, or with `--async` a
//! task of its own; the time from when every consumer's connection is up until all N messages are acked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use kombu_core::{Accept, Consumer, Error, ErrorKind};

use super::args::BenchArgs;
use super::bench::{prefetch, Entities, Received};
use super::connect;

/// How long one consumer waits for a delivery before it looks whether the others finished.
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// The messages acked by all the consumers, and when that count last moved.
pub(super) struct Progress {
    acked: AtomicU64,
    moved: Mutex<(u64, Instant)>,
    n: u64,
    idle_timeout: Duration,
}

impl Progress {
    pub(super) fn new(n: u64, idle_timeout: Duration) -> Arc<Progress> {
        Arc::new(Progress { acked: AtomicU64::new(0), moved: Mutex::new((0, Instant::now())), n, idle_timeout })
    }

    pub(super) fn acked(&self) {
        self.acked.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether all were acked; an error once none was for the idle time-out.
    pub(super) fn done(&self) -> Result<bool, Error> {
        let acked = self.acked.load(Ordering::Relaxed);
        if acked >= self.n {
            return Ok(true);
        }
        let mut moved = self.moved.lock().unwrap_or_else(|p| p.into_inner());
        if moved.0 != acked {
            *moved = (acked, Instant::now());
        } else if moved.1.elapsed() > self.idle_timeout {
            let (n, wait) = (self.n, self.idle_timeout);
            return Err(Error::timeout(format!("bench: only {acked} of {n} messages came back (none for {wait:?})")));
        }
        Ok(false)
    }
}

/// Consumes the N messages with `k` consumers, a thread and a connection each.
pub(super) fn blocking(args: &BenchArgs, ents: &Entities, k: u16) -> Result<Duration, Error> {
    let progress = Progress::new(args.count, args.idle_timeout);
    let ready = Barrier::new(usize::from(k) + 1);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..k)
            .map(|_| {
                let (ready, progress) = (&ready, progress.clone());
                scope.spawn(move || {
                    let conn = connect(&args.url);
                    ready.wait();
                    one_blocking(&conn?, args, ents, progress)
                })
            })
            .collect();
        ready.wait();
        let started = Instant::now();
        for thread in threads {
            thread.join().map_err(|_| Error::state("bench: a consumer thread panicked"))??;
        }
        Ok(started.elapsed())
    })
}

fn one_blocking(
    conn: &crate::Connection,
    args: &BenchArgs,
    ents: &Entities,
    progress: Arc<Progress>,
) -> Result<(), Error> {
    let failed: Arc<Mutex<Option<Error>>> = Arc::default();
    let (seen, failure) = (progress.clone(), failed.clone());
    let mut consumer = Consumer::new(conn, ents.queues.clone()).accept(Accept::new(["json"])?);
    if let Some(window) = prefetch(args) {
        consumer = consumer.prefetch(window);
    }
    let consumer = consumer.callback(move |_: Received, message| match message.ack() {
        Ok(()) => seen.acked(),
        Err(e) => {
            failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
    });
    let subscription = consumer.consume()?;
    while !progress.done()? {
        match conn.drain_events(Some(LOOK_AGAIN)) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            Err(e) => return Err(e),
        }
        if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
    }
    subscription.cancel()?;
    conn.close()
}

/// Consumes the N messages with `k` consumer streams, a task and a connection each.
#[cfg(feature = "tokio")]
pub(super) async fn tasks(args: &BenchArgs, ents: &Entities, k: u16) -> Result<Duration, Error> {
    use kombu_core::aio;

    let progress = Progress::new(args.count, args.idle_timeout);
    let ready = Arc::new(tokio::sync::Barrier::new(usize::from(k) + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..k {
        let (ready, progress, ents, url) = (ready.clone(), progress.clone(), ents.clone(), args.url.clone());
        let window = prefetch(args).unwrap_or(0);
        tasks.spawn(async move {
            let conn = async {
                let conn = aio::Connection::open(&url)?;
                conn.connect().await?;
                Ok::<_, Error>(conn)
            };
            let conn = conn.await;
            ready.wait().await;
            let conn = conn?;
            let consumer = aio::Consumer::builder(&conn, ents.queues.clone()).accept(Accept::new(["json"])?);
            let mut stream = consumer.prefetch(window).consume().await?;
            while !progress.done()? {
                match tokio::time::timeout(LOOK_AGAIN, stream.next()).await {
                    Ok(Some(message)) => {
                        let message = message?;
                        let _: Received = message.decode()?;
                        message.ack().await?;
                        progress.acked();
                    }
                    Ok(None) => return Err(Error::channel("bench: a consumer ended before all messages came")),
                    Err(_) => {}
                }
            }
            stream.cancel().await?;
            conn.close().await
        });
    }
    ready.wait().await;
    let started = Instant::now();
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| Error::state(format!("bench: a consumer task failed: {e}")))??;
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_done_at_n_and_times_out_when_it_stops() {
        let progress = Progress::new(2, Duration::from_millis(30));
        assert!(!progress.done().expect("moving"));
        progress.acked();
        progress.acked();
        assert!(progress.done().expect("all acked"));
        let stuck = Progress::new(1, Duration::from_millis(30));
        assert!(!stuck.done().expect("not yet idle"));
        std::thread::sleep(Duration::from_millis(60));
        let err = stuck.done().expect_err("idle too long");
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(err.to_string().contains("only 0 of 1"), "{err}");
    }
}
