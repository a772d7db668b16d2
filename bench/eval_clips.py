"""Short videos made from photos, run through the farm's own segment pipeline.

A photo is pasted (edges feathered into the scene) on a real background that scikit-image
ships (a rocket launch site, a café table, a garage with a motorcycle, a brick wall), scaled
to a given height (40, 80 or 220 pixels, or filling the frame's height: a close-up), and moves a
little from frame to frame as a person does. The clip is H.264 at 1280x720, decoded and
analysed by ``workers.pipeline.analyse_segment`` exactly as a segment task does it.
"""

from __future__ import annotations

import json
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np

from workers import media, pipeline

FRAME_SIZE = (1280, 720)
SCALES = (("close-up", None), ("220 px", 220), ("80 px", 80), ("40 px", 40))
FRAMES = 8
FPS = 10


@lru_cache(maxsize=1)
def backgrounds() -> tuple[np.ndarray, ...]:
    import skimage.data as data

    scenes = [data.rocket(), data.coffee(), data.stereo_motorcycle()[0], np.dstack([data.brick()] * 3)]
    return tuple(cv2.resize(cv2.cvtColor(s, cv2.COLOR_RGB2BGR), FRAME_SIZE, interpolation=cv2.INTER_LINEAR)
                 for s in scenes)


def paste(photo: np.ndarray, scene: np.ndarray, height: int | None, place: tuple[float, float]
          ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The scene with the photo ``height`` pixels tall (None: the frame's height) at ``place``
    (fractions of the free room), and the rectangle it covers."""
    frame = scene.copy()
    frame_h, frame_w = frame.shape[:2]
    height = height or frame_h
    scale = height / photo.shape[0]
    patch = cv2.resize(photo, (max(1, round(photo.shape[1] * scale)), height),
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if patch.shape[1] > frame_w:
        left = (patch.shape[1] - frame_w) // 2
        patch = patch[:, left:left + frame_w]
    ph, pw = patch.shape[:2]
    x, y = int(place[0] * (frame_w - pw)), int(place[1] * (frame_h - ph))
    edge = max(1, min(ph, pw) // 16)
    alpha = np.zeros((ph, pw), np.float32)
    alpha[edge:ph - edge, edge:pw - edge] = 1
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(edge / 2, 0.5))[..., None]
    region = frame[y:y + ph, x:x + pw].astype(np.float32)
    frame[y:y + ph, x:x + pw] = (patch * alpha + region * (1 - alpha)).astype(np.uint8)
    return frame, (x, y, x + pw, y + ph)


def photo_clip(path: Path, photo: np.ndarray, height: int | None, seed: int) -> list[tuple[int, int, int, int]]:
    """Encode a clip of the photo moving over one of the backgrounds; per frame, where it is."""
    scene = backgrounds()[seed % len(backgrounds())]
    start = ((seed * 0.37) % 1 * 0.8, (seed * 0.61) % 1 * 0.8)
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = *FRAME_SIZE, "yuv420p"
    stream.options = {"preset": "ultrafast", "crf": "18"}
    stream.codec_context.gop_size = FRAMES
    boxes = []
    for index in range(FRAMES):
        frame, box = paste(photo, scene, height, (start[0] + 0.02 * index, start[1] + 0.01 * index))
        boxes.append(box)
        video_frame = av.VideoFrame.from_ndarray(frame, format="bgr24")
        video_frame.pts, video_frame.time_base = index, Fraction(1, FPS)
        out.mux(stream.encode(video_frame))
    out.mux(stream.encode(None))
    out.close()
    return boxes


def analyse(path: Path, config: pipeline.PipelineConfig, gallery=None) -> pipeline.SegmentResult:
    """The clip through the segment pipeline, as one segment."""
    info = media.probe(path)
    return pipeline.analyse_segment(path, pipeline.whole_file(info), config, gallery)


def pipeline_config(analyzers: tuple[str, ...], configs: dict) -> pipeline.PipelineConfig:
    return pipeline.PipelineConfig(analyzers=analyzers, analyzer_configs=json.dumps(configs, sort_keys=True),
                                   threads=1)


def inside(face_box, rect) -> bool:
    """A detection counts for the pasted photo when its centre lies on it."""
    cx, cy = (face_box[0] + face_box[2]) / 2, (face_box[1] + face_box[3]) / 2
    return rect[0] <= cx <= rect[2] and rect[1] <= cy <= rect[3]
