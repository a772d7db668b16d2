"""``Picture``: one decoded frame that analyzers read at the size they need.

Decoded video is YUV. Converting every full-resolution frame to BGR costs as much as
decoding it, yet the detector only looks at a 640-pixel-wide copy. A Picture converts on
demand, scaling and converting in one swscale pass, and caches each size it produced.
The swscale context for each size is kept across frames (see ``reformatter``).
"""

from __future__ import annotations

import threading

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

_KEPT = 8                       # sizes one thread keeps a scaler for (the detector's, the motion stage's, ...)
_local = threading.local()


def reformatter(size: tuple[int, int]) -> VideoReformatter:
    """This thread's swscale context for output ``size``, kept across frames.

    ``frame.to_ndarray(width=, ...)`` builds a fresh context for every frame: filter tables and
    a thread pool (one thread a core) each time, then throws them away. Keeping one a size makes
    the detector's 640x360 copy of a 720p frame 0.7 ms instead of 1.2-1.5 ms of CPU (1080p:
    1.2 instead of 2.0; bench.bgr_copy), with the same pixels. Per thread because a context is
    not safe to share between threads; per size because swscale rebuilds it when the size
    changes, and a frame is asked for several (the detector's, the motion stage's)."""
    kept = _local.__dict__.setdefault("by_size", {})
    if size not in kept:
        if len(kept) >= _KEPT:
            del kept[next(iter(kept))]          # the oldest: sizes that follow faces come and go
        kept[size] = VideoReformatter()
    return kept[size]


class Picture:
    def __init__(self, frame: av.VideoFrame | None = None, bgr: np.ndarray | None = None):
        if (frame is None) == (bgr is None):
            raise ValueError("give either a decoded frame or a BGR array")
        self.frame = frame
        self._source_bgr = bgr
        self.width, self.height = (frame.width, frame.height) if frame is not None else (bgr.shape[1], bgr.shape[0])
        self._cache: dict[tuple, np.ndarray] = {}

    @classmethod
    def of(cls, image: "Picture | np.ndarray") -> "Picture":
        return image if isinstance(image, Picture) else cls(bgr=image)

    def bgr(self, long_side: int | None = None) -> tuple[np.ndarray, float]:
        """BGR pixels with the long side at most ``long_side``, and the scale (output pixels
        per source pixel). Coordinates found on the copy divide by the scale."""
        scale = 1.0
        if long_side and max(self.width, self.height) > long_side:
            scale = long_side / max(self.width, self.height)
        return self.bgr_at((max(1, round(self.width * scale)), max(1, round(self.height * scale)))), scale

    def bgr_at(self, size: tuple[int, int]) -> np.ndarray:
        """BGR pixels at exactly ``size`` (width, height), scaled up or down."""
        if size not in self._cache:
            self._cache[size] = self._convert(size)
        return self._cache[size]

    def derived(self, key: tuple, make):
        """``make(self)``, made once per picture: analyzers that read the same copy (the motion
        stage and the tracker's thumbnail read one grey copy) share it, and a copy made for the
        next frame to compare with is made once."""
        if key not in self._cache:
            self._cache[key] = make(self)
        return self._cache[key]

    def _convert(self, size: tuple[int, int]) -> np.ndarray:
        full = (self.width, self.height)
        if self.frame is not None:
            # One swscale thread: the farm runs one analysis per core already. At the frame's own
            # size too: ``to_ndarray`` made a context a frame, with a thread a core, and the same
            # pixels (tests/test_picture.py) cost about 0.04 ms more of CPU at 360p to 1080p on a
            # busy machine, 0.1-0.4 ms on a quieter one (issue 14, branch cost14).
            return reformatter(size).reformat(self.frame, *size, format="bgr24", threads=1).to_ndarray()
        if size == full:
            return self._source_bgr
        # INTER_AREA averages when shrinking but repeats pixels when enlarging: blocky faces
        # shift the detector's boxes. Enlarge bilinearly, as insightface's own detect does.
        shrinking = size[0] * size[1] < full[0] * full[1]
        return cv2.resize(self._source_bgr, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
