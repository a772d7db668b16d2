"""The annotated video is drawn from the published results, and follows each new version.

Checked where it used to go wrong: at each track's first frame (a bare score was drawn before
the tracker confirmed the track), on both sides of each segment border (track numbers were
each segment's own) and after a rename (the video kept the old name).
"""

from __future__ import annotations

import dataclasses
import json
import time

from core.storage import output_key
from services import gallery, runtime
from services.submit import submit_file
from tasks.reanalysis import reidentify_stale
from tasks.render import drawn_key
from tests.conftest import wait_for_job
from tests.labels import frames_i420, label_difference, shows
from tests.test_analytics import yao_in_players
from tests.test_gallery import jpeg
from tests.test_reanalysis import wait_for_version
from workers.annotate import Label


def results_of(job_id: str) -> dict:
    return json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())


def frames_to_check(job_id: str, results: dict) -> set[int]:
    """Each track's first and last frame, and the frames on both sides of each segment border."""
    borders = [s.start_frame for s in runtime.records().segments(job_id)][1:]
    tracks = [frame for t in results["tracks"] for frame in (t["first_frame"], t["last_frame"])]
    return set(tracks) | {f for b in borders for f in (b - 1, b)}


def assert_video_shows_results(job_id: str, source: list, results: dict) -> int:
    """Every checked frame of the video shows exactly its faces' labels; returns how many were checked."""
    annotated = frames_i420(runtime.store().local_path(output_key(job_id, "annotated.mp4")))
    assert len(annotated) == len(source) == len(results["frames"])
    checked = 0
    for index in sorted(frames_to_check(job_id, results)):
        for face in results["frames"][index]["faces"]:
            label = Label.of(face)
            difference = label_difference(annotated[index], source[index], label)
            assert shows(annotated[index], source[index], label), (index, label, difference)
            # ... and not another one: the check can tell labels apart.
            for other in (f"{face['score']:.2f}", f"#{(face['track'] or 0) + 1}"):
                assert not shows(annotated[index], source[index], dataclasses.replace(label, text=other)), (index, other)
            checked += 1
    return checked


def test_the_video_shows_the_results_labels_at_track_starts_and_segment_borders(farm, two_visits):
    job_id = submit_file(runtime.farm(), two_visits.path, name="two-visits.mp4")
    view = wait_for_job(job_id)
    assert view["status"] == "done", view["error"]
    assert view["video_version"] == view["results_version"] == 1
    results = results_of(job_id)
    assert [t["track"] for t in results["tracks"]] == [1, 2]
    borders = [s.start_frame for s in runtime.records().segments(job_id)][1:]
    assert all(any(t["first_frame"] < b <= t["last_frame"] for b in borders) for t in results["tracks"])
    source = frames_i420(two_visits.path)
    # Both tracks' first frames, and faces on both sides of the two borders they cross.
    assert assert_video_shows_results(job_id, source, results) >= 6


def test_segments_that_show_nobody_are_drawn_by_their_analysis_before_the_results(farm, two_visits):
    """The drawing of a segment without faces cannot depend on the stitch: the worker that
    analysed it draws it (copies it) at once, and the video joins that drawing."""
    from core.models import aware
    from tasks.render import render_config
    from workers.render import segment_key as drawing_key

    job_id = submit_file(runtime.farm(), two_visits.path, name="two-visits.mp4")
    view = wait_for_job(job_id)
    assert view["status"] == "done" and view["video_version"] == 1, view["error"]
    results, records = results_of(job_id), runtime.records()
    published = aware(records.get_job(job_id).finished_at).timestamp()
    video, store = records.video(job_id), runtime.store()
    nobody, drawn_before = [], []
    for segment, key in zip(records.segments(job_id), video.segments):
        frames = results["frames"][segment.start_frame:segment.start_frame + segment.frames]
        nobody.append(not any(f["faces"] for f in frames))
        assert (key == drawing_key([[]] * segment.frames, render_config({}), True)) == nobody[-1], segment.index
        drawn_before.append(store.local_path(drawn_key(job_id, segment.index, key)).stat().st_mtime < published)
    assert any(nobody) and not all(nobody)
    # Every empty one before the results; one with faces may be drawn before them too, by the
    # worker that analysed it, with labels the results then confirmed (tests/test_draw_ahead.py).
    assert all(before for before, empty in zip(drawn_before, nobody) if empty)
    assert assert_video_shows_results(job_id, frames_i420(two_visits.path), results) >= 6


