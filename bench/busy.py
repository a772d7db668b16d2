"""Busy recordings with the motion gate and the stream copy on and off, in one run.

``python -m bench.busy [--write]``: the generated 720p30 clip of ``make bench`` (a face
gliding across a textured scene for 26 of its 30 seconds), a generated 1080p25 one (one large
face, the whole time) and, when ``../shared/media`` is there, its real Hamilton clip (a stage
performance, cuts to a pianist and the audience) scaled up to 720p30 and 1080p25, through the
embedded farm (2 workers, all analyzers), as configured and with ``VIDFARM_MOTION_GATE=false
VIDFARM_STREAM_COPY=false``, beside the tuned loop (vidfarm's own detector on every frame, every
core, one process: ``bench.throughput.naive_loop``) in the same run; and where each frame's
milliseconds go (:func:`bench.quiet_hour.frame_costs`). With ``--write`` it replaces its
section of docs/benchmarks.md. Where nothing is still, the gate can only cost: this measures
how much.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench import quiet_hour, throughput
from bench.bgr_copy import HAMILTON, scaled
from bench.docs import measure_and_write

SECTION = "## Busy recordings: motion gate and stream copy on and off"
REAL = "(real)"     # in the name of a clip made from real footage: issue 15's targets are checked on those


# The generated clips by name: the file each is made as in the work folder, and make_clip's recipe.
GENERATED = {
    "generated 720p30, 30 s, one face": ("busy720.mp4", dict(seconds=30, fps=30, size=(1280, 720), photo_height=300,
                                                              gop=60, face_windows=[(0, 10), (14, 30)])),
    "generated 1080p25, 20 s, one large face": ("busy1080.mp4", dict(seconds=20, fps=25, size=(1920, 1080),
                                                                     photo_height=400, gop=50, face_windows=[(0, 20)])),
}


def generated_clip(work: Path, name: str) -> Path:
    """One of the ``GENERATED`` clips, made in ``work``."""
    from tests.clipmaker import make_clip

    file, recipe = GENERATED[name]
    return make_clip(work / file, **recipe).path


def clips(work: Path) -> dict[str, Path]:
    return {name: generated_clip(work, name) for name in GENERATED} | real_clips(work)


def real_clips(work: Path) -> dict[str, Path]:
    """Hamilton's real 640x360 footage at the sizes issue 15's targets name, encoded as an IP
    camera sends it (veryfast, CRF 23, no B-frames, a keyframe every 2 s). Every source frame is
    kept at either rate, so at 25 fps it plays a fifth slower. Absent without ../shared/media."""
    if not HAMILTON.is_file():
        print(f"skipping the real clips: {HAMILTON} is absent", flush=True)
        return {}
    out = {}
    for height, rate in ((720, 30), (1080, 25)):
        path = work / f"hamilton{height}.mp4"
        scaled(HAMILTON, path, height, frames=None, rate=rate,
               options={"preset": "veryfast", "crf": "23", "bf": "0",
                        "x264-params": f"keyint={2 * rate}:min-keyint={2 * rate}:scenecut=0"})
        out[f"Hamilton {REAL} scaled to {height}p{rate}"] = path
    return out


def measure(work: Path) -> list[dict]:
    from workers import media

    rows = []
    for name, path in clips(work).items():
        info = media.probe(path)
        row = {"clip": name, "duration_s": info.duration_s, "frames": info.frames, "load": os.getloadavg()}
        for mode, env in quiet_hour.MODES.items():
            row[mode] = throughput.farm(path, 2, work / f"data-{path.stem}-{mode[:5]}", work / "out", env=env)
            print(f"{name}, {mode}: {row[mode]['wall_s']:.1f} s", flush=True)
        row["tuned_loop_s"], _ = throughput.naive_loop(path, work / "tuned.mp4", "vidfarm")
        print(f"{name}, tuned loop: {row['tuned_loop_s']:.1f} s", flush=True)
        row["frame_costs"] = quiet_hour.frame_costs(path, work)
        rows.append(row)
    return rows


def render(rows: list[dict]) -> str:
    lines = [
        SECTION,
        "",
        "`python -m bench.busy` (part of `make bench`): footage where something moves on every frame, through the "
        "embedded farm (2 workers, all analyzers), as configured and with the motion gate and the stream copy off, "
        "in one run; then CPU milliseconds per frame of each stage in one process (as in the quiet camera's "
        "table). The tuned loop: one process, vidfarm's detector on every frame with every core, drawing, "
        "writing mp4v (`bench.throughput.naive_loop`, variant `vidfarm`: it detects only, no recognition or mask, "
        "so it does less than the farm). Hamilton is real footage (640x360) scaled up, so its pixels have less "
        "detail than a camera's at that size; every source frame is kept (29.97 a second), so at 25 it lasts a fifth "
        "longer. "
        "Load average at the start of each clip's runs beside it (the machine is shared).",
        "",
        "| clip | load | gate + copy (RTF) | both off (RTF) | ratio | tuned loop (RTF) | farm / tuned loop |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        d, on, off = r["duration_s"], r["gated"]["wall_s"], r["every frame"]["wall_s"]
        tuned = r["tuned_loop_s"]
        lines.append(f"| {r['clip']} | {r['load'][0]:.1f} | {on:.1f} s ({d / on:.2f}x) | {off:.1f} s ({d / off:.2f}x) "
                     f"| {off / on:.2f} | {tuned:.1f} s ({d / tuned:.2f}x) | {tuned / on:.2f} |")
    real = [r for r in rows if REAL in r["clip"]]
    lines += ["", "Targets (issue 15, for busy real footage, all analyzers, 2 workers): 720p30 >= 2.5x real time and "
              ">= 1.7x the tuned loop; 1080p25 >= 1.2x real time. In this run"
              + (" (the real clips; the generated ones are not what the targets name):" if real else
                 ": no real footage (../shared/media absent), so not checked.")]
    for r in real:
        d, on, tuned = r["duration_s"], r["gated"]["wall_s"], r["tuned_loop_s"]
        wanted = (2.5, 1.7) if "720p" in r["clip"] else (1.2, None)
        verdict = f"{d / on:.2f}x real time ({'met' if d / on >= wanted[0] else 'not met'})"
        if wanted[1]:
            verdict += f", {tuned / on:.2f}x the tuned loop ({'met' if tuned / on >= wanted[1] else 'not met'})"
        lines.append(f"- {r['clip']} ({r['frames']} frames, {d:.1f} s): {verdict}")
    for r in rows:
        costs = r["frame_costs"]
        lines += ["", f"{r['clip']}, ms per frame:", "", "| stage | gate + copy | both off |", "| --- | --- | --- |"]
        for stage in costs["every frame"]:
            if stage != "render split":
                lines.append(f"| {stage} | {costs['gated'].get(stage, 0):.2f} | {costs['every frame'].get(stage, 0):.2f} |")
        total = {m: sum(v for k, v in costs[m].items() if k != "render split") for m in costs}
        lines.append(f"| **total** | **{total['gated']:.2f}** | **{total['every frame']:.2f}** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    measure_and_write(measure, render, "--write" in argv, "vidfarm-busy-")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
