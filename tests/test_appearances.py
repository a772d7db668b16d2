"""The appearances index and the alerts table on SQLite and PostgreSQL, and the face crops
cut from segment files."""

from __future__ import annotations

from datetime import datetime, timezone

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select, text, update

from core.alerts import Alert, AlertDelivery, Alerts
from core.appearances import Appearance, Appearances, TrackAppearance
from core.models import Job
from tests.test_records import records  # noqa: F401  (the fixture: SQLite and PostgreSQL)

JPEG = b"\xff\xd8 a face crop \xff\xd9"


def finished_job(records, version: int = 1) -> str:   # noqa: F811
    job = records.add_job("lobby.mp4", "jobs/x/source")
    with records.session() as s:
        s.execute(update(Job).where(Job.id == job.id).values(status="done", results_version=version))
    return job.id


def track(number: int, name: str | None, first: int = 0, jpeg: bytes | None = JPEG) -> TrackAppearance:
    return TrackAppearance(number, name, first, first + 9, first / 10, (first + 9) / 10, first + 4, jpeg)


def test_the_index_follows_the_latest_results_version_only(records):  # noqa: F811
    records.add_embeddings("ann", [np.ones(4, np.float32).tobytes()], ["ann.jpg"], [None])
    index = Appearances(records)
    job = finished_job(records, version=1)
    assert index.replace(job, 1, [track(1, None), track(2, "ann", 20)], shared_gallery=True)
    assert [a["track"] for a in index.of_identity("ann", 10)] == [2]
    with records.session() as s:
        s.execute(update(Job).where(Job.id == job).values(results_version=2))
    # The publisher of version 1 comes late, after version 2 was published: refused.
    assert not index.replace(job, 1, [track(1, "ann")], shared_gallery=True)
    assert [a["track"] for a in index.of_identity("ann", 10)] == [2]
    assert index.replace(job, 2, [track(1, "ann"), track(2, "ann", 20)], shared_gallery=True)
    assert [a["track"] for a in index.of_identity("ann", 10)] == [2, 1]   # latest moment first
    # A job's own gallery may use the name of an enrolled person: not them.
    assert index.replace(job, 2, [track(1, "ann")], shared_gallery=False)
    assert index.of_identity("ann", 10) == [] and index.of_identity("nobody", 10) is None


def test_appearances_are_listed_newest_recording_first_a_page_at_a_time(records):  # noqa: F811
    records.add_embeddings("ann", [np.ones(4, np.float32).tobytes()], ["ann.jpg"], [None])
    index = Appearances(records)
    jobs = [finished_job(records) for _ in range(3)]
    for day, job in enumerate(jobs, start=1):
        with records.session() as s:
            s.execute(update(Job).where(Job.id == job).values(created_at=datetime(2026, 5, day, tzinfo=timezone.utc)))
        index.replace(job, 1, [track(1, "ann")], shared_gallery=True)
    pages = [index.of_identity("ann", 2, 0), index.of_identity("ann", 2, 2)]
    assert [[a["job"] for a in page] for page in pages] == [[jobs[2], jobs[1]], [jobs[0]]]
    assert pages[0][0]["recorded_at"].startswith("2026-05-03")


def test_deleting_a_person_deletes_their_appearances_and_face_crops(records):  # noqa: F811
    from tasks.published import indexed_tracks

    for name in ("ann", "bob"):
        records.add_embeddings(name, [np.ones(4, np.float32).tobytes()], [f"{name}.jpg"], [None])
    index = Appearances(records)
    job = finished_job(records)
    index.replace(job, 1, [track(1, "ann"), track(2, "bob", 20), track(3, "ann", 40)], shared_gallery=True)
    assert records.delete_identity("ann")
    with records.session() as s:
        kept = s.execute(select(Appearance.track, Appearance.thumbnail)).all()
        # the bytes are gone, not only unlinked from the name
        assert s.scalar(select(func.count()).select_from(Appearance).where(Appearance.thumbnail.is_not(None))) == 1
    assert kept == [(2, JPEG)]
    assert index.thumbnail(job, 1) is None and index.thumbnail(job, 3) is None
    # Results published again without them (an erasure strips the name and the kept embedding
    # of their tracks): those tracks are not indexed again, so no crop of them comes back.
    erased = {"track": 1, "identity": None, "embedding": None}
    stranger = {"track": 4, "identity": None, "embedding": [0.1] * 4}
    assert [t["track"] for t in indexed_tracks({"tracks": [erased, stranger]})] == [4]


