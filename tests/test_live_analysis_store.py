"""What a camera's segment task leaves in the blob store (``live/<watch>/analysis/``).

docs/security.md promises that a camera's stored analyses hold no names, as a recording's
segment analyses do not: names are decided from the pooled embeddings as the segments are
joined (``LiveStitch``), so an erasure or a rename has no copies of a name to rewrite there
(a camera's hour of analyses is kept under ``recordings/`` until its job is made, and no
erasure looks there). And a segment task that ends after its watch did (the camera deleted,
the watch stopped) leaves nothing behind: the watch has already swept its folder, and no one
else would."""

from __future__ import annotations

import json
import uuid
from io import BytesIO

import cv2
import pytest

from tests.test_live_view_task import cut_segments

NAME = "live-analysis-yao"


@pytest.fixture
def watch_with_segment(farm, face_clip, tmp_path):
    """A watch of the shared gallery, its first segment (Yao Ming's face) stored as the watch
    stores it: (watch id, the segment's message)."""
    from core.segment_job import SegmentJob
    from services import runtime
    from tasks.live import live_key, live_media, options_key, piece_key

    segment = cut_segments(face_clip.path, tmp_path / "cut")[0]
    watch_id, store = uuid.uuid4().hex, runtime.store()
    store.put_stream(options_key(watch_id), BytesIO(json.dumps({}).encode()))
    store.move_file(piece_key(watch_id, segment.index, "segment"), segment.path)
    job = SegmentJob(watch_id, segment.index, tuple(segment.pts), live_media(segment))
    try:
        yield watch_id, job
    finally:
        store.delete_prefix(live_key(watch_id))


@pytest.fixture
def enrolled_yao(farm):
    from services import gallery, runtime
    from tests.test_analytics import yao_in_players

    gallery.delete_identity(runtime.farm(), NAME)      # a run cut short earlier may have left him
    gallery.enroll(runtime.farm(), NAME, [("yao.jpg", cv2.imencode(".jpg", yao_in_players())[1].tobytes())],
                   largest_face=True)
    yield NAME
    gallery.delete_identity(runtime.farm(), NAME)


def test_a_camera_segment_s_stored_analysis_names_nobody_yet_the_watch_still_names_him(
        enrolled_yao, watch_with_segment):
    from services import runtime
    from tasks.app import app
    from tasks.gallery import job_matching
    from tasks.live import piece_key
    from workers.live.stitch import LiveStitch
    from workers.results import SegmentOutput

    watch_id, job = watch_with_segment
    app.send_task("vidfarm.live_segment", (job.to_message(),), queue="live").get(timeout=120)
    text = runtime.store().local_path(piece_key(watch_id, job.index, "analysis")).read_text()
    assert NAME not in text
    stored = json.loads(text)
    faces = [face for frame in stored["frames"] for face in frame]
    assert faces and stored["tracks"], "the segment should show Yao Ming's face"
    assert {(e["identity"], e["similarity"]) for e in faces + stored["tracks"]} == {(None, None)}

    # The watch names him all the same: the live stitch decides it from the pooled embedding.
    update = LiveStitch(job_matching({}).gallery).add(
        SegmentOutput(list(job.pts), stored["frames"], stored["tracks"], stored["thumbnails"], stored["damage"]),
        0, [k / 15 for k in range(len(job.pts))])
    assert NAME in {track["identity"] for track in update.tracks}


def test_a_segment_analysed_after_its_watch_ended_leaves_no_analysis_behind(watch_with_segment, monkeypatch):
    from services import runtime
    from tasks import live
    from workers import pipeline

    watch_id, job = watch_with_segment
    analyse = pipeline.analyse_segment

    def watch_ends_meanwhile(*args, **kwargs):
        result = analyse(*args, **kwargs)
        runtime.store().delete_prefix(live.live_key(watch_id))   # as a watch that stops sweeps its files
        return result

    monkeypatch.setattr(pipeline, "analyse_segment", watch_ends_meanwhile)
    live.live_segment(job.to_message())
    assert runtime.store().list_keys(live.live_key(watch_id)) == []
