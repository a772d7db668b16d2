"""Thermal screening: calibration, normalisation, the canthus reading (synthetic arrays, always
on) and the whole chain on a recording made from a real Fluke temperature map (media)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.thermalclip import FLUKE_CSV, make_thermal_clip, read_fluke_csv, read_temperatures, reference_canthus_c
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.analytics.faces import Faces
from workers.analytics.registry import ANALYZERS
from workers.analytics.thermal import (TLINEAR_CENTIKELVIN, Calibration, CalibrationError, RadiometricPicture,
                                       ThermalAnalyzer, ThermalConfig, canthus_region, canthus_temperature,
                                       fever, load_calibration, normalise, parse_calibration, sidecar_path,
                                       write_sidecar)

SETTINGS = SimpleNamespace(thermal_gain=0.01, thermal_offset=-273.15)


# --- calibration ---------------------------------------------------------------------------------

def test_sidecar_calibration_is_read_and_preferred_over_settings(tmp_path):
    video = tmp_path / "clip.mkv"
    assert load_calibration(video, SETTINGS) == TLINEAR_CENTIKELVIN
    sidecar = sidecar_path(video)
    assert sidecar.name == "clip.mkv.thermal.json"
    sidecar.write_text('{"gain": 0.04, "offset": -20, "camera": "any extra key is ignored"}')
    assert load_calibration(video, SETTINGS) == Calibration(0.04, -20.0)
    write_sidecar(video, Calibration(0.02, -50.0))
    assert load_calibration(video, SETTINGS) == Calibration(0.02, -50.0)


@pytest.mark.parametrize("text, message", [
    ('{"gain": 0.01, "offset": ', "c.thermal.json: not valid JSON"),
    ('[0.01, -273.15]', "expected a JSON object with 'gain' and 'offset'"),
    ('{"gain": 0.01}', "'offset' field required"),
    ('{"gain": "hot", "offset": 0}', "'gain' input should be a valid number"),
    ('{"gain": 0, "offset": 0}', "gain must be a positive number"),
    ('{"gain": 0.01, "offset": NaN}', "offset finite"),
])
def test_bad_sidecar_gives_one_clear_line(text, message):
    with pytest.raises(CalibrationError) as caught:
        parse_calibration(text, "c.thermal.json")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("c.thermal.json: ")


def test_settings_calibration_comes_from_the_environment(monkeypatch, tmp_path):
    from core.settings import Settings

    monkeypatch.setenv("VIDFARM_THERMAL_GAIN", "0.05")
    monkeypatch.setenv("VIDFARM_THERMAL_OFFSET", "-40")
    assert load_calibration(tmp_path / "clip.mkv", Settings()) == Calibration(0.05, -40.0)


def test_bad_sidecar_file_fails_load_calibration(tmp_path):
    sidecar_path(tmp_path / "v.mkv").write_text("gain=0.01")
    with pytest.raises(CalibrationError, match=r"^v\.mkv\.thermal\.json: not valid JSON"):
        load_calibration(tmp_path / "v.mkv", SETTINGS)


def test_raw_and_celsius_round_trip():
    cal = Calibration(0.02, -50.0)
    celsius = np.array([-50.0, 0.0, 36.6, 37.5, 1000.0])
    raw = cal.to_raw(celsius)
    assert raw.dtype == np.uint16 and raw[0] == 0 and raw[-1] == 52500
    assert np.allclose(cal.to_celsius(raw), celsius, atol=0.01)
    assert TLINEAR_CENTIKELVIN.to_raw(37.0) == 31015


# --- normalise -----------------------------------------------------------------------------------

def test_normalise_stretches_the_scene_and_ignores_a_dead_pixel():
    raw = np.tile(np.linspace(30000, 30400, 200, dtype=np.float64), (100, 1)).astype(np.uint16)
    raw[50, 50] = 65535       # a defective pixel must not flatten everything else
    raw[60, 60] = 0           # and a dead one reads black, not white
    out = normalise(raw)
    assert out[50, 50, 0] == 255 and out[60, 60, 0] == 0
    assert out.shape == (100, 200, 3) and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 2]).all()
    assert out[10, 0, 0] <= 3 and out[10, -1, 0] >= 252
    assert int(out[10, 100, 0]) == pytest.approx(128, abs=4)
    assert np.ptp(normalise(np.full((40, 40), 1234, np.uint16))) == 0   # flat frame: no division by zero


# --- canthus -------------------------------------------------------------------------------------

def synthetic_face(angle_deg: float = 0.0, size: tuple[int, int] = (240, 320)):
    """A 30 C face with eyes 60 px apart around (160, 100) and both inner canthi at 36.0 C
    (5x5 spots, 0.25 eye-distances inside the eye centres), tilted by angle_deg."""
    cal = Calibration(0.01, -273.15)
    temps = np.full(size, 30.0)
    centre, half = np.array([160.0, 100.0]), 30.0
    a = np.deg2rad(angle_deg)
    along = np.array([np.cos(a), np.sin(a)])
    eyes = np.stack([centre - half * along, centre + half * along])
    for x, y in (centre - 0.5 * half * along, centre + 0.5 * half * along):
        temps[int(round(y)) - 2:int(round(y)) + 3, int(round(x)) - 2:int(round(x)) + 3] = 36.0
    temps[60, 160] = 45.0             # a hot spot on the forehead: outside the region
    keypoints = np.vstack([eyes, [[160, 130], [140, 160], [180, 160]]])
    return cal.to_raw(temps), keypoints, np.array([110, 50, 210, 190.0]), cal


@pytest.mark.parametrize("angle", [0.0, 15.0, -20.0])
def test_canthus_reads_the_warm_inner_eye_corners(angle):
    raw, keypoints, box, cal = synthetic_face(angle)
    assert canthus_temperature(raw, keypoints, box, cal) == pytest.approx(36.0, abs=0.02)


def test_canthus_percentile_shrugs_off_a_defective_pixel():
    raw, keypoints, box, cal = synthetic_face()
    raw[100, 160] = cal.to_raw(60.0)   # one stuck pixel right in the region
    assert canthus_temperature(raw, keypoints, box, cal) == pytest.approx(36.0, abs=0.02)
    assert canthus_temperature(raw, keypoints, box, cal, percentile=100) == pytest.approx(60.0, abs=0.02)


def test_canthus_region_lies_between_the_eyes():
    _, keypoints, box, _ = synthetic_face()
    region = canthus_region((240, 320), keypoints, box)
    ys, xs = np.nonzero(region)
    assert xs.min() == 139 and xs.max() == 181          # +-0.35 x 60 px around x = 160
    assert ys.min() == 91 and ys.max() == 109           # +-0.15 x 60 px around y = 100


def test_no_reading_for_tiny_or_outside_faces():
    raw, keypoints, box, cal = synthetic_face()
    tiny = keypoints.copy()
    tiny[1] = tiny[0] + [3, 0]
    assert canthus_temperature(raw, tiny, box, cal) is None
    assert canthus_temperature(raw, keypoints + [1000, 0], box + [1000, 0, 1000, 0], cal) is None
    assert canthus_temperature(raw, np.full((5, 2), np.nan), box, cal) is None


@pytest.mark.parametrize("temp, threshold, expected", [
    (36.6, 37.5, False), (37.5, 37.5, True), (38.2, 37.5, True), (37.9, 38.0, False), (None, 37.5, False),
])
def test_fever_threshold(temp, threshold, expected):
    assert fever(temp, threshold) is expected


@pytest.mark.parametrize("temp, threshold, expected", [
    (36.6, 37.5, False), (37.5, 37.5, True), (37.9, 38.0, False), (38.0, 38.0, True), (None, 37.5, False),
])
def test_boxes_and_alerts_follow_the_fever_rule(temp, threshold, expected):
    from fractions import Fraction

    from workers.annotate import face_state
    from workers.results import ResultOptions, SegmentOutput, assemble_results

    assert (face_state(None, "no_mask", temp, threshold) == "fever") is expected
    box = [10, 10, 50, 50]
    face = {"box": box, "score": 0.9, "track": 0, "identity": None, "similarity": None, "mask": None,
            "mask_score": None, "temperature_c": temp}
    track = {"track": 0, "first_frame": 0, "last_frame": 1, "first_box": box, "last_box": box,
             "embedding_sum": None, "mask_votes": [], "max_temperature_c": temp,
             "max_temperature_frame": None if temp is None else 1}
    results = assemble_results({}, Fraction(1, 10), 0, [SegmentOutput([0, 1], [[face], [face]], [track])], {},
                               None, ResultOptions(fever_c=threshold))
    assert [(a["kind"], a["frame"]) for a in results["alerts"]] == ([("fever", 1)] if expected else [])


def test_thermal_analyzer_fills_temperature_on_radiometric_pictures_only():
    assert ANALYZERS["thermal"] is ThermalAnalyzer
    raw, keypoints, box, cal = synthetic_face()
    faces = Faces(boxes=box[None].astype(np.float32), scores=np.ones(1, np.float32),
                  keypoints=keypoints[None].astype(np.float32))
    analyzer = ThermalAnalyzer(ThermalConfig())
    picture = RadiometricPicture(raw, cal)
    assert picture.bgr()[0].shape == (240, 320, 3)
    assert analyzer(picture, faces).column("temperature_c") == [pytest.approx(36.0, abs=0.02)]
    plain = Faces(boxes=faces.boxes, scores=faces.scores, keypoints=faces.keypoints)
    assert analyzer(normalise(raw), plain).column("temperature_c") == [None]
    with pytest.raises(ValueError, match="uint16"):
        RadiometricPicture(raw.astype(np.float32), cal)


# --- a real temperature map, moved and scaled (media) ----------------------------------------------

@pytest.fixture(scope="module")
def fluke_clip(media_dir, tmp_path_factory):
    return make_thermal_clip(tmp_path_factory.mktemp("thermal") / "fluke.mkv", media_dir / FLUKE_CSV)


@pytest.mark.media
def test_fluke_csv_parses_to_celsius(media_dir):
    temps = read_fluke_csv(media_dir / FLUKE_CSV)
    assert temps.shape == (240, 320)
    assert temps.max() == pytest.approx((96.4 - 32) * 5 / 9, abs=0.01)     # the camera's hottest pixel
    assert 35.0 < reference_canthus_c(temps) <= temps.max()


@pytest.mark.media
def test_faces_are_detected_on_normalised_frames(fluke_clip):
    from workers import media

    detector = FaceDetector(DetectorConfig())
    found = []
    for frame in media.decode_frames(fluke_clip.path):
        raw = frame.to_ndarray()
        assert raw.dtype == np.uint16
        faces = detector(normalise(raw))
        found.append(len(faces))
    assert found == [1] * fluke_clip.frames


@pytest.mark.media
def test_canthus_readings_match_the_truth_and_flag_the_fever_frames(fluke_clip):
    readings = read_temperatures(fluke_clip.path, load_calibration(fluke_clip.path))
    assert len(readings) == fluke_clip.frames
    for index, (faces, truth, offset) in enumerate(zip(readings, fluke_clip.truth_c, fluke_clip.offsets_c)):
        assert len(faces) == 1 and faces[0] is not None, index
        assert faces[0] == pytest.approx(truth, abs=0.3), index
        assert fever(faces[0]) is (offset > 0), (index, faces[0])
    assert sum(1 for o in fluke_clip.offsets_c if o) == 8


@pytest.mark.media
def test_detector_finds_faces_in_real_thermal_photos(media_dir):
    from bench.eval_mask_thermal import thermal_photo_detections

    found = thermal_photo_detections(media_dir)
    assert len(found) == 4
    for name, counts in found.items():
        assert 1 <= counts["found"] <= counts["expected"], (name, counts)


def test_thermal_analyzer_keeps_each_tracks_hottest_reading():
    from workers.analytics.tracks import SegmentState

    raw, keypoints, box, cal = synthetic_face()
    state = SegmentState(fps=10)
    analyzer = ThermalAnalyzer(ThermalConfig())
    analyzer.begin(state)
    for index, offset in enumerate([0.0, 1.5, 0.5]):
        state.frame_index = index
        faces = Faces(boxes=box[None].astype(np.float32), scores=np.ones(1, np.float32),
                      keypoints=keypoints[None].astype(np.float32), track_ids=np.array([7]))
        state.observe(faces.track_ids, faces.boxes)
        warmer = cal.to_raw(cal.to_celsius(raw) + offset)
        analyzer(RadiometricPicture(warmer, cal), faces)
    record = state.tracks[7]
    assert record.max_temperature_c == pytest.approx(37.5, abs=0.02) and record.max_temperature_frame == 1
    assert fever(record.max_temperature_c)


@pytest.mark.media
def test_fever_track_through_detect_track_thermal(fluke_clip):
    """What the segment pipeline does with a radiometric recording: a RadiometricPicture per
    frame through detect -> track -> thermal; the track's hottest reading is the fever."""
    from workers import media
    from workers.analytics import tracker  # noqa: F401  (registers "track")
    from workers.analytics.registry import build_chain
    from workers.analytics.thermal import picture_of_frame
    from workers.analytics.tracks import SegmentState

    calibration = load_calibration(fluke_clip.path)
    state = SegmentState(fps=fluke_clip.fps)
    chain = build_chain(["detect", "track", "thermal"], {})
    for analyzer in chain:
        analyzer.begin(state)
    for frame in media.decode_frames(fluke_clip.path):
        state.frame_index += 1
        faces, picture = Faces.empty(), picture_of_frame(frame, calibration)
        for analyzer in chain:
            faces = analyzer(picture, faces)
    hottest = max(state.tracks.values(), key=lambda r: r.max_temperature_c or 0)
    assert hottest.max_temperature_c == pytest.approx(max(fluke_clip.truth_c), abs=0.3)
    assert fluke_clip.offsets_c[hottest.max_temperature_frame] > 0 and fever(hottest.max_temperature_c)
