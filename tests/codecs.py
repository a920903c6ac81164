"""Python Kombu's side of tests/codecs.rs: publishes or gets one message with a given serializer and
compression, on a queue bound to a direct exchange of the same name (both durable, as Kombu declares them).

    python3 codecs.py '{"op": "publish", "url": ..., "queue": ..., "serializer": ..., "compression": ..., "body": ...}'
    python3 codecs.py '{"op": "get", "url": ..., "queue": ..., "timeout": 10}'

`get` prints one JSON line: the decoded body, and the message's content type and compression header.
"""
import json
import sys
import time

from kombu import Connection, Exchange, Queue


def main():
    spec = json.loads(sys.argv[1])
    name = spec["queue"]
    queue = Queue(name, Exchange(name, "direct"), routing_key=name)
    with Connection(spec["url"]) as conn:
        if spec["op"] == "publish":
            producer = conn.Producer()
            producer.publish(spec["body"], exchange=queue.exchange, routing_key=name, declare=[queue],
                             serializer=spec["serializer"], compression=spec.get("compression"))
            return
        bound = queue(conn.default_channel)
        bound.declare()
        deadline = time.monotonic() + spec.get("timeout", 10)
        while time.monotonic() < deadline:
            message = bound.get(no_ack=False, accept=["json", "msgpack", "yaml"])
            if message is not None:
                print(json.dumps({"body": message.decode(), "content_type": message.content_type,
                                  "compression": message.headers.get("compression")}))
                message.ack()
                return
            time.sleep(0.05)
        sys.exit("no message in %s" % name)


if __name__ == "__main__":
    main()
