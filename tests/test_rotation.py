"""Phone recordings in portrait: the pictures are stored landscape with a display matrix that
turns them upright. The farm analyses and draws them upright, and reports boxes in the
upright picture's pixels (what every player shows)."""

from __future__ import annotations

import json
from fractions import Fraction
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.clipmaker import background, face_photo
from tests.conftest import child_env
from workers import media

UPRIGHT = (270, 480)           # width, height as shown
PHOTO_AT = (40, 100)           # the face photo's top-left corner in the upright picture, first frame


def phone_clip(path: Path, rotation: int, frames: int = 30) -> tuple[Path, list[tuple[int, int, int, int]], np.ndarray]:
    """A portrait recording as a phone writes it: each upright picture turned -``rotation``
    degrees (stored landscape) and a display matrix of ``rotation`` (counter-clockwise) to show
    it upright. Returns the file, the face photo's upright box per frame, the first upright picture."""
    width, height = UPRIGHT
    photo = face_photo()
    patch = cv2.resize(photo, (round(photo.shape[1] * 150 / photo.shape[0]), 150))
    scene = background(width, height)
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=15)
    stream.width, stream.height = (height, width) if rotation % 180 else (width, height)
    stream.pix_fmt = "yuv420p"
    stream.options = {"preset": "ultrafast"}
    stream.set_display_rotation(rotation)
    boxes, first = [], None
    for i in range(frames):
        picture = scene.copy()
        x, y = PHOTO_AT[0], PHOTO_AT[1] + i
        picture[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
        boxes.append((x, y, x + patch.shape[1], y + patch.shape[0]))
        first = picture if first is None else first
        stored = np.ascontiguousarray(np.rot90(picture, -rotation // 90))
        frame = av.VideoFrame.from_ndarray(stored, format="bgr24")
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
    out.close()
    return path, boxes, first


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_segments_of_a_rotated_recording_decode_upright(tmp_path, rotation):
    path, _, first = phone_clip(tmp_path / "phone.mp4", rotation)
    info = media.probe(path)
    assert info.rotation == rotation % 360
    assert (info.width, info.height) == UPRIGHT
    segment = media.split_segments(path, info, media.plan_segments(info, 10.0), tmp_path / "segments")[0]
    pts = sorted(p.pts for p in info.packets if p.shown)
    item = next(media.segment_frames(segment, pts, info.tb, pts_offset=info.pts_offset))
    picture = item.frame.to_ndarray(format="bgr24")
    assert (item.frame.width, item.frame.height) == (info.width, info.height)
    # The picture as shown, up to the codec's loss (a turned one differs by ~40 levels).
    assert np.abs(picture.astype(int) - first.astype(int)).mean() < 8


def test_a_full_range_picture_turned_upright_keeps_its_range():
    from av.video.reformatter import ColorRange

    ramp = np.repeat(np.repeat(np.linspace(0, 255, 320).astype(np.uint8)[None, :, None], 180, 0), 3, 2)
    frame = av.VideoFrame.from_ndarray(ramp, format="bgr24").reformat(format="yuv420p",
                                                                      dst_color_range=ColorRange.JPEG)
    frame.pts, frame.time_base = 0, Fraction(1, 15)
    turned = media.upright(frame, 90)
    assert turned.color_range == ColorRange.JPEG
    assert np.abs(turned.to_ndarray(format="bgr24").astype(int) - np.rot90(ramp, 1)).max() < 4


def test_a_portrait_phone_recording_is_analysed_and_drawn_upright(tmp_path):
    path, boxes, _ = phone_clip(tmp_path / "portrait.mp4", 90)
    run = subprocess.run([sys.executable, "-m", "cli.main", "process", str(path), "--out", str(tmp_path / "out"),
                          "--workers", "1"], env=child_env(VIDFARM_DATA_DIR=str(tmp_path / "data")),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (results["source"]["width"], results["source"]["height"]) == UPRIGHT
    assert len(results["frames"]) == len(boxes)
    # Found on every frame, the box on the photo's face in upright pixels (the face fills the
    # photo's middle: its centre lies inside the photo, its height a third of it or more).
    for entry, (x1, y1, x2, y2) in zip(results["frames"], boxes):
        assert len(entry["faces"]) == 1, entry
        bx1, by1, bx2, by2 = entry["faces"][0]["box"]
        assert x1 < (bx1 + bx2) / 2 < x2 and y1 < (by1 + by2) / 2 < y2
        assert by2 - by1 > (y2 - y1) / 3 and by2 - by1 > bx2 - bx1     # upright: taller than wide
    with av.open(str(tmp_path / "out" / "annotated.mp4")) as video:
        frames = list(video.decode(video=0))
    assert len(frames) == len(boxes)
    assert (frames[0].width, frames[0].height, frames[0].rotation) == (*UPRIGHT, 0)   # upright as stored
