"""A recording whose picture size changes mid-stream (a camera that switched resolution, two
clips joined without re-encoding): every picture is analysed and drawn at the recording's
size (its first picture's), the later ones scaled to it; boxes are in that size's pixels."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import pytest

from tests.clipmaker import background, face_photo
from tests.conftest import child_env
from workers import media, remux

FIRST, SECOND = (480, 270), (640, 360)
FPS, PART = 15, 45          # frames of each part: three 15-frame GOPs


def _part(path: Path, size: tuple[int, int], codec: str, face_frames: int) -> None:
    """A raw stream (Annex B, parameter sets in-band) with a face photo, half the picture
    high, on its first ``face_frames`` frames."""
    out = av.open(str(path), "w", format="h264" if codec == "libx264" else "hevc")
    stream = out.add_stream(codec, rate=FPS)
    stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
    stream.options = ({"preset": "ultrafast", "x264-params": "keyint=15:min-keyint=15:scenecut=0"}
                      if codec == "libx264" else {"x265-params": "keyint=15:min-keyint=15:bframes=0:log-level=none"})
    photo = face_photo()
    high = size[1] // 2
    patch = cv2.resize(photo, (round(photo.shape[1] * high / photo.shape[0]), high))
    for i in range(PART):
        picture = background(*size)
        if i < face_frames:
            picture[20:20 + high, 10 + 2 * i:10 + 2 * i + patch.shape[1]] = patch
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
    out.close()


def resized_recording(folder: Path, codec: str = "libx264") -> Path:
    """Two parts joined as they are, the second at another size, in an MP4: faces throughout
    the first part and in the second part's first GOP only (its later GOPs have nothing to draw)."""
    first, second, joined = folder / "a.raw", folder / "b.raw", folder / "joined.raw"
    _part(first, FIRST, codec, PART)
    _part(second, SECOND, codec, 15)
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    path = folder / "resized.mp4"
    with av.open(str(joined)) as source, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        stream.time_base = Fraction(1, FPS)
        for i, packet in enumerate(p for p in source.demux(video=0) if p.size):
            packet.stream, packet.time_base = stream, Fraction(1, FPS)
            packet.pts, packet.dts, packet.duration = i, i, 1
            out.mux(packet)
    return path


def test_pictures_of_another_size_come_at_the_recordings_size(tmp_path):
    path = resized_recording(tmp_path)
    info = media.probe(path)
    assert (info.width, info.height, info.frames) == (*FIRST, 2 * PART)
    segment = media.split_segments(path, info, media.plan_segments(info, 100.0), tmp_path / "segments")[0]
    pts = sorted(p.pts for p in info.packets if p.shown)
    sizes = {(item.frame.width, item.frame.height)
             for item in media.segment_frames(segment, pts, info.tb, pts_offset=info.pts_offset)}
    assert sizes == {FIRST}


def test_gops_of_another_size_are_not_copied_into_the_annotated_video(tmp_path):
    """Drawing by copying untouched GOPs (``workers.remux``): the second part's GOPs, with
    nothing to draw, bring their own picture size; they are decoded and scaled instead."""
    path = resized_recording(tmp_path)
    info = media.probe(path)
    segment = media.split_segments(path, info, media.plan_segments(info, 100.0), tmp_path / "segments")[0]
    pts = sorted(p.pts for p in info.packets if p.shown)
    assert remux.stream_copyable(segment, *FIRST)
    writer = media.H264Writer(tmp_path / "drawn.mp4", *FIRST, info.tb, FPS)
    stages = remux.render_copying(segment, writer, pts, info.tb, lambda slot: slot < 15, lambda frame, slot: frame,
                                  threads=1, pts_offset=info.pts_offset)
    assert stages["copy"] > 0     # the first part's untouched GOPs are still copied
    with av.open(str(tmp_path / "drawn.mp4")) as video:
        sizes = [(frame.width, frame.height) for frame in video.decode(video=0)]
    assert len(sizes) == 2 * PART and set(sizes) == {FIRST}


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_a_recording_that_changes_size_is_analysed_and_drawn_at_one_size(tmp_path, codec):
    path = resized_recording(tmp_path, codec)
    run = subprocess.run([sys.executable, "-m", "cli.main", "process", str(path), "--out", str(tmp_path / "out"),
                          "--workers", "1"], env=child_env(VIDFARM_DATA_DIR=str(tmp_path / "data"),
                                                           VIDFARM_SEGMENT_SECONDS="2"),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (results["source"]["width"], results["source"]["height"], results["source"]["fps"]) == (*FIRST, FPS)
    assert len(results["frames"]) == 2 * PART
    # The second part's face, scaled with its picture: at the first part's size (half its height).
    faces = [entry["faces"] for entry in results["frames"]]
    assert [len(f) for f in faces] == [1] * (PART + 15) + [0] * (PART - 15)
    for found in faces[PART:PART + 15]:
        x1, y1, x2, y2 = found[0]["box"]
        assert 0 <= x1 < x2 <= FIRST[0] and 0 <= y1 < y2 <= FIRST[1] / 2 + 20
    with av.open(str(tmp_path / "out" / "annotated.mp4")) as video:
        sizes = [(frame.width, frame.height) for frame in video.decode(video=0)]
    assert len(sizes) == 2 * PART and set(sizes) == {FIRST}     # no GOP copied at the second size
