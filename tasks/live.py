"""The live segment task: one segment of a camera, analysed as a batch segment is.

Routed to the ``live`` queue, which workers list first (``-Q live,ingest,cpu``; see
celeryconfig): a camera's segment never waits behind queued batch work, only for the task a
worker already has in hand. The watch that sent it (``tasks.live_watch``) stored the segment
file and the watch's options under ``live/<watch id>/``; the task stores the annotated
segment and its faces beside them, whole, under fixed keys (a redelivery rewrites the same).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from tasks import runtime
from tasks.app import app
from tasks.gallery import job_gallery
from tasks.jobs import _pipeline_config, _put_json, _scratch
from workers import pipeline
from workers.live.timeline import TIMELINE


def live_key(watch_id: str, *parts: str) -> str:
    return "/".join(("live", watch_id, *parts))


# What a watch stores per segment: the segment file, its annotated video, its faces.
PIECES = {"segment": ("segments", "nut"), "annotated": ("annotated", "mp4"), "faces": ("annotated", "json")}


def piece_key(watch_id: str, index: int, piece: str) -> str:
    folder, extension = PIECES[piece]
    return live_key(watch_id, folder, f"{index:06d}.{extension}")


def options_key(watch_id: str) -> str:
    return live_key(watch_id, "options.json")


@lru_cache(maxsize=16)
def watch_options(watch_id: str) -> dict:
    """A watch's options (gallery, analyzers), read once per worker process."""
    return json.loads(runtime.store().local_path(options_key(watch_id)).read_text())


@app.task(name="vidfarm.live_segment")
def live_segment(watch_id: str, index: int, segment: dict) -> dict:
    """segment: ``{pts, fps, width, height}`` (pts: its frames' times, ``TIMELINE`` ticks)."""
    store, options = runtime.store(), watch_options(watch_id)
    with _scratch() as scratch:
        out = Path(scratch) / "annotated.mp4"
        result = pipeline.process_segment(store.local_path(piece_key(watch_id, index, "segment")), out, segment["pts"],
                                          TIMELINE, segment["fps"], segment["width"], segment["height"],
                                          _pipeline_config(options), job_gallery(options))
        _put_json(piece_key(watch_id, index, "faces"), {"frames": result.frames, "tracks": result.tracks,
                                               "thumbnails": result.thumbnails, "stages": result.stages,
                                               "repaired_frames": result.repaired_frames})
        store.move_file(piece_key(watch_id, index, "annotated"), out)
    return {"frames": len(result.frames), "stages": result.stages}
