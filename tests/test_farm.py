"""Whole recordings through a real farm: private Redis, two Celery worker processes."""

from __future__ import annotations

import hashlib
import json

import av
import pytest

from core.messages import MessageShapeError
from core.segment_job import SegmentJob
from core.storage import analysis_key, output_key
from services import runtime
from services.submit import submit_file
from tasks.jobs import process_segment
from tests.clipmaker import count_video_frames, make_clip
from tests.conftest import wait_for_job
from tests.test_media import bad_inputs


def output(job_id: str, name: str):
    return runtime.store().local_path(output_key(job_id, name))


def box_overlap(face_box, photo_box) -> float:
    x1, y1 = max(face_box[0], photo_box[0]), max(face_box[1], photo_box[1])
    x2, y2 = min(face_box[2], photo_box[2]), min(face_box[3], photo_box[3])
    area = (face_box[2] - face_box[0]) * (face_box[3] - face_box[1])
    return max(0, x2 - x1) * max(0, y2 - y1) / area


def test_recording_through_the_farm_is_frame_exact(farm, face_clip):
    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    view = wait_for_job(job_id)
    assert view["status"] == "done", view["error"]
    assert view["chunks_total"] == view["chunks_done"] >= 2

    results = json.loads(output(job_id, "results.json").read_text())
    video = output(job_id, "annotated.mp4")
    assert results["schema"] == "vidfarm.results/1"
    assert results["chunks"] == view["chunks_total"]
    src = results["source"]
    assert (src["frames"], src["width"], src["height"], src["has_audio"]) == (face_clip.frames, 480, 270, True)
    assert [f["index"] for f in results["frames"]] == list(range(face_clip.frames))
    assert results["frames"][15]["t"] == pytest.approx(1.0)

    # Faces where the photo is, and nowhere else. The photo appears all at once; on an empty,
    # still scene the motion stage reads one frame in two (idle_stride 2), so where it appears
    # on a frame the stage skips it is found on the next: its first frame may be empty.
    for frame, photo, before in zip(results["frames"], face_clip.photo_boxes, [None] + face_clip.photo_boxes):
        if photo is None:
            assert frame["faces"] == [], frame["index"]
        elif before is None and not frame["faces"]:
            continue
        else:
            assert len(frame["faces"]) == 1, frame["index"]
            assert box_overlap(frame["faces"][0]["box"], photo) > 0.9

    # annotated.mp4: H.264, same frame count, rate and duration, audio kept.
    assert count_video_frames(video) == face_clip.frames
    with av.open(str(video)) as out, av.open(str(face_clip.path)) as source:
        assert out.streams.video[0].codec_context.name == "h264"
        assert out.streams.video[0].average_rate == source.streams.video[0].average_rate
        assert out.duration == pytest.approx(source.duration, abs=70_000)   # microseconds
        assert out.streams.audio and out.streams.audio[0].codec_context.name == "aac"
        assert out.streams.audio[0].frames == source.streams.audio[0].frames
    stages = results["timing"]["stages"]
    assert stages["analyze"] > 0 and results["timing"]["wall_s"] > 0


def test_a_b_frame_recording_has_faces_in_exactly_their_frames(farm, tmp_path):
    """B-frames: decode order differs from presentation order and MP4 timestamps decode from
    before 0. Segments cut inside the first GOP must still analyse their own frames."""
    clip = make_clip(tmp_path / "bframes.mp4", seconds=6, fps=15, gop=20, bframes=3, face_windows=[(1.2, 3.5)])
    view = wait_for_job(submit_file(runtime.farm(), clip.path, name="bframes.mp4"))
    assert view["status"] == "done", view["error"]
    frames = json.loads(output(view["id"], "results.json").read_text())["frames"]
    assert [bool(f["faces"]) for f in frames] == [box is not None for box in clip.photo_boxes]


