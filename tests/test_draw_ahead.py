"""A busy segment drawn ahead by the worker that analysed it, from the frames it decoded and the
labels it can already tell (docs/benchmarks.md, "Busy segments drawn ahead from their analysis's
frames"): the pictures it keeps, and when its labels are the stitch's."""

from __future__ import annotations

import json
from fractions import Fraction

from tests.conftest import use_farm_environment


def test_the_analysis_keeps_its_decoded_frames_only_when_asked_and_all_fit(tmp_path):
    import numpy as np

    from tests.clipmaker import make_clip
    from workers import media, pipeline

    clip = make_clip(tmp_path / "face.mp4", seconds=2, fps=10, audio=False, gop=10)
    info = media.probe(clip.path)
    segment = pipeline.whole_file(info)
    config = pipeline.PipelineConfig(analyzers=("detect", "track"), threads=1, analyzer_configs=json.dumps({}))
    decoded = [item.frame for item in media.segment_frames(clip.path, list(segment.pts), info.tb)]
    frame_bytes = sum(plane.buffer_size for plane in decoded[0].planes)     # the decoder's, padding and all
    assert pipeline.analyse_segment(clip.path, segment, config).pictures is None
    kept = pipeline.analyse_segment(clip.path, segment, config, keep_pictures_bytes=20 * frame_bytes).pictures
    assert len(kept) == len(decoded) == 20
    assert all(np.array_equal(a.to_ndarray(), b.to_ndarray()) for a, b in zip(kept, decoded))
    # Not all of them fit: none are kept (the drawing decodes the file, as before).
    assert pipeline.analyse_segment(clip.path, segment, config, keep_pictures_bytes=19 * frame_bytes).pictures is None


def _face(track: int, box: list[int]) -> dict:
    return {"box": box, "score": 0.9, "track": track, "identity": None, "similarity": None,
            "mask": None, "mask_score": None, "temperature_c": None}


def _track(track: int, first: int, last: int, box: list[int]) -> dict:
    return {"track": track, "first_frame": first, "last_frame": last, "first_box": box, "last_box": box}


A, B, C = [10, 10, 50, 50], [100, 10, 140, 50], [200, 10, 240, 50]
# Three segments of 4 frames. Segment 0: C on frame 0 (local track 1), then A (local 2) to its
# end; segment 1: A again (local 1, joined to segment 0's 2 across the border), B (local 2);
# segment 2: B again. In the results: C #1, A #2, B #3.
ANALYSES = [
    {"frames": [[_face(1, C)], [_face(2, A)], [_face(2, A)], [_face(2, A)]],
     "tracks": [_track(1, 0, 0, C), _track(2, 1, 3, A)]},
    {"frames": [[_face(1, A)], [_face(1, A)], [_face(2, B)], [_face(2, B)]],
     "tracks": [_track(1, 0, 1, A), _track(2, 2, 3, B)]},
    {"frames": [[_face(1, B)], [_face(1, B)], [], []],
     "tracks": [_track(1, 0, 1, B)]},
]


def test_a_segments_labels_are_told_ahead_once_every_segment_before_it_is_analysed(tmp_path, monkeypatch):
    from core.storage import analysis_key
    from services import runtime
    from tasks.common import put_json
    from tasks.jobs import _labels_known_ahead
    from workers.render import segment_labels
    from workers.results import SegmentOutput, assemble_results

    (tmp_path / "data").mkdir()
    use_farm_environment(monkeypatch, None, tmp_path / "data")
    records = runtime.records()
    job = records.add_job("lobby.mp4", "jobs/x/source")
    records.set_job(job.id, media={"time_base": [1, 10], "fps": 10.0, "width": 320, "height": 240, "timed": True})
    pts = [list(range(4 * k, 4 * k + 4)) for k in range(3)]
    records.record_split(job.id, [{"index": k, "start_frame": 4 * k, "frames": 4, "pts": p, "end_pts": p[-1] + 1}
                                  for k, p in enumerate(pts)])
    for k, analysis in enumerate(ANALYSES):
        put_json(analysis_key(job.id, k), {**analysis, "thumbnails": {"first": None, "last": None}, "damage": None})
    job = records.get_job(job.id)

    records.set_segment(job.id, 1, status="done")
    assert _labels_known_ahead(job, 1) is None          # segment 0's tracks decide the numbers
    records.set_segment(job.id, 0, status="done")
    ahead = _labels_known_ahead(job, 1)
    assert [[label[4] for label in frame] for frame in ahead] == [["#2"], ["#2"], ["#3"], ["#3"]]
    # As the stitch labels it, from every segment (the one after it changes nothing here).
    outputs = [SegmentOutput(p, a["frames"], a["tracks"]) for p, a in zip(pts, ANALYSES)]
    assert ahead == segment_labels(assemble_results({}, Fraction(1, 10), 0, outputs, {}), 4, 4, 37.5)
    # The last segment analysed: the stitch runs next, and waits for this task; it draws.
    records.set_segment(job.id, 2, status="done")
    assert _labels_known_ahead(job, 1) is None