def test_a_job_that_fails_leaves_no_drawings(farm, clips):
    """Segments drawn ahead (the empty ones, by the worker that analysed them) for a job that
    then fails are never joined: they go when it fails, and so does what a segment task still
    under way draws after the failure."""
    from tasks.render import fail_job
    from tests.clipmaker import make_clip

    clip = make_clip(clips / "long-visit.mp4", seconds=36, fps=15, gop=15, size=(640, 360), photo_height=150,
                     face_windows=[(0, 10), (20, 36)])
    job_id = submit_file(runtime.farm(), clip.path, name="long-visit.mp4")
    store, records = runtime.store(), runtime.records()
    deadline = time.monotonic() + 120
    while not [k for k in store.list_keys(f"jobs/{job_id}/annotated") if k.endswith(".mp4")]:
        assert records.get_job(job_id).status in ("queued", "splitting", "processing"), "done before it failed"
        assert time.monotonic() < deadline, "no segment was drawn ahead"
        time.sleep(0.05)
    fail_job(job_id, "made by the test")
    assert wait_for_job(job_id)["status"] == "failed"
    quiet_since, deadline = time.monotonic(), time.monotonic() + 60
    while time.monotonic() - quiet_since < 3:
        if store.list_keys(f"jobs/{job_id}/annotated") or any(s.status == "processing" for s in records.segments(job_id)):
            quiet_since = time.monotonic()
        assert time.monotonic() < deadline, store.list_keys(f"jobs/{job_id}/annotated")
        time.sleep(0.1)


def test_a_rename_redraws_the_segments_that_show_the_name_and_only_those(farm, two_visits):
    gallery.enroll(runtime.farm(), "Yao Ming", [("yao.jpg", jpeg(yao_in_players()))], largest_face=True)
    try:
        job_id = submit_file(runtime.farm(), two_visits.path, name="two-visits.mp4")
        assert wait_for_job(job_id)["status"] == "done"
        first = runtime.records().video(job_id)
        assert {t["identity"] for t in results_of(job_id)["tracks"]} == {"Yao Ming"}

        gallery.rename_identity(runtime.farm(), "Yao Ming", "Ming Yao")
        reidentify_stale.apply()
        wait_for_version(job_id, 2)     # the re-identification publishes version 2,
        view = wait_for_job(job_id)     # then the video follows it
        assert view["video_version"] == view["results_version"] == 2 and not view["video_error"]
        results = results_of(job_id)
        assert {t["identity"] for t in results["tracks"]} == {"Ming Yao"}
        assert assert_video_shows_results(job_id, frames_i420(two_visits.path), results) >= 6

        second = runtime.records().video(job_id)
        changed = [a != b for a, b in zip(first.segments, second.segments)]
        named = [any(f["faces"] for f in results["frames"][s.start_frame:s.start_frame + s.frames])
                 for s in runtime.records().segments(job_id)]
        assert changed == named and not all(named)    # a segment that shows nobody is kept as drawn
        # The drawings of the old name are gone; the video's own are all that is left.
        kept = runtime.store().list_keys(f"jobs/{job_id}/annotated")
        assert kept == sorted(drawn_key(job_id, i, key) for i, key in enumerate(second.segments))
    finally:
        gallery.delete_identity(runtime.farm(), "Ming Yao")


