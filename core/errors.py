"""Turning validation failures into the one-line messages users see."""

from __future__ import annotations

from pydantic import ValidationError


def problems(error: ValidationError) -> list[tuple[str, str]]:
    """(where, what) of every problem pydantic found: ``[("arrivals.0.tasks", "Input should be ...")]``.
    ``where`` is empty when the problem is the whole value."""
    return [(".".join(str(part) for part in found["loc"]), found["msg"]) for found in error.errors()]


def first_problem(error: ValidationError) -> tuple[str, str]:
    """(where, what) of the first problem pydantic found."""
    return problems(error)[0]


class GalleryError(ValueError):
    """One line a user can act on: no face, several faces, unreadable photo, bad name."""


class TrackEnrolled(GalleryError):
    """The track's face is enrolled already (the job's results may not say so yet: its
    re-identification is still running); ``name``: the person it went to."""

    def __init__(self, job_id: str, track: int, name: str):
        super().__init__(f"track #{track} of job {job_id} is already enrolled as {name}")
        self.name = name


class FarmTimeout(RuntimeError):
    """No worker answered in time (none is running, or all are busy): raised by the queue's
    ``call`` (``tasks.client``), caught by the use cases that wait on a worker."""


class BrokerUnavailable(RuntimeError):
    """The task queue (Redis, the broker) could not be reached, so nothing was queued: raised
    by the queue (``tasks.client``); the web answers 503 with Retry-After."""


class SchemaOutOfDate(RuntimeError):
    """The database is not at the revision this code needs (and may not upgrade it itself), or
    is at one newer than it knows (``core.schema``): one line for the command that opened it."""
