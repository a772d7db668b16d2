"""What every typed task message shares: a shape tag, and one check of it.

A message that crosses the Celery boundary (``core.segment_job.SegmentJob``,
``core.view_job.ViewJob``) is one JSON-able dict that carries the name of its shape. A worker
reads exactly one shape per task: anything else (a producer of another version, the positional
arguments of an older release) is refused with one line naming both shapes, before the task
touches anything, instead of failing later with a ``KeyError`` deep in the work.
"""

from __future__ import annotations

from typing import Any


class MessageShapeError(ValueError):
    """A task was sent a message it does not read (one line, naming both shapes)."""


def shaped_message(task: str, args: tuple, shape: str) -> dict:
    """The one message of ``shape`` that a task's arguments must be; MessageShapeError otherwise."""
    message = args[0] if len(args) == 1 else None
    found = message.get("shape") if isinstance(message, dict) else None
    if found != shape:
        said = f"shape {found!r}" if found else f"{len(args)} argument(s) {_glimpse(args)}"
        raise MessageShapeError(f"{task} was sent {said}; this worker reads one {shape!r} message "
                                "(the producer runs another version of vidfarm)")
    return message


def malformed(task: str, shape: str, error: Exception) -> MessageShapeError:
    """The error for a message of the right shape whose fields are wrong (a missing field is
    named as such, not shown as a bare ``KeyError``)."""
    said = f"it has no {error.args[0]!r} field" if isinstance(error, KeyError) and error.args else str(error)
    return MessageShapeError(f"{task} was sent a malformed {shape!r} message: {said}")


def _glimpse(args: Any) -> str:
    text = repr(args)
    return text if len(text) <= 80 else text[:77] + "..."
