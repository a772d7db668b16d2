"""Assembles results.json (GUIDE.md contract 3) from the per-segment outputs.

Segments are tracked independently, so the stitch joins tracks across each border (a track
alive at a segment's last frame continues one that starts at the next segment's first frame
when their boxes overlap and their faces agree), then decides each joined track's identity
from its pooled embeddings and its mask from the pooled votes, and writes those track-level
answers onto every frame of the track.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from workers.analytics.gallery import DEFAULT_THRESHOLD, Gallery, normalise
from workers.analytics.mask import vote
from workers.analytics.thermal import DEFAULT_FEVER_C, fever
from workers.analytics.tracks import SCENE_CUT, box_iou, is_scene_cut
from workers.media import frame_times

SCHEMA = "vidfarm.results/1"
BORDER_SLACK_FRAMES = 2      # a face may be missed on a frame or two at the border


def source_summary(path: str, media: dict) -> dict:
    """``media``: the probe summary (``MediaInfo.summary()``) kept in the job record."""
    return {"path": path, "width": media["width"], "height": media["height"],
            "fps": round(media["fps"], 6), "frames": media["frames"],
            "duration_s": round(media["duration_s"], 6), "has_audio": media["has_audio"]}


@dataclass
class SegmentOutput:
    pts: list[int]
    frames: list[list[dict]]     # per local frame: faces with local track ids
    tracks: list[dict]           # TrackRecord.to_json() per local track
    thumbnails: dict | None = None   # {"first": ..., "last": ...} grayscale thumbnails
    damage: list[str | None] | None = None   # per local frame: why it is damaged, None if intact
    continues: bool = True       # False: a gap lies before it (a live camera that dropped): no join


@dataclass
class ResultOptions:
    recognition_threshold: float = DEFAULT_THRESHOLD
    fever_c: float = DEFAULT_FEVER_C
    alerts: tuple[str, ...] = ("fever", "watchlist")
    watchlist: frozenset[str] = frozenset()
    join_iou: float = 0.3
    join_min_similarity: float = 0.3
    scene_cut: float = SCENE_CUT      # the tracker's test: no join across a cut


class _Joined:
    """Union-find over (segment, local track) pairs."""

    def __init__(self):
        self.parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(self, key):
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a, b):
        self.parent[self.find(b)] = self.find(a)


def _embedding(track: dict) -> np.ndarray | None:
    if not track.get("embedding_sum"):
        return None
    return normalise(np.asarray(track["embedding_sum"], np.float32))


def join_borders(segments: list[SegmentOutput], options: ResultOptions) -> _Joined:
    joined = _Joined()
    for k, segment in enumerate(segments):
        for track in segment.tracks:
            joined.find((k, track["track"]))
    for k in range(len(segments) - 1):
        for ta, tb in join_border(segments[k], segments[k + 1], options):
            joined.union((k, ta), (k + 1, tb))
    return joined


def join_border(before: SegmentOutput, after: SegmentOutput, options: ResultOptions) -> list[tuple[int, int]]:
    """The (track before, track after) pairs that are one person crossing the border."""
    if not after.continues:
        return []
    if is_scene_cut((before.thumbnails or {}).get("last"), (after.thumbnails or {}).get("first"), options.scene_cut):
        return []   # the border is also a cut between shots
    last = len(before.frames) - 1
    ending = [t for t in before.tracks if t["last_frame"] >= last - BORDER_SLACK_FRAMES]
    starting = [t for t in after.tracks if t["first_frame"] <= BORDER_SLACK_FRAMES]
    candidates = []
    for a in ending:
        for b in starting:
            overlap = box_iou(a["last_box"], b["first_box"])
            ea, eb = _embedding(a), _embedding(b)
            similarity = float(ea @ eb) if ea is not None and eb is not None else None
            if overlap < options.join_iou:
                continue
            if similarity is not None and similarity < options.join_min_similarity:
                continue   # same place, different face: two people
            candidates.append((overlap + (similarity or 0.0), a["track"], b["track"]))
    pairs, used_a, used_b = [], set(), set()
    for _, ta, tb in sorted(candidates, reverse=True):
        if ta not in used_a and tb not in used_b:
            pairs.append((ta, tb))
            used_a.add(ta)
            used_b.add(tb)
    return pairs


def assemble_results(source: dict, time_base: Fraction, start_pts: int, segments: list[SegmentOutput],
                     timing: dict, gallery: Gallery | None = None,
                     options: ResultOptions | None = None) -> dict:
    """Frame indices become global: segment k's frame i is frame (frames before k) + i."""
    options = options or ResultOptions()
    gallery = gallery or Gallery.empty()
    joined = join_borders(segments, options)

    pieces: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
    for k, segment in enumerate(segments):
        for track in segment.tracks:
            pieces[joined.find((k, track["track"]))].append((k, track))

    offsets = np.cumsum([0] + [len(s.frames) for s in segments]).tolist()
    global_id: dict[tuple, int] = {}
    tracks: dict[int, dict] = {}
    frames = []
    for k, segment in enumerate(segments):
        if len(segment.pts) != len(segment.frames):
            raise ValueError(f"segment {k} has {len(segment.frames)} analysed frames for {len(segment.pts)} timestamps")
        for i, (t, faces) in enumerate(zip(frame_times(segment.pts, start_pts, time_base), segment.frames)):
            index = offsets[k] + i
            faces = [dict(face) for face in faces]   # the inputs stay as they were
            for face in faces:
                if face["track"] is None:
                    continue
                root = joined.find((k, face["track"]))
                if root not in global_id:
                    global_id[root] = len(global_id) + 1
                    tracks[global_id[root]] = summarise_track(global_id[root], pieces[root], offsets, gallery, options)
                summary = tracks[global_id[root]]
                # Every frame showing the track lies within it. Segments analysed by workers
                # before the tracker backdated first frames (an upgrade mid-job) record it late.
                summary["first_frame"] = min(summary["first_frame"], index)
                summary["last_frame"] = max(summary["last_frame"], index)
                face.update(track=summary["track"], identity=summary["identity"],
                            similarity=summary["best_similarity"], mask=summary["mask"],
                            mask_score=summary["_mask_score"])
            frames.append({"index": index, "t": t, "faces": faces})
    track_list = [tracks[key] for key in sorted(tracks)]
    alerts = track_alerts(track_list, [frame["t"] for frame in frames], options)
    for track in track_list:   # internal fields, not part of the results contract
        track.pop("_mask_score")
        track.pop("max_temperature_frame")
    damage = [reason for segment in segments for reason in segment.damage or [None] * len(segment.frames)]
    return {"schema": SCHEMA, "source": source, "chunks": len(segments), "frames": frames,
            "tracks": track_list, "alerts": alerts, "damaged": damaged_ranges(damage), "timing": timing}


