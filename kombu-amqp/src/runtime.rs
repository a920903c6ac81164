//! Where lapin runs, and how kombu's synchronous calls wait for it.
//!
//! lapin does its socket I/O on a thread of its own per connection; its timers (heartbeats) and small
//! internal tasks run on the caller's tokio runtime when the connection is made through the async API,
//! and otherwise on one process-wide tokio runtime with a single worker thread, made on first use.
//! kombu's `Channel` methods are synchronous: they wait for lapin's futures on the caller's thread with
//! [`block_on`], which parks the thread until lapin's I/O thread wakes it, and never runs on lapin's threads.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use kombu_core::{Error, Result};

/// The runtime lapin's connections use.
pub type LapinRuntime = async_rs::TokioRuntime;

/// The runtime for lapin's timers and tasks: the caller's, when the call comes from the async API
/// (which runs it on a thread of the caller's tokio runtime), else one process-wide runtime of our own.
pub fn runtime() -> Result<LapinRuntime> {
    if kombu_core::transport::from_async_api() {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            return Ok(async_rs::Runtime::tokio_with_handle(handle));
        }
    }
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kombu-amqp")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match rt {
        Ok(rt) => Ok(async_rs::Runtime::tokio_with_handle(rt.handle().clone())),
        Err(e) => Err(Error::connection(format!("cannot start the AMQP runtime: {e}"))),
    }
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    static THREAD_WAKER: Waker = Waker::from(Arc::new(Unpark(thread::current())));
}

/// Runs `fut` to completion on this thread, or gives up after `timeout` (`None` if it timed out).
pub fn block_on<F: Future>(fut: F, timeout: Option<Duration>) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let deadline = timeout.map(|t| Instant::now() + t);
    THREAD_WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return Some(out);
            }
            match deadline {
                None => thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    thread::park_timeout(d - now);
                }
            }
        }
    })
}

/// Polls `fut` once without a waker: starts it (lapin queues a frame on the first poll) and says whether
/// it already finished.
pub fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    std::pin::Pin::new(fut).poll(&mut cx)
}

/// A future started with [`start`]: still running, or finished on its first poll.
pub enum Started<F: Future> {
    /// Still running.
    Running(Pin<Box<F>>),
    /// Finished.
    Done(F::Output),
}

/// Polls `fut` once (lapin queues its frames then) and keeps it, or its output.
pub fn start<F: Future>(fut: F) -> Started<F> {
    let mut fut = Box::pin(fut);
    match poll_once(&mut fut) {
        Poll::Ready(out) => Started::Done(out),
        Poll::Pending => Started::Running(fut),
    }
}

/// Waits for every started future (at most `timeout`); their outputs in order, or `None` on time-out.
pub fn join_all<F: Future>(mut started: Vec<Started<F>>, timeout: Option<Duration>) -> Option<Vec<F::Output>> {
    let all_done = std::future::poll_fn(|cx| {
        for s in started.iter_mut() {
            if let Started::Running(fut) = s {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(out) => *s = Started::Done(out),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        Poll::Ready(())
    });
    block_on(all_done, timeout)?;
    Some(
        started
            .into_iter()
            .filter_map(|s| match s {
                Started::Done(out) => Some(out),
                Started::Running(_) => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_waits_for_another_thread_and_times_out() {
        let (tx, rx) = async_channel_pair();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            let _ = tx.send(5);
        });
        assert_eq!(block_on(rx, Some(Duration::from_secs(5))), Some(Ok(5)));
        t.join().expect("sender thread");
        let never = std::future::pending::<()>();
        let started = Instant::now();
        assert_eq!(block_on(never, Some(Duration::from_millis(30))), None);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    fn async_channel_pair() -> (OneShotTx, OneShotRx) {
        let shared = Arc::new(std::sync::Mutex::new((None, None::<Waker>)));
        (OneShotTx(shared.clone()), OneShotRx(shared))
    }

    type Slot = Arc<std::sync::Mutex<(Option<i32>, Option<Waker>)>>;
    struct OneShotTx(Slot);
    struct OneShotRx(Slot);

    impl OneShotTx {
        fn send(self, v: i32) -> std::result::Result<(), ()> {
            let mut g = self.0.lock().map_err(|_| ())?;
            g.0 = Some(v);
            if let Some(w) = g.1.take() {
                w.wake();
            }
            Ok(())
        }
    }

    impl Future for OneShotRx {
        type Output = std::result::Result<i32, ()>;
        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let mut g = self.0.lock().map_err(|_| ())?;
            match g.0.take() {
                Some(v) => Poll::Ready(Ok(v)),
                None => {
                    g.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    #[test]
    fn start_and_join_keep_order() {
        let (tx, rx) = async_channel_pair();
        let started = vec![start(Either::Ready(std::future::ready(Ok(1)))), start(Either::Chan(rx))];
        assert!(matches!(started[0], Started::Done(Ok(1))));
        assert!(matches!(started[1], Started::Running(_)));
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            let _ = tx.send(2);
        });
        assert_eq!(join_all(started, Some(Duration::from_secs(5))), Some(vec![Ok(1), Ok(2)]));
        t.join().expect("sender thread");
        let never = vec![start(std::future::pending::<()>())];
        assert_eq!(join_all(never, Some(Duration::from_millis(20))), None);
    }

    enum Either {
        Ready(std::future::Ready<std::result::Result<i32, ()>>),
        Chan(OneShotRx),
    }

    impl Future for Either {
        type Output = std::result::Result<i32, ()>;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            match self.get_mut() {
                Either::Ready(r) => Pin::new(r).poll(cx),
                Either::Chan(c) => Pin::new(c).poll(cx),
            }
        }
    }

    #[test]
    fn poll_once_reports_ready_and_pending() {
        assert_eq!(poll_once(&mut std::future::ready(3)), Poll::Ready(3));
        assert!(poll_once(&mut std::future::pending::<()>()).is_pending());
    }
}
