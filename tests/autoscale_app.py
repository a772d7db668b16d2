"""A Celery app for the local autoscaler test: vidfarm's real Celery settings and queues,
with one light task instead of video work, so the test measures scaling, not encoding."""

from __future__ import annotations

import json
import time

import redis
from celery import Celery

app = Celery("vidfarm-autoscale-test")
app.config_from_object("celeryconfig")

DONE_KEY = "test:done"
RUNS_KEY = "test:runs"      # [tag, worker, started, ended] of each run, as JSON: which worker ran it, when


@app.task(name="test.sleep_then_record", bind=True)
def sleep_then_record(self, tag: str, seconds: float) -> str:
    started = time.time()
    time.sleep(seconds)
    with redis.Redis.from_url(app.conf.broker_url) as client:
        client.rpush(DONE_KEY, tag)     # one entry per completed run: duplicates would show
        client.rpush(RUNS_KEY, json.dumps([tag, self.request.hostname, started, time.time()]))
    return tag
