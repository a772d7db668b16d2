"""The live queue's side of a ``WorkSource`` (``autoscaler.observe``), and the cameras' rates.

A live segment task (``vidfarm.live_segment``, one ``core.segment_job.SegmentJob`` message)
carries its frames in its message: one time stamp each. Finished ones are read from Redis
(``core.live_costs``). Every other task and queue goes to the records' work source
(``autoscaler.work``), when there is one.
"""

from __future__ import annotations

import redis

from autoscaler.live import LIVE_QUEUE
from core import live_costs
from core.cameras import CameraRegistry
from core.segment_job import message_frames

LIVE_TASK = "vidfarm.live_segment"


def live_frames(args: list) -> int | None:
    return message_frames(args)


class LiveWork:
    def __init__(self, client: redis.Redis, records=None):
        self.redis, self.records = client, records

    def frames(self, tasks: list[tuple[str, list]]) -> list[int | None]:
        others = [(name, args) for name, args in tasks if name != LIVE_TASK]
        from_records = iter(self.records.frames(others) if self.records is not None and others else [None] * len(others))
        return [live_frames(args) if name == LIVE_TASK else next(from_records) for name, args in tasks]

    def finished(self, queue: str, since: float) -> list[tuple[int, float]]:
        if queue == LIVE_QUEUE:
            return live_costs.finished_since(self.redis, since)
        return self.records.finished(queue, since) if self.records is not None else []

    def close(self) -> None:
        self.redis.close()
        if self.records is not None:
            self.records.close()


def camera_rates(registry: CameraRegistry) -> tuple[float | None, ...]:
    """Each registered camera's frames/s as its ingester last measured it (None: not yet)."""
    return tuple(registry.state(camera["id"])["fps"] for camera in registry.cameras())
