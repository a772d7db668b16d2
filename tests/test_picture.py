"""A decoded frame's BGR copies: the same pixels as PyAV's scaler gives, made by a swscale
context kept across frames (building one per frame cost more than the scaling itself)."""

from __future__ import annotations

import threading

import av
import numpy as np
import pytest

from tests.clipmaker import make_clip
from workers.analytics import picture as picture_module
from workers.analytics.picture import Picture

DETECTOR_COPY = (640, 360)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    clip = make_clip(tmp_path_factory.mktemp("picture") / "720p.mp4", seconds=1, fps=5, size=(1280, 720), audio=False)
    with av.open(str(clip.path)) as container:
        return list(container.decode(video=0))


@pytest.fixture
def made(monkeypatch):
    """The scalers made, counted; each test starts with none kept."""
    made, real = [], picture_module.VideoReformatter

    def counted():
        made.append(real())
        return made[-1]

    monkeypatch.setattr(picture_module, "VideoReformatter", counted)
    monkeypatch.setattr(picture_module, "_local", threading.local())
    return made


def test_a_decoded_frames_copies_are_pyavs_scaled_pixels(frames):
    for frame in frames[:2]:
        picture = Picture(frame)
        np.testing.assert_array_equal(picture.bgr_at(DETECTOR_COPY),
                                      frame.to_ndarray(width=640, height=360, format="bgr24"))
        np.testing.assert_array_equal(picture.bgr()[0], frame.to_ndarray(format="bgr24"))


def test_one_scaler_a_size_serves_every_frame(frames, made):
    for frame in frames:
        picture = Picture(frame)
        picture.bgr_at(DETECTOR_COPY)
        picture.bgr_at((320, 180))
    assert len(frames) == 5 and len(made) == 2            # one for each size, not one a frame


def test_each_thread_has_its_own_scaler(frames, made):
    Picture(frames[0]).bgr_at(DETECTOR_COPY)
    other = threading.Thread(target=lambda: Picture(frames[1]).bgr_at(DETECTOR_COPY))
    other.start()
    other.join()
    assert len(made) == 2                                  # a swscale context is not shared between threads


def test_few_sizes_are_kept(frames, made):
    picture = Picture(frames[0])
    for width in range(100, 100 + 10 * picture_module._KEPT + 10, 10):
        picture.bgr_at((width, width // 2))
    assert len(picture_module._local.by_size) == picture_module._KEPT


def test_the_frames_own_size_is_pyavs_pixels_made_by_one_kept_scaler(frames, made):
    """``to_ndarray`` made a swscale context (and its threads) a frame; the kept one gives the
    same pixels, in the pixel formats decoders give too."""
    for pixel_format in ("yuv420p", "yuvj420p", "nv12", "yuv422p", "yuv420p10le"):
        for frame in frames[:2]:
            converted = frame.reformat(format=pixel_format)
            np.testing.assert_array_equal(Picture(converted).bgr()[0], converted.to_ndarray(format="bgr24"))
    assert len(made) == 1