def test_segment_task_is_idempotent(farm, face_clip):
    job_id = submit_file(runtime.farm(), face_clip.path, name="again.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    store = runtime.store()

    def digest(key):
        return hashlib.sha256(store.local_path(key).read_bytes()).hexdigest()

    before = (digest(analysis_key(job_id, 1)), json.loads(store.local_path(analysis_key(job_id, 1)).read_text()))
    records = runtime.records()
    message = SegmentJob.of(records.get_job(job_id), records.get_segment(job_id, 1)).to_message()
    process_segment.apply(args=(message,)).get()   # already done: a redelivery is a no-op
    assert digest(analysis_key(job_id, 1)) == before[0]
    runtime.records().set_job(job_id, status="processing")  # force a genuine re-run (as a re-analysis does)
    runtime.records().set_segment(job_id, 1, status="queued")
    # A message of another shape (the old (job_id, index) arguments) is refused before anything
    # is touched, saying so: the segment stays queued for a message this worker reads.
    with pytest.raises(MessageShapeError, match=r"^vidfarm.segment was sent 2 argument\(s\) .*vidfarm.segment_job/1"):
        process_segment.apply(args=(job_id, 1)).get()
    assert runtime.records().get_segment(job_id, 1).status == "queued"
    process_segment.apply(args=(message,)).get()
    after = json.loads(store.local_path(analysis_key(job_id, 1)).read_text())
    assert after["frames"] == before[1]["frames"] and after["tracks"] == before[1]["tracks"]
    assert runtime.records().get_segment(job_id, 1).status == "done"
    runtime.records().set_job(job_id, status="done")


@pytest.mark.parametrize("case", ["text", "empty", "truncated", "audio only", "png image"])
def test_bad_input_fails_its_job_and_the_farm_carries_on(farm, tmp_path, case):
    good = make_clip(tmp_path / "good.mp4", seconds=2, fps=15, gop=15, face_windows=[])
    path, expected = bad_inputs(tmp_path, good.path)[case]
    bad_id = submit_file(runtime.farm(), path, name=path.name)
    view = wait_for_job(bad_id)
    assert view["status"] == "failed"
    assert expected in view["error"] and "\n" not in view["error"]
    assert not farm.dead_processes()
    good_id = submit_file(runtime.farm(), good.path, name="good.mp4")
    assert wait_for_job(good_id)["status"] == "done"


def test_real_footage_keeps_frames_timestamps_and_audio(farm, media_dir):
    """The hamilton clip: real H.264 with B-frames, 29.97 fps, AAC audio."""
    src = media_dir / "videos" / "short_hamilton_clip.mp4"
    job_id = submit_file(runtime.farm(), src, name=src.name)
    view = wait_for_job(job_id)
    assert view["status"] == "done", view["error"]
    video = output(job_id, "annotated.mp4")
    with av.open(str(video)) as out, av.open(str(src)) as source:
        out_v, src_v = out.streams.video[0], source.streams.video[0]
        assert out_v.frames == src_v.frames
        assert out_v.average_rate == src_v.average_rate
        assert out.duration == source.duration
        assert [p.size for p in out.demux(out.streams.audio[0]) if p.size] == \
               [p.size for p in source.demux(source.streams.audio[0]) if p.size]   # audio copied
    results = json.loads(output(job_id, "results.json").read_text())
    assert len(results["frames"]) == results["source"]["frames"] == count_video_frames(src)
    assert sum(bool(f["faces"]) for f in results["frames"]) > 0.5 * len(results["frames"])


def test_each_worker_runs_on_cores_of_its_own(farm):
    """Two workers on this machine's cores: neither may be moved onto the other's core."""
    import os

    from core.processes import cores_for

    workers = [p for p in farm.processes if p.name.startswith("worker")]
    for slot, worker in enumerate(workers):
        expected = cores_for(slot, farm.threads_per_worker) or os.sched_getaffinity(0)
        assert os.sched_getaffinity(worker.popen.pid) == expected, worker.name
    if len(os.sched_getaffinity(0)) >= 2:      # enough cores: disjoint sets, not all of them
        assert not os.sched_getaffinity(workers[0].popen.pid) & os.sched_getaffinity(workers[1].popen.pid)
