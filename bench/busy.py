"""Busy recordings with the motion gate and the stream copy on and off, in one run.

``python -m bench.busy [--write]``: the generated 720p30 clip of ``make bench`` (a face
gliding across a textured scene for 26 of its 30 seconds) and a generated 1080p25 one (three
faces, the whole time), through the embedded farm (2 workers, all analyzers), as configured
and with ``VIDFARM_MOTION_GATE=false VIDFARM_STREAM_COPY=false``; and where each frame's
milliseconds go (:func:`bench.quiet_hour.frame_costs`). With ``--write`` it replaces its
section of docs/benchmarks.md. Where nothing is still, the gate can only cost: this measures
how much.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench import quiet_hour, throughput
from bench.docs import measure_and_write

SECTION = "## Busy recordings: motion gate and stream copy on and off"


def clips(work: Path) -> dict[str, Path]:
    from tests.clipmaker import make_clip

    return {
        "generated 720p30, 30 s, one face": make_clip(work / "busy720.mp4", seconds=30, fps=30, size=(1280, 720),
                                                      photo_height=300, gop=60, face_windows=[(0, 10), (14, 30)]).path,
        "generated 1080p25, 20 s, one large face": make_clip(work / "busy1080.mp4", seconds=20, fps=25,
                                                             size=(1920, 1080), photo_height=400, gop=50,
                                                             face_windows=[(0, 20)]).path,
    }


def measure(work: Path) -> list[dict]:
    from workers import media

    rows = []
    for name, path in clips(work).items():
        info = media.probe(path)
        row = {"clip": name, "duration_s": info.duration_s, "frames": info.frames, "load": os.getloadavg()}
        for mode, env in quiet_hour.MODES.items():
            row[mode] = throughput.farm(path, 2, work / f"data-{path.stem}-{mode[:5]}", work / "out", env=env)
            print(f"{name}, {mode}: {row[mode]['wall_s']:.1f} s", flush=True)
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
        "table). Load average at the start of each clip's runs beside it (the machine is shared).",
        "",
        "| clip | load | gate + copy (RTF) | both off (RTF) | ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        d, on, off = r["duration_s"], r["gated"]["wall_s"], r["every frame"]["wall_s"]
        lines.append(f"| {r['clip']} | {r['load'][0]:.1f} | {on:.1f} s ({d / on:.2f}x) | {off:.1f} s ({d / off:.2f}x) "
                     f"| {off / on:.2f} |")
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
