"""What crosses the Celery boundary to analyse one segment: a ``SegmentJob`` (the segment's
frames and its recording's timing, ``SourceMedia``), serialised once, to one JSON-able
message, by ``to_message`` and read back by ``from_message``.

The producers (ingest's fan-out, a re-analysis, the leases' requeue, a live watch) build it;
the analysis tasks (``vidfarm.segment``, ``vidfarm.live_segment``) take it and hand it to
``workers.pipeline.analyse_segment`` whole. The message carries its shape's name: a worker
given a message of another shape (a producer of another version, arguments of the old
``(job_id, index)`` form) refuses it with one line saying so, before it touches anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from core.messages import malformed, shaped_message

if TYPE_CHECKING:
    from core.models import Job, Segment

# Change the number with the fields: a worker reads exactly one shape.
SHAPE = "vidfarm.segment_job/1"


@dataclass(frozen=True)
class SourceMedia:
    """A recording as ingest described it (``Job.media``, written from
    ``workers.media.MediaInfo.summary``), read back in one place: the tasks that cut, analyse,
    crop and draw its segments all read its timing from here, with the same defaults for jobs
    split by older versions."""
    time_base: Fraction
    fps: float
    start_pts: int
    width: int
    height: int
    has_audio: bool
    # 0 for jobs split before the offset was recorded; timed False for jobs split before
    # timestamps were trusted (their frames are matched by order, as then).
    pts_offset: int = 0
    timed: bool = False
    # No damage found at ingest (no warning): its untouched GOPs may be copied as they are.
    intact: bool = True

    @classmethod
    def of(cls, job: Job) -> SourceMedia:
        return cls.of_summary(job.media or {})

    @classmethod
    def of_summary(cls, info: dict) -> SourceMedia:
        """From ``MediaInfo.summary()`` (as stored in ``Job.media``)."""
        return cls(Fraction(*info["time_base"]), info["fps"], info.get("start_pts", 0), info.get("width", 0),
                   info.get("height", 0), bool(info.get("has_audio")), info.get("pts_offset", 0),
                   info.get("timed", False), cls.intact_of(info))

    @staticmethod
    def intact_of(info: dict) -> bool:
        """Whether a recording (``Job.media``) has no damage: the stitch warns of any. Read
        alone where the rest of the summary may be missing (a job from before 0.2)."""
        return not info.get("warning")

    def to_json(self) -> dict:
        return {"time_base": [self.time_base.numerator, self.time_base.denominator], "fps": self.fps,
                "start_pts": self.start_pts, "width": self.width, "height": self.height,
                "has_audio": self.has_audio, "pts_offset": self.pts_offset, "timed": self.timed,
                "intact": self.intact}


@dataclass(frozen=True)
class SegmentJob:
    """One segment to analyse. ``owner``: the job's id (``vidfarm.segment``) or the live
    watch's (``vidfarm.live_segment``); ``pts``: its frames' timestamps, in the media's time
    base, in presentation order; ``fence``: a camera's segment, the ``(camera id, fencing
    token)`` of the ingester that sent it (``core.camera_leases``: a stale owner's is dropped)."""
    owner: str
    index: int
    pts: tuple[int, ...]
    media: SourceMedia
    fence: tuple[str, int] | None = None

    @classmethod
    def of(cls, job: Job, segment: Segment) -> SegmentJob:
        """A job's segment as its records hold it (ingest wrote both)."""
        return cls(job.id, segment.index, tuple(segment.pts), SourceMedia.of(job))

    def to_message(self) -> dict:
        return {"shape": SHAPE, "owner": self.owner, "index": self.index, "pts": list(self.pts),
                "media": self.media.to_json(), "fence": None if self.fence is None else list(self.fence)}

    @classmethod
    def from_message(cls, task: str, args: tuple) -> SegmentJob:
        """The task's arguments (one message) back as a SegmentJob; MessageShapeError for
        anything else."""
        message = shaped_message(task, args, SHAPE)
        try:
            media = dict(message["media"])
            media["time_base"] = Fraction(*media["time_base"])
            fence = message.get("fence")
            return cls(str(message["owner"]), int(message["index"]), tuple(int(p) for p in message["pts"]),
                       SourceMedia(**media), None if fence is None else (str(fence[0]), int(fence[1])))
        except (KeyError, TypeError, ValueError) as error:
            raise malformed(task, SHAPE, error) from None


def _queued_message(args) -> dict | None:
    """A queued analysis task's one message, read as it is (no worker has checked it yet);
    None for any other task's arguments."""
    message = args[0] if isinstance(args, (list, tuple)) and len(args) == 1 else None
    return message if isinstance(message, dict) and message.get("shape") == SHAPE else None


def message_frames(args) -> int | None:
    """How many frames a queued analysis task's arguments hold (the autoscaler's cost of a
    queued task); None for any other task's arguments."""
    message = _queued_message(args)
    if message is None or not isinstance(message.get("pts"), list):
        return None
    return len(message["pts"]) or None


def message_owner(args) -> str | None:
    """Whose segment a queued analysis task's arguments hold (the job's or the live watch's
    id: the watchdog's "still queued"); None for any other task's arguments."""
    owner = (_queued_message(args) or {}).get("owner")
    return owner if isinstance(owner, str) else None
