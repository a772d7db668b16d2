"""Prometheus metrics at /metrics (behind the same login/token guard as everything else:
give Prometheus a bearer token). Read at scrape time from Redis and the records (the
histograms: running totals the records keep), so every gunicorn process answers the same,
after a restart too, and nothing has to be shared between them.

Queue and worker gauges cost one broadcast to the workers per scrape, over one broker
connection per web process (``SharedObserver``), not one per scrape.

The autoscaler exports its own decisions on its own port (``vidfarm_autoscaler_*``).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from core.models import (JOB_SECONDS, JOB_STATES, SEGMENT_SECONDS, SEGMENT_STATES, Histogram, HistogramBucket, Job,
                         Segment)
from core.records import Records

from web.context import farm

metrics = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)

QUEUES = ("live", "ingest", "cpu", "gpu")   # celeryconfig.task_queues (tests/test_api.py checks)
_BROKER_UP = "1: the queue and worker gauges were read from the broker; 0: it did not answer, they are absent."


def _histogram(name: str, documentation: str, counted: dict) -> HistogramMetricFamily:
    buckets = counted["buckets"] + [("+Inf", counted["count"])]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=float(counted["sum"]))


class SharedObserver:
    """One QueueObserver (one Redis connection, one Celery control channel) for every scrape
    of this web process. gunicorn's threads take turns: a broadcast collects its replies on
    the observer's connection, and Prometheus scrapes seldom."""

    def __init__(self, inspect_timeout: float = 1.0):
        self.inspect_timeout = inspect_timeout
        self.lock = threading.Lock()
        self.observer = None
        self.url: str | None = None

    def observe(self, url: str, queues: list[str]):
        from autoscaler.observe import QueueObserver

        with self.lock:
            if self.observer is not None and self.url != url:
                self._drop()
            if self.observer is None:
                self.observer, self.url = QueueObserver(url, inspect_timeout=self.inspect_timeout), url
            try:
                return self.observer.observe_farm(queues)
            except Exception:
                self._drop()      # the next scrape starts on a fresh connection
                raise

    def _drop(self) -> None:
        observer, self.observer, self.url = self.observer, None, None
        observer.close()


farm_observer = SharedObserver()


class FarmCollector:
    def __init__(self, redis_url: str | None, records: Records):
        self.redis_url, self.records = redis_url, records

    def collect(self):
        snapshot = metrics_snapshot(self.records)
        jobs = GaugeMetricFamily("vidfarm_jobs", "Jobs by status.", labels=["status"])
        for status, count in snapshot["jobs"].items():
            jobs.add_metric([status], count)
        yield jobs
        segments = GaugeMetricFamily("vidfarm_segments", "Segments by status (processed = done).", labels=["status"])
        for status, count in snapshot["segments"].items():
            segments.add_metric([status], count)
        yield segments
        yield GaugeMetricFamily("vidfarm_frames_per_second", "Frames analysed per second over the last minute.",
                                value=snapshot["frames_per_second"])
        yield _histogram(SEGMENT_SECONDS, "Time to process one segment.", snapshot["segment_seconds"])
        yield _histogram(JOB_SECONDS, "Submit (or re-analysis) to done, per job's latest run.",
                         snapshot["job_seconds"])

        if not self.redis_url:
            return
        try:
            farm = farm_observer.observe(self.redis_url, list(QUEUES))
        except Exception as exc:    # redis' and kombu's connection errors share no base class
            # The records' families above still answer (a failed scrape dropped them too, just
            # when an operator looks); the queue and worker gauges are absent, and this says why.
            log.warning("/metrics: the queues could not be read: %s", exc)
            yield GaugeMetricFamily("vidfarm_broker_up", _BROKER_UP, value=0)
            return
        yield GaugeMetricFamily("vidfarm_broker_up", _BROKER_UP, value=1)
        waiting = GaugeMetricFamily("vidfarm_queue_waiting", "Tasks waiting in a queue.", labels=["queue"])
        running = GaugeMetricFamily("vidfarm_queue_running", "Tasks taken by a worker, not yet done.", labels=["queue"])
        for queue, observed in farm.queues.items():
            waiting.add_metric([queue], observed.waiting)
            running.add_metric([queue], observed.running)
        yield waiting
        yield running
        busy = set().union(*(observed.busy_nodes for observed in farm.queues.values()))
        state = GaugeMetricFamily("vidfarm_workers", "Celery workers by state.", labels=["state"])
        state.add_metric(["busy"], len(busy))
        state.add_metric(["idle"], len(farm.nodes - busy))
        yield state


@metrics.get("/metrics")
def scrape():
    registry = CollectorRegistry()
    registry.register(FarmCollector(farm().settings.redis_url, farm().records))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def metrics_snapshot(records: Records, window_s: float = 60.0) -> dict:
    """What /metrics reports, read in one short session: counts by state (every state, zero
    included: an alert on failed jobs has its series before the first one fails), the
    histograms of every segment's and job's duration, and the frames finished within the
    last ``window_s`` seconds.

    The histograms are running totals kept as segments and jobs end (``core.records``), not
    counted from the rows: deleting a job took its times back, and Prometheus read the drop as
    a counter reset. Each run of a job analysed again is timed from that run's start, not
    from its upload days before."""
    since = datetime.now(timezone.utc) - timedelta(seconds=window_s)
    with records.session() as s:
        jobs = dict.fromkeys(JOB_STATES, 0) | dict(
            s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        segments = dict.fromkeys(SEGMENT_STATES, 0) | dict(
            s.execute(select(Segment.status, func.count()).group_by(Segment.status)).all())
        segment_seconds = _histogram_totals(s, SEGMENT_SECONDS)
        job_seconds = _histogram_totals(s, JOB_SECONDS)
        recent_frames = s.scalar(select(func.coalesce(func.sum(Segment.frames), 0)).where(
            Segment.status == "done", Segment.finished_at >= since)) or 0
    return {"jobs": jobs, "segments": segments, "segment_seconds": segment_seconds,
            "job_seconds": job_seconds, "frames_per_second": recent_frames / window_s}


def _histogram_totals(session, metric: str) -> dict:
    """A histogram's running totals (``core.models.Histogram``, added to as segments and jobs
    end): they only grow, whatever is deleted, as Prometheus expects of a histogram."""
    totals = session.get(Histogram, metric)
    if totals is None:        # its row missing (a partial restore): zeros, not a 500 for every family
        log.warning("/metrics: no totals row for %s in the records (vidfarm db upgrade makes it)", metric)
        return {"count": 0, "sum": 0.0, "buckets": []}
    bounds = session.execute(select(HistogramBucket.le, HistogramBucket.count)
                             .where(HistogramBucket.metric == metric).order_by(HistogramBucket.le)).all()
    return {"count": totals.count, "sum": totals.sum, "buckets": [(f"{le:g}", count) for le, count in bounds]}
