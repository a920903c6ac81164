#!/usr/bin/env python3
"""Python Kombu beside `kombu bench` in `cargo xtask bench --scale`: the same workload and the same
options where Python Kombu can do the same, printing one JSON object with `kombu bench --json`'s keys
(null where it cannot).

usage: kombu_scale.py URL [--count N] [--size B] [--queues N] [--producers N] [--consumers N] [--rate R]

- publish N messages {"i": i, "p": "x" * SIZE} to the queues in turn (bench_q, or bench_q-k bound with
  bench-k), one publish call each, then consume them all with acks (prefetch 100 but on memory);
- --consumers N: N consumer processes, a connection each (not on memory://, which lives in one process);
- --producers N: confirmed publishes from N processes, a connection each (publisher confirms on AMQP;
  on Redis every publish waits for its reply anyway); Python Kombu's connections are not thread-safe, so
  there is no figure for producers sharing one connection;
- --rate R: latency at R msg/s for 2 s, from the start of each publish until its consumer (a process of
  its own, a thread on memory://) has it.
"""
import argparse
import json
import multiprocessing as mp
import sys
import threading
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue

IDLE = 10.0


def entities(n):
    ex = Exchange("bench_ex", type="direct", durable=False)
    if n == 1:
        return ex, [Queue("bench_q", ex, routing_key="bench", durable=False)]
    return ex, [Queue(f"bench_q-{k}", ex, routing_key=f"bench-{k}", durable=False) for k in range(n)]


def consume(conn, queues, n, memory, counter=None, on_body=None):
    """Consumes until `n` were acked (by this consumer, or all of them through `counter`)."""
    got = [0]

    def on_message(body, message):
        if on_body:
            on_body(body)
        message.ack()
        got[0] += 1
        if counter is not None:
            with counter.get_lock():
                counter.value += 1

    done = (lambda: counter.value >= n) if counter is not None else (lambda: got[0] >= n)
    with Consumer(conn.channel(), queues, callbacks=[on_message], accept=["json"]) as c:
        if not memory:
            c.qos(prefetch_count=100)
        idle_since = time.monotonic()
        last = 0
        while not done():
            try:
                conn.drain_events(timeout=0.05)
            except Exception as e:  # socket.timeout and the transports' own
                if "timed out" not in str(e).lower() and type(e).__name__ not in ("timeout", "TimeoutError"):
                    raise
            now = counter.value if counter is not None else got[0]
            if now != last:
                last, idle_since = now, time.monotonic()
            elif time.monotonic() - idle_since > IDLE:
                raise SystemExit(f"python: only {now} of {n} messages came back")


def consumer_process(url, nq, n, memory, counter, ready):
    _, queues = entities(nq)
    with Connection(url) as conn:
        conn.connect()
        ready.wait()
        consume(conn, queues, n, memory, counter=counter)


def producer_process(url, nq, n, size, k, t, ready):
    ex, queues = entities(nq)
    payload = "x" * size
    with Connection(url, transport_options={"confirm_publish": True}) as conn:
        conn.connect()
        prod = Producer(conn.channel(), exchange=ex, serializer="json")
        ready.wait()
        for i in range(t, n, k):
            prod.publish({"i": i, "p": payload}, routing_key=queues[i % nq].routing_key)


def in_processes(target, k, args):
    ready = mp.Barrier(k + 1)
    procs = [mp.Process(target=target, args=args(t) + (ready,)) for t in range(k)]
    for p in procs:
        p.start()
    ready.wait()
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    took = time.perf_counter() - t0
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit("python: a process failed")
    return took


def latency_consumer(url, nq, n, memory, out, ready):
    _, queues = entities(nq)
    nanos = []
    with Connection(url) as conn:
        conn.connect()
        ready.wait()
        consume(conn, queues, n, memory, on_body=lambda b: nanos.append(time.monotonic_ns() - b["due"]))
    out.put(nanos)


def latency(url, ex, queues, size, rate, count, memory):
    n = max(10, min(rate * 2, count, (64 << 20) // max(size, 1)))
    out = mp.Queue() if not memory else __import__("queue").Queue()
    ready = (threading.Barrier if memory else mp.Barrier)(2)
    args = (url, len(queues), n, memory, out, ready)
    worker = threading.Thread(target=latency_consumer, args=args) if memory else mp.Process(target=latency_consumer, args=args)
    worker.start()
    payload = "x" * size
    with Connection(url) as conn:
        prod = Producer(conn.channel(), exchange=ex, serializer="json")
        ready.wait()
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            prod.publish({"i": i, "p": payload, "due": time.monotonic_ns()}, routing_key=queues[i % len(queues)].routing_key)
        nanos = sorted(out.get(timeout=60))
    worker.join()
    pick = lambda per_cent: nanos[min(len(nanos) * per_cent // 100, len(nanos) - 1)] / 1000
    return {"latency_rate": rate, "latency_p50_us": pick(50), "latency_p99_us": pick(99), "latency_max_us": nanos[-1] / 1000}


def main():
    a = argparse.ArgumentParser()
    a.add_argument("url")
    a.add_argument("--count", type=int, default=20000)
    a.add_argument("--size", type=int, default=100)
    a.add_argument("--queues", type=int, default=1)
    a.add_argument("--producers", type=int)
    a.add_argument("--consumers", type=int, default=1)
    a.add_argument("--rate", type=int)
    a = a.parse_args()
    memory = a.url.startswith("memory")
    n, payload = a.count, "x" * a.size
    ex, queues = entities(a.queues)
    result = {"transport": "python-kombu " + a.url.split(":")[0], "count": n, "size": a.size, "queues": a.queues,
              "consumers": a.consumers, "producers": a.producers}
    with Connection(a.url) as conn:
        ch = conn.channel()
        for q in queues:
            q(ch).declare()
            q(ch).purge()
        prod = Producer(ch, exchange=ex, serializer="json")
        t0 = time.perf_counter()
        for i in range(n):
            prod.publish({"i": i, "p": payload}, routing_key=queues[i % len(queues)].routing_key)
        queues[0](ch).declare()
        result["publish_per_sec"] = n / (time.perf_counter() - t0)

        if a.consumers == 1:
            t0 = time.perf_counter()
            consume(conn, queues, n, memory)
            result["consume_per_sec"] = n / (time.perf_counter() - t0)
        elif memory:
            result["consume_per_sec"] = None
            for q in queues:
                q(ch).purge()
        else:
            counter = mp.Value("q", 0)
            took = in_processes(consumer_process, a.consumers, lambda t: (a.url, a.queues, n, memory, counter))
            result["consume_per_sec"] = n / took

        result["producers_shared_per_sec"] = None
        result["producers_own_per_sec"] = None
        if a.producers and not memory:
            k = a.producers
            took = in_processes(producer_process, k, lambda t: (a.url, a.queues, n, a.size, k, t))
            left = sum(q(ch).purge() or 0 for q in queues)
            if left != n:
                raise SystemExit(f"python: confirmed publishes from {k} processes left {left} of {n}")
            result["producers_own_per_sec"] = n / took

        if a.rate:
            result.update(latency(a.url, ex, queues, a.size, a.rate, n, memory))
        if len(queues) > 1:
            for q in queues:
                q(ch).delete()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
