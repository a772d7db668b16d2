"""Why the eval's masked and bare faces are missed: frame by frame, what the detector saw.

``python -m bench.eval_misses [MEDIA_DIR] [--part tuning|test] [--scales close-up,40 px]``
runs the eval's clips (:mod:`bench.eval_clips`, the tuning split by default: choices are made
there) through the segment pipeline with the chosen configuration, and for every frame from
the second on where the photo's face was not found prints why, as the detector's own steps
tell it:

- ``not looked``: the motion gate carried the frame (no detector run);
- ``retry wait``: no look planned at the face because a look there found nothing on one of the
  last ``retry_frames`` frames;
- ``no look planned``: no motion at the face, or the budget could not pay for a look (``tokens``);
- ``looked elsewhere``: looks were planned, none of them at the face (e.g. at a close-up's
  eye- or mouth-sized motion blobs);
- ``looked, under threshold``: a look held the face's centre and found nothing there.

With each: the best score of any box on the photo at the first pass's input (threshold 0.05),
so a face the model cannot see at all (a whole person pasted 40 px tall: a 6 px face) is told
from one just under the threshold.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

import cv2

from bench.eval_clips import SCALES, analyse, inside, photo_clip, pipeline_config
from bench.eval_masks import CANDIDATES, CHOSEN, FOLDERS
from bench.eval_split import mask_split, part_arguments


class Recorder:
    """Wraps a detector's steps to note, per frame, what it did."""

    def __init__(self, detector):
        self.detector, self.frames = detector, []
        look, begin, detect = detector._look, detector.begin, detector._detect

        def on_look(picture, region=None, small=None):
            self.frames[-1]["looked"] = True
            return look(picture, region, small)

        def on_begin(state=None):
            begin(state)
            plan = detector.second_look.plan if detector.second_look else None
            if plan is not None:
                def on_plan(*args, **kwargs):
                    squares = plan(*args, **kwargs)
                    look = detector.second_look
                    self.frames[-1].update(squares=squares, tokens=look.tokens, empty=[s for _, s in look.empty])
                    return squares
                detector.second_look.plan = on_plan

        detector._look, detector.begin, self.detect = on_look, on_begin, detect

    def restore(self) -> None:
        """Take the wrappers off: the chain's detector is shared by whatever analyses next in
        this process (a test after this one, say)."""
        for name in ("_look", "begin"):
            vars(self.detector).pop(name, None)
        if self.detector.second_look is not None:
            vars(self.detector.second_look).pop("plan", None)

    def probe(self, frame_bgr, rect) -> float:
        from workers.analytics.picture import Picture

        boxes, _ = self.detect(Picture(bgr=frame_bgr), None, 0.05)
        return max((float(b[4]) for b in boxes if inside(b, rect)), default=0.0)


def cause(frame: dict, rect) -> str:
    if not frame.get("looked"):
        return "not looked"
    cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2

    def at_face(squares) -> bool:
        return any(abs(cx - x) <= side / 2 and abs(cy - y) <= side / 2 for x, y, side in squares)

    squares = frame.get("squares", [])
    if at_face(squares):
        return "looked, under threshold"
    if at_face(frame.get("empty", [])):
        return "retry wait"
    return "looked elsewhere" if squares else "no look planned"


def main(argv: list[str]) -> int:
    import av

    from workers import pipeline

    parser = part_arguments("python -m bench.eval_misses", __doc__.splitlines()[0])
    parser.add_argument("--scales", help="comma-separated scale names (close-up,40 px); all when absent")
    args = parser.parse_args(argv)
    media, part = args.media, args.part
    scales = [s for s in SCALES if args.scales is None or s[0] in args.scales.split(",")]
    config = pipeline_config(("detect", "track", "mask"), CANDIDATES[CHOSEN])
    recorder = Recorder(pipeline.analyzer_chain(config.analyzers, config.analyzer_configs, config.plugins)[0])
    detector_class, call = type(recorder.detector), type(recorder.detector).__call__
    totals: Counter = Counter()

    def counted_call(self, *a, **k):
        if self is recorder.detector:
            recorder.frames.append({})
        return call(self, *a, **k)

    detector_class.__call__ = counted_call
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for scale, height in scales:
                for folder in FOLDERS:
                    for seed, path in enumerate(mask_split(media / "masks" / folder, part)):
                        clip = Path(scratch) / f"{folder}-{seed}.mp4"
                        rects = photo_clip(clip, cv2.imread(str(path)), height, seed)
                        recorder.frames = []
                        result = analyse(clip, config)
                        with av.open(str(clip)) as container:
                            pictures = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
                        for index, (faces, rect) in enumerate(zip(result.frames, rects)):
                            if index == 0 or any(inside(f["box"], rect) for f in faces):
                                continue
                            why = cause(recorder.frames[index], rect)
                            totals[(scale, folder, why)] += 1
                            print(f"{scale} {path.name} frame {index}: {why}; tokens "
                                  f"{recorder.frames[index].get('tokens', 0):.2f}; best score on the photo at "
                                  f"the first pass's input {recorder.probe(pictures[index], rect):.2f}", flush=True)
    finally:
        detector_class.__call__ = call
        recorder.restore()
    print(f"\nMissed frames by cause ({part} split):")
    for (scale, folder, why), count in sorted(totals.items()):
        print(f"  {scale} {folder}: {why}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
