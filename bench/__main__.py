"""`make bench`: measures the farm and writes docs/benchmarks.md, then appends the
autoscaler simulations (bench/autoscaler.py, bench/live_scaling.py; no farm needed).

Then a quiet camera and busy footage with and without the motion gate and the stream copy
(bench/quiet_hour.py, bench/busy.py), the load test (bench/load.py), the encoder comparison
(bench/encoder.py), the live latency (bench/live_latency.py: real footage over RTSP; skipped
without ../shared/media) and a live frame's cost per stage with and without the detect pace
(bench/live_frame_cost.py; same footage), the web process's start (bench/web_process.py) and the embedded
farm's start (bench/startup.py).

``python -m bench --only throughput [--rounds N] [--clips generated,hamilton]`` re-runs the first
part alone (the throughput tables at the head of the page) and keeps every other section, written
again after each clip; ``--rounds`` (default 3) is how many times each naive loop and farm run is
repeated (fewer where the machine is too loaded for three to finish: the page says how many, and
the load average at the start and the end); ``--clips`` picks and orders the clips.

Clips: a generated 720p30 30 s recording with real faces (always) and the shared hamilton
clip (skipped when ../shared/media is absent). Every figure of one clip comes from one run,
so the ratios compare like with like on a shared, noisy machine.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench import (autoscaler, busy, encoder as encoder_bench, live_frame_cost, live_latency, live_scaling, load,
                   quiet_hour, startup, throughput, web_process)
from bench.shared_media import HAMILTON
from core.settings import Settings
from tests.clipmaker import make_clip
from workers import media

ROOT = Path(__file__).resolve().parents[1]
DETECT_ONLY = "detect"   # the throughput comparison runs the same detector as the naive loop


CLIPS = ("generated", "hamilton")
ROUNDS = 3   # every timed run is repeated, interleaved, and the best kept: neighbours on a
             # shared VM only ever add time, so the minimum is the steadiest figure


def best_of(runs: list[dict]) -> dict:
    return min(runs, key=lambda run: run["wall_s"])


def measure(src: Path, work: Path, encoder: Settings, rounds: int = ROUNDS) -> dict:
    info = media.probe(src)
    print(f"== {src.name}: {info.width}x{info.height} {info.fps:.2f} fps, {info.frames} frames", flush=True)
    row = {"clip": src.name, "size": f"{info.width}x{info.height}", "fps": info.fps,
           "frames": info.frames, "duration_s": info.duration_s}
    row["codec_floor_s"] = throughput.codec_floor(src, work / "floor.mp4", encoder.x264_preset,
                                                  crf=encoder.x264_crf, params=encoder.x264_params)
    print(f"   codec floor     {row['codec_floor_s']:.1f} s", flush=True)
    row["detector_ms"] = 1000 * throughput.detector_alone(src)
    print(f"   detector alone  {row['detector_ms']:.1f} ms/frame (1 thread)", flush=True)
    runs: dict[str, list[dict]] = {}
    for round_ in range(rounds):
        for variant in throughput.NAIVE_LOOPS:
            wall, faces = throughput.naive_loop(src, work / "naive.mp4", variant)
            runs.setdefault(f"naive:{variant}", []).append({"wall_s": wall, "faces": faces})
            print(f"   naive loop ({variant}) {wall:.1f} s, {faces} faces", flush=True)
        for workers in (1, 2):
            result = throughput.farm(src, workers, work / f"farm{workers}-{round_}", work, DETECT_ONLY)
            runs.setdefault(f"farm{workers}", []).append(result)
            print(f"   farm, {workers} worker{'s' * (workers > 1)} {result['wall_s']:.1f} s "
                  f"(overhead {result['overhead_s']:.2f} s), {result['faces']} faces", flush=True)
    row.update({name: best_of(results) for name, results in runs.items()})
    row["farm2_all"] = throughput.farm(src, 2, work / "farm2all", work)
    print(f"   farm, 2 workers, all analyzers {row['farm2_all']['wall_s']:.1f} s", flush=True)
    row["farm2_all_ungated"] = throughput.farm(src, 2, work / "farm2all-ungated", work, env=quiet_hour.MODES["every frame"])
    print(f"   farm, 2 workers, all analyzers, no motion gate or stream copy {row['farm2_all_ungated']['wall_s']:.1f} s",
          flush=True)
    return row


def _verdict(row: dict) -> str:
    ratio = row["naive:insightface"]["wall_s"] / row["farm2"]["wall_s"]
    overhead = 100 * row["farm2"]["overhead_s"] / row["farm2"]["job_wall_s"]
    return (f"{row['clip']} {ratio:.2f}x ({'met' if ratio >= 1.7 else 'not met'}), "
            f"overhead {overhead:.1f} % ({'met' if overhead <= 5 else 'not met'})")


def rtf(row: dict, seconds: float) -> str:
    return f"{seconds:.1f} s ({row['duration_s'] / seconds:.2f}x)"


def _repeats(rounds: int) -> str:
    if rounds == 1:
        return ("Each naive loop and farm run ran once (`--rounds 1`; "
                "a single run is noisier than the fastest of several, which a shared VM's neighbours "
                "only ever slow)")
    return (f"Each naive loop and farm run is repeated {rounds} times, interleaved, and the fastest kept "
            "(the machine is a shared VM)")


def render(rows: list[dict], encoder: Settings, command: str = "make bench", rounds: int = ROUNDS,
           load: tuple[float, float] | None = None) -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    overloaded = bool(load) and max(load) > (os.cpu_count() or 1)   # more work waiting than cores
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} cores ({cpu}), CPU only, x264 preset `{encoder.x264_preset}`, CRF {encoder.x264_crf}, options "
        f"`{encoder.x264_params or '(none)'}`. {_repeats(rounds)}."
        + (f" Load average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the end: other work shared "
           "the cores, so compare the ratios of one run, not its seconds with another run's." if load else "")
        + (" With more work waiting than there are cores, the kernel shares them by thread, so a run's time says "
           "how much of the cores it got as much as how much work it did; our reading (as below) is that a loop "
           "whose model's threads wait for each other at every step loses more to such load than the farm's "
           "independent workers, so this run's ratios over the naive loops are likely larger than an idle "
           "machine gives." if overloaded else ""),
        "Real-time factor (RTF) = recording duration / wall time: above 1 is faster than real time.",
        "",
        "| clip | frames | codec floor (RTF) | detector alone | naive loop (RTF) | farm, 1 worker (RTF) "
        "| farm, 2 workers (RTF) | 2 workers / naive | overhead, 2 workers | end imbalance | faces found: naive / farm |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        naive, f1, f2 = r["naive:insightface"], r["farm1"], r["farm2"]
        lines.append(
            f"| {r['clip']} ({r['size']}, {r['fps']:.2f} fps, {r['duration_s']:.1f} s) | {r['frames']} "
            f"| {rtf(r, r['codec_floor_s'])} | {r['detector_ms']:.1f} ms/frame | {rtf(r, naive['wall_s'])} "
            f"| {rtf(r, f1['wall_s'])} | {rtf(r, f2['wall_s'])} | **{naive['wall_s'] / f2['wall_s']:.2f}x** "
            f"| {100 * f2['overhead_s'] / f2['job_wall_s']:.1f} % ({f2['overhead_s']:.2f} s: lead "
            f"{f2['lead_s']:.2f} s with split {f2['split_s']:.2f} s, tail {f2['tail_s']:.2f} s with stitch "
            f"{f2['stitch_s']:.2f} s, gaps {f2['gaps_s']:.2f} s a worker; {f2['segments']} segments) "
            f"| {f2['imbalance_s']:.2f} s | {naive['faces']} / {f2['faces']} |")
    lines += [
        "",
        "How each column is measured:",
        "- *codec floor*: PyAV decode + libx264 encode of every frame in one process, no model.",
        "- *detector alone*: vidfarm's SCRFD-500M detector on decoded frames, one thread, per frame "
        "(decode excluded).",
        "- *naive loop*: `cv2.VideoCapture` -> SCRFD-500M on every frame -> draw -> `cv2.VideoWriter` "
        "(mp4v), one process: what a user would write first, with " + throughput.NAIVE_LOOPS["insightface"]
        + ". It sees each frame at the same scale and threshold as the farm's detector; its faces and those "
        "of the same loop with vidfarm's detector code (below) differ only where a score sits within 0.02 "
        "of the 0.5 threshold, which the larger letterbox padding tips (5 of 621 on hamilton). The farm's "
        "count (last column) also moves with what the farm adds in video: the motion gate carries still "
        "faces, and the second looks at moving regions keep faces under the threshold.",
        "- *farm*: `vidfarm`'s embedded farm (private Redis, N Celery workers of one process each), "
        "running the `detect` analyzer alone (the naive loop detects only) with its defaults for video: "
        "the motion gate, and the second looks at moving regions with RetinaFace vouching for a look's weak "
        "boxes (`second_look.confirm`; the per-track analyzers' table below runs every analyzer); timed "
        "from submit to its annotated video (the job is `done` once its results are "
        "published; the same workers then draw the video from them, a segment each), with workers "
        "already started and one small job done first (as in a running farm: the first job pays "
        "one-time imports and connections); the output is H.264 with the source's audio and timestamps.",
        "- *overhead*: split + queue + stitch, from the records' timestamps: the lead (submit -> first "
        "segment starts: store, probe, split, dispatch), the tail (last segment ends -> done: chord "
        "callback, stitch, results) and the gaps (a worker idle between two of its segments, "
        "averaged over the workers); as a share of the time to `done`.",
        "- *end imbalance*: how long the first worker to finish idled while the other ran its last "
        "segment. Segments hold equal frame counts (cut mid-GOP where needed), not equal work: "
        "frames with faces cost more to analyse.",
        "",
        "Targets (issue 2): 2 workers >= 1.7x the naive loop; overhead <= 5 % of wall time. In this run: "
        + "; ".join(_verdict(r) for r in rows) + "."
        + (" The targets are for a machine the farm has to itself: at this run's load (above) these verdicts "
           "are this run's, not the farm's." if overloaded else ""),
        "",
        "Between runs of `make bench` the naive loop is the figure that moves most, while the farm's "
        "stay put. Its model runs on both cores at once; our reading is that a busy neighbour on this "
        "shared VM slows that more than two independent workers. Compare the ratios of one run, and "
        "expect the next run's to differ by a few tenths" + (" at a load under the cores, and by far more "
                                                             "above them, as in this run." if overloaded else "."),
        "",
        "The overhead is mostly a fixed cost per job (Celery hand-offs, probe, split, stitch), so it "
        "is a larger share of a short clip on a faster machine, and machines of this kind differ "
        "between sessions (this file's history holds runs where the detector alone was twice as "
        "fast as in others): a short clip's overhead share moves with them.",
        "",
        "## How much of that is the farm, and how much the detector code",
        "",
        "The farm's detector does less work than the naive loop's: its input keeps the frame's aspect "
        "ratio (640x384 for 16:9 instead of a letterboxed 640x640) and it decodes only the anchors over "
        "the threshold. The same naive loop given vidfarm's detector code isolates what the farm's "
        "parallelism adds:",
        "",
        "| clip | naive loop, vidfarm's detector, all cores (RTF) | 2 workers / it "
        "| naive loop, vidfarm's detector, 1 inference thread (RTF) | 2 workers / it |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        f2, tuned, single = r["farm2"]["wall_s"], r["naive:vidfarm"]["wall_s"], r["naive:vidfarm-1-thread"]["wall_s"]
        lines.append(f"| {r['clip']} | {rtf(r, tuned)} | {tuned / f2:.2f}x | {rtf(r, single)} | {single / f2:.2f}x |")
    lines += [
        "",
        "Against the tuned loop the farm's gain is bounded by what that loop already runs in parallel: "
        "onnxruntime spreads the model over both cores inside one process, and the model is most of a "
        "frame's cost, so two worker processes can only add the parallelism of decode, drawing and "
        "encoding. On one machine the farm pays for itself in throughput only against loops that do not "
        "thread their model; its other gains are the ones this table does not show: many recordings at "
        "once, more machines, retries, and H.264 output with the source's audio and timestamps.",
        "",
        "## The cost of the per-track analyzers",
        "",
        "Recognition and mask run per track (a few sampled frames each, fewer once a track is settled); "
        "tracking and thermal are cheap per frame. Same clips, farm with 2 workers:",
        "",
        "| clip | detection only (RTF) | all analyzers: detect, track, recognize, mask, thermal (RTF) | added "
        "| all analyzers, motion gate and stream copy off (RTF) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        d, only, full = r["duration_s"], r["farm2"]["wall_s"], r["farm2_all"]["wall_s"]
        ungated = r["farm2_all_ungated"]["wall_s"]
        lines.append(f"| {r['clip']} | {only:.1f} s ({d / only:.2f}x) | {full:.1f} s ({d / full:.2f}x) "
                     f"| {100 * (full - only) / only:+.0f} % | {ungated:.1f} s ({d / ungated:.2f}x) |")
    return "\n".join(lines) + "\n"


# The first section another benchmark owns: the throughput run writes everything above it.
FIRST_OTHER_SECTION = "\n## Autoscaler: vidfarm's policy against KEDA"


def write_throughput_only(text: str, out: Path) -> None:
    """Replace the head of docs/benchmarks.md (the throughput tables) and keep every other
    benchmark's section as it is (``python -m bench --only throughput``)."""
    old = out.read_text()
    _, found, rest = old.partition(FIRST_OTHER_SECTION)
    if not found:
        raise SystemExit(f"{out} has no {FIRST_OTHER_SECTION.strip()!r} section: run the whole `make bench`")
    out.write_text(text.rstrip("\n") + "\n" + found + rest)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench", description="measure the farm, write docs/benchmarks.md")
    parser.add_argument("--only", choices=("throughput",), help="re-run the throughput tables alone")
    parser.add_argument("--clips", type=lambda text: tuple(text.split(",")), default=CLIPS,
                        help="the clips to measure, in this order, of: generated, hamilton (default: both)")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help=f"repeats of each naive loop and farm run, the fastest kept (default {ROUNDS})")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if set(args.clips) - set(CLIPS) or not args.clips or len(set(args.clips)) < len(args.clips):
        parser.error(f"--clips: name one or both of, once each, {', '.join(CLIPS)} (got {','.join(args.clips)})")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1 (got {args.rounds})")
    only_throughput = args.only == "throughput"
    if not only_throughput and args.clips != CLIPS:
        parser.error("--clips goes with --only throughput (make bench measures every clip)")
    load_start = os.getloadavg()[0]
    encoder = Settings()   # the farm's encoder settings (VIDFARM_X264_*), for the codec floor too
    work = Path(tempfile.mkdtemp(prefix="vidfarm-bench-"))
    out = ROOT / "docs" / "benchmarks.md"
    command = "python -m bench --only throughput" + (f" --rounds {args.rounds}" if args.rounds != ROUNDS else "") + (
        f" --clips {','.join(args.clips)}" if args.clips != CLIPS else "")
    try:
        rows = []
        for name in args.clips:
            if name == "hamilton" and not HAMILTON.is_file():
                print(f"skipping the hamilton clip: {HAMILTON} is absent")
                continue
            clip = HAMILTON if name == "hamilton" else make_clip(
                work / "generated_720p30_30s.mp4", seconds=30, fps=30, size=(1280, 720), photo_height=300, gop=60,
                face_windows=[(0, 10), (14, 30)]).path
            rows.append(measure(clip, work, encoder, args.rounds))
            if only_throughput:   # after each clip: a run stopped on a later clip leaves the ones it finished
                write_throughput_only(render(rows, encoder, command, args.rounds,
                                             (load_start, os.getloadavg()[0])), out)
                print(f"wrote the throughput tables of {out} ({len(rows)} clip{'s' * (len(rows) > 1)})", flush=True)
        if only_throughput:
            if not rows:
                print("nothing measured: every clip named is absent", file=sys.stderr)
                return 1
            return 0
        out.parent.mkdir(exist_ok=True)
        whole = "make bench" if args.rounds == ROUNDS else f"python -m bench --rounds {args.rounds}"
        out.write_text(render(rows, encoder, whole, args.rounds, (load_start, os.getloadavg()[0])))
        autoscaler.update_doc(out)
        live_scaling.update_doc(out)
        quiet_hour.main(["10", "--write"])
        busy.main(["--write"])
        live_latency.main_in_bench()
        live_frame_cost.main(["--write"])
        load.main([])
        encoder_bench.update_doc(out)
        web_process.update_doc(out)
        startup.main(["--write"])
        print(f"wrote {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
