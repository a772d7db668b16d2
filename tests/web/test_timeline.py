"""The timeline rows drawn on the job page, from results.json: one row per person."""

from __future__ import annotations

from web.timeline import PERSON_COLOURS, SHORT_TRACK_S, UNKNOWN_COLOUR, identities_seen, timeline_rows

FPS = 10


def face(track=None, identity=None):
    return {"box": [0, 0, 10, 10], "score": 0.9, "track": track, "identity": identity}


def tracks_at(index: int) -> list[dict]:
    """Which faces frame ``index`` shows (the tracks below, plus untracked faces at 0-1 and 70)."""
    faces = [face(t["track"], t["identity"]) for t in TRACKS if t["first_frame"] <= index <= t["last_frame"]]
    return faces + ([face()] if index in (0, 1, 70) else [])


TRACKS = [
    {"track": 1, "identity": "ann", "first_frame": 10, "last_frame": 30, "mask": "mask"},
    {"track": 2, "identity": None, "first_frame": 12, "last_frame": 40, "mask": None},       # 2.8 s: a row
    {"track": 3, "identity": "bob", "first_frame": 20, "last_frame": 50, "mask": "no_mask"},
    {"track": 4, "identity": "ann", "first_frame": 45, "last_frame": 60, "mask": "no_mask"},  # ann again
    {"track": 5, "identity": None, "first_frame": 52, "last_frame": 55, "mask": None},       # 0.3 s: short
    {"track": 6, "identity": None, "first_frame": 61, "last_frame": 62, "mask": None},       # 0.1 s: short
]
RESULTS = {
    "frames": [{"index": i, "t": i / FPS, "faces": tracks_at(i)} for i in range(80)],
    "tracks": TRACKS,
    "alerts": [{"kind": "fever", "track": 3, "frame": 30, "t": 3.0, "detail": "38.4 C"}],
}


def test_one_row_per_person_then_long_unknown_tracks_then_short_ones_together():
    rows = timeline_rows(RESULTS)
    assert [(r.label, r.kind, r.tracks) for r in rows] == [
        ("ann", "person", [1, 4]), ("unknown #2", "unknown", [2]), ("bob", "person", [3]),
        ("2 short unknown tracks", "short", [5, 6]), ("untracked faces", "untracked", [])]
    assert SHORT_TRACK_S == 1.0


def test_colour_says_who_and_markers_say_mask_and_fever():
    ann, unknown, bob, short, untracked = timeline_rows(RESULTS)
    assert ann.colour != bob.colour and {ann.colour, bob.colour} <= set(PERSON_COLOURS)
    assert unknown.colour == short.colour == untracked.colour == UNKNOWN_COLOUR
    assert [bar.markers for bar in ann.bars] == [["mask"], ["no_mask"]]     # the same colour, two mask states
    assert [bar.markers for bar in bob.bars] == [["no_mask", "fever"]]
    assert (bob.bars[0].first_t, bob.bars[0].last_t) == (2.0, 5.0)


def test_untracked_faces_form_runs_of_consecutive_frames():
    rows = timeline_rows(RESULTS)
    assert [(b.first_frame, b.last_frame, b.first_t) for b in rows[-1].bars] == [(0, 1, 0.0), (70, 70, 7.0)]


def test_no_faces_no_rows_and_identities():
    assert timeline_rows({"frames": [{"index": 0, "faces": []}], "tracks": [], "alerts": []}) == []
    assert identities_seen(RESULTS) == ["ann", "bob"]
