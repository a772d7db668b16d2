"""A live camera's detect pace (``VIDFARM_LIVE_DETECT_FPS``): the detector looks at most
``detect_fps`` frames a second, the frames between carry its last look's faces, and every
frame still has its entries in the results (workers.analytics.detect_pace)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from core.settings import Settings, get_settings
from tests.quietclip import Appearance, make_quiet_clip
from tests.test_motion_gate import inside, published, run, yao_gallery  # noqa: F401  (yao_gallery: a fixture)
from workers.analytics.detect_pace import DetectPace


def due_frames(fps: float, detect_fps: float, frames: int) -> list[int]:
    pace = DetectPace.of(fps, detect_fps)
    return [i for i in range(frames) if pace.due()]


def test_the_pace_looks_at_the_first_frame_of_each_slice_of_the_streams_time():
    assert due_frames(15, 5, 30) == list(range(0, 30, 3))
    assert due_frames(30, 5, 30) == [0, 6, 12, 18, 24]
    assert due_frames(15, 7.5, 10) == [0, 2, 4, 6, 8]
    # not a whole ratio: 4 looks a second of 15 frames, never two in a row
    looks = due_frames(15, 4, 150)
    assert len(looks) == 40 and min(b - a for a, b in zip(looks, looks[1:])) >= 3
    # no pace: every frame (0, or a stream no faster than the pace)
    assert DetectPace.of(15, 0) is None and DetectPace.of(5, 5) is None and DetectPace.of(10, 15) is None


def test_a_scene_cut_is_looked_at_whatever_the_pace(tmp_path):
    from tests.quietclip import scene
    from workers.analytics.picture import Picture

    room, other = scene(320, 180), 255 - scene(320, 180)        # another shot: the room's negative
    pace = DetectPace.of(15, 5)
    looked = [pace.due(Picture(bgr=(room if i < 5 else other).copy())) for i in range(9)]
    assert [i for i, due in enumerate(looked) if due] == [0, 3, 5, 6]


def test_carried_faces_of_a_track_follow_the_line_between_the_looks_around_them():
    import numpy as np

    from workers.analytics.detect_pace import fill_between_looks
    from workers.analytics.faces import Faces

    def faces(x: float, track: int, carried: bool) -> Faces:
        return Faces(boxes=np.array([[x, 0, x + 10, 10]], np.float32), scores=np.ones(1, np.float32),
                     keypoints=np.full((1, 5, 2), x, np.float32), track_ids=np.array([track]), carried=carried)

    # looks at 0 and 3 (track 1 from x=0 to x=30), carried 1 and 2; then a look at 4 that
    # lost the track, and frame 5 carried after it: no later look, it stays put
    frames = [faces(0, 1, False), faces(0, 1, True), faces(0, 1, True), faces(30, 1, False),
              Faces.empty(), faces(30, 1, True)]
    fill_between_looks(frames)
    assert [float(f.boxes[0][0]) for f in frames if len(f)] == [0, 10, 20, 30, 30]
    assert float(frames[2].keypoints[0, 0, 0]) == 20


def test_a_person_standing_still_keeps_box_track_and_name_on_every_frame_between_looks(tmp_path, yao_gallery):
    clip = make_quiet_clip(tmp_path / "still.mp4", seconds=6, fps=15, noise=3.0,
                           appearances=[Appearance(0, 6, walk=False, height=120)])
    # recheck on every look: without the pace the gate would look at them on every frame
    result, _, looks = run(clip.path, {"detect": {"gate": {"recheck_frames": 1}}}, gallery=yao_gallery, detect_fps=5)
    results = published(clip.path, result, yao_gallery)
    assert len(results["frames"]) == clip.frames == 90
    for frame, truth in zip(results["frames"], clip.photo_boxes):
        assert len(frame["faces"]) == 1 and inside(frame["faces"][0]["box"], truth)
    assert {(f["faces"][0]["track"], f["faces"][0]["identity"]) for f in results["frames"]} == {(1, "yao")}
    assert all(f["faces"][0]["mask"] == "no_mask" for f in results["frames"])
    # looked at on 5 frames a second, the other 10 carried
    assert looks["full"] + looks["region"] + looks["tracked"] + looks["none"] == clip.frames // 3 and looks["carried"] == 2 * clip.frames // 3


def test_a_person_walking_is_carried_between_looks_where_every_frame_detection_finds_them(tmp_path):
    clip = make_quiet_clip(tmp_path / "walk.mp4", seconds=6, fps=15, noise=3.0,
                           appearances=[Appearance(1, 6, walk=True, height=110)])
    on_screen = [i for i, box in enumerate(clip.photo_boxes) if box is not None]
    found = lambda result: sum(any(inside(f["box"], clip.photo_boxes[i]) for f in result.frames[i]) for i in on_screen)
    every, every_runs, _ = run(clip.path, {"detect": {"gate": {"enabled": False}}}, analyzers=("detect", "track"))
    assert every_runs == clip.frames and found(every) >= 0.9 * len(on_screen)
    # No gate, no second look: the model runs exactly on the paced frames, 5 a second.
    bare = {"detect": {"gate": {"enabled": False}, "second_look": {"enabled": False}}}
    paced, runs, _ = run(clip.path, bare, analyzers=("detect", "track"), detect_fps=5)
    assert runs == math.ceil(clip.frames / 3)
    assert len(paced.frames) == clip.frames and found(paced) >= found(every) - 2
    # Between two looks the carried box follows the walk: it overlaps every-frame detection's.
    from workers.analytics.tracks import box_iou

    last_look = (clip.frames - 1) // 3 * 3
    between = [i for i in on_screen if i < last_look and every.frames[i] and paced.frames[i]]
    assert len(between) >= 0.8 * len([i for i in on_screen if i < last_look])
    assert all(box_iou(paced.frames[i][0]["box"], every.frames[i][0]["box"]) >= 0.5 for i in between)
    # The carried faces keep their track: one track over the walk, as every-frame detection has.
    tracks = lambda result: {f["track"] for frame in result.frames for f in frame}
    assert len(tracks(paced)) == len(tracks(every)) == 1
    # With the gate (as configured), no more looks than the pace allows.
    gated, _, looks = run(clip.path, {}, analyzers=("detect", "track"), detect_fps=5)
    assert looks["full"] + looks["region"] + looks["tracked"] + looks["none"] == math.ceil(clip.frames / 3)
    assert found(gated) >= found(every) - 2


def test_cameras_are_paced_and_uploads_look_at_every_frame(monkeypatch, tmp_path):
    from tasks import jobs, live

    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("VIDFARM_LIVE_DETECT_FPS", raising=False)
    get_settings.cache_clear()
    try:
        assert live.live_pipeline_config({}).detect_fps == 7.5
        assert jobs._pipeline_config({}).detect_fps == 0.0
        monkeypatch.setenv("VIDFARM_LIVE_DETECT_FPS", "0")
        get_settings.cache_clear()
        assert live.live_pipeline_config({}).detect_fps == 0.0
    finally:
        get_settings.cache_clear()
    monkeypatch.setenv("VIDFARM_LIVE_DETECT_FPS", "-1")
    with pytest.raises(ValidationError, match="live_detect_fps"):
        Settings()


def test_names_and_masks_are_sampled_only_on_frames_the_detector_looked_at(tmp_path, yao_gallery):
    from workers import media, pipeline
    from workers.analytics.faces import Faces
    from workers.analytics.picture import Picture
    from workers.analytics.tracks import SegmentState

    clip = make_quiet_clip(tmp_path / "still.mp4", seconds=4, fps=15, noise=3.0,
                           appearances=[Appearance(0, 4, walk=False, height=120)])
    info = media.probe(clip.path)
    chain = pipeline.analyzer_chain(("detect", "track", "recognize", "mask"), "{}")
    state = SegmentState(info.fps, yao_gallery, detect_fps=5)
    for analyzer in chain:
        analyzer.begin(state)
    for item in media.segment_frames(clip.path, sorted(p.pts for p in info.packets), info.tb, threads=1):
        state.frame_index += 1
        faces, picture = Faces.empty(), Picture(item.frame)
        for analyzer in chain:
            faces = analyzer(picture, faces)
        state.faces.append(faces)
    looked = {i for i, faces in enumerate(state.faces) if not faces.carried}
    assert len(looked) == clip.frames // 3
    sampled = {name: frames for record in state.tracks.values() for name, frames in record.sampled.items()}
    assert sampled["recognize"] and sampled["mask"]
    assert set(sampled["recognize"]) | set(sampled["mask"]) <= looked
