"""Erasure and video records, on SQLite and PostgreSQL (the fixture of test_records)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, text

from core.appearances import Appearances, TrackAppearance
from core.erasures import DeadRowsHeld, Erasures
from core.records import Records
from services.jobs import job_view
from tests.test_records import records, segments  # noqa: F401  (the fixture, on both databases)

NAME = "Zelda Forgettable"
VECTOR = bytes(range(256)) * 8          # 2048 bytes: one 512-float embedding, easy to find


def test_an_erasure_deletes_the_person_at_once_and_keeps_whom_only_while_it_runs(records):
    records.add_embeddings(NAME, [VECTOR], ["zelda.jpg"], ["gallery/zelda.jpg"])
    records.add_embeddings("someone else", [b"\0" * 2048], ["other.jpg"], [None])
    erasures = Erasures(records)
    started = erasures.start(NAME)
    assert started.crop_keys == ["gallery/zelda.jpg"] and started.embeddings == 1
    assert [name for name, _ in records.gallery_vectors()] == ["someone else"]
    assert erasures.start(NAME) is None                      # gone: nothing more to start
    erasure = erasures.get(started.erasure_id)
    assert (erasure.status, erasure.name, erasure.vectors) == ("queued", NAME, VECTOR)
    assert erasure.report == {"identity_id": erasure.identity_id, "embeddings_removed": 1}

    report = erasures.finish(started.erasure_id, {"jobs": {}})
    erasure = erasures.get(started.erasure_id)
    # Done only with the whole report: how the database forgot is in it (a reader polling for
    # "done" once saw the report without it).
    assert (erasure.status, erasure.name, erasure.vectors, erasure.report) == ("done", None, None, report)
    assert set(report) == {"jobs", "database"} and report["database"].startswith(records.engine.dialect.name)


def test_a_lost_erasure_is_found_once_it_stopped_moving(records):
    records.add_embeddings(NAME, [VECTOR], ["zelda.jpg"], [None])
    erasures = Erasures(records)
    erasure_id = erasures.start(NAME).erasure_id
    now = datetime.now(timezone.utc)
    assert erasures.unfinished(now - timedelta(minutes=1)) == []        # it moved just now
    assert erasures.unfinished(now + timedelta(minutes=1)) == [erasure_id]
    erasures.finish(erasure_id, {})
    assert erasures.unfinished(now + timedelta(minutes=1)) == []


@pytest.mark.parametrize("secure_delete", [True, False])
def test_sqlite_overwrites_what_an_erasure_deletes_in_the_file_and_its_log(tmp_path, secure_delete):
    """With ``secure_delete`` (the farm's setting; Debian's SQLite also has it compiled in) and
    the log checkpointed, neither the file nor its log keeps the deleted bytes. Turned off
    (the control), the file keeps them: the search finds what it looks for."""
    path = tmp_path / "records.db"
    records = Records(f"sqlite:///{path}")
    if not secure_delete:
        event.listen(records.engine, "connect", lambda connection, _: connection.execute("PRAGMA secure_delete=OFF"))
    records.create_schema()
    reader = records.engine.connect()        # another connection open, as the web app's pool holds
    try:
        # Neighbours on the same pages: deleting a page's only row would empty it anyway.
        records.add_embeddings("before", [b"\1" * 2048], ["b.jpg"], [None])
        records.add_embeddings(NAME, [VECTOR], ["zelda.jpg"], [None])
        records.add_embeddings("after", [b"\2" * 2048], ["a.jpg"], [None])
        erasures = Erasures(records)
        erasure_id = erasures.start(NAME).erasure_id
        assert NAME.encode() in path.with_name("records.db-wal").read_bytes()   # until the checkpoint
        assert "checkpointed and truncated" in erasures.finish(erasure_id, {})["database"]
        found = [part.name for part in (path, path.with_name("records.db-wal"))
                 if part.exists() and (NAME.encode() in part.read_bytes() or VECTOR[:64] in part.read_bytes())]
        # (The control's log may hold the page again too: the erasure is marked done after the checkpoint.)
        assert found == [] if secure_delete else "records.db" in found
    finally:
        reader.close()
        records.engine.dispose()


def pages_holding(records, table: str, needle: bytes) -> list[int]:
    """The pages of a PostgreSQL table whose raw bytes hold ``needle``, dead tuples included
    (pageinspect reads the page as it is on disk)."""
    with records.engine.connect() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        pages = connection.execute(text(f"SELECT pg_relation_size('{table}') / current_setting('block_size')::int")).scalar()
        raw = [connection.execute(text(f"SELECT get_raw_page('{table}', {n})")).scalar() for n in range(pages)]
        connection.commit()
    return [n for n, page in enumerate(raw) if needle in bytes(page)]


@pytest.mark.parametrize("records", ["postgresql"], indirect=True)     # SQLite: secure_delete, tested above
def test_postgresql_rewrites_every_table_that_held_an_erased_persons_face(records):
    """PostgreSQL keeps a deleted row's bytes in its page (a dead tuple) until the space is
    reused: the erasure's VACUUM FULL writes anew each table that held the person, the people
    search index too (each of their tracks' face crop, deleted with them by ON DELETE CASCADE).
    The control: the crop is still in the index's pages after the deletion, before that."""
    crop, job_id = a_person_with_a_face_crop(records)
    erasures = Erasures(records)
    erasure_id = erasures.start(NAME).erasure_id
    assert Appearances(records).of_job(job_id) == {}          # gone with the person ...
    assert pages_holding(records, "appearances", crop[:64]) == [0]   # ... but still in the page
    erasures.finish(erasure_id, {})                           # the database forgets last
    assert pages_holding(records, "appearances", crop[:64]) == []
    assert pages_holding(records, "face_embeddings", VECTOR[:64]) == []


def a_person_with_a_face_crop(records) -> tuple[bytes, str]:
    """Zelda enrolled, and one of her tracks in the people search index with its face crop;
    returns the crop and the track's job."""
    crop = b"zelda's face crop, a JPEG in the index row " * 12      # 528 bytes: kept in the row, not TOASTed
    records.add_embeddings(NAME, [VECTOR], ["zelda.jpg"], [None])
    job = records.add_job("clip.mp4", "jobs/x/source")
    track = TrackAppearance(track=1, identity=NAME, first_frame=0, last_frame=9, first_t=0.0, last_t=0.3,
                            thumbnail_frame=4, thumbnail=crop)
    assert Appearances(records).replace(job.id, 0, [track], shared_gallery=True)
    return crop, job.id


def a_snapshot_held_open(records):
    """A transaction somewhere else in the database, its snapshot taken (a long report query on
    a table the erasure never touches): PostgreSQL must keep every row deleted after it began
    for as long as it may read them."""
    holder = records.engine.connect()
    holder.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    holder.execute(text("SELECT count(*) FROM segments")).scalar()
    return holder


@pytest.mark.parametrize("records", ["postgresql"], indirect=True)
def test_postgresql_erasure_waits_for_a_transaction_that_could_still_read_the_deleted_rows(records):
    """VACUUM FULL copies a dead row that an open snapshot may still read into the table's new
    file: run while such a transaction is open, the face crop stayed. The erasure vacuums again
    until PostgreSQL says it kept none (here: once the transaction ends, 1.5 s in)."""
    crop, _ = a_person_with_a_face_crop(records)
    holder = a_snapshot_held_open(records)
    erasures = Erasures(records)
    erasure_id = erasures.start(NAME).erasure_id
    ending = threading.Timer(1.5, holder.close)       # closing rolls the transaction back
    ending.start()
    try:
        erasures.finish(erasure_id, {})
    finally:
        ending.join()
    assert pages_holding(records, "appearances", crop[:64]) == []
    assert pages_holding(records, "face_embeddings", VECTOR[:64]) == []


@pytest.mark.parametrize("records", ["postgresql"], indirect=True)
def test_postgresql_erasure_held_past_its_wait_is_not_done_and_says_who_holds_the_rows(records):
    crop, _ = a_person_with_a_face_crop(records)
    holder = a_snapshot_held_open(records)
    erasures = Erasures(records)
    erasure_id = erasures.start(NAME).erasure_id
    try:
        with pytest.raises(DeadRowsHeld, match=r"left: identities, .*appearances.*pid \d+ \(idle in transaction"):
            erasures.finish(erasure_id, {}, wait_s=0.5)
        held = erasures.get(erasure_id)
        assert held.status != "done" and held.name is None         # whom it looked for: gone already
        assert held.report["waiting_for_database"].startswith("PostgreSQL cannot drop the erased rows yet")
        assert pages_holding(records, "appearances", crop[:64]) == [0]
    finally:
        holder.close()
    report = erasures.finish(erasure_id, held.report)                # the task's next run
    assert "waiting_for_database" not in report and report["database"].startswith("postgresql: VACUUM FULL")
    assert erasures.get(erasure_id).status == "done"
    assert pages_holding(records, "appearances", crop[:64]) == []


@pytest.mark.parametrize("records", ["postgresql"], indirect=True)
def test_postgresql_erasure_never_queues_the_farm_behind_a_table_lock_it_cannot_get(records):
    """VACUUM FULL needs its table alone: behind a session holding a lock on ``appearances`` (a
    search page's transaction left open) it waited with no end, and every later query of the
    farm on that table queued behind it. It waits 2 s for each lock, tries again, and past its
    wait the erasure is not done, saying the table stays locked."""
    crop, _ = a_person_with_a_face_crop(records)
    erasures = Erasures(records)
    erasure_id = erasures.start(NAME).erasure_id
    holder = records.engine.connect()
    holder.execute(text("LOCK TABLE appearances IN ACCESS SHARE MODE"))    # no snapshot kept, a lock
    freeing = threading.Timer(20, holder.close)      # the old code would wait here for ever
    freeing.start()
    try:
        with pytest.raises(DeadRowsHeld, match=r"left: appearances\): their tables stay locked"):
            erasures.finish(erasure_id, {}, wait_s=1.0)
        with records.engine.connect() as reader:      # a query of the farm's is not held up
            assert reader.execute(text("SELECT count(*) FROM appearances")).scalar() == 0
    finally:
        freeing.cancel()
        holder.close()
    erasures.finish(erasure_id, erasures.get(erasure_id).report)
    assert pages_holding(records, "appearances", crop[:64]) == []


def test_a_video_of_older_results_never_replaces_a_newer_one(records):
    job = records.add_job("clip.mp4", "jobs/x/source")
    records.record_split(job.id, segments(2), status="processing")
    written = []
    assert records.publish_video(job.id, 2, ["a", "b"], 1.5, lambda: written.append(2))
    assert not records.publish_video(job.id, 1, ["c", "d"], 1.0, lambda: written.append(1))
    assert written == [2] and records.video(job.id).segments == ["a", "b"]
    assert job_view(records, job.id)["video_version"] == 2
    assert not records.publish_video("nope", 3, [], 0.0, lambda: written.append(3))


def test_a_done_job_whose_video_lags_its_results_is_found(records):
    job = records.add_job("clip.mp4", "jobs/x/source")
    records.publish_version(job.id, "fp", lambda version: None, status="done")
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    assert records.jobs_with_stale_video(later) == [(job.id, 1)]
    assert records.jobs_with_stale_video(later - timedelta(minutes=10)) == []   # not stale yet
    records.set_video_error(job.id, "drawing failed")
    assert job_view(records, job.id)["video_error"] == "drawing failed"
    records.publish_video(job.id, 1, [], 1.0, lambda: None)
    assert records.jobs_with_stale_video(later) == [] and job_view(records, job.id)["video_error"] is None


def test_an_erasure_whose_task_died_as_it_finished_is_finished_when_run_again(farm):
    """``finish`` forgets whom the erasure looked for before the database forgets the deleted
    bytes, and marks it done only after: a task that dies in between (or a database that
    refuses the checkpoint) leaves an erasure with no one to look for. Run again (the
    watchdog's ``resume_lost``), it is finished, where it used to fail on the missing embeddings
    at every try."""
    from services import runtime
    from tasks.erasure import erase

    records = runtime.records()
    records.add_embeddings("Zelda Interrupted", [VECTOR], ["zelda.jpg"], [None])
    erasures = Erasures(records)
    erasure_id = erasures.start("Zelda Interrupted").erasure_id
    report = {**erasures.get(erasure_id).report, "jobs": {}}
    erasures.set(erasure_id, status="running", name=None, vectors=None, report=report)   # finish's first write
    erase.apply((erasure_id,))
    erasure = erasures.get(erasure_id)
    assert (erasure.status, erasure.name, erasure.vectors) == ("done", None, None)
    assert erasure.report == {**report, "database": erasure.report["database"]}
    assert erasure.report["database"].startswith("sqlite: secure_delete on")
