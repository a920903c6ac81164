//! The async API's cases: the calls that differ from the blocking API (awaited publishes, acks and
//! rejects, the consumer stream, cancel and drop, back-pressure, SimpleQueue) and its rules (nothing
//! blocks a runtime thread, futures are `Send`), on every backend. Each case runs on a runtime of its own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::aio;

/// Runs `body` on a new runtime: one thread, or a multi-thread one with two workers.
fn on_runtime<F: Future<Output = Check<Verdict>>>(multi: bool, body: F) -> Check<Verdict> {
    let mut builder =
        if multi { tokio::runtime::Builder::new_multi_thread() } else { tokio::runtime::Builder::new_current_thread() };
    if multi {
        builder.worker_threads(2);
    }
    let rt = builder.enable_all().build().map_err(|e| format!("tokio runtime: {e}"))?;
    let verdict = rt.block_on(body);
    // A call still running on the blocking pool (a connection to a silent broker) is left to finish.
    rt.shutdown_timeout(Duration::from_secs(1));
    verdict
}

async fn next_within(consumer: &mut aio::Consumer, wait: Duration) -> Check<aio::Message> {
    match tokio::time::timeout(wait, consumer.next()).await {
        Err(_) => fail(format!("no message within {wait:?}")),
        Ok(None) => fail("the consumer stream ended"),
        Ok(Some(m)) => m.ctx("delivery"),
    }
}

/// How many messages are ready in `queue`, once that is `want` (or after `WAIT`).
async fn ready_count(ch: &aio::Channel, queue: &Queue, want: u64) -> Check<u64> {
    let end = Instant::now() + WAIT;
    loop {
        let n = ch.declare_queue(queue, true).await.ctx("count the queue")?.message_count;
        if n == want || Instant::now() >= end {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn setup(ctx: &Ctx<'_>) -> Check<(aio::Connection, aio::Channel, Queue)> {
    let conn = aio::Connection::open(ctx.url()).ctx("open")?;
    let q = Queue::new(ctx.name("q")).durable(false);
    let ch = conn.channel().await.ctx("channel")?;
    ch.declare(&q).await.ctx("declare")?;
    Ok((conn, ch, q))
}

async fn teardown(ch: &aio::Channel, queue: &Queue) -> Check {
    ch.delete_queue(&queue.name, false, false).await.ctx("delete the queue").map(|_| ())
}

pub(super) fn aio_round_trip(ctx: &Ctx) -> Check<Verdict> {
    on_runtime(false, async {
        let (conn, ch, q) = setup(ctx).await?;
        let producer = aio::Producer::new(&conn).await.ctx("producer")?.routing_key(q.name.clone());
        for i in 0..10 {
            producer.publish(&format!("m{i}")).send().await.ctx("send")?;
        }
        let batch: crate::Result<Vec<_>> =
            (10..20).map(|i| producer.publish(&format!("m{i}")).into_outgoing()).collect();
        producer.send_batch(batch.ctx("batch")?).await.ctx("send_batch")?;
        let mut consumer = aio::Consumer::builder(&conn, [q.clone()]).prefetch(5).consume().await.ctx("consume")?;
        let mut seen = BTreeSet::new();
        let mut requeued = false;
        while seen.len() < 20 {
            let m = next_within(&mut consumer, WAIT).await?;
            let body: String = m.decode().ctx("decode")?;
            if body == "m3" && !requeued {
                requeued = true;
                m.reject(true).await.ctx("reject with requeue")?;
                continue;
            }
            m.ack().await.ctx("ack")?;
            if m.ack().await.is_ok() {
                return fail("a second ack of one delivery succeeded");
            }
            if !seen.insert(body.clone()) {
                return fail(format!("{body} was delivered again after its ack"));
            }
        }
        consumer.cancel().await.ctx("cancel")?;
        if consumer.next().await.is_some() {
            return fail("the stream went on after cancel");
        }
        let left = ready_count(&ch, &q, 0).await?;
        if left != 0 {
            return fail(format!("{left} messages left after every one was acked"));
        }
        teardown(&ch, &q).await?;
        Ok(Verdict::Pass)
    })
}

pub(super) fn aio_never_blocks(ctx: &Ctx) -> Check<Verdict> {
    on_runtime(false, async {
        let stop = Arc::new(AtomicBool::new(false));
        let worst = Arc::new(Mutex::new(Duration::ZERO));
        let (s, w) = (stop.clone(), worst.clone());
        // The same ticker on a thread of its own: how long the machine itself keeps a thread from
        // running (a busy machine), which no call of ours can cause.
        let control_worst = Arc::new(Mutex::new(Duration::ZERO));
        let (cs, cw) = (stop.clone(), control_worst.clone());
        let control = std::thread::spawn(move || {
            let mut last = Instant::now();
            while !cs.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
                let gap = last.elapsed();
                last = Instant::now();
                if let Ok(mut w) = cw.lock() {
                    *w = (*w).max(gap);
                }
            }
        });
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = Instant::now();
            while !s.load(Ordering::Acquire) {
                every.tick().await;
                let gap = last.elapsed();
                last = Instant::now();
                if let Ok(mut w) = w.lock() {
                    *w = (*w).max(gap);
                }
            }
        });
        // A broker that accepts connections and never answers is being connected to meanwhile.
        let silent = if ctx.caps().external_broker {
            let url = on_loopback_port(ctx.url(), silent_listener(WAIT * 4)?)?;
            let silent = aio::Connection::open(&url).ctx("open the silent URL")?;
            Some(tokio::spawn(async move { tokio::time::timeout(WAIT * 3, silent.channel()).await.is_err() }))
        } else {
            None
        };
        let (conn, ch, q) = setup(ctx).await?;
        let n = 10_000;
        let producer = aio::Producer::new(&conn).await.ctx("producer")?.routing_key(q.name.clone());
        let mut consumer = aio::Consumer::builder(&conn, [q.clone()]).consume().await.ctx("consume")?;
        let consuming = tokio::spawn(async move {
            let mut got = 0;
            while got < n {
                let m = next_within(&mut consumer, WAIT * 4).await?;
                m.ack().await.ctx("ack")?;
                got += 1;
            }
            consumer.cancel().await.ctx("cancel")
        });
        let started = Instant::now();
        for i in 0..n {
            producer.publish_bytes(i.to_string()).send().await.ctx("send")?;
        }
        consuming.await.map_err(|e| format!("consumer task: {e}"))??;
        let took = started.elapsed();
        stop.store(true, Ordering::Release);
        ticker.await.map_err(|e| format!("ticker: {e}"))?;
        control.join().map_err(|_| "the control ticker panicked")?;
        if let Some(silent) = silent {
            let still_waiting = silent.await.map_err(|e| format!("silent connection task: {e}"))?;
            if !still_waiting {
                return fail("connecting to a silent broker ended before its time-out");
            }
        }
        let worst = *worst.lock().map_err(|_| "lock")?;
        let machine = *control_worst.lock().map_err(|_| "lock")?;
        teardown(&ch, &q).await?;
        // 50 ms beyond what the machine did to a plain thread meanwhile; a blocking call shows as seconds.
        if worst > Duration::from_millis(50) + machine {
            return fail(format!(
                "a 1 ms ticker was held up {worst:?} while {n} messages went through in {took:?} \
                 (a thread of its own was held up {machine:?} by the machine meanwhile)"
            ));
        }
        Ok(Verdict::Pass)
    })
}

