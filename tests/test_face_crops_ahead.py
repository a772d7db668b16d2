"""Each track's best face is cut by the segment task while it has the frame decoded, so the
stitch, which runs alone while the other workers wait for the results, decodes nothing for
it (it used to decode every segment again, one after another: docs/benchmarks.md, "A busy
job's timeline")."""

from __future__ import annotations

import json

from tests.conftest import use_farm_environment


def test_the_segment_cuts_each_tracks_best_face_as_the_stitch_would(tmp_path):
    from tests.clipmaker import make_clip
    from workers import media, pipeline
    from workers.thumbnails import SegmentFile, best_faces, face_crops

    # Two visits of the face: two tracks, each with a best face somewhere in its frames.
    clip = make_clip(tmp_path / "face.mp4", seconds=3, fps=15, face_windows=[(0, 1), (2, 3)], audio=False, gop=15)
    info = media.probe(clip.path)
    segment = pipeline.whole_file(info)
    config = pipeline.PipelineConfig(analyzers=("detect", "track"), threads=1, analyzer_configs=json.dumps({}))
    result = pipeline.analyse_segment(clip.path, segment, config, cut_faces=True)
    # A segment not asked to cut (a live camera's: nothing reads its cuts) cuts nothing.
    assert pipeline.analyse_segment(clip.path, segment, config).face_crops == []

    best = best_faces({"frames": [{"index": i, "faces": faces} for i, faces in enumerate(result.frames)]})
    assert len(best) >= 2
    cut = {(index, tuple(box)): jpeg for index, box, jpeg in result.face_crops}
    assert set(cut) == {(index, tuple(box)) for index, box in best.values()}
    decoded = face_crops(best, [SegmentFile(clip.path, 0, list(segment.pts))], info.tb, info.pts_offset)
    assert {track: cut[index, tuple(box)] for track, (index, box) in best.items()} == decoded


def test_the_publication_decodes_only_the_faces_not_cut_ahead(tmp_path, monkeypatch):
    from services import runtime
    from tasks import published

    (tmp_path / "data").mkdir()
    use_farm_environment(monkeypatch, None, tmp_path / "data")
    job = runtime.records().add_job("lobby.mp4", "jobs/x/source")
    face = {"score": 0.9, "identity": None, "embedding": [0.1]}
    results = {"frames": [{"index": 0, "t": 0.0, "faces": [{**face, "track": 1, "box": [0, 0, 40, 40]}]},
                          {"index": 1, "t": 0.1, "faces": [{**face, "track": 2, "box": [50, 0, 90, 40]}]}],
               "tracks": [{**face, "track": 1, "first_frame": 0, "last_frame": 0},
                          {**face, "track": 2, "first_frame": 1, "last_frame": 1}]}
    asked = []

    def decoded(job, wanted):
        asked.append(dict(wanted))
        return {track: b"decoded" for track in wanted}

    monkeypatch.setattr(published, "_face_crops", decoded)
    publication = published.prepare(job, results, {(0, (0, 0, 40, 40)): b"cut ahead"})
    assert asked == [{2: (1, [50, 0, 90, 40])}]
    assert {t.track: t.thumbnail for t in publication.tracks} == {1: b"cut ahead", 2: b"decoded"}


def test_a_jobs_face_crops_are_the_decoded_ones_and_none_are_left_beside_it(farm, face_clip):
    from core.appearances import Appearances
    from core.segment_job import SourceMedia
    from core.storage import face_crops_key, output_key, segment_key
    from services import runtime
    from services.submit import submit_file
    from tests.conftest import wait_for_job
    from workers.thumbnails import SegmentFile, best_faces, face_crops

    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    store, records = runtime.store(), runtime.records()
    results = json.loads(store.local_path(output_key(job_id, "results.json")).read_text())
    kept = Appearances(records).thumbnails(job_id)
    assert kept and all(jpeg for _, jpeg in kept.values())
    source = SourceMedia.of(records.get_job(job_id))
    segments = [SegmentFile(store.local_path(segment_key(job_id, s.index)), s.start_frame, s.pts)
                for s in records.segments(job_id)]
    best = best_faces(results)
    decoded = face_crops({track: best[track] for track in kept}, segments, source.time_base, source.pts_offset)
    assert {track: jpeg for track, (_, jpeg) in kept.items()} == decoded
    assert store.list_keys(face_crops_key(job_id)) == []


def stitchable_copy(job_id: str) -> str:
    """A new job made of a finished one's files: its segments analysed (done), not stitched;
    its face crops left beside it as a segment task leaves them."""
    import uuid

    from core.storage import analysis_key, face_crops_key, job_key, segment_key
    from services import runtime
    from tasks.common import put_json

    records, store = runtime.records(), runtime.store()
    job, copy = records.get_job(job_id), uuid.uuid4().hex
    store.put_file(job_key(copy, "source"), store.local_path(job.source_key))
    segments = records.segments(job_id)
    for s in segments:
        store.put_file(segment_key(copy, s.index), store.local_path(segment_key(job_id, s.index)))
        store.put_file(analysis_key(copy, s.index), store.local_path(analysis_key(job_id, s.index)))
        put_json(face_crops_key(copy, s.index), [])
    records.add_job("copy.mp4", job_key(copy, "source"), job.options, job_id=copy)
    records.record_split(copy, [{"index": s.index, "start_frame": s.start_frame, "frames": s.frames, "pts": s.pts,
                                 "end_pts": s.end_pts, "status": "done"} for s in segments],
                         status="processing", media=job.media)
    return copy


def test_the_face_crops_are_gone_before_the_job_is_seen_done(farm, face_clip):
    """A reader that sees the job done finds no face crops beside it (the stitch used to delete
    them after the commit that ended the job, and after queueing its video)."""
    from sqlalchemy import event

    from core.storage import face_crops_key
    from services import runtime
    from services.submit import submit_file
    from tasks.jobs import stitch
    from tests.conftest import wait_for_job

    done = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(done)["status"] == "done"
    job_id = stitchable_copy(done)
    store, engine = runtime.store(), runtime.records().engine
    assert store.list_keys(face_crops_key(job_id))
    crops_when_done: list[list[str]] = []

    def ending(_conn, _cursor, statement, parameters, *_):
        if statement.startswith("UPDATE jobs SET status=") and parameters[0] == "done":
            crops_when_done.append(store.list_keys(face_crops_key(job_id)))
    event.listen(engine, "before_cursor_execute", ending)
    try:
        stitch.apply((job_id,))
    finally:
        event.remove(engine, "before_cursor_execute", ending)
    assert crops_when_done == [[]]
    assert wait_for_job(job_id)["status"] == "done"