def test_the_watchdog_draws_again_a_video_whose_drawing_was_lost(farm, face_clip, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from tasks import render
    from tasks.jobs import republish

    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["video_version"] == 1
    monkeypatch.setattr(render, "queue_render", lambda *args, **kwargs: [])     # its tasks are lost
    assert republish(job_id, lambda latest: latest, runtime.records().get_job(job_id).gallery_fingerprint) == 2
    monkeypatch.undo()
    now = datetime.now(timezone.utc)
    assert render.redraw_stale_videos(now - timedelta(minutes=5)) == []      # not lagging for long yet
    assert job_id in render.redraw_stale_videos(now + timedelta(minutes=1))
    view = wait_for_job(job_id)
    assert view["video_version"] == view["results_version"] == 2 and not view["video_error"]


def test_results_published_as_the_store_goes_away_have_their_video_drawn_all_the_same(farm, face_clip, monkeypatch):
    """The results are published, then queueing their drawing meets the blob store away: the
    publisher (a stitch, here its republish) is not retried, since it would find the job done
    and skip: a drawing task that waits for the store (tasks/store_wait.py) is queued instead."""
    from core.storage import BlobStoreUnavailable
    from tasks import jobs

    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["video_version"] == 1

    def store_away(*args, **kwargs):
        raise BlobStoreUnavailable("S3 bucket 'vidfarm' at http://s3 cannot be reached")
    monkeypatch.setattr(jobs, "queue_render", store_away)
    assert jobs.republish(job_id, lambda latest: latest, runtime.records().get_job(job_id).gallery_fingerprint) == 2
    monkeypatch.undo()
    view = wait_for_job(job_id)
    assert view["video_version"] == view["results_version"] == 2 and not view["video_error"]


def test_the_drawings_a_video_does_not_use_are_gone_before_it_is_published(farm, face_clip):
    """A reader that sees the video follow the latest results (``wait_for_job``) finds only its
    drawings left (the join used to delete the others after the commit that published it)."""
    from sqlalchemy import event

    from core.storage import version_key
    from tasks import render
    from tasks.common import put_json

    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["video_version"] == 1
    records, store = runtime.records(), runtime.store()
    stale = drawn_key(job_id, 0, "drawn-for-older-results")
    put_json(stale, [])
    # Version 2, the same results: the video of version 1's drawings follows it once joined.
    results = results_of(job_id)
    records.publish_version(job_id, records.get_job(job_id).gallery_fingerprint,
                            lambda number: put_json(version_key(job_id, number), {**results, "version": number}))
    left_when_published: list[bool] = []

    def publishing(_conn, _cursor, statement, *_):
        if statement.startswith("UPDATE job_videos SET version="):
            left_when_published.append(store.exists(stale))
    event.listen(records.engine, "before_cursor_execute", publishing)
    try:
        joined = render.join_video.apply((job_id, 2, records.video(job_id).segments, time.time())).get()
    finally:
        event.remove(records.engine, "before_cursor_execute", publishing)
    assert joined == {"version": 2, "published": True}
    assert left_when_published == [False]


def test_a_segment_whose_job_is_deleted_as_it_is_drawn_is_skipped_not_an_error(farm, face_clip, monkeypatch):
    """A user deleted a done job while its video was drawn: the drawing task had checked the job
    and its segment file, which was gone when the copy of its GOPs opened it, and logged a traceback
    ("raised unexpected: MediaError('not a readable video file (No such file or directory)')"),
    then a ChordError, for a deletion."""
    from core.storage import job_key
    from services.submit import delete_job
    from tasks import render
    from tasks.common import put_json
    from workers import remux

    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["video_version"] == 1
    segment = runtime.records().segments(job_id)[0]
    put_json(drawn_key(job_id, 0, "newer-labels", "json"), [[] for _ in range(segment.frames)])
    copy, copying = remux.render_copying, []

    def deleted_meanwhile(*args, **kwargs):
        copying.append(delete_job(runtime.farm(), job_id))
        return copy(*args, **kwargs)
    monkeypatch.setattr(remux, "render_copying", deleted_meanwhile)
    drawn = render.render_segment.apply((job_id, 0, "newer-labels"))
    assert copying == [True]
    assert drawn.successful(), drawn.traceback
    assert drawn.get() == {"skipped": True}
    assert runtime.store().list_keys(job_key(job_id)) == []


def test_a_drawing_error_stands_when_the_records_cannot_say_whether_its_job_was_deleted(farm, face_clip, monkeypatch):
    """The drawing failed (here: a segment file that cannot be read), and the look at whether
    its job was deleted meanwhile failed too (the database away): the drawing's own error is
    the one reported, not the database's in its place."""
    from tasks import render
    from tasks.common import put_json
    from workers import media, remux

    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["video_version"] == 1
    segment = runtime.records().segments(job_id)[0]
    put_json(drawn_key(job_id, 0, "unreadable", "json"), [[] for _ in range(segment.frames)])
    records, get_job = runtime.records(), runtime.records().get_job

    def unreadable(*args, **kwargs):
        def database_away(*args, **kwargs):
            raise OSError("the database is away")
        monkeypatch.setattr(records, "get_job", database_away)
        raise media.MediaError("not a readable video file")
    monkeypatch.setattr(remux, "render_copying", unreadable)
    try:
        drawn = render.render_segment.apply((job_id, 0, "unreadable"))
    finally:
        monkeypatch.setattr(records, "get_job", get_job)
    assert drawn.failed()
    assert isinstance(drawn.result, media.MediaError), drawn.traceback
