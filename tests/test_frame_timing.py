"""One reading of a frame rate from frame times (``workers.frame_timing``), for uploads, RTSP
cameras and browser cameras alike: the browser's encoder is opened at the rate its first
pictures' times say, as a camera's segments are timed, on real PyAV frames."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from workers.frame_timing import encoder_rate, frame_rate, frame_ticks
from workers.live.browser import _frame_rate

RTP = Fraction(1, 90000)


def pictures(pts: list[int]) -> list[av.VideoFrame]:
    frames = []
    for t in pts:
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        frame.pts, frame.time_base = t, RTP
        frames.append(frame)
    return frames


def test_a_browser_s_pictures_out_of_order_read_the_rate_a_camera_s_would():
    """Times in arrival order with two pictures swapped: the median step of the sorted times
    (a camera's reading) is one frame; the steps in arrival order skip the late one and read half
    the rate."""
    pts = [0, 3000, 9000, 6000, 12000, 15000, 21000, 18000]
    assert frame_rate(frame_ticks(pts), RTP) == 30
    assert _frame_rate(pictures(pts)) == 30


def test_a_browser_at_29_97_fps_opens_its_encoder_at_30000_1001():
    pts = [3003 * n for n in range(8)]
    assert _frame_rate(pictures(pts)) == Fraction(30000, 1001)
    assert encoder_rate(pts, RTP) == Fraction(30000, 1001)


def test_pictures_whose_times_say_no_rate_are_taken_at_30():
    assert _frame_rate(pictures([0, 0, 0])) == 30
    assert encoder_rate([5], RTP) == 30