def test_an_alert_rings_once_and_a_later_version_that_drops_it_withdraws_it(records):  # noqa: F811
    records.add_embeddings("ann", [np.ones(4, np.float32).tobytes()], ["ann.jpg"], [None])
    alerts = Alerts(records)
    job = finished_job(records)
    fever = {"kind": "fever", "track": 1, "frame": 5, "t": 0.5, "detail": "38.2 C (threshold 37.5 C)"}
    watch = {"kind": "watchlist", "track": 1, "frame": 0, "t": 0.0, "detail": "ann is on the watchlist"}
    urls = ("http://a.example/hook", "http://b.example/hook")
    first = alerts.raise_new(job, 1, [watch, fever], {1: "ann"}, urls, shared_gallery=True)
    assert len(first) == 4                                       # 2 alerts x 2 URLs
    with records.session() as s:
        s.execute(update(Job).where(Job.id == job).values(results_version=2))
    # Version 2 (a re-identification) lists the fever alert again, and ann is off the watchlist.
    assert alerts.raise_new(job, 2, [fever], {1: "ann"}, urls, shared_gallery=True) == []
    listed = alerts.page(10)
    assert [(a["kind"], a["identity"], a["withdrawn"]) for a in listed] in (
        [("fever", "ann", False), ("watchlist", "ann", True)], [("watchlist", "ann", True), ("fever", "ann", False)])
    assert alerts.counts([job]) == {job: 1}
    # The webhook body names the alert by the id the API lists (receivers de-duplicate by it).
    watchlist_id = next(a["id"] for a in listed if a["kind"] == "watchlist")
    delivery, body = alerts.delivery(first[0])
    assert delivery.url == urls[0] and body == {"id": watchlist_id, "kind": "watchlist", "job": job, "camera": None,
                                                "track": 1, "t": 0.0, "identity": "ann",
                                                "detail": "ann is on the watchlist"}
    # A camera's recording: its first version lists what rang live (no delivery); an alert a
    # later version raises for the first time (a re-identification) rings, saying which camera.
    recording = finished_job(records)
    with records.session() as s:
        s.execute(update(Job).where(Job.id == recording).values(camera_id="cam1", results_version=1))
    assert alerts.raise_new(recording, 1, [fever], {1: None}, urls, shared_gallery=True) == []
    with records.session() as s:
        s.execute(update(Job).where(Job.id == recording).values(results_version=2))
    rung = alerts.raise_new(recording, 2, [fever, watch], {1: "ann"}, urls, shared_gallery=True)
    assert len(rung) == 2 and alerts.delivery(rung[0])[1]["camera"] == "cam1"
    assert alerts.delivery(rung[0])[1]["kind"] == "watchlist"
    # Erasing ann leaves no name in the alerts (none is stored; the id is unset) and nothing rings again.
    records.delete_identity("ann")
    with records.session() as s:
        assert s.scalar(select(func.count()).select_from(Alert).where(Alert.identity_id.is_not(None))) == 0
        assert not any("ann" in (d or "") for d in s.scalars(select(Alert.detail)))
        assert s.scalar(select(func.count()).select_from(AlertDelivery)) == 6
    assert {a["identity"] for a in alerts.page(10)} == {None}
    assert alerts.raise_new(job, 2, [fever], {1: None}, urls, shared_gallery=True) == []
    with records.engine.connect() as conn:    # the job goes, its alerts and deliveries with it
        conn.execute(text("DELETE FROM jobs"))
        conn.commit()
    assert alerts.page(10) == []


def test_a_track_best_face_is_its_largest_confident_one():
    from workers.thumbnails import best_faces

    results = {"frames": [
        {"index": 0, "faces": [{"track": 1, "box": [0, 0, 40, 40], "score": 0.9},
                               {"track": None, "box": [0, 0, 99, 99], "score": 0.9}]},
        {"index": 1, "faces": [{"track": 1, "box": [0, 0, 80, 80], "score": 0.8},
                               {"track": 2, "box": [5, 5, 25, 25], "score": 0.7}]},
        {"index": 2, "faces": [{"track": 1, "box": [0, 0, 90, 90], "score": 0.3}]}]}
    assert best_faces(results) == {1: (1, [0, 0, 80, 80]), 2: (1, [5, 5, 25, 25])}


def test_face_crops_come_from_the_frame_asked_for_in_whichever_segment_holds_it(tmp_path):
    """The clip's face glides across the picture, so a crop from any other frame differs."""
    from workers import media
    from workers.thumbnails import SegmentFile, crop_jpeg, face_crops
    from tests.clipmaker import make_clip

    clip = make_clip(tmp_path / "clip.mp4", seconds=4, fps=10, gop=10, audio=False)
    info = media.probe(clip.path)
    plans = media.plan_segments(info, 1.0, 1)
    files = media.split_segments(clip.path, info, plans, tmp_path)
    segments = [SegmentFile(path, plan.start_frame, plan.pts) for plan, path in zip(plans, files)]
    assert len(segments) >= 3
    wanted = {1: (3, list(clip.photo_boxes[3])), 2: (30, list(clip.photo_boxes[30]))}   # segments 0 and 3
    crops = face_crops(wanted, segments, info.tb, info.pts_offset)
    decoded = [frame.to_ndarray(format="bgr24") for frame in media.decode_frames(clip.path)]
    for number, (index, box) in wanted.items():
        assert crops[number] == crop_jpeg(decoded[index], box)
        assert crops[number] != crop_jpeg(decoded[index + 1], box)
        image = cv2.imdecode(np.frombuffer(crops[number], np.uint8), cv2.IMREAD_COLOR)
        assert max(image.shape[:2]) <= 96
    # A segment file that is gone leaves its tracks without a crop, the others keep theirs.
    files[0].unlink()
    assert set(face_crops(wanted, segments, info.tb, info.pts_offset)) == {2}