def damaged_ranges(damage: list[str | None]) -> list[dict]:
    """Runs of damaged frames with one reason each: ``{first_frame, last_frame, reason}``."""
    ranges: list[dict] = []
    for index, reason in enumerate(damage):
        if reason is None:
            continue
        if ranges and ranges[-1]["last_frame"] == index - 1 and ranges[-1]["reason"] == reason:
            ranges[-1]["last_frame"] = index
        else:
            ranges.append({"first_frame": index, "last_frame": index, "reason": reason})
    return ranges


def damage_warning(results: dict) -> str | None:
    """One line on a job whose recording was damaged (None when it was not)."""
    ranges = results.get("damaged") or []
    if not ranges:
        return None
    count = sum(r["last_frame"] - r["first_frame"] + 1 for r in ranges)
    first, last = ranges[0]["first_frame"], ranges[0]["last_frame"]
    where = f"frame {first}" if first == last else f"frames {first}-{last}"
    if len(ranges) > 1:
        where = f"{len(ranges)} ranges, the first {where}"
    return (f"damaged recording: {count} of {len(results['frames'])} frames damaged "
            f"({where}: {ranges[0]['reason']}); they carry no faces")


def summarise_track(track_id: int, pieces: list[tuple[int, dict]], offsets: list[int], gallery: Gallery,
               options: ResultOptions) -> dict:
    sums = [np.asarray(p["embedding_sum"], np.float32) for _, p in pieces if p.get("embedding_sum")]
    embedding = normalise(np.sum(sums, axis=0)) if sums else None
    identity, similarity = gallery.match(embedding, options.recognition_threshold)
    mask, mask_score = vote([tuple(v) for _, p in pieces for v in p.get("mask_votes", [])])
    mask_score = None if mask_score is None else round(mask_score, 4)
    temps = [(p["max_temperature_c"], offsets[k] + p["max_temperature_frame"]) for k, p in pieces
             if p.get("max_temperature_c") is not None]
    hottest = max(temps, default=(None, None))
    return {"track": track_id, "identity": identity,
            "first_frame": min(offsets[k] + p["first_frame"] for k, p in pieces),
            "last_frame": max(offsets[k] + p["last_frame"] for k, p in pieces),
            "best_similarity": similarity, "mask": mask, "max_temperature_c": hottest[0],
            "max_temperature_frame": hottest[1],
            "embedding": None if embedding is None else [round(float(v), 6) for v in embedding],
            "_mask_score": mask_score}


