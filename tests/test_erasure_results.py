"""Finding an erased person's tracks in results and per-segment analyses (no farm needed)."""

from __future__ import annotations

import numpy as np
import pytest

from workers.erasure import Person, erased_tracks, forget_tracks, scrub_segment


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=512).astype(np.float32)
    return vector / np.linalg.norm(vector)


ADA = unit(1)
PERSON = Person.from_bytes("Ada", np.stack([ADA, unit(2)]).tobytes(), 2, threshold=0.34)


@pytest.mark.parametrize("identity,embedding,erased", [
    ("Ada", None, True),                  # named so: hers, even without a kept embedding
    ("Ada L.", ADA, True),                # a name nobody has now, and her face: her old name
    ("Ada L.", unit(3), False),           # a name nobody has now, another face
    ("Bob", ADA, False),                  # someone enrolled now: theirs, however alike
    (None, ADA, False),                   # never named: left alone
])
def test_a_track_is_hers_when_results_named_it_so(identity, embedding, erased):
    track = {"track": 1, "identity": identity, "embedding": None if embedding is None else embedding.tolist()}
    assert PERSON.named(track, {"Bob", "Ada"}) is erased


def results() -> dict:
    face = {"box": [10.0, 10.0, 50.0, 60.0], "score": 0.9, "mask": None, "mask_score": None, "temperature_c": None}
    return {"tracks": [{"track": 1, "identity": "Ada", "best_similarity": 0.6, "embedding": ADA.tolist()},
                       {"track": 2, "identity": "Bob", "best_similarity": 0.7, "embedding": unit(4).tolist()}],
            "frames": [{"index": 0, "faces": [{**face, "track": 1, "identity": "Ada", "similarity": 0.6},
                                              {**face, "box": [80.0, 10.0, 120.0, 60.0], "track": 2,
                                               "identity": "Bob", "similarity": 0.7}]}],
            "alerts": [{"kind": "watchlist", "track": 1, "frame": 0, "t": 0.0, "detail": "Ada is on the watchlist"},
                       {"kind": "watchlist", "track": 2, "frame": 0, "t": 0.0, "detail": "Bob is on the watchlist"}]}


def test_forgetting_tracks_removes_name_similarity_embedding_and_alerts_and_keeps_the_rest():
    before = results()
    assert erased_tracks(before, PERSON, {"Bob"}) == {1}
    after = forget_tracks(before, {1})
    assert before == results()                                   # the input stays as it was
    assert after["tracks"][0] == {"track": 1, "identity": None, "best_similarity": None, "embedding": None,
                                  "erased": True}
    assert after["tracks"][1] == before["tracks"][1]
    assert [f["identity"] for f in after["frames"][0]["faces"]] == [None, "Bob"]
    assert [a["track"] for a in after["alerts"]] == [2]


def test_a_segment_forgets_the_local_tracks_of_the_erased_ones():
    face = {"score": 0.9, "identity": None, "similarity": None}
    analysis = {"frames": [[{**face, "box": [10.0, 10.0, 50.0, 60.0], "track": 7},
                            {**face, "box": [80.0, 10.0, 120.0, 60.0], "track": 8}], []],
                "tracks": [{"track": 7, "embedding_sum": [0.1] * 4, "has_embedding": True, "identity": None},
                           {"track": 8, "embedding_sum": [0.2] * 4, "has_embedding": True, "identity": None}]}
    # Its frame 0 is the results' frame 0: the face there in track 1's box is its track 7.
    assert scrub_segment(analysis, 0, results(), {1}, "Ada")
    assert [t["embedding_sum"] for t in analysis["tracks"]] == [None, [0.2] * 4]
    assert not scrub_segment(analysis, 0, results(), {1}, "Ada")    # nothing left to change
    legacy = {"frames": [[{**face, "box": [1.0, 1.0, 5.0, 5.0], "track": 3, "identity": "Ada", "similarity": 0.5}]],
              "tracks": [{"track": 3, "embedding_sum": [0.3] * 4, "identity": "Ada", "similarity": 0.5}]}
    assert scrub_segment(legacy, 0, {"frames": []}, set(), "Ada")    # named by the segment itself
    assert legacy["frames"][0][0]["identity"] is None and legacy["tracks"][0]["embedding_sum"] is None
