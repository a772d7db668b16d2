"""results.json (GUIDE.md contract 3, ``"schema": "vidfarm.results/1"``) as one pydantic model:
the stitch checks every results version against it before publishing, and the API's OpenAPI
document describes ``GET /jobs/{id}/results`` with its JSON schema. Later analyses may add
fields, so every object allows more than these."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "vidfarm.results/1"
Mask = Literal["mask", "no_mask"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Face(_Open):
    box: list[float] = Field(min_length=4, max_length=4, description="[x1, y1, x2, y2] in source pixels.")
    score: float
    track: int | None
    identity: str | None
    similarity: float | None
    mask: Mask | None
    mask_score: float | None
    temperature_c: float | None


class Frame(_Open):
    index: int = Field(description="Global across chunks.")
    t: float = Field(description="Seconds from the recording's start.")
    faces: list[Face]


class Track(_Open):
    track: int
    identity: str | None
    first_frame: int
    last_frame: int
    best_similarity: float | None
    mask: Mask | None
    max_temperature_c: float | None


AlertKind = Literal["fever", "no_mask", "watchlist"]
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)


class Alert(_Open):
    kind: AlertKind
    track: int
    frame: int
    t: float
    detail: str | None


class Damaged(_Open):
    first_frame: int
    last_frame: int
    reason: str


class Source(_Open):
    path: str
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    has_audio: bool


class Timing(_Open):
    wall_s: float
    stages: dict[str, float]


class Results(_Open):
    """A job's results. ``version`` is set on every stored version (each re-analysis adds one)."""
    schema_: Literal["vidfarm.results/1"] = Field(alias="schema")
    source: Source
    chunks: int
    frames: list[Frame]
    tracks: list[Track]
    alerts: list[Alert]
    damaged: list[Damaged] = Field(default_factory=list, description="Frame ranges the recording's damage cost; "
                                                                     "they carry no faces.")
    timing: Timing
    version: int | None = Field(None, description="Bumped each time the job is re-analysed.")


def openapi_components() -> dict[str, dict]:
    """The model and every model it holds, as OpenAPI 3.1 components (``#/components/schemas/...``)."""
    schema = Results.model_json_schema(by_alias=True, ref_template="#/components/schemas/Results{model}")
    nested = schema.pop("$defs", {})
    return {"Results": schema, **{f"Results{name}": part for name, part in nested.items()}}
