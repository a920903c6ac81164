#!/usr/bin/env python3
"""Python Kombu (py-amqp) side of kombu-amqp's interop test.

usage:
  interop.py publish URL EXCHANGE ROUTING_KEY   publish the reference message (BODY, HEADERS, TYPED)
  interop.py consume URL QUEUE                  consume one message, ack it, print it as JSON (headers in
                                                Kombu's JSON, so datetime, Decimal and bytes keep their type)
"""
import sys
from datetime import datetime, timezone
from decimal import Decimal

from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.utils.json import dumps

BODY = {"text": "héllo ✓", "n": 1, "list": [1, 2.5, None, True]}
HEADERS = {
    "s": "v",
    "i": 42,
    "big": 1 << 40,
    "neg": -7,
    "f": 2.5,
    "t": True,
    "null": None,
    "nested": {"list": [1, "two", {"three": 3.0}], "empty": {}},
}
# Sent by publish only, the values JSON has no kind for: py-amqp writes AMQP decimals (scale, signed
# 32-bit value), a timestamp (whole seconds) and bytes (as a long string, here not UTF-8).
TYPED = {
    "dec_neg": Decimal("-3.5"),
    "dec_zero": Decimal("0"),
    "dec_pos": Decimal("1.25"),
    "tiny": Decimal("0.001"),
    "at": datetime(2023, 11, 14, 22, 13, 20),
    "raw": b"\x00\xff",
    "deep": {"when": [datetime(1970, 1, 1)], "price": Decimal("12.50")},
}


def publish(url, exchange, routing_key):
    with Connection(url) as conn:
        producer = Producer(conn.channel(), exchange=Exchange(exchange, type="direct", passive=True))
        producer.publish(
            BODY,
            routing_key=routing_key,
            serializer="json",
            headers={**HEADERS, **TYPED},
            priority=3,
            correlation_id="corr-py",
            reply_to="reply-py",
            expiration=60,
            message_id="mid-py",
            timestamp=1700000000,
            type="kind-py",
            app_id="app-py",
            user_id="guest",
            cluster_id="cluster-py",
            delivery_mode=2,
            declare=[],
        )


def plain(value):
    if isinstance(value, datetime):
        return int(value.replace(tzinfo=timezone.utc).timestamp())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def consume(url, queue):
    got = []

    def on_message(body, message):
        got.append(
            {
                "body": body,
                "content_type": message.content_type,
                "content_encoding": message.content_encoding,
                "headers": message.headers,
                "properties": plain({k: v for k, v in message.properties.items() if k != "application_headers"}),
                "delivery_info": {
                    "exchange": message.delivery_info.get("exchange"),
                    "routing_key": message.delivery_info.get("routing_key"),
                    "redelivered": message.delivery_info.get("redelivered"),
                },
            }
        )
        message.ack()

    with Connection(url) as conn:
        q = Queue(queue, no_declare=True)
        with Consumer(conn.channel(), [q], callbacks=[on_message], accept=["json"]):
            while not got:
                conn.drain_events(timeout=10)
    print(dumps(got[0], sort_keys=True))


if __name__ == "__main__":
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "publish":
        publish(url, sys.argv[3], sys.argv[4])
    elif mode == "consume":
        consume(url, sys.argv[3])
    else:
        sys.exit(__doc__)
