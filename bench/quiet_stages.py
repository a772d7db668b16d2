"""The quiet camera's analysis, one process, two detector configurations compared.

``python -m bench.quiet_stages [--rounds N] [--minutes M] 'A-JSON' 'B-JSON'``: the first ``M``
minutes (default 2) of bench.quiet_hour's recording, cut into the farm's 4-s segments, each
analysed as a worker does (``pipeline.analyse_segment``, all analyzers, one thread), with the
detector configured by A and by B (JSON merged into the detector's config, e.g.
``'{"gate": {"track_looks": 0}}'``), alternating A, B, B, A, ... in one session so that both
meet the same load. ``--clip NAME`` analyses another recording the same way instead:
``hamilton720`` or ``hamilton1080`` (bench.busy's real clips, made once in CACHE) or a path.
It prints CPU milliseconds per frame of each stage, the detector's model runs (and the second
look's share), the gate's kinds of look (small: looks at the half-size copy, and those made
again at full size; the second detector's runs, ``confirm``), and the faces each found against
every-frame detection (the gate off; per frame, box IoU >= 0.5, as bench.quiet_hour counts).
CPU time, not wall time: the machine is shared. A tool for iterating on the gate (issue 15);
bench.quiet_hour is the figure of record.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from bench.quiet_hour import ANALYZERS, boxes_found, recording

CACHE = Path(tempfile.gettempdir()) / "vidfarm-quiet-stages"   # TMPDIR sets where


@contextmanager
def cache_held():
    """CACHE to this run alone while it makes what is missing there: two runs at once (two
    engineers comparing branches) would otherwise write the same recording or reference file
    together, and one of them read it half written."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
ROOT = Path(__file__).resolve().parent.parent


def excerpt(minutes: float) -> Path:
    """bench.quiet_hour's recording, its first ``minutes``, made once and kept in CACHE."""
    path = CACHE / f"quiet-{minutes:g}.mp4"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        recording(path, minutes)
    return path


def busy_clip(name: str) -> Path:
    """bench.busy's real clip ``hamilton720`` or ``hamilton1080`` (made once in CACHE), or the
    recording at path ``name``."""
    if name not in ("hamilton720", "hamilton1080"):
        return Path(name)
    from bench.busy import real_clips

    path = CACHE / f"{name}.mp4"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        real_clips(CACHE)
    return path


def code_digest() -> str:
    """A digest of the analysis code and its settings: the every-frame reference kept in CACHE
    is made again when they change (a detector change would otherwise be compared with the old
    detector's faces)."""
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "workers").rglob("*.py"), ROOT / "core" / "analyzer_configs.py"]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def segments(path: Path):
    """(segment file, SegmentJob) per 4-s segment, as ingest cuts them."""
    from dataclasses import replace

    from core.segment_job import SegmentJob, SourceMedia
    from workers import media

    info = media.probe(path)
    plans = media.plan_segments(info, 4.0)
    files = media.split_segments(path, info, plans, CACHE / f"{path.stem}-segments")
    source = replace(SourceMedia.of_summary(info.summary()), timed=True)
    return [(f, SegmentJob("bench", p.index, tuple(p.pts), source)) for f, p in zip(files, plans)]


class Timed:
    """An analyzer whose calls add their CPU seconds to ``costs[name]``."""

    def __init__(self, inner, costs: dict[str, float]):
        self.inner, self.costs = inner, costs

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, picture, faces):
        clock = time.process_time()
        out = self.inner(picture, faces)
        self.costs[self.inner.name] += time.process_time() - clock
        return out


def run(parts, detect: dict) -> dict:
    """Every segment analysed with the detector configured by ``detect``: CPU per stage, model
    runs, the gate's looks, and the faces per frame (boxes)."""
    from dataclasses import replace

    from bench.eval_clips import pipeline_config
    from workers import pipeline
    from workers.analytics import second_look

    detect = dict(detect)
    detect_fps = detect.pop("detect_fps", 0.0)     # a live camera's detect pace, to compare with
    config = replace(pipeline_config(ANALYZERS, {"detect": detect}), detect_fps=detect_fps)
    costs: dict[str, float] = defaultdict(float)
    chain = [Timed(a, costs) for a in pipeline.analyzer_chain(config.analyzers, config.analyzer_configs, config.plugins)]
    detector = chain[0].inner
    looks: dict[str, int] = defaultdict(int)
    record = second_look.SecondLook.record

    def counted(self, found):
        looks["second looks"] += len(found)
        looks["follow-ups"] += len(self.following)
        return record(self, found)

    second_look.SecondLook.record = counted
    # analyse_segment asks for its chain by name: it gets the timed one (each call builds a new
    # list of the cached analyzers, so wrapping the list it returned would time nothing).
    chain_of = pipeline.analyzer_chain
    pipeline.analyzer_chain = lambda *args: chain
    runs, small, frames, per_segment = detector.model_runs, (detector.small_looks, detector.small_misses), [], []
    confirms = detector.confirmer.runs if detector.confirmer is not None else 0
    total = time.process_time()
    try:
        for path, job in parts:
            clock, before = time.process_time(), costs["detect"]
            result = pipeline.analyse_segment(path, job, config)
            if detector.gate is not None:
                for kind, n in detector.gate.looks.items():
                    looks[kind] += n
            frames += [[face["box"] for face in faces] for faces in result.frames]
            per_segment.append((round(1000 * (time.process_time() - clock)), round(1000 * (costs["detect"] - before))))
    finally:
        second_look.SecondLook.record, pipeline.analyzer_chain = record, chain_of
    costs["decode and the rest"] = time.process_time() - total - sum(costs.values())
    looks["small"], looks["small, then full size"] = detector.small_looks - small[0], detector.small_misses - small[1]
    looks["confirm"] = detector.confirmer.runs - confirms if detector.confirmer is not None else 0
    n = len(frames)
    return {"ms": {k: 1000 * v / n for k, v in costs.items()}, "model runs": detector.model_runs - runs,
            "looks": dict(looks), "frames": frames, "segments": per_segment}


def main(argv: list[str]) -> int:
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 2
    minutes = float(argv[argv.index("--minutes") + 1]) if "--minutes" in argv else 2
    configs = [a for a in argv if a.startswith("{")]
    import cv2

    cv2.setNumThreads(1)
    with cache_held():
        clip = busy_clip(argv[argv.index("--clip") + 1]) if "--clip" in argv else excerpt(minutes)
        parts = segments(clip)
        reference_file = CACHE / f"every-frame-{clip.stem}-{code_digest()}.json"
        if not reference_file.is_file():
            reference_file.write_text(json.dumps(run(parts, {"gate": {"enabled": False}})["frames"]))
        every = json.loads(reference_file.read_text())
    print(f"{len(parts)} segments, {len(every)} frames, load {os.getloadavg()[0]:.1f}", flush=True)
    order = [i for r in range(rounds) for i in ((0, 1) if r % 2 == 0 else (1, 0))]
    for index in order:
        out = run(parts, json.loads(configs[index]))
        total, hit, missed = boxes_found(out["frames"], every)
        ms = " ".join(f"{k} {v:.2f}" for k, v in out["ms"].items())
        print(f"{'AB'[index]} {configs[index]}: total {sum(out['ms'].values()):.2f} ms/frame ({ms}); "
              f"runs {out['model runs']}; looks {out['looks']}; faces {hit}/{total}; load {os.getloadavg()[0]:.1f}",
              flush=True)
        if "--segments" in argv:
            print("   segments (ms, detect ms):", out["segments"], flush=True)
            print("   frames with a face missed:", missed, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
