"""Tracks carried across a live camera's segments one at a time, against the file stitch."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from tests.test_analytics import segment
from workers.analytics.gallery import Gallery
from workers.live.stitch import LiveStitch
from workers.results import ResultOptions, assemble_results

BOX, ELSEWHERE = [100, 100, 160, 170], [300, 40, 360, 110]


def on_one_timeline(segments):
    """Give the fake segments consecutive timestamps (one per frame)."""
    placed, start = [], 0
    for s in segments:
        placed.append(dataclasses.replace(s, pts=list(range(start, start + len(s.frames)))))
        start += len(s.frames)
    return placed


@pytest.fixture
def ada():
    vector = np.zeros(512, np.float32)
    vector[0] = 1.0
    return vector.tolist()


def test_tracks_join_across_borders_but_not_across_a_gap(ada):
    gallery = Gallery.from_rows([("Ada", np.asarray(ada, np.float32).tobytes())])
    options = ResultOptions(watchlist=frozenset({"Ada"}))
    segments = on_one_timeline([
        segment([0, 0, 0], [BOX] * 3, ada),                 # Ada appears
        segment([4, 4, 4], [BOX] * 3, ada),                 # ... and stays: the same track
        dataclasses.replace(segment([1, 1, 1], [BOX] * 3, ada), continues=False),   # after a gap: a new track
        segment([1, 1, 2], [BOX, BOX, ELSEWHERE]),          # that one goes on; someone else comes
    ])
    stitch = LiveStitch(gallery, options)
    updates, first = [], 0
    for s in segments:
        updates.append(stitch.add(s, first, [float(p) for p in s.pts]))
        first += len(s.frames)
    assert list(stitch.pieces) == [2, 3]          # track 1 ended: let go
    live_ids = [[t["track"] for t in u.tracks] for u in updates]
    assert live_ids == [[1], [1], [2], [2, 3]]
    assert [t["identity"] for t in updates[1].tracks] == ["Ada"]
    # A watchlist alert per track, announced by the segment that first raised it.
    assert [[(a["kind"], a["track"], a["frame"]) for a in u.alerts] for u in updates] == \
        [[("watchlist", 1, 0)], [], [("watchlist", 2, 6)], []]
    assert [u.faces for u in updates] == [3, 3, 3, 3]

    whole = assemble_results({}, Fraction(1, 10), 0, segments, {}, gallery, options)
    frame_tracks = [face["track"] for frame in whole["frames"] for face in frame["faces"]]
    assert frame_tracks == [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3]   # the same numbers as live
    # What the live view draws: each face with the camera's track and its identity so far.
    live_faces = [(face["track"], face["identity"]) for u in updates for frame in u.frames for face in frame]
    assert live_faces == [(face["track"], face["identity"]) for frame in whole["frames"] for face in frame["faces"]]
    assert live_faces[0] == (1, "Ada") and live_faces[-1] == (3, None)
    assert [(t["track"], t["first_frame"], t["last_frame"]) for t in whole["tracks"]] == \
        [(1, 0, 5), (2, 6, 10), (3, 11, 11)]
    assert [(a["track"], a["frame"]) for a in whole["alerts"]] == [(1, 0), (2, 6)]


def test_without_the_gap_the_file_stitch_joins_them(ada):
    """The gap is what keeps two tracks apart in the test above (same box, same face)."""
    segments = on_one_timeline([segment([0, 0, 0], [BOX] * 3, ada), segment([1, 1, 1], [BOX] * 3, ada)])
    whole = assemble_results({}, Fraction(1, 10), 0, segments, {}, None, ResultOptions())
    assert len(whole["tracks"]) == 1
    apart = assemble_results({}, Fraction(1, 10), 0, [segments[0], dataclasses.replace(segments[1], continues=False)],
                             {}, None, ResultOptions())
    assert len(apart["tracks"]) == 2
