"""What live segments cost: each finished one's frames and seconds, kept in Redis for the autoscaler.

A batch segment's cost is in the job records (``Segment.seconds``); a live segment has no
record, so the live task (``tasks.live``) appends ``[unix time, frames, seconds]`` to a
capped list and the autoscaler (``autoscaler.live_work``) reads those finished since its
last poll: the live queue's cost per frame, learnt as the batch queue's is.
"""

from __future__ import annotations

import json
import time

import redis

LIVE_COSTS = "vidfarm:live:finished"
KEPT = 500


def record(client: redis.Redis, frames: int, seconds: float, now: float | None = None) -> None:
    entry = json.dumps([round(time.time() if now is None else now, 3), frames, round(seconds, 4)])
    with client.pipeline() as pipe:
        pipe.lpush(LIVE_COSTS, entry)
        pipe.ltrim(LIVE_COSTS, 0, KEPT - 1)
        pipe.execute()


def finished_since(client: redis.Redis, since: float) -> list[tuple[int, float]]:
    """(frames, seconds) of the live segments finished after ``since`` (unix s), oldest first."""
    done = []
    for raw in client.lrange(LIVE_COSTS, 0, KEPT - 1):
        try:
            at, frames, seconds = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if at <= since:
            break              # newest first: the rest are older
        done.append((int(frames), float(seconds)))
    return done[::-1]
