"""Tracks and identities carried across a live camera's segments, as each one is analysed.

A file's stitch joins tracks across every segment border at once (``workers.results``); a
camera's segments come one by one, so this joins each new segment to the one before with
the same rule (``join_border``), numbers tracks in the same order (by first appearance), and
decides each track's identity and alerts from what its pieces so far say. Every alert is
announced once, by the segment that first raises it. ``assemble_results`` over the same
segments at the end gives the same track numbers.

A camera may be watched for days: a track that did not reach the latest segment has ended
(only the segment just before can be joined), so its pieces are let go; what stays per frame
is its time (8 bytes).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from workers.analytics.gallery import Gallery
from workers.results import ResultOptions, SegmentOutput, join_border, summarise_track, track_alerts


@dataclass
class SegmentUpdate:
    faces: int                                         # face detections over the segment's frames
    tracks: list[dict] = field(default_factory=list)   # {track, identity, similarity, first_frame, last_frame}
    alerts: list[dict] = field(default_factory=list)   # raised by this segment, never announced before
    # Per frame: its faces as results.json will have them (the camera's track numbers, the
    # tracks' identities and mask votes so far): what the live view draws.
    frames: list[list[dict]] = field(default_factory=list)


class LiveStitch:
    def __init__(self, gallery: Gallery | None = None, options: ResultOptions | None = None):
        self.gallery = gallery or Gallery.empty()
        self.options = options or ResultOptions()
        self.offsets: list[int] = []                   # each segment's first global frame
        self.times = array("d")                        # each frame's t, for the alerts
        self.pieces: dict[int, list[tuple[int, dict]]] = {}   # live track -> (segment, its record there)
        self.tracks = 0                                # tracks numbered so far
        self._previous: SegmentOutput | None = None
        self._previous_ids: dict[int, int] = {}        # the previous segment's local track -> track
        self._announced: set[tuple[str, int]] = set()

    def add(self, segment: SegmentOutput, first_frame: int, times: list[float]) -> SegmentUpdate:
        """The next segment in order: its first global frame and its frames' times."""
        k = len(self.offsets)
        self.offsets.append(first_frame)
        self.times.extend(times)
        continues = {} if self._previous is None else \
            {after: before for before, after in join_border(self._previous, segment, self.options)}
        records = {track["track"]: track for track in segment.tracks}
        ids: dict[int, int] = {}
        for faces in segment.frames:          # numbered by first appearance, as the file stitch does
            for face in faces:
                local = face["track"]
                if local is None or local in ids or local not in records:
                    continue
                joined = self._previous_ids.get(continues.get(local, -1))
                if joined is None:
                    self.tracks += 1
                ids[local] = joined if joined is not None else self.tracks
                self.pieces.setdefault(ids[local], []).append((k, records[local]))
        self.pieces = {track: self.pieces[track] for track in set(ids.values())}   # the others ended
        summaries = [summarise_track(track, self.pieces[track], self.offsets, self.gallery, self.options)
                     for track in sorted(set(ids.values()))]
        alerts = [a for a in track_alerts(summaries, self.times, self.options)
                  if (a["kind"], a["track"]) not in self._announced]
        self._announced.update((a["kind"], a["track"]) for a in alerts)
        self._previous, self._previous_ids = segment, ids
        return SegmentUpdate(
            faces=sum(len(faces) for faces in segment.frames),
            tracks=[{key: s[key] for key in ("track", "identity", "best_similarity", "first_frame", "last_frame")}
                    for s in summaries],
            alerts=alerts, frames=_labelled(segment.frames, ids, summaries))


def _labelled(frames: list[list[dict]], ids: dict[int, int], summaries: list[dict]) -> list[list[dict]]:
    """A segment's faces with the camera's tracks, as ``assemble_results`` labels a file's."""
    by_track = {s["track"]: s for s in summaries}
    labelled = []
    for faces in frames:
        labelled.append([])
        for face in faces:
            summary = by_track.get(ids.get(face["track"]))
            face = dict(face, track=None) if summary is None else dict(
                face, track=summary["track"], identity=summary["identity"], similarity=summary["best_similarity"],
                mask=summary["mask"], mask_score=summary["_mask_score"])
            labelled[-1].append(face)
    return labelled
