"""16-bit radiometric recordings through the media layer: gray16 in FFV1 or PNG inside
Matroska decode to exact uint16 values, and probe / plan / split handle them."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.clipmaker import make_clip
from workers import media
from workers.analytics.picture import Picture
from workers.analytics.thermal import TLINEAR_CENTIKELVIN, RadiometricPicture, is_radiometric, picture_of_frame

FPS, FRAMES, SIZE = 8, 16, (96, 64)


def raw_frames() -> list[np.ndarray]:
    """Frames that use the whole 16-bit range (high bytes differ, low bytes too), so a
    decoder that drops to 8 bits or swaps bytes shows."""
    rng = np.random.default_rng(16)
    return [rng.integers(0, 65536, (SIZE[1], SIZE[0]), dtype=np.uint16) for _ in range(FRAMES)]


def write_ffv1_mkv(path: Path, frames: list[np.ndarray]) -> Path:
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "gray16le"
        stream.codec_context.gop_size = 4            # a keyframe every half second
        for index, raw in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(raw, format="gray16le")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_png_mkv(path: Path, source: Path) -> Path:
    """PNG inside Matroska, as FFmpeg writes it (PyAV itself refuses to: Matroska holds PNG only
    in its VFW compatibility mode). imageio-ffmpeg ships the ffmpeg binary (dev requirement)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(source),
                    "-c:v", "png", "-pix_fmt", "gray16be", str(path)], check=True)
    return path


def decoded(path: Path) -> list[np.ndarray]:
    return [frame.to_ndarray() for frame in media.decode_frames(path)]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("radiometric")
    frames = raw_frames()
    ffv1 = write_ffv1_mkv(folder / "ffv1.mkv", frames)
    return frames, {"ffv1": ffv1, "png": write_png_mkv(folder / "png.mkv", ffv1)}


@pytest.mark.parametrize("codec, pix_fmt", [("ffv1", "gray16le"), ("png", "gray16be")])
def test_gray16_decodes_to_exact_uint16(recordings, codec, pix_fmt):
    frames, paths = recordings
    with av.open(str(paths[codec])) as container:
        stream = container.streams.video[0]
        assert container.format.name.startswith("matroska")
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == (codec, pix_fmt)
    out = decoded(paths[codec])
    assert len(out) == FRAMES
    assert all(o.dtype == np.uint16 and o.shape == (SIZE[1], SIZE[0]) for o in out)
    assert all(np.array_equal(o, f) for o, f in zip(out, frames))     # native byte order, all 16 bits
    assert is_radiometric(paths[codec])


@pytest.mark.parametrize("codec", ["ffv1", "png"])
def test_probe_plan_and_split_keep_every_raw_frame(recordings, tmp_path, codec):
    frames, paths = recordings
    info = media.probe(paths[codec])
    assert (info.video_codec, info.width, info.height, info.frames) == (codec, *SIZE, FRAMES)
    assert info.fps == pytest.approx(FPS) and info.duration_s == pytest.approx(FRAMES / FPS)
    plans = media.plan_segments(info, 0.5)
    assert len(plans) == 4 and sum(p.frames for p in plans) == FRAMES
    # NUT segments: PyAV would write PNG into no Matroska file (Matroska holds PNG only in its
    # VFW compatibility mode, and PyAV asks FFmpeg for normal compliance).
    files = media.split_segments(paths[codec], info, plans, tmp_path / "split")
    joined = [raw for f in files for raw in decoded(f)]
    assert all(np.array_equal(o, f) for o, f in zip(joined, frames)) and len(joined) == FRAMES
    assert [len(decoded(f)) for f in files] == [p.frames for p in plans]


def test_radiometric_picture_from_a_decoded_frame(recordings):
    frames, paths = recordings
    frame = next(media.decode_frames(paths["png"]))
    picture = RadiometricPicture.from_frame(frame, TLINEAR_CENTIKELVIN)
    assert np.array_equal(picture.raw, frames[0])
    assert picture.bgr()[0].shape == (SIZE[1], SIZE[0], 3)


def test_ordinary_video_is_not_radiometric(tmp_path, recordings):
    clip = make_clip(tmp_path / "colour.mp4", seconds=1, fps=8, audio=False, face_windows=[])
    assert not is_radiometric(clip.path)
    frame = next(media.decode_frames(clip.path))
    assert type(picture_of_frame(frame, TLINEAR_CENTIKELVIN)) is Picture
    raw_frame = next(media.decode_frames(recordings[1]["ffv1"]))
    assert isinstance(picture_of_frame(raw_frame, TLINEAR_CENTIKELVIN), RadiometricPicture)
    assert type(picture_of_frame(raw_frame, None)) is Picture
    with pytest.raises(ValueError, match="not a radiometric frame"):
        RadiometricPicture.from_frame(frame, TLINEAR_CENTIKELVIN)
