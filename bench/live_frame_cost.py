"""Live frame cost: where a live 720p15 camera frame's CPU goes, with the detector on every
frame and at a capped detect rate (``VIDFARM_LIVE_DETECT_FPS``), and what the cap costs in faces.

``python -m bench.live_frame_cost [--write]`` (part of ``make bench``): the live latency
bench's camera stream (``short_hamilton_clip.mp4``, a performer, a pianist and an audience
that moves everywhere, scaled to 1280x720 at 15 fps, a keyframe a second), played twice (20 s),
cut as a camera's ingester cuts it into 2 s segments, each analysed in this process as the
live task analyses it: a fresh segment state, every analyzer, the gallery of the two people
of the clip, one thread for models and codecs (as each worker of a 2-core farm runs).

Per setting, CPU milliseconds per frame (CPU, not wall time: the machine is shared) of the
decode and of each analyzer; the settings alternate over ``ROUNDS`` rounds in one run, so
their ratios are comparable. Accuracy against the detector on every frame with the motion
gate off (the reference): the reference's faces found on the same frame (box IoU >= 0.5),
tracks per segment, and of the matched faces those with the reference's name. With
``--write`` it replaces its section of docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench.docs import measure_and_write
from core.defaults import LIVE_DETECT_FPS
from bench.live_latency import FOOTAGE, PEOPLE, make_stream
from bench.quiet_hour import timed_frame

SECTION = "## Live frame cost"
FPS, SEGMENT_S, LOOPS, ROUNDS = 15, 2, 2, 2
ANALYZERS = ("detect", "track", "recognize", "mask", "thermal")
REFERENCE = "every frame, no gate"
# (name, analyzer configs, detect_fps): the reference, live cameras before the cap, the caps tried.
SETTINGS = [(REFERENCE, {"detect": {"gate": {"enabled": False}}}, 0.0),
            ("every frame (before)", {}, 0.0),
            ("detect_fps 7.5", {}, 7.5),
            # a smaller detector input on top of the pace: measured, not the default
            ("detect_fps 7.5, detector input 480", {"detect": {"input_long_side": 480}}, 7.5),
            ("detect_fps 5", {}, 5.0),
            ("detect_fps 3", {}, 3.0)]


def gallery_of_people():
    """The two people of the clip, embedded from their photos as enrolment does."""
    import cv2

    from workers.analytics.detector import DetectorConfig, FaceDetector
    from workers.analytics.gallery import Gallery
    from workers.analytics.recognizer import FaceEmbedder

    detector, embedder, rows = FaceDetector(DetectorConfig()), FaceEmbedder(), []
    for photo in PEOPLE:
        image = cv2.imread(str(photo))
        faces = detector(image)
        rows.append((photo.stem, embedder.embed(image, faces.keypoints[0]).tobytes()))
    return Gallery.from_rows(rows)


def analyse(src: Path, configs: dict, detect_fps: float, gallery) -> dict:
    """The stream in 2 s segments through the chain; CPU seconds per stage, each frame's faces
    (as results.json has them), tracks per segment and the detector's model runs."""
    import cv2

    from bench.eval_clips import pipeline_config
    from workers import media, pipeline
    from workers.analytics.detect_pace import fill_between_looks
    from workers.analytics.tracks import SegmentState

    cv2.setNumThreads(1)
    info = media.probe(src)
    pts = sorted(p.pts for p in info.packets)
    config = pipeline_config(ANALYZERS, configs)
    chain = pipeline.analyzer_chain(config.analyzers, config.analyzer_configs, config.plugins)
    runs = chain[0].model_runs
    costs: dict[str, float] = defaultdict(float)
    frames: list[list[dict]] = []
    looked: list[bool] = []         # per frame: did the detector look (False: carried)
    segments: list[SegmentState] = []

    def finish(state: SegmentState) -> None:
        """A segment's end, as analyse_segment ends one: carried faces follow their track."""
        fill_between_looks(state.faces)
        frames.extend(faces.to_json() for faces in state.faces)
        looked.extend(not faces.carried for faces in state.faces)

    clock = time.process_time()
    for n, item in enumerate(media.segment_frames(src, pts, info.tb, threads=1)):
        costs["decode"] += time.process_time() - clock
        if n % (FPS * SEGMENT_S) == 0:      # a new segment: what the live task starts with
            if segments:
                finish(segments[-1])
            segments.append(SegmentState(info.fps, gallery, detect_fps))
            for analyzer in chain:
                analyzer.begin(segments[-1])
        timed_frame(chain, segments[-1], item.frame, costs)
        clock = time.process_time()
    finish(segments[-1])
    return {"seconds": dict(costs), "frames": frames, "looked": looked,
            "tracks": sum(len(state.tracks) for state in segments), "model_runs": chain[0].model_runs - runs}


