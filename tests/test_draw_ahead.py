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


def _job_of_one_segment(tmp_path, monkeypatch, clip):
    """A job of one segment, ``clip``, in the records and the store (no farm)."""
    from core.segment_job import SegmentJob
    from core.storage import segment_key
    from services import runtime
    from workers import media, pipeline

    (tmp_path / "data").mkdir()
    use_farm_environment(monkeypatch, None, tmp_path / "data")
    records, info = runtime.records(), media.probe(clip.path)
    job = records.add_job("upload.mp4", "jobs/x/source")
    records.set_job(job.id, media={"time_base": [info.tb.numerator, info.tb.denominator], "fps": info.fps,
                                   "width": info.width, "height": info.height, "timed": True})
    pts = list(pipeline.whole_file(info).pts)
    records.record_split(job.id, [{"index": 0, "start_frame": 0, "frames": len(pts), "pts": pts,
                                   "end_pts": pts[-1] + 1}])
    runtime.store().put_file(segment_key(job.id, 0), clip.path)
    job = records.get_job(job.id)
    return job, SegmentJob.of(job, records.get_segment(job.id, 0))


def test_frames_are_kept_only_where_the_stream_can_be_copied(tmp_path, monkeypatch):
    """A short MPEG-4 Part 2 upload (HEVC, VP9 and rotated ones alike) is drawn re-encoded:
    its analysis kept up to 192 MiB of frames that the drawing ahead then refused."""
    from tasks.jobs import _pictures_to_keep
    from tests.clipmaker import make_clip

    clip = make_clip(tmp_path / "mpeg4.mp4", seconds=1, fps=10, audio=False, gop=10, codec="mpeg4")
    job, segment = _job_of_one_segment(tmp_path, monkeypatch, clip)
    assert _pictures_to_keep(job, segment) == 0


def test_frames_are_kept_only_where_all_fit_as_the_analysis_counts_them(tmp_path, monkeypatch):
    """320 wide: the decoder's rows are 384 bytes, so the frames take 1.2 times w*h*1.5 (what
    the estimate counted): a segment that fit that estimate was kept almost whole, then dropped."""
    from tasks import jobs
    from tests.clipmaker import make_clip
    from workers import media, pipeline

    clip = make_clip(tmp_path / "face.mp4", seconds=2, fps=10, audio=False, gop=10, size=(320, 240))
    job, segment = _job_of_one_segment(tmp_path, monkeypatch, clip)
    first = next(media.segment_frames(clip.path, list(segment.pts), segment.media.time_base)).frame
    frame_bytes = sum(plane.buffer_size for plane in first.planes)
    assert frame_bytes > 320 * 240 * 3 // 2
    config = pipeline.PipelineConfig(analyzers=("detect", "track"), threads=1, analyzer_configs=json.dumps({}))
    for budget in (20 * 320 * 240 * 3 // 2, 20 * frame_bytes):
        monkeypatch.setattr(jobs, "PICTURES_KEPT_BYTES", budget)
        keep = jobs._pictures_to_keep(job, segment)
        # Whatever it asks for, the analysis keeps whole (here: only the budget that fits them).
        assert bool(keep) == (budget == 20 * frame_bytes)
        if keep:
            assert len(pipeline.analyse_segment(clip.path, segment, config, keep_pictures_bytes=keep).pictures) == 20


def test_a_segment_is_drawn_ahead_only_while_its_job_is_processing(farm, face_clip, monkeypatch):
    """A segment queued again after its worker died does not hold the stitch back: its drawing
    ahead drew for a job already done (work the drawing tasks do anyway), and one that began
    while the job was processing could land after the join's clean-up, its names left in the
    job's drawings."""
    from core.segment_job import SourceMedia
    from core.storage import job_key, segment_key
    from services import runtime
    from services.submit import submit_file
    from tasks import render
    from tests.conftest import wait_for_job
    from workers import media

    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["video_version"] == 1
    records, store = runtime.records(), runtime.store()
    job, segment = records.get_job(job_id), records.segments(job_id)[0]
    source = SourceMedia.of(job)
    pictures = [item.frame for item in media.segment_frames(store.local_path(segment_key(job_id, 0)), segment.pts,
                                                            source.time_base, pts_offset=source.pts_offset,
                                                            timed=source.timed)]
    labels = [[[10, 10, 60, 60, "someone", "known"]] for _ in segment.pts]      # not the video's
    drawings = store.list_keys(job_key(job_id, "annotated"))
    assert not render.draw_ahead_labelled(job, 0, list(segment.pts), labels, pictures)
    assert store.list_keys(job_key(job_id, "annotated")) == drawings
    # Begun while processing, done by the time it is stored: it goes.
    records.set_job(job_id, status="processing")
    draw = render.draw_segment

    def done_meanwhile(*args, **kwargs):
        records.set_job(job_id, status="done")
        return draw(*args, **kwargs)
    monkeypatch.setattr(render, "draw_segment", done_meanwhile)
    assert render.draw_ahead_labelled(job, 0, list(segment.pts), labels, pictures)
    assert store.list_keys(job_key(job_id, "annotated")) == drawings


def test_a_segment_that_fails_after_its_analysis_lets_its_kept_frames_go(tmp_path, monkeypatch):
    """Its analysis stored nowhere (the store failing): the error raised (or retried) keeps the
    task's frame in its traceback, and with it the frames kept for drawing ahead (192 MiB)."""
    from types import SimpleNamespace

    import pytest

    from tasks import jobs
    from tests.clipmaker import make_clip

    clip = make_clip(tmp_path / "face.mp4", seconds=1, fps=10, audio=False, gop=10, size=(320, 240))
    job, segment = _job_of_one_segment(tmp_path, monkeypatch, clip)
    assert jobs._pictures_to_keep(job, segment)

    def failing(*_args, **_kwargs):
        raise RuntimeError("the store failed")
    monkeypatch.setattr(jobs, "put_json", failing)
    task = SimpleNamespace(name="vidfarm.segment", request=SimpleNamespace(id="t", retries=99))
    with pytest.raises(RuntimeError) as raised:
        jobs._process_segment(task, segment, "worker", SimpleNamespace(held=True))
    tb = raised.value.__traceback__
    while tb.tb_frame.f_code.co_name != "_process_segment":
        tb = tb.tb_next
    result = tb.tb_frame.f_locals["result"]
    assert result is not None and result.pictures is None
