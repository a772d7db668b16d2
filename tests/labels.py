"""Reading labels back from an annotated video: is what a frame shows what the results say?

A label is checked where it is drawn: the expected label is drawn onto the decoded source
frame (as the farm would) and the label's rectangle is compared, luma pixel by pixel, with
the annotated frame. Another text there (another track number, a name, a bare score) differs
in its glyphs and in its rectangle's width; H.264 re-encoding alone differs by a few levels.
Measured on a 960x540 clip (crf 23): the label drawn 2.5-3.2 levels off, one glyph changed
("#1" for "#2") 11.6, a name for a track number 30 or more.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from workers.annotate import Label, draw_labels_i420, i420_planes, label_area

# Mean absolute luma difference over a label's rectangle: below, the frame shows that label.
SAME_LABEL = 7.0


def frames_i420(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="yuv420p") for frame in container.decode(video=0)]


def label_difference(annotated: np.ndarray, source: np.ndarray, label: Label) -> float:
    """How far the annotated frame's pixels, in ``label``'s rectangle, are from ``label``
    drawn on the source frame."""
    expected = draw_labels_i420(source.copy(), [label])
    luma_expected, luma_annotated = i420_planes(expected)[0], i420_planes(annotated)[0]
    height, width = luma_expected.shape
    x1, y1, x2, y2 = label_area(label, (width, height))
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2 + 1), min(height, y2 + 1)
    region = (slice(y1, y2), slice(x1, x2))
    return float(np.abs(luma_expected[region].astype(np.int16) - luma_annotated[region].astype(np.int16)).mean())


def shows(annotated: np.ndarray, source: np.ndarray, label: Label) -> bool:
    return label_difference(annotated, source, label) < SAME_LABEL
