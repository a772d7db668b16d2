"""`make eval`: accuracy of the face analytics on ../shared/media, written to docs/accuracy.md.

Every set is split into a tuning part and a test part (:mod:`bench.eval_split`); choices are
made on the tuning part, docs/accuracy.md reports the test part with counts and 95 % Wilson
intervals. Masks and masked faces: clips made from the photos at four scales through the
segment pipeline (:mod:`bench.eval_masks`); recognition against a gallery grown with
distractors (:mod:`bench.eval_recognition`); thermal per camera type
(:mod:`bench.eval_mask_thermal`); detection on the still photos (PASCAL boxes, CompreFace
nose points; single pass: stills have no motion) and the hamilton clip through a real
embedded farm. ``python -m bench.eval [MEDIA_DIR]``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2

from bench.shared_media import MEDIA


ROOT = Path(__file__).resolve().parents[1]
MIN_FACE_PX = 24


def _iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def evaluate_detection(detector, media: Path) -> dict:
    """Recall on faces >= 24 px and precision, matching boxes at IoU >= 0.3 (dlib's square
    boxes are tighter than SCRFD's) or nose points inside a detected box (CompreFace)."""
    hits = faces = 0
    true_dets = dets = 0
    folder = media / "detection_stills" / "dlib_pascal"
    for xml in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / xml).getroot().iter("image"):
            found = detector(cv2.imread(str(folder / image.get("file")))).boxes.tolist()
            truth = [[float(b.get("left")), float(b.get("top")), float(b.get("left")) + float(b.get("width")),
                      float(b.get("top")) + float(b.get("height"))] for b in image.iter("box")]
            matched = set()
            for box in truth:
                best = max(range(len(found)), key=lambda i: _iou(box, found[i]), default=None)
                ok = best is not None and best not in matched and _iou(box, found[best]) >= 0.3
                if ok:
                    matched.add(best)
                if min(box[2] - box[0], box[3] - box[1]) >= MIN_FACE_PX:
                    faces += 1
                    hits += ok
            dets += len(found)
            true_dets += len(matched)
    folder = media / "detection_stills" / "compreface"
    notes = json.loads((folder / "annotations.json").read_text())
    for name, truth in notes.items():
        if not name.endswith(".jpg"):   # "_source" and other notes
            continue
        found = detector(cv2.imread(str(folder / name))).boxes.tolist()
        matched = set()
        for x, y in truth["nose_points_xy"]:
            inside = [i for i, b in enumerate(found) if b[0] <= x <= b[2] and b[1] <= y <= b[3] and i not in matched]
            if inside:
                matched.add(inside[0])
        faces += truth["face_count"]
        hits += len(matched)
        dets += len(found)
        true_dets += len(matched)
    return {"faces": faces, "found": hits, "recall": hits / faces, "detections": dets,
            "precision": true_dets / dets if dets else 1.0}


# Ground truth for short_hamilton_clip.mp4, read off its frames: the performer is on screen
# (wide shot, then his close-up) in frames 0-19 and 82-210; the pianist in 0-81 (small in the
# wide shot, then a profile close-up); 211-274 show the audience only.
PERFORMER = list(range(0, 20)) + list(range(82, 211))
PIANIST = list(range(0, 82))
AUDIENCE = list(range(211, 275))


def evaluate_hamilton(media: Path, gallery_folder: Path) -> dict:
    from cli.farm import EmbeddedFarm

    with tempfile.TemporaryDirectory() as data_dir, EmbeddedFarm(Path(data_dir), workers=2) as farm:
        os.environ["VIDFARM_DATA_DIR"], os.environ["REDIS_URL"] = data_dir, farm.redis_url
        from services import runtime
        from services.jobs import job_view
        from tasks.app import app
        from core.storage import output_key
        from services.gallery import gallery_option
        from services.submit import submit_file
        from workers.enrolment import PhotoEmbedder

        farm.wait_ready(app)
        job_id = submit_file(runtime.farm(), media / "videos" / "short_hamilton_clip.mp4",
                             options={"gallery": gallery_option(gallery_folder, PhotoEmbedder.from_settings(runtime.settings()))})
        while job_view(runtime.records(), job_id)["status"] not in ("done", "failed"):
            time.sleep(0.2)
        results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())

    def share(frames: list[int], name: str) -> float:
        return sum(any(f["identity"] == name for f in results["frames"][i]["faces"]) for i in frames) / len(frames)

    audience_named = sum(bool(f["identity"]) for i in AUDIENCE for f in results["frames"][i]["faces"])
    # Nobody in the clip wears a mask; a track's mask_score is on its faces, not in its entry.
    mask_scores = {f["track"]: f["mask_score"] for frame in results["frames"] for f in frame["faces"]}
    return {"performer_frames": len(PERFORMER), "performer_named": share(PERFORMER, "lin-manuel-miranda"),
            "pianist_frames": len(PIANIST), "pianist_named": share(PIANIST, "alex-lacamoire"),
            "audience_faces_named": audience_named,
            "tracks": [(t["track"], t["identity"], t["first_frame"], t["last_frame"]) for t in results["tracks"]],
            "masks": [(t["track"], t["mask"], mask_scores.get(t["track"])) for t in results["tracks"]],
            "no_mask_alerts": sum(a["kind"] == "no_mask" for a in results["alerts"])}


def evaluate_hamilton_enrolled(media: Path) -> dict:
    """``evaluate_hamilton`` with the performer and the pianist enrolled from their photos."""
    with tempfile.TemporaryDirectory() as folder:
        for name in ("lin-manuel-miranda.png", "alex-lacamoire.png"):
            source = media / "recognition" / "face_recognition" / name
            (Path(folder) / name).write_bytes(source.read_bytes())
        return evaluate_hamilton(media, Path(folder))


def main(argv: list[str] | None = None) -> int:
    media = Path(argv[0]) if argv else MEDIA
    if not media.is_dir():
        print(f"skipping the accuracy evaluation: {media} is absent")
        return 0
    from bench import eval_mask_thermal, eval_masks, eval_recognition
    from workers.analytics.detector import DetectorConfig, FaceDetector
    from workers.analytics.recognizer import FaceEmbedder

    detector, embedder = FaceDetector(DetectorConfig(threads=os.cpu_count() or 1)), FaceEmbedder()
    figures = {"detection": evaluate_detection(detector, media),
               "recognition": eval_recognition.evaluate_recognition(detector, embedder, media),
               "thermal": eval_mask_thermal.evaluate_thermal(media)}
    figures["hamilton"] = evaluate_hamilton_enrolled(media)
    figures["masks"] = eval_masks.evaluate_masks(media)
    from bench.eval_report import measure_costs, render
    figures["costs"] = measure_costs()
    (ROOT / "docs" / "accuracy.json").write_text(json.dumps(figures, indent=1, default=str) + "\n")
    out = ROOT / "docs" / "accuracy.md"
    out.write_text(render(figures))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
