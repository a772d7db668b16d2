"""A camera's live view: each analysed segment drawn with its labels, for the camera page.

The ingester's watch (``tasks.live_watch``) stitches each segment's results into the camera's
tracks, then, while a page watches the camera (its event stream asked for the view, which
marks it watched in Redis for a while), queues ``vidfarm.live_view`` on the ``live`` queue
with the labels to draw (the camera's track numbers and the names known so far), leaving the
segment file in the store. Nobody watching: nothing is drawn.
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
    labels = [[Label.of(face, fever_c).to_json() for face in faces] for faces in frames]
    app.send_task("vidfarm.live_view", (camera_id, watch_id, segment.index, {
        "pts": segment.pts, "fps": segment.fps, "width": segment.width, "height": segment.height,
        "captured_at": segment.captured_at, "first_frame": segment.first_frame,
        "duration_s": round(float((segment.end_pts - segment.pts[0]) * TIMELINE), 3),
        "keep_source": keep_source}, labels),
        queue="live")


@app.task(name="vidfarm.live_view")
def live_view(camera_id: str, watch_id: str, index: int, segment: dict, labels: list) -> dict:
    store = runtime.store()
    source = piece_key(watch_id, index, "segment")
    if not store.exists(source):
        return {"skipped": True}     # the watch ended (its files went with it) or a redelivery drew it
    started = time.perf_counter()
    with scratch_dir() as scratch:
        out = Path(scratch) / "piece.mp4"
        stages, codec = draw_view_piece(store.local_path(source), out, segment["pts"], segment["fps"],
                                        segment["width"], segment["height"], labels,
                                        render_config(watch_options(watch_id)))
        store.move_file(view_piece_key(watch_id, index), out)
    if not segment.get("keep_source"):
        store.delete_prefix(source)
    piece = {"watch": watch_id, "segment": index, "captured_at": round(segment["captured_at"], 3),
             "duration_s": segment["duration_s"], "frames": len(segment["pts"]), "first_frame": segment["first_frame"],
             "width": segment["width"], "height": segment["height"], "codec": codec,
             "ready_at": round(time.time(), 3)}
    for gone in camera_registry().view_ready(camera_id, piece):
        store.delete_prefix(view_piece_key(gone["watch"], gone["segment"]))
    return {"stages": stages, "seconds": round(time.perf_counter() - started, 4)}

