"""The timeline rows drawn on the job page, from results.json."""

from __future__ import annotations

from web.timeline import COLOURS, identities_seen, timeline_rows


def face(track=None, identity=None):
    return {"box": [0, 0, 10, 10], "score": 0.9, "track": track, "identity": identity}


RESULTS = {
    "frames": [{"index": i, "t": i / 10, "faces": faces} for i, faces in enumerate(
        [[face()], [face()], [], [face(1, "ann")], [face(), face(2)], [face(3)]])],
    "tracks": [
        {"track": 2, "identity": None, "first_frame": 4, "last_frame": 5, "mask": "mask"},
        {"track": 1, "identity": "ann", "first_frame": 3, "last_frame": 3, "mask": None},
        {"track": 3, "identity": "bob", "first_frame": 5, "last_frame": 5, "mask": "mask"},
    ],
    "alerts": [{"kind": "fever", "track": 3, "frame": 5, "t": 0.5, "detail": "38.4 C"}],
}


def test_one_row_per_track_ordered_by_first_frame_with_state_colours():
    rows = timeline_rows(RESULTS)
    assert [r.label for r in rows] == ["#1 ann", "#2 unknown", "#3 bob", "untracked faces"]
    assert [r.state for r in rows] == ["named", "mask", "fever", "unknown"]
    assert rows[2].colour == COLOURS["fever"]
    assert [(b.first_frame, b.last_frame) for b in rows[1].bars] == [(4, 5)]


def test_untracked_faces_form_runs_of_consecutive_frames():
    rows = timeline_rows(RESULTS)
    assert [(b.first_frame, b.last_frame) for b in rows[-1].bars] == [(0, 1), (4, 4)]


def test_no_faces_no_rows_and_identities():
    assert timeline_rows({"frames": [{"index": 0, "faces": []}], "tracks": [], "alerts": []}) == []
    assert identities_seen(RESULTS) == ["ann", "bob"]
