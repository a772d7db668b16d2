"""A Celery app for the local autoscaler test: vidfarm's real Celery settings and queues,
with one light task instead of video work, so the test measures scaling, not encoding."""

from __future__ import annotations

import time

import redis
from celery import Celery

app = Celery("vidfarm-autoscale-test")
app.config_from_object("celeryconfig")

DONE_KEY = "test:done"


@app.task(name="test.sleep_then_record")
def sleep_then_record(tag: str, seconds: float) -> str:
    time.sleep(seconds)
    with redis.Redis.from_url(app.conf.broker_url) as client:
        client.rpush(DONE_KEY, tag)     # one entry per completed run: duplicates would show
    return tag
