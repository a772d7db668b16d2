"""The live view's drawing task on the real farm: the camera's side sends one ``ViewJob``
message (``tasks.live_view.send_view``), a Celery worker reads it, draws the segment with its
labels and lists the piece for the camera page; a message of the old shape, sent to the same
worker, is refused with one line and draws, lists and deletes nothing."""

from __future__ import annotations

import json
import time
import uuid
from io import BytesIO
from pathlib import Path

import av
import numpy as np
import pytest

from tests.clipmaker import make_clip
from tests.waiting import wait_until

WAIT_S = 120


def cut_segments(clip: Path, folder: Path, dropped: range = range(0), timeline=None) -> list:
    """The clip cut as a camera's stream is (``RollingSegmenter``): its packets fed as if they
    had just arrived, the watch's timeline and NUT files exactly as an ingester makes them.
    ``dropped``: the frames (by number, a clip without B-frames) the camera lost on the way;
    ``timeline``: the watch's (a ``LiveWatch``'s segmenter's) to place them on, if given."""
    from workers.live.segmenter import RollingSegmenter

    segments = []
    segmenter = RollingSegmenter(folder, segments.append, segment_seconds=2.0)
    if timeline is not None:
        segmenter.timeline = timeline
    with av.open(str(clip)) as container:
        video = container.streams.video[0]
        segmenter.begin(video, lambda pts, arrival: (arrival, "arrival"))
        for number, packet in enumerate(p for p in container.demux(video) if p.size):
            if number not in dropped:
                segmenter.feed(packet, time.time())
        segmenter.end(None)
    return segments


def gray(frame) -> np.ndarray:
    return frame.to_ndarray(format="gray").astype(int)


def clip_frames(clip: Path) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        return [gray(frame) for frame in container.decode(video=0)]


@pytest.fixture
def watched_segment(farm, tmp_path):
    """A registered camera and one segment of its watch in the store, as the ingester leaves
    them before it queues the drawing: (registry, camera id, watch id, segment, the clip)."""
    from core.cameras import CameraRegistry
    from services import runtime
    from tasks.live import live_key, options_key, piece_key

    clip = make_clip(tmp_path / "camera.mp4", seconds=2, fps=15, gop=15, size=(320, 180), face_windows=[],
                     audio=False)
    segment = cut_segments(clip.path, tmp_path / "cut")[0]
    registry = CameraRegistry.from_url(farm.redis_url)
    camera_id = registry.add("Drawn", "rtsp://cam/drawn")["id"]
    watch_id, store = uuid.uuid4().hex, runtime.store()
    store.put_stream(options_key(watch_id), BytesIO(json.dumps({}).encode()))
    store.move_file(piece_key(watch_id, segment.index, "segment"), segment.path)
    try:
        yield registry, camera_id, watch_id, segment, clip.path
    finally:
        registry.delete(camera_id)
        store.delete_prefix(live_key(watch_id))


def test_a_view_job_is_drawn_by_a_worker_and_the_old_shape_is_refused(watched_segment):
    from core.cameras import view_piece_key
    from services import runtime
    from tasks.app import app
    from tasks.live import piece_key
    from tasks.live_view import send_view
    from workers.annotate import Label, label_area

    registry, camera_id, watch_id, segment, clip = watched_segment
    store = runtime.store()
    source = piece_key(watch_id, segment.index, "segment")
    face = {"box": [40.2, 30.0, 120.0, 130.0], "score": 0.9, "track": 1, "identity": "Ada", "mask": None,
            "temperature_c": None}
    frames = [[face]] + [[] for _ in segment.pts[1:]]

    # A queued message of the earlier release's shape: the worker refuses it, saying which
    # shape it reads, and leaves the segment, the view and the store as they were.
    old = app.send_task("vidfarm.live_view", (camera_id, watch_id, segment.index, {
        "pts": segment.pts, "fps": segment.fps, "width": segment.width, "height": segment.height,
        "captured_at": segment.captured_at, "first_frame": segment.first_frame, "duration_s": 2.0,
        "keep_source": False}, [[]] * len(segment.pts)), queue="live")
    with pytest.raises(Exception, match=r"vidfarm.live_view was sent 5 argument\(s\).*'vidfarm.view_job/1'"):
        old.get(timeout=WAIT_S)
    assert registry.view(camera_id) == [] and store.exists(source)

    send_view(camera_id, watch_id, segment, frames)
    [piece] = wait_until(lambda: registry.view(camera_id), WAIT_S, "the drawn piece to be listed")
    assert (piece["watch"], piece["segment"], piece["frames"], piece["first_frame"]) == \
        (watch_id, segment.index, len(segment.pts), segment.first_frame)
    assert (piece["width"], piece["height"]) == (320, 180) and piece["codec"].startswith("avc1.")
    assert piece["captured_at"] == round(segment.captured_at, 3)
    with av.open(str(store.local_path(view_piece_key(watch_id, segment.index)))) as piece_file:
        drawn = [gray(frame) for frame in piece_file.decode(video=0)]
    assert len(drawn) == len(segment.pts)
    # The labels came through the message: the first frame carries the face's box and name
    # (drawn over its top edge), the second nothing (only the encoder's noise).
    shot = clip_frames(clip)
    x1, top, x2, bottom = label_area(Label.of(face), (segment.width, segment.height))
    area = (slice(top, bottom + 1), slice(x1, x2 + 1))
    changed = [abs(drawn[n][area] - shot[n][area]).mean() for n in (0, 1)]
    assert changed[0] > changed[1] + 20, changed
    assert not store.exists(source)          # drawn: the segment file is not kept (keep_source=False)
