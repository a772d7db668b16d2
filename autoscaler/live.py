"""The live queue: workers for the cameras before their segments wait, and first call on a shared cap.

Pure functions, called by ``autoscaler.policy.decide`` and the loop.

A live segment's budget is seconds from capture to result, so its queue cannot wait for a
backlog to show before it grows. Two rules make it latency-bound:

- **A floor from the cameras** (``camera_floor``). Every registered camera sends its frames
  all the time; together they keep ``sum(fps) x cost per frame`` workers busy. The live
  workers are never fewer than that divided by ``camera_utilization`` (a pool run at 100 %
  only keeps up on average: segments that arrive together wait). The registry knows a camera
  the moment it is added, before its first segment, so a new camera adds workers before its
  latency degrades. But a worker takes a pod start to serve (30 s on a cluster), and
  meanwhile the new camera's segments would pile up on the others: so the floor also holds
  ``spare_cameras`` cameras' worth of room (at ``camera_fps``), which the new camera uses
  at once while the worker it adds starts. A camera whose rate is not known yet counts as
  ``camera_fps``; until a live segment has finished (the cost per frame is unknown), each
  camera counts one worker.
- **Its own workers, first at the cap** (``batch_room``). The live queue has a Deployment of
  its own, so a segment never waits behind batch work taken by the worker it needed. Where
  live and batch workers share a cap (``autoscale_shared_max``: the nodes they share), the
  live target is decided first and the batch Deployment gets what is left.
"""

from __future__ import annotations

import math

from autoscaler.forecast import Cost
from core.settings import ScaleSettings

LIVE_QUEUE = "live"          # the cameras' segments (celeryconfig routes vidfarm.live_segment there)
BATCH_QUEUE = "cpu"          # what yields to it at a shared cap


def camera_floor(cameras: tuple[float | None, ...], cost: Cost, settings: ScaleSettings) -> tuple[int, str]:
    """(workers the registered cameras need, why), from each camera's frame rate (None: unknown)."""
    if not cameras:
        return 0, ""
    if not cost.known:
        return len(cameras), f"{len(cameras)} cameras, cost per frame not known yet: one worker each"
    fps = sum(f if f else settings.camera_fps for f in cameras)
    spare = settings.spare_cameras * settings.camera_fps
    busy = (fps + spare) * cost.per_frame
    workers = math.ceil(busy / settings.camera_utilization - 1e-9)
    return workers, (f"{len(cameras)} cameras + {settings.spare_cameras} spare ({fps + spare:.0f} frames/s x "
                     f"{cost.per_frame * 1000:.0f} ms = {busy:.2f} workers busy, at most "
                     f"{settings.camera_utilization:.0%}) need")


def batch_room(batch: ScaleSettings, live_replicas: int, shared_max: int) -> ScaleSettings:
    """The batch Deployment's settings under a cap shared with the live one: its max (and min)
    lowered to what the live workers leave. ``shared_max`` 0: no shared cap."""
    if not shared_max:
        return batch
    room = max(0, min(batch.max_replicas, shared_max - live_replicas))
    # model_copy skips validation: a room of 0 (live takes the whole cap) is a valid answer here.
    return batch.model_copy(update={"max_replicas": room, "min_replicas": min(batch.min_replicas, room)})
