"""/metrics' job and segment families read from the records as Prometheus reads them: every
state has its series (zero included, so an alert on failed jobs has a series to watch from the
start), the histograms count every segment and job (a window of the latest 10000 froze their
``_count`` there: ``rate()`` read 0 and ``histogram_quantile`` NaN on a busy farm), and a job
analysed again is timed by its latest run, not by the days since its upload.

A scrape with the broker away answers all the same, with ``vidfarm_broker_up 0`` (it failed
whole, dropping the records' families just when an operator looks).

A real database (SQLite, then PostgreSQL) and the collector the web app registers; no Redis, no workers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from core.models import JOB_STATES, SEGMENT_STATES, Job, Segment
from core.records import Records
from tests.test_records import records  # noqa: F401  (SQLite and PostgreSQL)
from web.metrics import FarmCollector


def scrape(records: Records, redis_url: str | None = None) -> dict:
    registry = CollectorRegistry()
    registry.register(FarmCollector(redis_url, records))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def add_jobs(records: Records, rows: list[dict]) -> None:
    with records.session() as s:
        s.execute(insert(Job), [{"source_name": "a.mp4", "source_key": "jobs/a", **row} for row in rows])
        s.commit()


def test_every_job_and_segment_state_has_a_series_from_the_start(records):
    samples = scrape(records)
    for state in JOB_STATES:
        assert samples[("vidfarm_jobs", (("status", state),))] == 0
    for state in SEGMENT_STATES:
        assert samples[("vidfarm_segments", (("status", state),))] == 0


def ended(records: Records, rows: list[dict], segment_seconds: tuple[float, ...] = ()) -> list[str]:
    """Jobs (``rows``: their fields; ``finished_at``: when they end) that run, then end done as
    the stitch ends them (``Records`` turns them done), each with its segments done in
    ``segment_seconds`` each as segment tasks end them; their ids."""
    ids = []
    for row in rows:
        row = dict(row)
        finished = {"finished_at": row.pop("finished_at")} if "finished_at" in row else {}
        ids.append(uuid.uuid4().hex)
        add_jobs(records, [{"id": ids[-1], "status": "processing", **row}])
        for index, seconds in enumerate(segment_seconds):
            with records.session() as s:
                s.execute(insert(Segment).values(job_id=ids[-1], index=index, status="processing", start_frame=index,
                                                 frames=1, pts=[index], end_pts=index + 1))
            records.set_segment(ids[-1], index, status="done", seconds=seconds, error=None)
        records.set_job(ids[-1], status="done", **finished)
    return ids


def delete_job(records: Records, job_id: str) -> None:
    """As ``services.submit.delete_job`` deletes one: the ORM's delete, its segments with it."""
    with records.session() as s:
        s.delete(s.get(Job, job_id))


def test_the_histograms_only_grow_deleted_jobs_and_restarts_included(records):
    """Counted from the rows at each scrape, deleting a job lowered ``_count``, ``_sum`` and the
    buckets: Prometheus reads any drop as a counter reset, and ``rate()`` spikes. The totals
    are kept as segments and jobs end, so a delete takes nothing back, and a web process
    started afresh (a new collector on the same database) reads the same."""
    now = datetime.now(timezone.utc)
    first, second = ended(records, [{"created_at": now - timedelta(seconds=3), "finished_at": now},
                                    {"created_at": now - timedelta(seconds=8), "finished_at": now}],
                          segment_seconds=(1.5, 0.5))
    before = scrape(records)
    assert before[("vidfarm_segment_seconds_count", ())] == 4
    assert before[("vidfarm_segment_seconds_bucket", (("le", "1"),))] == 2
    assert before[("vidfarm_segment_seconds_bucket", (("le", "2"),))] == 4
    assert before[("vidfarm_segment_seconds_sum", ())] == pytest.approx(4.0)
    assert before[("vidfarm_job_seconds_count", ())] == 2
    assert before[("vidfarm_job_seconds_bucket", (("le", "5"),))] == 1
    assert before[("vidfarm_job_seconds_sum", ())] == pytest.approx(11, abs=0.01)
    delete_job(records, first)
    delete_job(records, second)
    histograms = {key: value for key, value in before.items() if key[0].endswith(("_bucket", "_count", "_sum"))}
    assert {key: scrape(records)[key] for key in histograms} == histograms
    restarted = Records(records.url)
    try:
        assert {key: scrape(restarted)[key] for key in histograms} == histograms
    finally:
        restarted.engine.dispose()


def test_a_segment_or_job_ended_twice_is_counted_once(records):
    """A segment finished by a second worker (its first given up for dead, then finishing
    too), a job written done again: the row is rewritten, the totals are not added to twice."""
    [job_id] = ended(records, [{}], segment_seconds=(1.5,))
    records.set_segment(job_id, 0, status="done", seconds=2.5, error=None)
    records.set_job(job_id, status="done")
    samples = scrape(records)
    assert samples[("vidfarm_segment_seconds_count", ())] == 1
    assert samples[("vidfarm_segment_seconds_sum", ())] == pytest.approx(1.5)
    assert samples[("vidfarm_job_seconds_count", ())] == 1
    assert records.get_segment(job_id, 0).seconds == 2.5


def test_a_job_analysed_again_is_timed_by_its_latest_run(records):
    now = datetime.now(timezone.utc)
    rerun = now - timedelta(seconds=4)
    ended(records, [{"created_at": now - timedelta(days=3), "finished_at": now,
                     "timing": {"run_started": rerun.timestamp()}}])
    samples = scrape(records)
    assert samples[("vidfarm_job_seconds_count", ())] == 1
    assert samples[("vidfarm_job_seconds_sum", ())] == pytest.approx(4, abs=0.01)
    assert samples[("vidfarm_job_seconds_bucket", (("le", "5"),))] == 1


def test_a_job_on_a_bucket_s_bound_counts_in_it_to_the_microsecond(records):
    """The database works the seconds out (SQLite's julianday, to the millisecond, put a job of
    exactly 5 s at 5.00004 s, outside ``le="5"``)."""
    now = datetime.now(timezone.utc).replace(microsecond=123456)
    ended(records, [{"created_at": now - timedelta(seconds=5), "finished_at": now},
                    {"created_at": now - timedelta(days=2), "finished_at": now,
                     "timing": {"run_started": (now - timedelta(seconds=10)).timestamp()}}])
    samples = scrape(records)
    assert samples[("vidfarm_job_seconds_bucket", (("le", "5"),))] == 1
    assert samples[("vidfarm_job_seconds_bucket", (("le", "10"),))] == 2
    assert samples[("vidfarm_job_seconds_sum", ())] == pytest.approx(15, abs=1e-5)


def test_a_scrape_with_the_broker_away_still_reports_the_records(records):
    from cli.redis_server import free_port

    add_jobs(records, [{"status": "failed"}])
    samples = scrape(records, f"redis://127.0.0.1:{free_port()}/0")     # nothing listens there
    assert samples[("vidfarm_broker_up", ())] == 0
    assert samples[("vidfarm_jobs", (("status", "failed"),))] == 1
    assert not any(name.startswith(("vidfarm_queue_", "vidfarm_workers")) for name, _labels in samples)
