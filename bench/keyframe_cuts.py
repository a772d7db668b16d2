"""Cuts moved to keyframes (``VIDFARM_KEYFRAME_SNAP``) against equal mid-GOP cuts, on busy footage.

``python -m bench.keyframe_cuts [--work DIR] [--clips 720,1080,generated] VARIANT...``: each clip
(Hamilton (real) at 720p30 and 1080p25, which need ``../shared/media``, and the generated 720p30
clip, made afresh as ``bench.busy`` makes them, in DIR if given, and kept there) through a fresh
embedded farm (2 workers, all analyzers, as configured) once per VARIANT, in the order given:
alternate them (``default KEYFRAME_SNAP=0.5 KEYFRAME_SNAP=0.5 default``), the machine is shared.
A VARIANT is ``bench.segment_length``'s: ``NAME=VALUE`` settings without their ``VIDFARM_``
prefix, or ``default``.

Prints one JSON line a run: the load average before and after, the farm's CPU seconds during the
job (``bench.farm_run``'s ``cpu_s``: what the cut saves), the wall times (only on a quiet machine
worth reading), the segments' frames and how many frames before their first one each decodes,
how long the first worker to finish would wait for the last, in frames, with 2, 3 and 4 workers,
where work followed frames (``modelled_end_wait``), the workers' task seconds from their logs (the analyses and the
drawings: wall, not CPU), how long one worker waited for the other at the end of each, and the
faces found, with how many of the first run's (per frame, box IoU >= 0.5) and the frames where
either run has a face the other lacks. Figures go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path

from bench import busy, farm_timeline, quiet_hour
from bench.segment_length import farm_results, settings_env
from bench.shared_media import HAMILTON

CLIPS = {"720": "Hamilton (real) scaled to 720p30", "1080": "Hamilton (real) scaled to 1080p25",
         "generated": "generated 720p30, 30 s, one face"}
HAMILTON_CLIPS = {"720", "1080"}      # made by bench.busy.real_clips from ../shared/media


def planned(clip: Path, env: dict[str, str]) -> list[tuple[int, int]]:
    """(frames, frames decoded before the first) of each segment the ingest plans under ``env``."""
    from core.settings import Settings
    from workers import media

    settings = Settings(**{name.removeprefix("VIDFARM_").lower(): value for name, value in env.items()})
    info = media.probe(clip)
    plans = media.plan_segments(info, settings.segment_seconds, settings.min_segments, settings.max_segments,
                                settings.max_segment_seconds, settings.keyframe_snap)
    first_frame_of_packet = {}
    shown = sorted((p.pts, i) for i, p in enumerate(info.packets) if p.shown)
    for frame, (_, packet) in enumerate(shown):
        first_frame_of_packet[packet] = frame
    return [(p.frames, p.start_frame - first_frame_of_packet.get(p.first_packet, p.start_frame)) for p in plans]


def modelled_end_wait(frames: list[int], workers: int) -> int:
    """How many frames' work the first worker to finish waits for the last, where work follows
    frames and free workers pull the segments in plan order (the Redis queue is FIFO)."""
    ends = [0] * workers
    for size in frames:
        ends[ends.index(min(ends))] += size
    return max(ends) - min(ends)


def task_seconds(log_dir: Path) -> dict:
    """The timed job's analyses and drawings from the workers' logs: their seconds (wall), and
    how long the first worker to finish each kind waited for the last."""
    job = farm_timeline.last_job(farm_timeline.spans(log_dir))
    out = {}
    for name, key in (("segment", "analyses"), ("render_segment", "drawings")):
        spans = [s for s in job if s.name == name]
        ends = {}
        for s in spans:
            ends[s.worker] = max(ends.get(s.worker, 0.0), s.end)
        out[f"{key}_s"] = round(sum(s.end - s.start for s in spans), 2)
        out[f"{key}_end_wait_s"] = round(max(ends.values()) - min(ends.values()), 2) if len(ends) > 1 else 0.0
    return out


def clips(work: Path, chosen: list[str]) -> dict[str, Path]:
    """The chosen clips by key, made in ``work`` as ``bench.busy`` makes them."""
    by_name = {}
    if "generated" in chosen:
        by_name[CLIPS["generated"]] = busy.generated_clip(work, CLIPS["generated"])
    if HAMILTON_CLIPS & set(chosen):
        by_name |= busy.real_clips(work)
    return {key: by_name[CLIPS[key]] for key in chosen}


def _boxes(results: dict) -> list[list]:
    return [[face["box"] for face in frame["faces"]] for frame in results["frames"]]


def _cuts(segments: list[tuple[int, int]]) -> list[int]:
    """The frames the segments after the first start at."""
    return list(itertools.accumulate(frames for frames, _ in segments[:-1]))


def rows(work: Path, chosen: list[str], variants: list[str]):
    """One dict a run, clip by clip, each clip's variants in the order given."""
    for key, clip in clips(work, chosen).items():
        first = None
        for index, variant in enumerate(variants):
            env = settings_env(variant)
            load = os.getloadavg()[0]
            figures, results = farm_results(clip, work, f"{key}-{index}", env, log_figures=task_seconds)
            first = first or results
            total, matched, missed = quiet_hour.boxes_found(_boxes(results), _boxes(first))
            _, _, only_here = quiet_hour.boxes_found(_boxes(first), _boxes(results))
            segments = planned(clip, env)
            yield {"clip": CLIPS[key], "run": variant, "load": [round(load, 1), round(os.getloadavg()[0], 1)],
                   "cpu_s": round(figures["cpu_s"], 2), "wall_s": round(figures["wall_s"], 2),
                   "results_s": round(figures["results_wall_s"], 2),
                   "segments": [f for f, _ in segments], "decoded_before": sum(b for _, b in segments),
                   "modelled_end_wait_frames": {w: modelled_end_wait([f for f, _ in segments], w) for w in (2, 3, 4)},
                   **{k: v for k, v in figures.items() if k.startswith(("analyses", "drawings"))},
                   "faces": figures["faces"], "first_run_faces_found": [matched, total],
                   "first_run_faces_missed_on": sorted(set(missed)),
                   "faces_the_first_run_missed_on": sorted(set(only_here)), "cuts": _cuts(segments)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.keyframe_cuts", description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, metavar="DIR",
                        help="make the clips and run the farms in DIR, and keep it (default: a temporary folder)")
    parser.add_argument("--clips", default=",".join(CLIPS), type=lambda value: value.split(","), metavar="KEYS",
                        help=f"comma-separated, of {', '.join(CLIPS)} (default: all)")
    parser.add_argument("variants", nargs="*", metavar="VARIANT", help="NAME=VALUE,... settings, or default",
                        default=["default", "KEYFRAME_SNAP=0.5", "KEYFRAME_SNAP=0.5", "default"])
    args = parser.parse_args(argv)
    if unknown := [key for key in args.clips if key not in CLIPS]:
        parser.error(f"no such clip: {', '.join(unknown)}")
    if HAMILTON_CLIPS & set(args.clips) and not HAMILTON.is_file():    # said now, not after the first clip's runs
        parser.error(f"the Hamilton clips need {HAMILTON}, which is absent (or choose --clips generated)")
    with contextlib.nullcontext(args.work) if args.work else tempfile.TemporaryDirectory(prefix="vidfarm-cuts-") as folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for row in rows(Path(folder), args.clips, args.variants):
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
