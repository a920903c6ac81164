#!/usr/bin/env python3
"""Python Kombu's side of the kombu-redis interop tests.

Called by tests/interop.rs with one JSON argument, {"op": ..., ...}; prints JSON lines. Both are read and
written with Kombu's JSON (kombu.utils.json), so a datetime, Decimal or bytes header travels as its
{"__type__": ..., "__value__": ...} form; `header_types` names the Python type of each header.

- publish: declares the exchange and the queue bound to it, publishes `messages` (each with optional
  `headers` and `properties`, the keyword arguments of Producer.publish such as type or app_id).
- consume: declares them, consumes `count` messages (acking each) within `timeout` seconds and prints
  one JSON line per message; prints READY first once the consumer is subscribed.
- take_and_die: takes one message without acknowledging it and exits at once, as a killed worker would.
"""
import base64
import os
import sys
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.utils.json import dumps, loads


def entities(spec, channel):
    ex = Exchange(spec["exchange"], type=spec.get("type", "direct"))
    q = Queue(spec["queue"], ex, routing_key=spec.get("binding", ""))
    q(channel).declare()
    return ex, q


def describe(message):
    props = message.properties
    return {
        "body_b64": base64.b64encode(message.body if isinstance(message.body, bytes)
                                     else message.body.encode()).decode(),
        "content_type": message.content_type,
        "headers": message.headers,
        "header_types": {k: type(v).__name__ for k, v in (message.headers or {}).items()},
        "properties": {k: props.get(k) for k in ("type", "app_id", "user_id", "cluster_id")},
        "priority": props.get("priority"),
        "redelivered": bool(message.delivery_info.get("redelivered")),
        "routing_key": message.delivery_info.get("routing_key"),
        "exchange": message.delivery_info.get("exchange"),
    }


def main():
    spec = loads(sys.argv[1])
    options = spec.get("transport_options", {})
    with Connection(spec["url"], transport_options=options) as conn:
        channel = conn.channel()
        ex, q = entities(spec, channel)
        if spec["op"] == "publish":
            producer = Producer(channel)
            for m in spec["messages"]:
                producer.publish(
                    base64.b64decode(m["body_b64"]),
                    exchange=ex,
                    routing_key=m.get("routing_key", ""),
                    content_type=m.get("content_type", "application/octet-stream"),
                    content_encoding=m.get("content_encoding", "binary"),
                    headers=m.get("headers") or {},
                    priority=m.get("priority"),
                    **(m.get("properties") or {}),
                )
            print(dumps({"published": len(spec["messages"])}), flush=True)
        elif spec["op"] == "consume":
            got = []

            def on_message(message):
                got.append(describe(message))
                message.ack()
                print(dumps(got[-1]), flush=True)

            with Consumer(channel, [q], on_message=on_message):
                # Kombu subscribes fanout queues on the first poll: poll once before saying READY, so
                # that a publish made when READY is read is not lost.
                try:
                    conn.drain_events(timeout=0.01)
                except Exception:
                    pass
                print("READY", flush=True)
                end = time.monotonic() + spec.get("timeout", 10)
                while len(got) < spec["count"] and time.monotonic() < end:
                    try:
                        conn.drain_events(timeout=0.2)
                    except Exception:
                        pass
        elif spec["op"] == "take_and_die":
            message = None
            end = time.monotonic() + spec.get("timeout", 10)
            while message is None and time.monotonic() < end:
                message = q(channel).get(no_ack=False)
                if message is None:
                    time.sleep(0.05)
            print(dumps(describe(message) if message else None), flush=True)
            os._exit(0)


if __name__ == "__main__":
    main()
