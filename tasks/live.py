"""The live segment task: one segment of a camera, analysed as a batch segment is.

Routed to the ``live`` queue, which workers list first (``-Q live,ingest,cpu``; see
celeryconfig): a camera's segment never waits behind queued batch work, only for the task a
worker already has in hand. The watch that sent it (``tasks.live_watch``) stored the segment
file and the watch's options under ``live/<watch id>/``; the task stores its analysis beside
them, whole, under a fixed key (a redelivery rewrites the same). Nothing is drawn here: the
video is drawn from the results at the end of a watch, as for a recording.

A camera's segment carries its ingester's fencing token (``core.camera_leases``): a segment
sent by an owner that has since lost the camera (it stalled past its lease, another replica
took over) is dropped here, before any analysis, instead of being analysed and then refused.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from functools import lru_cache

from redis.exceptions import RedisError

from core import live_costs
from core.camera_leases import why_stale
from core.cameras import CameraRegistry
from core.segment_job import SegmentJob, SourceMedia
from services import runtime
from tasks.app import app
from tasks.gallery import job_matching
from tasks.jobs import _pipeline_config, _without_names, put_json
from workers import pipeline
from workers.live.segmenter import LiveSegment
from workers.live.timeline import TIMELINE


def live_key(watch_id: str, *parts: str) -> str:
    return "/".join(("live", watch_id, *parts))


# What a watch stores per segment: the segment file and its analysis.
PIECES = {"segment": ("segments", "nut"), "analysis": ("analysis", "json")}


def piece_key(watch_id: str, index: int, piece: str) -> str:
    folder, extension = PIECES[piece]
    return live_key(watch_id, folder, f"{index:06d}.{extension}")


def options_key(watch_id: str) -> str:
    return live_key(watch_id, "options.json")


def alive_key(watch_id: str) -> str:
    """``{"at": unix s}``, rewritten by a running watch every ``ALIVE_EVERY_S``: a folder whose
    watch stopped writing it was left by a watch killed outright (``tasks.recording`` sweeps it)."""
    return live_key(watch_id, "alive.json")


ALIVE_EVERY_S = 60.0
# A watch's folder is swept once its alive.json is this old. Generous on purpose: a watch whose
# writes fail for a while (the store away, a full disk) goes on and would lose its folder under
# it, and a watch killed outright leaves it for at most this long more (the privacy cost).
ABANDONED_AFTER_S = 3600.0


@lru_cache(maxsize=16)
def watch_options(watch_id: str) -> dict:
    """A watch's options (gallery, analyzers), read once per worker process."""
    return json.loads(runtime.store().local_path(options_key(watch_id)).read_text())


def live_media(segment: LiveSegment) -> SourceMedia:
    """A camera's segment as a recording: times in ``TIMELINE`` ticks, which the segmenter
    writes as the file's own (no offset) and as the times the frames are shown."""
    return SourceMedia(TIMELINE, segment.fps, segment.pts[0], segment.width, segment.height, has_audio=False,
                       pts_offset=0, timed=True)


def live_pipeline_config(options: dict) -> pipeline.PipelineConfig:
    """A camera's segment is analysed as an upload's, except that its detector looks at most
    ``live_detect_fps`` frames a second, the frames between carrying its last look's faces
    (docs/benchmarks.md, "Live frame cost"); uploads and recordings keep every frame."""
    return replace(_pipeline_config(options), detect_fps=runtime.settings().live_detect_fps)


@lru_cache(maxsize=2)
def _registry(redis_url: str) -> CameraRegistry:
    return CameraRegistry.from_url(redis_url)


def camera_registry() -> CameraRegistry:
    """The camera registry, in the farm's Redis (one client per worker process)."""
    return _registry(runtime.settings().redis_url)


@app.task(name="vidfarm.live_segment")
def live_segment(*message) -> dict:
    """message: one ``SegmentJob.to_message()``, its owner the watch, its ``fence`` the
    ``(camera id, fencing token)`` of the ingester that sent it (anything else is refused,
    saying why)."""
    segment = SegmentJob.from_message("vidfarm.live_segment", message)
    watch_id, index = segment.owner, segment.index
    fenced = segment.fence and why_stale(camera_registry().redis, *segment.fence)
    if fenced:
        return {"fenced": fenced}
    options = watch_options(watch_id)
    started = time.monotonic()
    result = pipeline.analyse_segment(runtime.store().local_path(piece_key(watch_id, index, "segment")),
                                      segment, live_pipeline_config(options), job_matching(options).gallery)
    # No names, as a recording's segments store none: the watch's stitch decides them from the
    # pooled embeddings, and these files (copied into the camera's hourly recording) are never
    # searched by an erasure or rewritten by a rename.
    put_json(piece_key(watch_id, index, "analysis"), _without_names(result))
    store = runtime.store()
    if not store.exists(piece_key(watch_id, index, "segment")):
        # The watch ended while this ran (camera deleted, watch stopped) and swept its folder:
        # no one would read this analysis, nor ever delete it (everyone the camera saw).
        store.delete_prefix(piece_key(watch_id, index, "analysis"))
    try:     # the autoscaler's cost per live frame; losing one sample loses nothing else
        live_costs.record(app.backend.client, len(result.frames), time.monotonic() - started)
    except RedisError as error:
        logging.getLogger(__name__).warning("live segment cost not recorded: %s", error)
    return {"frames": len(result.frames), "stages": result.stages}
