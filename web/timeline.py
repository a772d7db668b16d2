"""The job page's timeline: one bar per track across the recording, from results.json.

Rows come from ``tracks`` (contract 3). Faces that belong to no track (a chain without a
tracker) are gathered into one "untracked faces" row of runs of consecutive frames, so the
picture shows when faces were on screen either way. Colour says the worst state seen:
fever, then no mask, then mask; otherwise named vs unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

COLOURS = {"fever": "#d62728", "no_mask": "#ff7f0e", "mask": "#2ca02c", "named": "#1f77b4",
           "unknown": "#7f7f7f"}
LEGEND = (("fever", "fever"), ("no_mask", "no mask"), ("mask", "mask"), ("named", "known person"),
          ("unknown", "unknown"))


@dataclass
class Bar:
    first_frame: int
    last_frame: int


@dataclass
class Row:
    label: str
    state: str
    bars: list[Bar]

    @property
    def colour(self) -> str:
        return COLOURS[self.state]


def _state(track: dict, alert_kinds: set[str]) -> str:
    if "fever" in alert_kinds:
        return "fever"
    if "no_mask" in alert_kinds or track.get("mask") == "no_mask":
        return "no_mask"
    if track.get("mask") == "mask":
        return "mask"
    return "named" if track.get("identity") else "unknown"


def _runs(frames: list[int]) -> list[Bar]:
    bars: list[Bar] = []
    for index in sorted(frames):
        if bars and index == bars[-1].last_frame + 1:
            bars[-1].last_frame = index
        else:
            bars.append(Bar(index, index))
    return bars


def timeline_rows(results: dict) -> list[Row]:
    alerts_by_track: dict[int, set[str]] = {}
    for alert in results.get("alerts") or []:
        alerts_by_track.setdefault(alert.get("track"), set()).add(alert.get("kind"))
    rows = []
    for track in sorted(results.get("tracks") or [], key=lambda t: (t["first_frame"], t["track"])):
        name = track.get("identity") or "unknown"
        rows.append(Row(f"#{track['track']} {name}", _state(track, alerts_by_track.get(track["track"], set())),
                        [Bar(track["first_frame"], track["last_frame"])]))
    untracked = [frame["index"] for frame in results.get("frames") or []
                 if any(face.get("track") is None for face in frame.get("faces") or [])]
    if untracked:
        rows.append(Row("untracked faces", "unknown", _runs(untracked)))
    return rows


def identities_seen(results: dict) -> list[str]:
    return sorted({t["identity"] for t in results.get("tracks") or [] if t.get("identity")})
