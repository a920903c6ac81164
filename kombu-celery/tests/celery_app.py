"""The Celery app of kombu-celery's tests: a real worker runs these tasks for messages kombu-rs sends.

Configured by the environment: KOMBU_RS_BROKER, KOMBU_RS_BACKEND, KOMBU_RS_QUEUE. Run as
`python3 -m celery -A celery_app worker --pool=solo -Q $KOMBU_RS_QUEUE` from this directory, or with
`send_task '<json>'` to publish one task the way a Celery client does (for the parser's test).
"""
import json
import os
import sys

from celery import Celery

app = Celery("kombu_rs_tests", broker=os.environ["KOMBU_RS_BROKER"], backend=os.environ.get("KOMBU_RS_BACKEND"))
app.conf.update(
    task_default_queue=os.environ.get("KOMBU_RS_QUEUE", "celery"),
    accept_content=["json", "msgpack", "yaml"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="kombu_rs.add")
def add(x, y):
    return x + y


@app.task(name="kombu_rs.echo", bind=True)
def echo(self, *args, **kwargs):
    r = self.request
    return {
        "args": list(args),
        "kwargs": kwargs,
        "retries": r.retries,
        "eta": r.eta,
        "expires": r.expires,
        "priority": (r.delivery_info or {}).get("priority"),
        "root_id": r.root_id,
        "parent_id": r.parent_id,
        "id": r.id,
    }


@app.task(name="kombu_rs.fail")
def fail(why):
    raise ValueError(why)


if __name__ == "__main__" and sys.argv[1:2] == ["send_task"]:
    spec = json.loads(sys.argv[2])
    result = app.send_task(spec["name"], args=spec.get("args"), kwargs=spec.get("kwargs"), queue=spec["queue"],
                           countdown=spec.get("countdown"), expires=spec.get("expires"),
                           priority=spec.get("priority"), serializer=spec.get("serializer", "json"))
    print(result.id)
