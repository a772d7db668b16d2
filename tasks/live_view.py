"""A camera's live view: each analysed segment drawn with its labels, for the camera page.

The ingester's watch (``tasks.live_watch``) stitches each segment's results into the camera's
tracks, then, while a page watches the camera (its event stream asked for the view, which
marks it watched in Redis for a while), queues ``vidfarm.live_view`` on the ``live`` queue
with one ``core.view_job.ViewJob`` message: the segment's timing and the labels to draw (the
camera's track numbers and the names known so far), leaving the segment file in the store.
Nobody watching: nothing is drawn.
A worker draws the piece (``workers.live.view``), stores it beside the watch's segments, lists
it in the registry (the newest ``VIEW_KEPT``) and announces it as a ``view`` event; the page
appends it to its video. Pieces that fall off the list are deleted, so a camera watched for
days keeps a few seconds of drawn video, not days. Drawing in a worker, not the ingester,
keeps the ingester a remux (cheap per camera) and lets the farm's workers share the drawing.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.cameras import view_piece_key
from core.view_job import ViewJob
from services import runtime
from tasks.app import app
from tasks.common import render_config, scratch_dir
from tasks.live import camera_registry, piece_key, watch_options
from workers.annotate import Label
from workers.live.segmenter import LiveSegment
from workers.live.timeline import TIMELINE
from workers.live.view import draw_view_piece


def send_view(camera_id: str, watch_id: str, segment: LiveSegment, frames: list[list[dict]],
              keep_source: bool = False) -> None:
    """Queue the drawing of one analysed segment (``frames``: its labelled faces per frame).
    The task deletes the segment file once drawn unless ``keep_source``."""
    fever_c = runtime.settings().fever_threshold_c
    duration_s = round(float((segment.end_pts - segment.pts[0]) * TIMELINE), 3)
    labels = tuple(tuple(tuple(Label.of(face, fever_c).to_json()) for face in faces) for faces in frames)
    job = ViewJob(camera_id, watch_id, segment.index, tuple(segment.pts), segment.fps, segment.width, segment.height,
                  segment.captured_at, segment.first_frame, duration_s, labels, keep_source)
    app.send_task("vidfarm.live_view", (job.to_message(),), queue="live")


@app.task(name="vidfarm.live_view")
def live_view(*message) -> dict:
    """message: one ``ViewJob.to_message()`` (anything else is refused, saying why)."""
    job = ViewJob.from_message("vidfarm.live_view", message)
    store = runtime.store()
    source = piece_key(job.watch_id, job.index, "segment")
    if not store.exists(source):
        return {"skipped": True}     # the watch ended (its files went with it) or a redelivery drew it
    started = time.perf_counter()
    with scratch_dir() as scratch:
        out = Path(scratch) / "piece.mp4"
        stages, codec = draw_view_piece(store.local_path(source), out, list(job.pts), job.fps, job.width, job.height,
                                        job.labels, render_config(watch_options(job.watch_id)))
        store.move_file(view_piece_key(job.watch_id, job.index), out)
    if not job.keep_source:
        store.delete_prefix(source)
    piece = {"watch": job.watch_id, "segment": job.index, "captured_at": round(job.captured_at, 3),
             "duration_s": job.duration_s, "frames": len(job.pts), "first_frame": job.first_frame,
             "width": job.width, "height": job.height, "codec": codec, "ready_at": round(time.time(), 3)}
    for gone in camera_registry().view_ready(job.camera_id, piece):
        store.delete_prefix(view_piece_key(gone["watch"], gone["segment"]))
    return {"stages": stages, "seconds": round(time.perf_counter() - started, 4)}
