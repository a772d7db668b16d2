"""Turning validation failures into the one-line messages users see."""

from __future__ import annotations

from pydantic import ValidationError


def first_problem(error: ValidationError) -> tuple[str, str]:
    """(where, what) of the first problem pydantic found: ``("arrivals.0.tasks", "Input should be ...")``.
    ``where`` is empty when the problem is the whole value."""
    first = error.errors()[0]
    return ".".join(str(part) for part in first["loc"]), first["msg"]