pub(super) fn aio_concurrent(ctx: &Ctx) -> Check<Verdict> {
    on_runtime(true, async {
        let (conn, ch, q) = setup(ctx).await?;
        let (publishers, each, consumers) = (4, 250, 3);
        let total = publishers * each;
        let producer = Arc::new(aio::Producer::new(&conn).await.ctx("producer")?.routing_key(q.name.clone()));
        // (body, redelivered) of every delivery.
        let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let mut streams = Vec::new();
        for _ in 0..consumers {
            let mut c = aio::Consumer::builder(&conn, [q.clone()]).prefetch(20).consume().await.ctx("consume")?;
            let (seen, done) = (seen.clone(), done.clone());
            streams.push(tokio::spawn(async move {
                while !done.load(Ordering::Acquire) {
                    let Ok(next) = tokio::time::timeout(Duration::from_millis(50), c.next()).await else { continue };
                    let m = next.ok_or("stream ended")?.ctx("delivery")?;
                    let body = String::from_utf8_lossy(&m.body).into_owned();
                    seen.lock().map_err(|_| "lock")?.push((body, m.delivery_info.redelivered));
                    m.ack().await.ctx("ack")?;
                }
                c.cancel().await.ctx("cancel")
            }));
        }
        let mut sends = Vec::new();
        for p in 0..publishers {
            let producer = producer.clone();
            sends.push(tokio::spawn(async move {
                for i in 0..each {
                    producer.publish_bytes(format!("{p}-{i}")).send().await.ctx("send")?;
                }
                Check::Ok(())
            }));
        }
        for s in sends {
            s.await.map_err(|e| format!("publisher task: {e}"))??;
        }
        let end = Instant::now() + WAIT * 2;
        let unique = || seen.lock().map(|s| s.iter().map(|(b, _)| b.clone()).collect::<BTreeSet<_>>().len());
        while unique().map_err(|_| "lock")? < total && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done.store(true, Ordering::Release);
        for s in streams {
            s.await.map_err(|e| format!("consumer task: {e}"))??;
        }
        let seen = seen.lock().map_err(|_| "lock")?.clone();
        let mut counts: HashMap<&str, (usize, bool)> = HashMap::new();
        for (body, redelivered) in &seen {
            let e = counts.entry(body).or_default();
            e.0 += 1;
            e.1 |= *redelivered;
        }
        if counts.len() != total {
            return fail(format!("{} of {total} messages consumed", counts.len()));
        }
        // At least once: a message seen twice must have been marked redelivered.
        let unexplained: Vec<_> = counts.iter().filter(|(_, (n, r))| *n > 1 && !*r).map(|(b, _)| *b).collect();
        if !unexplained.is_empty() {
            return fail(format!("delivered twice without the redelivered mark: {unexplained:?}"));
        }
        teardown(&ch, &q).await?;
        Ok(Verdict::Pass)
    })
}

