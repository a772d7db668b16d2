"""What crosses the Celery boundary to draw one piece of a camera's live view: a ``ViewJob``,
serialised once, to one JSON-able message, by ``to_message`` and read back by ``from_message``.

The camera's ingester builds it (``tasks.live_view.send_view``) for each analysed segment
while a page watches the camera; the drawing task (``vidfarm.live_view``) takes it and hands
its timing and labels to ``workers.live.view.draw_view_piece``. As with ``SegmentJob``, the
message carries its shape's name: a worker sent a message of another shape (a producer of
another version, the old ``(camera_id, watch_id, index, {segment}, labels)`` arguments)
refuses it with one line saying so, before it reads or deletes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.messages import malformed, shaped_message

# Change the number with the fields: a worker reads exactly one shape.
SHAPE = "vidfarm.view_job/1"

# One face drawn on one frame: its box (x1, y1, x2, y2, whole source pixels), text and state
# (its colour) -- ``workers.annotate.Label.to_json``, which the drawing reads back.
LabelRow = tuple[int, int, int, int, str, str]


@dataclass(frozen=True)
class ViewJob:
    """One analysed segment of a camera to draw. ``watch_id``/``index``: where the segment's
    file is (``tasks.live.piece_key``); ``pts``: its frames' times in ``TIMELINE`` ticks;
    ``labels``: per frame (as many as ``pts``), the faces to draw; ``keep_source``: leave the
    segment file in the store once drawn (the task deletes it otherwise)."""
    camera_id: str
    watch_id: str
    index: int
    pts: tuple[int, ...]
    fps: float
    width: int
    height: int
    captured_at: float
    first_frame: int
    duration_s: float
    labels: tuple[tuple[LabelRow, ...], ...]
    keep_source: bool = False

    def __post_init__(self):
        # Checked here, for the producer too: the drawing would refuse it later, after the
        # decode, where the reason is further from its cause.
        if len(self.labels) != len(self.pts):
            raise ValueError(f"{len(self.labels)} frames of labels for {len(self.pts)} timestamps")
        if self.fps <= 0 or self.width <= 0 or self.height <= 0:
            raise ValueError(f"fps, width and height must be positive (got {self.fps}, {self.width}, {self.height})")

    def to_message(self) -> dict:
        return {"shape": SHAPE, "camera_id": self.camera_id, "watch_id": self.watch_id, "index": self.index,
                "pts": list(self.pts), "fps": self.fps, "width": self.width, "height": self.height,
                "captured_at": self.captured_at, "first_frame": self.first_frame, "duration_s": self.duration_s,
                "labels": [[list(row) for row in frame] for frame in self.labels], "keep_source": self.keep_source}

    @classmethod
    def from_message(cls, task: str, args: tuple) -> ViewJob:
        """The task's arguments (one message) back as a ViewJob; MessageShapeError for anything else."""
        message = shaped_message(task, args, SHAPE)
        try:
            return cls(str(message["camera_id"]), str(message["watch_id"]), int(message["index"]),
                       tuple(int(p) for p in message["pts"]), float(message["fps"]), int(message["width"]),
                       int(message["height"]), float(message["captured_at"]), int(message["first_frame"]),
                       float(message["duration_s"]),
                       tuple(tuple(_label_row(row) for row in frame) for frame in message["labels"]),
                       _flag(message.get("keep_source", False)))
        except (KeyError, TypeError, ValueError) as error:
            raise malformed(task, SHAPE, error) from None


def _label_row(row) -> LabelRow:
    if not isinstance(row, (list, tuple)) or len(row) != 6 or not all(isinstance(v, str) for v in row[4:]):
        raise ValueError(f"a label is [x1, y1, x2, y2, text, state], not {row!r}")
    x1, y1, x2, y2 = (int(v) for v in row[:4])
    return x1, y1, x2, y2, row[4], row[5]


def _flag(value) -> bool:
    if not isinstance(value, bool):       # bool("false") is True: refuse, do not guess
        raise TypeError(f"keep_source must be true or false, not {value!r}")
    return value