def agreement(run: dict, reference: dict) -> dict:
    """The reference's faces this run has on the same frame (IoU >= 0.5), and of those, the
    ones with the reference's name (None included: an unknown face must stay unknown). Of the
    faces missed, ``unseen_at_look``: those the reference itself did not find on the frame of
    this run's last look (the detector's score flickers about its threshold on them: no pace
    that skips that frame can carry them)."""
    from workers.analytics.tracks import box_iou

    def best(face, faces) -> tuple[float, int]:
        overlaps = [box_iou(face["box"], other["box"]) for other in faces]
        return (max(overlaps), overlaps.index(max(overlaps))) if overlaps else (0.0, -1)

    total = found = same_name = named = unseen = extra = 0
    last_look = 0
    for i, (ours, theirs) in enumerate(zip(run["frames"], reference["frames"])):
        last_look = i if run["looked"][i] else last_look
        extra += sum(best(face, theirs)[0] < 0.5 for face in ours)
        for face in theirs:
            total += 1
            named += face["identity"] is not None
            overlap, row = best(face, ours)
            if overlap >= 0.5:
                found += 1
                same_name += ours[row]["identity"] == face["identity"]
            else:
                unseen += best(face, reference["frames"][last_look])[0] < 0.5
    return {"reference_faces": total, "found": found, "same_name": same_name, "reference_named": named,
            "unseen_at_look": unseen, "extra": extra,
            "named": sum(face["identity"] is not None for faces in run["frames"] for face in faces)}


