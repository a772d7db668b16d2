"""Per-frame analyze cost of the accuracy changes on ordinary footage, as a ratio in one run.

``python -m bench.analyze_cost [MEDIA_DIR]`` runs the segment pipeline with the analyzer chain
as it was (one detector pass, MobileNetV2 mask classifier) and as it is now (budgeted second
look at moving regions with RetinaFace vouching for their weak boxes, quality gate, the mask
label's three votes, the tracker's gap filling),
alternately, on ordinary footage: a generated 1280x720 clip of a face walking across a textured scene (unmasked; the face is
found by the first pass) and, when ``../shared/media`` is there, the hamilton clip and the
Intel walking clip. It prints the analyzers' CPU milliseconds per frame of each, their ratio, and the
faces each found (the second look's additions: small faces or false ones), and writes its
section of docs/benchmarks.md when given ``--write``.

``--area``: instead, the detector alone with and without the second look's moving-area look
(``area_share``, the close-up fix), on the same footage: its own section.
``--mask``: instead, the whole chain with the mask label as the mean of two classifiers and as
the mean of three (the lower-face cue, mirrored MobileNetV2): its own section.
``--gaps``: instead, the whole chain without and with the tracker's end-of-segment gap filling
(``max_gap_frames``): its own section, with the tracks each made.
``--follow``: instead, the whole chain without and with follow-up looks that continue their face
(``continue_faces``): its own section.
``--side``: instead, the whole chain with follow-up looks at the whole square that found their
face and sized to it (``follow_side``): its own section.
``--still``: instead, the whole chain with a look's weak boxes kept anywhere and only where a moving
blob overlaps them (``still_threshold``): its own section.
``--contrast``: instead, the whole chain without and with the mask gate's contrast floor
(``min_contrast``: a face too dark to judge gets no mask label): its own section.
``--offface``: instead, the whole chain with a look's weak boxes kept where a moving blob overlaps
them and with each candidate that asks more of them (their own motion, their keypoints, RetinaFace):
printed only (a one-off, dated section of docs/benchmarks.md holds it).
``--confirm``: instead, the whole chain without and with RetinaFace vouching for a look's weak
SCRFD boxes where the look kept no face (``confirm``): its own section, with the tracks each made
and the second detector's runs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from bench.eval_clips import pipeline_config
from bench.shared_media import MEDIA

CHAINS = {"before": {"detect": {"second_look": {"enabled": False}},
                     "mask": {"method": "mobilenet", "lower_face_cue": False, "flip_mobilenet": False},
                     "track": {"max_gap_frames": 0}}, "after": {}}
ANALYZERS = ("detect", "track", "recognize", "mask", "thermal")
# --area: the detector alone, without and with the look at the box around all the motion.
AREA_CHAINS = {"before": {"detect": {"second_look": {"area_share": 0}}}, "after": {}}
# --mask: the whole chain with the mask label as the mean of the two classifiers, and as now (the
# lower-face cue as a third vote, MobileNetV2 over the crop and its mirror image).
MASK_CHAINS = {"before": {"mask": {"lower_face_cue": False, "flip_mobilenet": False}}, "after": {}}
# --gaps: the whole chain without and with the tracker's gap filling at the segment's end.
GAP_CHAINS = {"before": {"track": {"max_gap_frames": 0}}, "after": {}}
# --follow: the whole chain with follow-up looks as any other look, and continuing their face.
FOLLOW_CHAINS = {"before": {"detect": {"second_look": {"continue_faces": False}}}, "after": {}}
# --side: the whole chain with follow-up looks as before issue 15's sizing, and sized to their face.
SIDE_CHAINS = {"before": {"detect": {"second_look": {"follow_side": 0}}}, "after": {}}
# --contrast: the whole chain without and with the mask gate's contrast floor (a dark face gets no label).
CONTRAST_CHAINS = {"before": {"mask": {"quality": {"min_score": 0.3, "min_contrast": 0}}}, "after": {}}
# --confirm: the whole chain without and with the second detector in the looks (RetinaFace, the default).
CONFIRM_CHAINS = {"before": {"detect": {"second_look": {"confirm": "none"}}}, "after": {}}
# --still: the whole chain with a look's weak boxes kept anywhere and only touching motion (the default).
STILL_CHAINS = {"before": {"detect": {"second_look": {"still_threshold": 0}}}, "after": {}}
# --offface: the whole chain as before offface14's second change (a weak look box kept where a moving blob
# overlaps it) and with each candidate that asks more of such a box (issue 14, detections off the face).
OFF = {"still_moving_share": 0, "still_landmarks": False, "still_confirm": False}
OFF_FACE_CHAINS = {"before": {"detect": {"second_look": OFF}},
                   "own motion": {"detect": {"second_look": {**OFF, "still_moving_share": 0.05}}},
                   "keypoints": {"detect": {"second_look": {**OFF, "still_landmarks": True}}},
                   "own motion + keypoints": {"detect": {"second_look": {**OFF, "still_moving_share": 0.05,
                                                                         "still_landmarks": True}}},
                   "RetinaFace": {"detect": {"second_look": {**OFF, "still_confirm": True}}}}
ROUNDS = 5          # alternations: CPU time on a shared machine still varies by a few per cent a run
TARGET_RATIO = 1.10


def footage(scratch: Path, media: Path | None) -> dict[str, Path]:
    from tests.clipmaker import make_clip

    clips = {"generated 1280x720 walking face": make_clip(scratch / "walk.mp4", seconds=6, fps=15, size=(1280, 720),
                                                           photo_height=200, audio=False).path}
    if media is not None and media.is_dir():
        clips["hamilton (640x360, 275 frames)"] = media / "videos" / "short_hamilton_clip.mp4"
        clips["intel walking (480x270, 35 frames)"] = media / "videos" / "intel_face-demographics-walking.mp4"
    return clips


def analyze_cpu_seconds(frames: list, configs: dict, fps: float, analyzers: tuple[str, ...] = ANALYZERS
                        ) -> tuple[float, int, int, int, int]:
    """CPU seconds (this process, one inference thread) the analyzer chain spends on the
    frames, run as the segment pipeline runs it (its end-of-segment step included), the faces
    it found, the frames on which the second look looked at the whole moving area, the
    tracks it made and the second detector's runs in the looks. CPU time, not wall
    time: on a machine shared with other work, wall time measures the neighbours too."""
    from workers.analytics.faces import Faces
    from workers.analytics.picture import Picture
    from workers.analytics.tracks import SegmentState
    from workers.pipeline import analyzer_chain

    import cv2

    cv2.setNumThreads(1)      # as the segment pipeline sets it
    config = pipeline_config(analyzers, configs)
    chain = analyzer_chain(config.analyzers, config.analyzer_configs, config.plugins)
    state = SegmentState(fps)
    for analyzer in chain:
        analyzer.begin(state)
    look = getattr(chain[0], "second_look", None)
    # The chain's analyzers are cached across calls (workers.pipeline): count this pass's runs only.
    confirmer = getattr(chain[0], "confirmer", None)
    confirm_runs = confirmer.runs if confirmer is not None else 0
    found, area_looks, started = 0, 0, time.process_time()
    for frame in frames:
        state.frame_index += 1
        faces, picture = Faces.empty(), Picture(frame)
        for analyzer in chain:
            faces = analyzer(picture, faces)
        state.faces.append(faces)
        area_looks += look is not None and look.area_index is not None
    for analyzer in chain:
        analyzer.end(state)
    found = sum(len(faces) for faces in state.faces)
    spent = time.process_time() - started
    return spent, found, area_looks, len(state.tracks), (confirmer.runs - confirm_runs if confirmer is not None else 0)


def measure(media: Path | None, chains: dict = CHAINS, analyzers: tuple[str, ...] = ANALYZERS) -> list[dict]:
    from workers import media as media_io

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, path in footage(Path(scratch), media).items():
            frames = list(media_io.decode_frames(path))
            fps = media_io.probe(path).fps
            seconds = {key: 0.0 for key in chains}
            faces, area_looks, tracks, confirm_runs = {}, {}, {}, {}
            for _ in range(ROUNDS):          # alternate, so that anything else running slows both alike
                for key, configs in chains.items():
                    spent, faces[key], area_looks[key], tracks[key], confirm_runs[key] = analyze_cpu_seconds(
                        frames, configs, fps, analyzers)
                    seconds[key] += spent
            if "after" not in chains:     # several candidates against one baseline (--offface)
                rows.append({"footage": name, "frames": len(frames),
                             **{k: {"ms_per_frame": round(v / ROUNDS / len(frames) * 1000, 2),
                                    "ratio": round(v / seconds["before"], 3), "faces": faces[k], "tracks": tracks[k],
                                    "confirm_runs": confirm_runs[k]} for k, v in seconds.items()}})
                continue
            rows.append({"footage": name, "frames": len(frames),
                         **{f"{k}_ms_per_frame": round(v / ROUNDS / len(frames) * 1000, 2) for k, v in seconds.items()},
                         "ratio": round(seconds["after"] / seconds["before"], 3),
                         **{f"{k}_faces": v for k, v in faces.items()}, "area_looks": area_looks["after"],
                         "tracks": f"{tracks['before']} / {tracks['after']}",
                         "confirm_runs": f"{confirm_runs['before']} / {confirm_runs['after']}"})
    return rows


def cost_table(rows: list[dict], before: str = "before", after: str = "after",
               extra: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """The before / after table of CPU time per frame; ``extra``: more columns (each its
    header, its key in the rows)."""
    head = (f"| footage | frames | {before} ms/frame | {after} ms/frame | {after} / {before} | faces {before} | "
            f"faces {after} |" + "".join(f" {header} |" for header, _ in extra))
    return [head, "|" + " --- |" * head.count(" | ") + " --- |",
            *(f"| {r['footage']} | {r['frames']} | {r['before_ms_per_frame']} | {r['after_ms_per_frame']} | "
              f"{r['ratio']} | {r['before_faces']} | {r['after_faces']} |" + "".join(f" {r[key]} |" for _, key in extra)
              for r in rows)]


def markdown(rows: list[dict], load: tuple[float, float] | None = None) -> str:
    lines = ["## Accuracy changes: analyze cost on ordinary footage", "",
             "`python -m bench.analyze_cost --write`: CPU time per frame of the segment pipeline's analyzer chain "
             "(detect, track, recognize, mask, thermal; one inference thread; CPU rather than wall time, since "
             "the machine is shared), before (one detector pass, MobileNetV2 mask model) "
             f"and after (budgeted second look at moving regions no found face accounts for, quality gate, mask label "
             "from the mean of the embedding classifier, MobileNetV2 over the crop and its mirror image (the mirror "
             "only where it could change the label) and the "
             "lower-face cue, the tracker's gap filling, follow-up looks that continue their face, sized to it, and "
             "RetinaFace vouching for a look's weak boxes where the look kept no face), "
             f"alternated {ROUNDS} times in one run on a shared machine"
             + (f" (load average {load[0]:.1f} before, {load[1]:.1f} after)" if load else "")
             + ": compare the ratio; another run's ratio can differ by a few hundredths. "
             "Faces: detections over the clip; the difference is what the second look added (small faces the first "
             "pass missed, or false detections: this footage has no per-face ground truth).", "",
             *cost_table(rows)]
    met = [r["footage"] for r in rows if r["ratio"] <= TARGET_RATIO]
    missed = [r["footage"] for r in rows if r["ratio"] > TARGET_RATIO]
    lines += ["", f"Target (issue 14): at most {TARGET_RATIO:.2f}x. Met on: {', '.join(met) or 'none'}; "
                  f"not met on: {', '.join(missed) or 'none'}. The exploration budget bounds the second look's "
                  "share over a long recording; a short clip with motion pays its first looks in full (`burst`)."]
    return "\n".join(lines) + "\n"


def area_markdown(rows: list[dict], load: tuple[float, float]) -> str:
    lines = ["## Moving-area look: detector cost on ordinary footage", "",
             "`python -m bench.analyze_cost --area --write`: CPU time per frame of the detector alone (first pass, "
             "motion gate and second look; one inference thread) without (`area_share` 0) and with the second "
             "look's moving-area look (a look at the box around all the motion when it is large and no found face "
             "accounts for it: the close-up fix of issue 14), alternated "
             f"{ROUNDS} times in one run (load average {load[0]:.1f} before, {load[1]:.1f} after). On this footage "
             "the faces are found by the first pass, so the area look is planned only where motion no found face "
             "accounts for is large (area looks: the frames that had one). Where it is planned, it is paid from the same exploration budget as the other looks (2 % of "
             "the first pass over a recording), and one that finds nothing waits `retry_frames` frames.", "",
             *cost_table(rows, "without", "with", (("area looks", "area_looks"),))]
    return "\n".join(lines) + "\n"


def chain_section(heading: str, flag: str, compared: str, note: str, load: tuple[float, float], table: list[str]
                  ) -> str:
    """A section comparing two versions of the whole analyzer chain: ``compared`` says which,
    ``note`` what to read in the table."""
    lines = [f"## {heading}", "",
             f"`python -m bench.analyze_cost {flag} --write`: CPU time per frame of the segment pipeline's analyzer "
             f"chain (detect, track, recognize, mask, thermal; one inference thread) {compared}, alternated "
             f"{ROUNDS} times in one run (load average {load[0]:.1f} before, {load[1]:.1f} after). {note}", "",
             *table]
    return "\n".join(lines) + "\n"


def mask_markdown(rows: list[dict], load: tuple[float, float]) -> str:
    return chain_section(
        "The mask label's third vote: analyze cost on ordinary footage", "--mask",
        "with the mask label as the mean of the embedding classifier and MobileNetV2 (before) and as the mean of "
        "three (after: MobileNetV2 over the crop and its mirror image, and the lower-face cue of "
        "`workers/analytics/mask_cue.py`)",
        "The mask analyzer runs on a track's sampled frames only (at most 6 a track and segment), so the per-face cost "
        "(a second MobileNetV2 input and about a millisecond for the cue) is spread over the track's frames.",
        load, cost_table(rows))


# Sections comparing the chain without and with one change, with the tracks each made:
# flag -> (heading, what is compared, what to read in the table).
WITHOUT_WITH = {
    "--gaps": ("Gap filling: analyze cost on ordinary footage",
               "without (`max_gap_frames` 0) and with the tracker's end-of-segment gap filling "
               "(`workers/analytics/gaps.py`)",
               "Faces: detections over the clip, filled ones included (the difference is what the filling added); "
               "tracks: without / with (a chain of untracked detections becomes a track)."),
    "--follow": ("Followed faces continued: analyze cost on ordinary footage",
                 "with the second look's follow-up looks as any other look (`continue_faces` false) and continuing "
                 "the face they follow (centred where its motion puts it, faces of its size only, the face itself "
                 "down to score 0.2 on motion)",
                 "A face followed longer costs more follow-up looks (each a 480 px run): the ratio is that cost where "
                 "there is one. Faces: detections over the clip; tracks: without / with."),
    "--side": ("Follow-up looks sized to their face: analyze cost on ordinary footage",
               "with the second look's follow-up looks at the whole square of the look that found their face "
               "(`follow_side` 0) and sized to it (6 face heights at that scale once its step is known, one look a "
               "face, a followed face the first pass finds followed on with no look)",
               "Follow-up looks happen only after a look found a face the first pass missed: the ratio is their "
               "cost where there is one. Faces: detections over the clip; tracks: without / with."),
    "--confirm": ("Second detector vouching for weak boxes: analyze cost on ordinary footage",
                  "without (`confirm` none) and with RetinaFace MobileNet-0.25 reading the region of a second look "
                  "that kept no face but holds a SCRFD box of 0.1-0.3 on a moving blob, and vouching for the box "
                  "where it finds that face too (`confirm` retinaface: `workers/analytics/confirm.py`)",
                  "It runs only on such a look (at most one run a look; the looks' 2 % budget does not count its runs): the "
                  "ratio is its cost where it ran. Faces: detections over the clip; tracks: without / with; "
                  "second detector runs: over one pass of the clip, without / with."),
    "--still": ("A look's weak boxes only on motion: analyze cost on ordinary footage",
                "with a second look's boxes under the first pass's threshold kept anywhere (`still_threshold` 0) "
                "and only where a moving blob overlaps them (`still_threshold` 0.5)",
                "The test reads the blobs the look was planned from; the boxes it drops can change later looks "
                "(fewer faces followed, a look recorded empty, RetinaFace asked where a look kept nothing). "
                "Faces: detections over the clip; tracks: without / with."),
    "--contrast": ("Dark faces left unlabelled: analyze cost on ordinary footage",
                   "without (`min_contrast` 0) and with the mask gate's contrast floor (a sampled face whose aligned "
                   "grey levels spread less than the floor gets no mask vote: `workers/analytics/quality.py`)",
                   "The floor reads the aligned face the lower-face cue reads anyway (one standard deviation of its "
                   "grey levels); a face it refuses skips both classifiers. Faces: detections over the clip; "
                   "tracks: without / with."),
}


def offface_markdown(rows: list[dict], load: tuple[float, float]) -> str:
    keys = list(OFF_FACE_CHAINS)
    head = "| footage | frames | " + " | ".join(f"{k} ms/frame (ratio)" for k in keys) + " | faces | RetinaFace runs |"
    lines = [f"`python -m bench.analyze_cost --offface`: CPU time per frame of the segment pipeline's analyzer chain "
             f"(detect, track, recognize, mask, thermal; one inference thread) with a look's boxes under the first "
             f"pass's threshold kept where a moving blob overlaps them (before) and with each candidate that asks more "
             f"of them, alternated {ROUNDS} times in one run (load average {load[0]:.1f} before, {load[1]:.1f} "
             f"after). Faces and RetinaFace runs: over one pass of the clip, in the same order.", "",
             head, "|" + " --- |" * (head.count(" | ") + 1),
             *(f"| {r['footage']} | {r['frames']} | "
               + " | ".join(f"{r[k]['ms_per_frame']} ({r[k]['ratio']})" for k in keys)
               + f" | {' / '.join(str(r[k]['faces']) for k in keys)} | "
               + f"{' / '.join(str(r[k]['confirm_runs']) for k in keys)} |" for r in rows)]
    return "\n".join(lines) + "\n"


def without_with_markdown(flag: str, rows: list[dict], load: tuple[float, float]) -> str:
    heading, compared, note = WITHOUT_WITH[flag]
    extra = (("tracks", "tracks"),) + ((("second detector runs", "confirm_runs"),) if flag == "--confirm" else ())
    return chain_section(heading, flag, compared, note, load, cost_table(rows, "without", "with", extra))


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    media = Path(args[0]) if args else MEDIA
    load_before = os.getloadavg()[0]
    if "--offface" in argv:        # a one-off comparison: printed, never written
        print(offface_markdown(measure(media, OFF_FACE_CHAINS), (load_before, os.getloadavg()[0])))
        return 0
    if "--mask" in argv:
        rows = measure(media, MASK_CHAINS)
        text = mask_markdown(rows, (load_before, os.getloadavg()[0]))
    elif any(flag in argv for flag in WITHOUT_WITH):
        flag = next(f for f in WITHOUT_WITH if f in argv)
        rows = measure(media, {"--follow": FOLLOW_CHAINS, "--gaps": GAP_CHAINS, "--contrast": CONTRAST_CHAINS,
                               "--side": SIDE_CHAINS, "--confirm": CONFIRM_CHAINS,
                               "--still": STILL_CHAINS}[flag])
        text = without_with_markdown(flag, rows, (load_before, os.getloadavg()[0]))
    elif "--area" in argv:
        rows = measure(media, AREA_CHAINS, ("detect",))
        text = area_markdown(rows, (load_before, os.getloadavg()[0]))
    else:
        rows = measure(media)
        text = markdown(rows, (load_before, os.getloadavg()[0]))
    print(text)
    if "--write" in argv:
        from bench.docs import replace_section
        replace_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
