"""A damaged recording still gets analysed (issue 20): what decodes is salvaged, what did not
is reported, and the job is done with a warning. The cases are in tests/crafted.py (DAMAGED)."""

from __future__ import annotations

import json

import pytest

from core.storage import output_key
from services import runtime
from services.submit import submit_file
from tests.clipmaker import count_video_frames
from tests.conftest import wait_for_job
from tests.crafted import DAMAGED, PROPAGATED, UNDECODABLE, Damaged, overwrite_packet
from workers import media
from workers.results import damaged_ranges


@pytest.mark.parametrize("case", DAMAGED, ids=[c.name for c in DAMAGED])
def test_a_damaged_recording_is_salvaged(farm, tmp_path, case):
    path, clip = case.make(tmp_path)
    view = wait_for_job(submit_file(runtime.farm(), path, name=path.name))
    assert view["status"] == "done", view["error"]
    results = json.loads(runtime.store().local_path(output_key(view["id"], "results.json")).read_text())

    # The source's frame count and timing, in the results and in the annotated video.
    assert results["source"]["frames"] == len(results["frames"]) == clip.frames
    assert [f["t"] for f in results["frames"]] == pytest.approx([i / clip.fps for i in range(clip.frames)], abs=1e-5)
    assert count_video_frames(runtime.store().local_path(output_key(view["id"], "annotated.mp4"))) == clip.frames

    # The damage is reported, each range with its reason, and the job says so.
    found = [(r["first_frame"], r["last_frame"], r["reason"]) for r in results["damaged"]]
    assert [(a, b) for a, b, _ in found] == [(a, b) for a, b, _ in case.damaged]
    assert all(reason.startswith(kind) for (_, _, reason), (_, _, kind) in zip(found, case.damaged))
    assert view["warning"].startswith("damaged recording: ") and "\n" not in view["warning"]

    # No faces on a damaged frame; the face (on screen throughout) is found on the intact ones.
    damaged = {i for a, b, _ in found for i in range(a, b + 1)}
    assert all(not results["frames"][i]["faces"] for i in damaged)
    intact = [f for f in results["frames"] if f["index"] not in damaged]
    assert sum(bool(f["faces"]) for f in intact) >= 0.9 * len(intact)
    assert not farm.dead_processes()


def test_a_damaged_recording_is_drawn_whole_from_its_results_not_from_copies_made_ahead(farm, tmp_path):
    """Segments with no face are drawn by their analysis, GOPs copied, before anyone knows the
    recording is damaged. Once the stitch finds it is, every segment is drawn again (re-encoded,
    the damaged frames showing the last good picture as the results do): copied and re-encoded
    segments cannot be joined, and a copied damaged GOP would show whatever its broken packets
    decode to."""
    from core.models import aware
    from tasks.render import drawn_key
    from tests.clipmaker import make_clip
    from tests.labels import frames_i420

    clip = make_clip(tmp_path / "source.mp4", seconds=9, fps=15, gop=15, face_windows=[(0, 1)])
    path = overwrite_packet(clip.path, tmp_path / "damaged.mp4", 60)          # a keyframe: frames 60-74 lost
    view = wait_for_job(submit_file(runtime.farm(), path, name=path.name))
    assert view["status"] == "done" and view["warning"], view["error"]
    records, store = runtime.records(), runtime.store()
    published = aware(records.get_job(view["id"]).finished_at).timestamp()
    segments, video = records.segments(view["id"]), records.video(view["id"])
    assert len(segments) >= 3
    assert all(store.local_path(drawn_key(view["id"], s.index, key)).stat().st_mtime > published
               for s, key in zip(segments, video.segments))
    annotated = frames_i420(store.local_path(output_key(view["id"], "annotated.mp4")))   # decodes, whole
    assert len(annotated) == clip.frames
    stand_in = annotated[59].astype(float)
    assert max(abs(annotated[i].astype(float) - stand_in).mean() for i in range(60, 75)) < 3     # re-encoding: about 2


def test_an_intact_recording_reports_no_damage(farm, face_clip):
    view = wait_for_job(submit_file(runtime.farm(), face_clip.path, name="intact.mp4"))
    results = json.loads(runtime.store().local_path(output_key(view["id"], "results.json")).read_text())
    assert view["status"] == "done" and view["warning"] is None
    assert results["damaged"] == []


def test_a_segment_cut_mid_gop_reports_what_its_gop_lost_before_it(tmp_path):
    """GOPs of 20, segments of 15: segment 1 decodes frames 0-14 of segment 0 first (its GOP's
    start). A picture among those that does not decode taints its own frames up to the next
    keyframe, though segment 0 reports the picture itself."""
    path, clip = Damaged("mid-GOP", "mp4", 5, [], gop=20).make(tmp_path)
    info = media.probe(path)
    plans = media.plan_segments(info, 1.0)
    assert [(p.start_frame, p.first_packet) for p in plans][:2] == [(0, 0), (15, 0)]
    damage = []
    for plan, file in zip(plans, media.split_segments(path, info, plans, tmp_path / "split")):
        frames = list(media.segment_frames(file, plan.pts, info.tb, pts_offset=info.pts_offset, timed=info.timed))
        assert len(frames) == plan.frames
        damage += [frame.damage for frame in frames]
    found = [(r["first_frame"], r["last_frame"], r["reason"].split(" (")[0]) for r in damaged_ranges(damage)]
    assert found == [(5, 5, UNDECODABLE), (6, 19, PROPAGATED)] and len(damage) == clip.frames
