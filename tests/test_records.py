"""Job and segment records on SQLite (default) and PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

import os
import socket
import uuid

import pytest
from sqlalchemy.exc import CompileError
import sqlalchemy

from core.records import Records
from services.jobs import job_view, job_views
from tests.conftest import sql_statements


def postgres_unavailable(reason: str):
    """Skip where no PostgreSQL runs; fail where one must (.ci/run sets VIDFARM_TEST_REQUIRE_POSTGRES
    after starting one, so the PostgreSQL half of these tests can never silently vanish in CI)."""
    if os.environ.get("VIDFARM_TEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here: {reason}")
    pytest.skip(reason)


def postgres_url():
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        postgres_unavailable("no PostgreSQL answers on 127.0.0.1:5432")
    admin = sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                                     isolation_level="AUTOCOMMIT")
    name = f"vidfarm_test_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as exc:
        postgres_unavailable(f"PostgreSQL refused a test database: {exc.orig}")
    return admin, name


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request, tmp_path):
    if request.param == "sqlite":
        recs = Records(f"sqlite:///{tmp_path / 'records.db'}")
        recs.create_schema()
        yield recs
        recs.engine.dispose()
        return
    admin, name = postgres_url()
    recs = Records(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    recs.create_schema()
    yield recs
    recs.engine.dispose()
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE "{name}"'))
    admin.dispose()


def segments(n: int, frames: int = 10) -> list[dict]:
    return [{"index": i, "start_frame": i * frames, "frames": frames,
             "pts": list(range(i * frames, (i + 1) * frames)), "end_pts": (i + 1) * frames}
            for i in range(n)]


def test_job_lifecycle_and_progress(records):
    job = records.add_job("clip.mp4", "jobs/x/source")
    assert job_view(records, job.id)["status"] == "queued"
    assert records.start_stage(job.id, "splitting", from_states=("queued", "splitting")).status == "splitting"
    records.record_split(job.id, segments(4), status="processing", timing={"split_s": 0.1})
    assert (records.get_job(job.id).status, records.get_job(job.id).timing) == ("processing", {"split_s": 0.1})
    taken_job, taken = records.start_segment(job.id, 0, worker="w1")
    assert taken_job.id == job.id
    assert (taken.index, taken.status, taken.worker, taken.attempts) == (0, "processing", "w1", 1)
    records.set_segment(job.id, 0, status="done")
    records.set_segment(job.id, 1, status="done")
    view = job_view(records, job.id)
    assert (view["chunks_done"], view["chunks_total"], view["status"]) == (2, 4, "processing")
    assert 0.05 < view["progress"] < 0.95
    assert records.get_segment(job.id, 0).attempts == 1
    assert records.get_segment(job.id, 2).pts == list(range(20, 30))
    records.set_job(job.id, status="done", timing={"stitch_s": 0.5})
    view = job_view(records, job.id)
    assert view["progress"] == 1.0 and view["finished_at"]
    # A late redelivery of a segment, or of an ingest or stitch, of an ended job takes nothing.
    assert records.start_segment(job.id, 3, worker="w2") is None
    assert records.get_segment(job.id, 3).attempts == 0
    assert records.start_stage(job.id, "splitting", from_states=("queued", "splitting", "done")) is None
    assert records.start_stitch(job.id) is None
    assert records.get_job(job.id).status == "done"
    assert records.start_stage("no-such-job", "splitting", from_states=("queued",)) is None


def test_a_stage_starts_only_from_its_states_and_restarts_its_clock(records):
    import time

    job = records.add_job("clip.mp4", "jobs/x/source")
    first = records.start_stage(job.id, "splitting", from_states=("queued", "splitting"))
    time.sleep(0.01)
    again = records.start_stage(job.id, "splitting", from_states=("queued", "splitting"))   # a retry
    assert again.status == "splitting" and again.updated_at > first.updated_at   # the watchdog's clock
    records.record_split(job.id, segments(2), status="processing")
    # A redelivered ingest of a job already split changes nothing.
    assert records.start_stage(job.id, "splitting", from_states=("queued", "splitting")) is None
    assert [s.status for s in records.segments(job.id)] == ["queued", "queued"]
    assert records.get_job(job.id).status == "processing"
    # A job failed first stays failed, whatever stage starts after.
    records.fail_job(job.id, "no progress")
    assert records.start_stage(job.id, "splitting", from_states=("queued", "splitting", "processing")) is None
    for index in (0, 1):
        records.set_segment(job.id, index, status="done")
    assert records.start_stitch(job.id) is None
    assert (records.get_job(job.id).status, records.get_job(job.id).error) == ("failed", "no progress")
    # Failed while it was split (its `vidfarm process` stopped): the split's record comes too
    # late, and neither its segments nor "processing" are written under the error.
    split = records.add_job("clip.mp4", "jobs/y/source")
    records.start_stage(split.id, "splitting", from_states=("queued",))
    records.fail_job(split.id, "stopped (SIGTERM)")
    assert records.record_split(split.id, segments(2), status="processing") is False
    assert (records.get_job(split.id).status, records.segments(split.id)) == ("failed", [])


def test_the_stitch_starts_only_once_every_segment_is_done(records):
    job = records.add_job("clip.mp4", "jobs/x/source")
    records.record_split(job.id, segments(3), status="processing")
    records.set_segment(job.id, 0, status="done")
    records.set_segment(job.id, 2, status="done")
    taken_job, taken = records.start_stitch(job.id)
    assert [s.status for s in taken] == ["done", "queued", "done"]
    assert taken_job.status == records.get_job(job.id).status == "processing"
    records.set_segment(job.id, 1, status="done")
    taken_job, taken = records.start_stitch(job.id)
    assert [s.index for s in taken] == [0, 1, 2] and taken[1].pts == list(range(10, 20))
    assert taken_job.status == records.get_job(job.id).status == "stitching"


def test_a_stage_end_sets_fields_and_merges_timing_in_one_write(records):
    job = records.add_job("clip.mp4", "jobs/x/source")
    records.set_job(job.id, status="processing", media={"frames": 3}, timing={"split_s": 0.25})
    records.set_job(job.id, status="done", error=None, timing={"stitch_s": 0.5})
    stored = records.get_job(job.id)
    assert stored.timing == {"split_s": 0.25, "stitch_s": 0.5}
    assert (stored.status, stored.media, stored.error) == ("done", {"frames": 3}, None)
    assert stored.finished_at is not None
    with pytest.raises(CompileError):   # a misspelled field is an error, with or without timing
        records.set_job(job.id, timing={"x": 1.0}, statsu="done")


def test_record_split_is_idempotent(records):
    job = records.add_job("clip.mp4", "jobs/y/source")
    records.record_split(job.id, segments(3))
    records.start_segment(job.id, 0, worker="w1")
    records.record_split(job.id, segments(2))
    assert [(s.index, s.status, s.attempts) for s in records.segments(job.id)] == [(0, "queued", 0), (1, "queued", 0)]
    assert records.get_job(job.id).chunks_total == 2


def test_fail_job_keeps_one_line_and_never_reopens_a_finished_job(records):
    job = records.add_job("a.mp4", "k")
    records.fail_job(job.id, "bad\nthing   happened")
    assert job_view(records, job.id)["error"] == "bad thing happened"
    other = records.add_job("b.mp4", "k2")
    records.set_job(other.id, status="done")
    records.fail_job(other.id, "late failure")
    assert job_view(records, other.id)["status"] == "done"
    records.fail_job(job.id, "second failure")
    assert job_view(records, job.id)["error"] == "bad thing happened"


def test_only_unfinished_jobs_stall_and_ended_ones_are_stamped(records):
    from datetime import datetime, timedelta, timezone

    from core.models import ENDED_STATES

    assert ENDED_STATES == ("done", "failed")
    ids = {status: records.add_job(f"{status}.mp4", f"k-{status}").id for status in ("processing", *ENDED_STATES)}
    for status, job_id in ids.items():
        records.set_job(job_id, status=status)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert records.stalled_jobs(later) == [ids["processing"]]
    assert records.get_job(ids["processing"]).finished_at is None
    assert all(records.get_job(ids[status]).finished_at for status in ENDED_STATES)
    records.record_split(ids["processing"], segments(3))
    for index, status in enumerate(("processing", *ENDED_STATES)):
        records.set_segment(ids["processing"], index, status=status)
    assert [s.finished_at is not None for s in records.segments(ids["processing"])] == [False, True, True]


def test_job_views_newest_first_and_filtered(records):
    ids = [records.add_job(f"{i}.mp4", f"k{i}").id for i in range(3)]
    records.set_job(ids[1], status="failed")
    records.record_split(ids[2], segments(4))
    records.set_segment(ids[2], 1, status="done")
    records.set_segment(ids[2], 3, status="done")
    views = job_views(records)
    assert [v["id"] for v in views] == ids[::-1]
    assert views == [job_view(records, job_id) for job_id in ids[::-1]]
    assert (views[0]["chunks_done"], views[0]["chunks_total"], views[2]["chunks_done"]) == (2, 4, 0)
    assert [v["id"] for v in job_views(records, status="failed")] == [ids[1]]
    assert [v["id"] for v in job_views(records, limit=1, offset=1)] == [ids[1]]
    assert job_view(records, "nope") is None


def test_a_page_of_job_views_costs_the_same_queries_for_1_or_20_jobs(records):
    for i in range(21):
        job = records.add_job(f"{i}.mp4", f"k{i}")
        records.record_split(job.id, segments(3))
        records.set_segment(job.id, i % 3, status="done")
    counts = {}
    for size in (1, 20):
        with sql_statements(records.engine) as statements:
            assert len(job_views(records, limit=size)) == size
        counts[size] = len(statements)
    assert counts[1] == counts[20] == 1


def test_gallery_snapshot_is_one_read_of_what_the_separate_reads_say(records):
    records.add_embeddings("b", [b"\1" * 8, b"\2" * 8], ["b1.jpg", "b2.jpg"], [None, None])
    records.add_embeddings("a", [b"\3" * 8], ["a.jpg"], ["gallery/a.jpg"])
    records.change_identity("b", watchlist=True)
    with sql_statements(records.engine) as statements:
        snapshot = records.gallery_snapshot()
    assert len(statements) == 1
    assert snapshot.rows == records.gallery_vectors() == [("a", b"\3" * 8), ("b", b"\1" * 8), ("b", b"\2" * 8)]
    assert snapshot.watchlist == records.watchlist_names() == {"b"}
    assert snapshot.fingerprint == records.gallery_fingerprint()
    records.change_identity("a", watchlist=True)
    assert records.gallery_snapshot().fingerprint != snapshot.fingerprint


def test_sqlite_connections_use_wal_and_sync_at_checkpoints(tmp_path):
    recs = Records(f"sqlite:///{tmp_path / 'modes.db'}")
    recs.create_schema()
    with recs.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1      # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    recs.engine.dispose()


def test_a_sqlite_database_that_cannot_be_wal_syncs_at_every_commit():
    recs = Records("sqlite://")          # in memory: no WAL
    with recs.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "memory"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2      # FULL
    recs.engine.dispose()


def test_many_processes_creating_the_schema_at_once(tmp_path):
    """gunicorn threads and workers all open a new database at the same moment."""
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(5):        # a race: several fresh databases make losing it likely
        url = f"sqlite:///{tmp_path / f'fresh{attempt}.db'}"
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: Records(url).create_schema(), range(16)))
        assert job_view(Records(url), "none") is None


def test_a_results_version_is_seen_only_once_its_files_are_written(records):
    """Readers poll ``results_version`` and then read the files: the number must never run
    ahead of them, and a failed write must not use a number up."""
    import threading

    job = records.add_job("a.mp4", "k")
    reader = Records(records.url)                      # another connection, like the web app
    seen_while_writing: list[int] = []
    assert records.publish_version(job.id, "g1", lambda n: seen_while_writing.append(
        reader.get_job(job.id).results_version)) == 1
    assert seen_while_writing == [0] and reader.get_job(job.id).results_version == 1

    def broken(_version):
        raise OSError("disk full")
    records.set_job(job.id, status="stitching", timing={"split_s": 0.25})
    with pytest.raises(OSError):
        records.publish_version(job.id, "g2", broken, status="done", timing={"stitch_s": 0.5})
    assert (reader.get_job(job.id).results_version, reader.get_job(job.id).status) == (1, "stitching")

    # A stitch may not end a job that ended meanwhile (the watchdog failed it): nothing written.
    written = []
    other = records.add_job("b.mp4", "k2")
    records.fail_job(other.id, "no progress")
    assert records.publish_version(other.id, "g2", written.append, status="done", error=None) is None
    assert written == [] and records.get_job(other.id).status == "failed"
    assert records.get_job(other.id).results_version == 0
    assert records.publish_version("no-such-job", "g2", written.append) is None and written == []

    # The stitch ends the job in the commit that publishes its results, not before.
    seen_while_writing.clear()
    assert records.publish_version(job.id, "g2", lambda n: seen_while_writing.append(reader.get_job(job.id).status),
                                   status="done", error=None, timing={"stitch_s": 0.5}) == 2
    done = reader.get_job(job.id)
    assert seen_while_writing == ["stitching"]
    assert (done.status, done.results_version, done.timing) == ("done", 2, {"split_s": 0.25, "stitch_s": 0.5})
    assert done.finished_at is not None

    # Two publishers at once: the second waits for the first to finish writing.
    first_writing, release = threading.Event(), threading.Event()
    order: list[tuple[str, int]] = []

    def slow(version):
        first_writing.set()
        release.wait(10)
        order.append(("slow", version))
    slow_publisher = threading.Thread(target=records.publish_version, args=(job.id, "g3", slow))
    slow_publisher.start()
    assert first_writing.wait(10)
    fast_publisher = threading.Thread(target=reader.publish_version,
                                      args=(job.id, "g4", lambda v: order.append(("fast", v))))
    fast_publisher.start()
    fast_publisher.join(0.5)
    assert order == []                                 # blocked behind the first publisher
    release.set()
    slow_publisher.join(10), fast_publisher.join(30)
    assert order == [("slow", 3), ("fast", 4)]
    assert records.get_job(job.id).results_version == 4
    reader.engine.dispose()


def test_a_track_enrolled_twice_at_once_goes_to_one_person(records):
    """Two enrolments of one track's embedding at once (SQLite and PostgreSQL): the second
    waits for the first's write on the job's row, sees its embedding and is refused."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from core.errors import TrackEnrolled

    for attempt in range(5):
        job = records.add_job("door.mp4", "jobs/x/source")
        vector, start = bytes([attempt]) * 2048, Barrier(2)

        def enrol(name: str) -> str:
            start.wait()
            try:
                records.add_track_embedding(job.id, 3, name, vector, "door.mp4 #3", None)
                return "enrolled"
            except TrackEnrolled as refused:
                return f"refused: {refused.name}"

        with ThreadPoolExecutor(2) as pool:
            names = [f"Cy{attempt}", f"Di{attempt}"]
            outcomes = list(pool.map(enrol, names))
        assert sorted(outcomes)[0] == "enrolled", outcomes
        first = names[outcomes.index("enrolled")]
        assert sorted(outcomes) == ["enrolled", f"refused: {first}"], outcomes