pub(super) fn aio_cancel_and_drop(ctx: &Ctx) -> Check<Verdict> {
    on_runtime(false, async {
        let (conn, ch, q) = setup(ctx).await?;
        let producer = aio::Producer::new(&conn).await.ctx("producer")?.routing_key(q.name.clone());
        for i in 0..20 {
            producer.publish_bytes(i.to_string()).send().await.ctx("send")?;
        }
        let mut consumer = aio::Consumer::builder(&conn, [q.clone()]).prefetch(10).consume().await.ctx("consume")?;
        let first = next_within(&mut consumer, WAIT).await?;
        let held = next_within(&mut consumer, WAIT).await?;
        let kept = next_within(&mut consumer, WAIT).await?;
        first.ack().await.ctx("ack")?;
        // The window fills meanwhile: 10 unacknowledged, 2 of them handed out.
        tokio::time::sleep(SETTLE).await;
        consumer.cancel().await.ctx("cancel")?;
        let ready = ready_count(&ch, &q, 17).await?;
        if ready != 17 {
            return fail(format!("after cancel {ready} messages are ready, not 17 (20 less 3 handed out)"));
        }
        held.ack().await.ctx("ack after cancel")?;
        drop(consumer);
        // Dropping the consumer closed its channel: the one it handed out and nobody acked goes back.
        let ready = ready_count(&ch, &q, 18).await?;
        if ready != 18 {
            return fail(format!("after the drop {ready} messages are ready, not 18"));
        }
        if kept.ack().await.is_ok() {
            return fail("a message of a dropped consumer could still be acked");
        }
        teardown(&ch, &q).await?;
        Ok(Verdict::Pass)
    })
}

pub(super) fn aio_back_pressure(ctx: &Ctx) -> Check<Verdict> {
    on_runtime(false, async {
        let (conn, ch, q) = setup(ctx).await?;
        let producer = aio::Producer::new(&conn).await.ctx("producer")?.routing_key(q.name.clone());
        for i in 0..60 {
            producer.publish_bytes(i.to_string()).send().await.ctx("send")?;
        }
        let mut consumer = aio::Consumer::builder(&conn, [q.clone()]).prefetch(5).consume().await.ctx("consume")?;
        // Nobody reads the stream: the broker delivers the window and no more.
        tokio::time::sleep(SETTLE * 2).await;
        let ready = ch.declare_queue(&q, true).await.ctx("count")?.message_count;
        if ready < 55 {
            return fail(format!("a stream nobody reads took {} messages with a prefetch of 5", 60 - ready));
        }
        for _ in 0..60 {
            next_within(&mut consumer, WAIT).await?.ack().await.ctx("ack")?;
        }
        consumer.cancel().await.ctx("cancel")?;
        teardown(&ch, &q).await?;
        Ok(Verdict::Pass)
    })
}

pub(super) fn aio_simple_queue(ctx: &Ctx) -> Check<Verdict> {
    on_runtime(false, async {
        let conn = aio::Connection::open(ctx.url()).ctx("open")?;
        let name = ctx.name("simple");
        let mut sq = aio::SimpleQueue::new(&conn, &name).await.ctx("simple queue")?;
        match sq.get(Some(Duration::from_millis(100))).await {
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            Err(e) => return fail(format!("get on an empty queue: {e} (not a time-out)")),
            Ok(_) => return fail("get on an empty queue returned a message"),
        }
        sq.put("hello").await.ctx("put")?;
        let m = sq.get(Some(WAIT)).await.ctx("get")?;
        if m.decode::<String>().ctx("decode")? != "hello" {
            return fail("got another body");
        }
        m.ack().await.ctx("ack")?;
        let left = sq.qsize().await.ctx("qsize")?;
        if left != 0 {
            return fail(format!("qsize {left} after the only message was acked"));
        }
        sq.close().await.ctx("close")?;
        let ch = conn.channel().await.ctx("channel")?;
        ch.delete_queue(&name, false, false).await.ctx("delete")?;
        ch.delete_exchange(&name, false).await.ctx("delete exchange")?;
        Ok(Verdict::Pass)
    })
}