def track_alerts(tracks: list[dict], times: list[float], options: ResultOptions) -> list[dict]:
    """The alerts of tracks as ``summarise_track`` gives them; ``times``: each frame's t."""
    def at(frame: int) -> float:
        return times[frame] if 0 <= frame < len(times) else 0.0

    alerts = []
    for track in tracks:
        temp = track["max_temperature_c"]
        if "fever" in options.alerts and fever(temp, options.fever_c):
            frame = track["max_temperature_frame"]
            alerts.append({"kind": "fever", "track": track["track"], "frame": frame, "t": at(frame),
                           "detail": f"{temp:.1f} C (threshold {options.fever_c:.1f} C)"})
        if "no_mask" in options.alerts and track["mask"] == "no_mask":
            frame = track["first_frame"]
            alerts.append({"kind": "no_mask", "track": track["track"], "frame": frame, "t": at(frame),
                           "detail": "face without a mask"})
    alerts += _watchlist_alerts(tracks, times, options)
    return sorted(alerts, key=lambda a: (a["frame"], a["kind"]))


def _watchlist_alerts(tracks: list[dict], times: list[float], options: ResultOptions) -> list[dict]:
    if "watchlist" not in options.alerts:
        return []
    return [{"kind": "watchlist", "track": t["track"], "frame": t["first_frame"], "t": times[t["first_frame"]],
             "detail": f"{t['identity']} is on the watchlist"}
            for t in tracks if t["identity"] is not None and t["identity"] in options.watchlist]


def reidentify(results: dict, gallery: Gallery, options: ResultOptions) -> dict:
    """The same results matched against another gallery, from the tracks' kept embeddings:
    no video is decoded. Identities, similarities and watchlist alerts change; nothing else."""
    updated = json.loads(json.dumps(results))   # a deep copy; the earlier version stays as it was
    by_track = {}
    for track in updated["tracks"]:
        embedding = None if track.get("embedding") is None else np.asarray(track["embedding"], np.float32)
        track["identity"], track["best_similarity"] = gallery.match(embedding, options.recognition_threshold)
        by_track[track["track"]] = track
    for frame in updated["frames"]:
        for face in frame["faces"]:
            track = by_track.get(face["track"])
            if track is not None:
                face["identity"], face["similarity"] = track["identity"], track["best_similarity"]
    kept = [a for a in updated["alerts"] if a["kind"] != "watchlist"]
    watch = _watchlist_alerts(updated["tracks"], [frame["t"] for frame in updated["frames"]], options)
    updated["alerts"] = sorted(kept + watch, key=lambda a: (a["frame"], a["kind"]))
    return updated
