"""/metrics' job and segment families read from the records as Prometheus reads them: every
state has its series (zero included, so an alert on failed jobs has a series to watch from the
start), the histograms count every segment and job (a window of the latest 10000 froze their
``_count`` there: ``rate()`` read 0 and ``histogram_quantile`` NaN on a busy farm), and a job
analysed again is timed by its latest run, not by the days since its upload.

A scrape with the broker away answers all the same, with ``vidfarm_broker_up 0`` (it failed
whole, dropping the records' families just when an operator looks).

A real database (SQLite, then PostgreSQL) and the collector the web app registers; no Redis, no workers."""

from __future__ import annotations

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


def test_the_histograms_count_every_segment_and_job_not_the_latest_10000(records):
    now = datetime.now(timezone.utc)
    many = 10_001
    add_jobs(records, [{"id": f"{n:032x}", "status": "done", "created_at": now - timedelta(seconds=3),
                        "finished_at": now} for n in range(many)])
    with records.session() as s:
        s.execute(insert(Segment), [{"job_id": f"{n:032x}", "index": 0, "status": "done", "start_frame": 0,
                                     "frames": 1, "pts": [0], "end_pts": 1, "seconds": 1.5,
                                     "finished_at": now} for n in range(many)])
        s.commit()
    samples = scrape(records)
    assert samples[("vidfarm_segment_seconds_count", ())] == many
    assert samples[("vidfarm_segment_seconds_bucket", (("le", "1"),))] == 0
    assert samples[("vidfarm_segment_seconds_bucket", (("le", "2"),))] == many
    assert samples[("vidfarm_segment_seconds_sum", ())] == pytest.approx(1.5 * many)
    assert samples[("vidfarm_job_seconds_count", ())] == many
    assert samples[("vidfarm_job_seconds_bucket", (("le", "5"),))] == many


def test_a_job_analysed_again_is_timed_by_its_latest_run(records):
    now = datetime.now(timezone.utc)
    rerun = now - timedelta(seconds=4)
    add_jobs(records, [{"status": "done", "created_at": now - timedelta(days=3), "finished_at": now,
                        "timing": {"run_started": rerun.timestamp()}}])
    samples = scrape(records)
    assert samples[("vidfarm_job_seconds_count", ())] == 1
    assert samples[("vidfarm_job_seconds_sum", ())] == pytest.approx(4, abs=0.01)
    assert samples[("vidfarm_job_seconds_bucket", (("le", "5"),))] == 1


def test_a_job_on_a_bucket_s_bound_counts_in_it_to_the_microsecond(records):
    """The database works the seconds out (SQLite's julianday, to the millisecond, put a job of
    exactly 5 s at 5.00004 s, outside ``le="5"``)."""
    now = datetime.now(timezone.utc).replace(microsecond=123456)
    add_jobs(records, [{"status": "done", "created_at": now - timedelta(seconds=5), "finished_at": now},
                       {"status": "done", "created_at": now - timedelta(days=2), "finished_at": now,
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
