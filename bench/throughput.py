"""Throughput of the farm against the loop a user would write, the codec floor and the
detector alone, on one clip. Each function returns seconds of wall time for the whole clip.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2

from workers import media
from workers.analytics.detector import DetectorConfig, FaceDetector
from workers.annotate import draw_faces


NAIVE_LOOPS = {
    "insightface": "insightface's SCRFD as its documentation uses it: 640x640 input, default "
                   "session (onnxruntime takes every core)",
    "vidfarm": "vidfarm's FaceDetector (aspect-kept 640x384 input for 16:9, lean decoding), every core",
    "vidfarm-1-thread": "vidfarm's FaceDetector on one inference thread",
}


def naive_detector(variant: str):
    """The detector of one naive loop: frame (BGR) -> Faces. Every variant runs SCRFD-500M at the
    same image scale and threshold, so each finds the same faces; they differ in cost only."""
    import os

    from workers import models
    from workers.analytics.faces import Faces

    if variant == "insightface":
        from insightface.model_zoo import model_zoo

        model = model_zoo.get_model(str(models.model_path(DetectorConfig().model_file)))
        model.prepare(ctx_id=-1, input_size=(640, 640), det_thresh=DetectorConfig().threshold)

        def detect(frame):
            boxes, keypoints = model.detect(frame)
            return Faces(boxes=boxes[:, :4], scores=boxes[:, 4], keypoints=keypoints)
        return detect
    threads = 1 if variant == "vidfarm-1-thread" else os.cpu_count() or 1
    return FaceDetector(DetectorConfig(threads=threads))


def naive_loop(src: Path, out: Path, variant: str = "insightface") -> tuple[float, int]:
    """cv2.VideoCapture -> a detector on every frame -> draw -> cv2.VideoWriter (mp4v), one
    process: what a user would write first. Returns wall seconds and the faces found."""
    detector = naive_detector(variant)
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(src))
    fps = capture.get(cv2.CAP_PROP_FPS)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    found = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        faces = detector(frame)
        found += len(faces)
        writer.write(draw_faces(frame, faces))
    capture.release()
    writer.release()
    return time.perf_counter() - started, found


def codec_floor(src: Path, out: Path, preset: str, threads: int = 0, crf: int = 23, params: str = "") -> float:
    """PyAV decode + libx264 encode of the whole clip, no model: the least any pipeline pays."""
    info = media.probe(src)
    started = time.perf_counter()
    with media.H264Writer(out, info.width, info.height, info.tb, info.fps, preset=preset,
                          threads=threads, crf=crf, params=params) as writer:
        pts = sorted(p.pts for p in info.packets)
        for frame, timestamp in zip(media.decode_frames(src, threads=threads), pts):
            writer.write(frame if writer.fits(frame) else writer.canvas(frame.to_ndarray(format="bgr24")),
                         timestamp)
    return time.perf_counter() - started


def detector_alone(src: Path, frames: int = 150, threads: int = 1) -> float:
    """Seconds per frame of the detector on decoded frames (decode not counted)."""
    detector = FaceDetector(DetectorConfig(threads=threads))
    images = [f.to_ndarray(format="bgr24") for _, f in zip(range(frames), media.decode_frames(src))]
    detector(images[0])  # warm-up
    started = time.perf_counter()
    for image in images:
        detector(image)
    return (time.perf_counter() - started) / len(images)


def farm(src: Path, workers: int, data_dir: Path, out_dir: Path, analyzers: str | None = None,
         env: dict[str, str] | None = None, keep_results: bool = False) -> dict:
    """The embedded farm with N worker processes, timed from submit to done (workers started
    and warm first, as in a running farm). Runs in a child process: one farm per client
    process, as the CLI does. ``env``: settings for this farm (``VIDFARM_*``). Returns wall
    time and the overhead breakdown; ``keep_results``: results.json stays in ``out_dir``
    (``farm{workers}-results.json``)."""
    import os
    import subprocess
    import sys

    args = [sys.executable, "-m", "bench.farm_run", str(src), str(workers), str(data_dir), str(out_dir)]
    run = subprocess.run(args + ([analyzers] if analyzers else []), capture_output=True, text=True, check=False,
                         env={**os.environ, **(env or {})})
    if not keep_results:
        (out_dir / f"farm{workers}-results.json").unlink(missing_ok=True)
    if run.returncode != 0:
        raise RuntimeError(f"farm run failed: {run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])