def measure(work: Path) -> dict:
    stream = make_stream(work / f"hamilton-720p{FPS}.mp4", FPS, LOOPS)
    gallery = gallery_of_people()
    load_before = os.getloadavg()[0]
    totals: dict[str, dict[str, float]] = {name: defaultdict(float) for name, _, _ in SETTINGS}
    last: dict[str, dict] = {}
    for _ in range(ROUNDS):
        for name, configs, detect_fps in SETTINGS:
            last[name] = analyse(stream, configs, detect_fps, gallery)
            for stage, seconds in last[name]["seconds"].items():
                totals[name][stage] += seconds
    frames = len(last[REFERENCE]["frames"])
    rows = []
    for name, _, detect_fps in SETTINGS:
        ms = {stage: round(1000 * seconds / (ROUNDS * frames), 2) for stage, seconds in totals[name].items()}
        rows.append({"setting": name, "detect_fps": detect_fps, "ms_per_frame": ms,
                     "total_ms": round(sum(ms.values()), 2), "model_runs": last[name]["model_runs"],
                     "tracks": last[name]["tracks"], **agreement(last[name], last[REFERENCE])})
    reference_frames = [[face["box"][3] - face["box"][1] for face in faces] for faces in last[REFERENCE]["frames"]]
    return {"frames": frames, "reference_frames": reference_frames, "rounds": ROUNDS, "load": [load_before, os.getloadavg()[0]],
            "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "rows": rows}


def render(figures: dict) -> str:
    rows = figures["rows"]
    before = next(r for r in rows if r["setting"] == "every frame (before)")
    stages = list(before["ms_per_frame"])
    lines = [
        SECTION,
        "",
        f"`python -m bench.live_frame_cost --write` (part of `make bench`), {figures['when']} UTC: the live latency "
        f"bench's camera stream (`short_hamilton_clip.mp4`: a performer, a pianist, an audience moving everywhere; "
        f"1280x720, {FPS} fps, a keyframe a second), {figures['frames']} frames, cut into {SEGMENT_S} s segments "
        "as a camera's ingester cuts it, each analysed in one process as the live task does (fresh segment state, "
        "every analyzer, the two people of the clip in the gallery, one thread for models and codecs, as each "
        "worker of a 2-core farm runs). CPU milliseconds per frame, the settings alternated over "
        f"{figures['rounds']} rounds in one run; the 2 cores were **shared with other developers' jobs** (load "
        f"average {figures['load'][0]:.1f} before, {figures['load'][1]:.1f} after): compare the ratios.",
        "",
        "`detect_fps` (`VIDFARM_LIVE_DETECT_FPS`, live cameras only): the detector looks at most this many frames "
        "a second (a segment's first frame, then the first of each 1/detect_fps s); the frames between carry its "
        "last look's faces (box, score, keypoints), which the tracker, the names and the mask votes follow; "
        "recognition and mask sample only looked-at frames. *every frame (before)*: live cameras before the cap "
        "(motion gate on, as configured). Faces: the reference's (detector on every frame, gate off) found on the "
        "same frame with box IoU >= 0.5; *unseen at the look*: missed faces the reference itself did not find on "
        "the frame of the setting's last look before (its score flickers about the threshold: a pace that does "
        "not look at that frame cannot carry them; the rest are boxes that moved since the look); *faces the reference has not*: this setting's faces with no "
        "reference face on their frame at IoU >= 0.5 (carried past where the person went, or a flicker carried); "
        "names: of the "
        "faces found, the share with the reference's name (unknown included).",
        "",
        "| setting | " + " | ".join(stages) + " | **total** | vs before | model runs | faces found | "
        "of the missed, unseen at the look | faces the reference has not | same name | tracks |",
        "| --- | " + " | ".join("---" for _ in stages) + " | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        share = 100 * r["found"] / max(1, r["reference_faces"])
        named = 100 * r["same_name"] / max(1, r["found"])
        lines.append(f"| {r['setting']} | " + " | ".join(f"{r['ms_per_frame'].get(s, 0):.2f}" for s in stages)
                     + f" | **{r['total_ms']:.2f}** | {r['total_ms'] / before['total_ms']:.2f} | {r['model_runs']} "
                     f"| {share:.1f} % | {r['unseen_at_look']} of {r['reference_faces'] - r['found']} "
                     f"| {r['extra']} | {named:.1f} % | {r['tracks']} |")
    reference = rows[0]
    heights = sorted(h for faces in figures["reference_frames"] for h in faces)
    chosen = next((r for r in rows if r["detect_fps"] == LIVE_DETECT_FPS), None)
    detect_share = 100 * before["ms_per_frame"].get("detect", 0) / before["total_ms"]
    lines += ["", f"Where a live frame went before the pace: the detector {detect_share:.0f} % of its CPU "
                  f"({before['ms_per_frame'].get('detect', 0):.2f} of {before['total_ms']:.2f} ms; the motion stage and "
                  f"second looks included), with as many model runs as without the gate ({before['model_runs']} "
                  f"against {reference['model_runs']}: the audience moves everywhere, so the gate passes every frame); "
                  "recognition and the mask vote next (ArcFace and MobileNetV2 on a track's sampled frames), then "
                  "decoding; tracking under a millisecond."]
    if chosen is not None:
        lines += ["", f"The default, `VIDFARM_LIVE_DETECT_FPS={LIVE_DETECT_FPS:g}`: "
                      f"{chosen['total_ms'] / before['total_ms']:.2f} of the CPU per frame of live cameras before "
                      f"({chosen['total_ms']:.2f} against {before['total_ms']:.2f} ms), "
                      f"{100 * chosen['found'] / max(1, chosen['reference_faces']):.1f} % of the reference's faces "
                      f"(the bar of *A quiet camera*: 98 %) and {chosen['extra']} faces it has not, "
                      f"{100 * chosen['same_name'] / max(1, chosen['found']):.1f} % of the names, "
                      f"{chosen['tracks']} tracks against "
                      f"{reference['tracks']}. Uploads keep every frame (a camera's recordings keep its live analysis)."]
    lines += ["", f"The reference has {reference['reference_faces']} faces (face x frame) in {figures['frames']} "
                  f"frames, {reference['reference_named']} of them named, in {reference['tracks']} tracks "
                  f"(summed over segments); their heights: {heights[0]:.0f} px at the least, median "
                  f"{heights[len(heights) // 2]:.0f} px (of the 720 px frame). The smaller detector input (480 "
                  "instead of `VIDFARM_DETECTOR_INPUT`=640) is measured, not adopted: compare its faces found with "
                  "the pace's alone (a camera that sees people farther away would lose more)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if not FOOTAGE.is_file():
        print(f"skipping the live frame cost bench: {FOOTAGE} is absent")
        return 0
    measure_and_write(measure, render, "--write" in argv, "vidfarm-live-cost-")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
