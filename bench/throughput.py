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


def naive_loop(src: Path, out: Path) -> float:
    """cv2.VideoCapture -> the same detector on every frame -> draw -> cv2.VideoWriter,
    one process, library defaults (the detector may use every core)."""
    import os

    detector = FaceDetector(DetectorConfig(threads=os.cpu_count() or 1))
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(src))
    fps = capture.get(cv2.CAP_PROP_FPS)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(draw_faces(frame, detector(frame)))
    capture.release()
    writer.release()
    return time.perf_counter() - started


def codec_floor(src: Path, out: Path, preset: str, threads: int = 0) -> float:
    """PyAV decode + libx264 encode of the whole clip, no model: the least any pipeline pays."""
    info = media.probe(src)
    started = time.perf_counter()
    with media.H264Writer(out, info.width, info.height, info.tb, info.fps, preset=preset,
                          threads=threads) as writer:
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


def farm(src: Path, workers: int, data_dir: Path, out_dir: Path, analyzers: str | None = None) -> dict:
    """The embedded farm with N worker processes, timed from submit to done (workers started
    and warm first, as in a running farm). Runs in a child process: one farm per client
    process, as the CLI does. Returns wall time and the overhead breakdown."""
    import subprocess
    import sys

    args = [sys.executable, "-m", "bench.farm_run", str(src), str(workers), str(data_dir), str(out_dir)]
    run = subprocess.run(args + ([analyzers] if analyzers else []), capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"farm run failed: {run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])
