"""The job page's timeline, from results.json: one row per person.

A person's tracks (a recording may show them several times, and the stitch may leave a face
that looked away as two tracks) share one row in that person's colour. Each unknown track
that lasts a while has its own row (its face crop beside it, to enrol it); unknown tracks
shorter than ``SHORT_TRACK_S`` (a passer-by's glance, a false detection) are gathered in one
row, and faces that belong to no track (a chain without a tracker) in another. Colour says
who; the mask state and a fever are separate markers on each bar, so neither hides the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SHORT_TRACK_S = 1.0
UNKNOWN_COLOUR = "#6b7280"
# Distinct colours, each at least 3:1 against the white page (WCAG's minimum for graphics);
# no red: a fever's marker is red.
PERSON_COLOURS = ("#1f77b4", "#8c564b", "#9467bd", "#00838f", "#c2185b", "#827717", "#e65100", "#3949ab",
                  "#2e7d32", "#5d4037")
MARKERS = {"mask": ("●", "mask"), "no_mask": ("✕", "no mask"), "fever": ("▲", "fever")}


@dataclass
class Bar:
    first_frame: int
    last_frame: int
    track: int | None = None
    mask: str | None = None          # "mask", "no_mask" or None (not classified)
    fever: bool = False
    first_t: float = 0.0
    last_t: float = 0.0

    @property
    def markers(self) -> list[str]:
        return [m for m in (self.mask, "fever" if self.fever else None) if m in MARKERS]


@dataclass
class Row:
    label: str
    kind: str                        # "person", "unknown", "short", "untracked"
    colour: str
    bars: list[Bar] = field(default_factory=list)
    identity: str | None = None
    erased: bool = False             # an unknown track whose person was erased (results say so)

    @property
    def tracks(self) -> list[int]:
        return [b.track for b in self.bars if b.track is not None]


def _times(results: dict):
    frames = results.get("frames") or []

    def at(index: int) -> float:
        return frames[index]["t"] if 0 <= index < len(frames) else 0.0
    return at


def _runs(frames: list[int]) -> list[Bar]:
    bars: list[Bar] = []
    for index in sorted(frames):
        if bars and index == bars[-1].last_frame + 1:
            bars[-1].last_frame = index
        else:
            bars.append(Bar(index, index))
    return bars


def timeline_rows(results: dict) -> list[Row]:
    at = _times(results)
    fevers = {a.get("track") for a in results.get("alerts") or [] if a.get("kind") == "fever"}
    people: dict[str, Row] = {}
    unknown, short = [], Row("short unknown tracks", "short", UNKNOWN_COLOUR)
    for track in sorted(results.get("tracks") or [], key=lambda t: (t["first_frame"], t["track"])):
        bar = Bar(track["first_frame"], track["last_frame"], track["track"], track.get("mask"),
                  track["track"] in fevers, at(track["first_frame"]), at(track["last_frame"]))
        name = track.get("identity")
        if name:
            colour = PERSON_COLOURS[len(people) % len(PERSON_COLOURS)]
            people.setdefault(name, Row(name, "person", colour, identity=name)).bars.append(bar)
        elif bar.last_t - bar.first_t < SHORT_TRACK_S:
            short.bars.append(bar)
        else:
            unknown.append(Row(f"unknown #{track['track']}", "unknown", UNKNOWN_COLOUR, [bar],
                               erased=bool(track.get("erased"))))
    rows = sorted([*people.values(), *unknown], key=lambda r: r.bars[0].first_frame)
    if short.bars:
        short.label = f"{len(short.bars)} short unknown track{'s' if len(short.bars) > 1 else ''}"
        rows.append(short)
    untracked = [frame["index"] for frame in results.get("frames") or []
                 if any(face.get("track") is None for face in frame.get("faces") or [])]
    if untracked:
        bars = _runs(untracked)
        for bar in bars:
            bar.first_t, bar.last_t = at(bar.first_frame), at(bar.last_frame)
        rows.append(Row("untracked faces", "untracked", UNKNOWN_COLOUR, bars))
    return rows


def identities_seen(results: dict) -> list[str]:
    return sorted({t["identity"] for t in results.get("tracks") or [] if t.get("identity")})
