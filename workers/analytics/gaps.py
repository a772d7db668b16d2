"""Frames a face was missed on, filled between detections that agree: the tracker's last step.

A small or masked face can score under the detector's threshold on one frame in two. ByteTrack
confirms a track on consecutive frames only, and predicts a new track with a velocity it has not
learnt yet, so such a face (a 6 px face crossing the frame, found on frames 1, 3 and 5) gets no
track, and the frames between its detections show nothing. Once a segment's frames are all
analysed the whole segment is known, and its detections are linked into chains, frame by frame:
a chain's second detection may lie anywhere within ``max_speed`` face heights a frame of its
first, each later one must lie where the chain's velocity puts it (within ``gap_tolerance`` face
heights), every one of a like height, with at most ``max_gap_frames`` frames between two. Two
faces ByteTrack told apart (two track ids) never share a chain; two detections of one track id
always may; an untracked detection starts a chain with a tracked one only close by (within
``gap_tolerance`` face heights a frame). A chain of ``min_chain`` detections or more is one face: its untracked detections
take the chain's track (the one ByteTrack gave any of them, else a new one), and every frame
between two of them gets a face on the line between them (box and keypoints), unless a face is
already there. A lone detection, or a pair, is never copied into its neighbours.

The filled face's score is the lower of its two ends' (a filled face is no stronger than the
weaker detection it was drawn from); its labels (name, mask) are those of the detection before
it; its temperature is null (nothing was measured on it). Damaged frames are not filled, and no
chain crosses a scene cut the tracker saw. The tracker skips its cut test on a frame with no face
while no track is alive (``FaceTracker._untracked``), so a cut onto such a frame goes unseen:
a chain of untracked detections could span it only with a third detection on the line of two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.analyzer_configs import TrackerConfig
from workers.analytics.faces import Faces, on_line
from workers.analytics.tracks import SegmentState, box_centre, box_height, box_iou

# A face already on a gap frame that overlaps the line's box this much is the face itself
# (under another track, or one the chain did not take): nothing is added there.
EXPLAINED_IOU = 0.3


@dataclass
class Chain:
    """Detections of one face, as (frame, row) in frame order."""
    members: list[tuple[int, int]]
    centre: np.ndarray                 # the last detection's box centre
    height: float                      # and its height
    track: int                         # the ByteTrack id any member had, -1: none
    velocity: np.ndarray | None = None  # pixels a frame, from the last two detections

    @property
    def last_frame(self) -> int:
        return self.members[-1][0]


def link_cost(chain: Chain, frame: int, box, track: int, config: TrackerConfig) -> float | None:
    """How well a detection continues a chain (lower is better), None when it cannot."""
    gap = frame - chain.last_frame
    if gap > config.max_gap_frames + 1:
        return None
    if chain.track >= 0 and track >= 0:
        return 0.0 if chain.track == track else None     # ByteTrack's own answer
    ratio = box_height(box) / chain.height
    if not 1 / config.gap_size_ratio <= ratio <= config.gap_size_ratio:
        return None
    if chain.velocity is None:      # a second detection: nothing to agree with yet
        speed = float(np.linalg.norm(box_centre(box) - chain.centre)) / chain.height / gap
        # Two untracked ones: any place a face could have moved to (a third must then agree).
        # One tracked and one not: only close by, since the track's own detections go on
        # without being checked (hamilton: an untracked face 3 face heights away had joined
        # a track on the next frame).
        limit = config.max_speed if chain.track < 0 and track < 0 else config.gap_tolerance
        # Costs above any velocity match's: a chain whose velocity agrees is linked first.
        return config.gap_tolerance + speed if speed <= limit else None
    error = float(np.linalg.norm(box_centre(box) - (chain.centre + chain.velocity * gap))) / chain.height
    return error if error <= config.gap_tolerance else None


def _extend(chain: Chain, frame: int, row: int, box, track: int) -> None:
    centre = box_centre(box)
    chain.velocity = (centre - chain.centre) / (frame - chain.last_frame)
    chain.members.append((frame, row))
    chain.centre, chain.height = centre, box_height(box)
    if track >= 0:
        chain.track = track


def build_chains(frames: list[Faces], cuts: set[int], config: TrackerConfig) -> list[Chain]:
    """Every detection of the segment in one chain (most in a chain of their own)."""
    chains: list[Chain] = []
    live: list[Chain] = []
    for frame, faces in enumerate(frames):
        if frame in cuts:
            live = []               # another shot: no chain goes on
        live = [c for c in live if frame - c.last_frame <= config.max_gap_frames + 1]
        tracks = _track_ids(faces)
        pairs = sorted((cost, i, row) for i, chain in enumerate(live) for row in range(len(faces))
                       if (cost := link_cost(chain, frame, faces.boxes[row], tracks[row], config)) is not None)
        linked_chains, linked_rows = set(), set()
        for _, i, row in pairs:     # greedy, best first: one detection per chain and frame
            if i in linked_chains or row in linked_rows:
                continue
            _extend(live[i], frame, row, faces.boxes[row], tracks[row])
            linked_chains.add(i)
            linked_rows.add(row)
        for row in range(len(faces)):
            if row not in linked_rows:
                chain = Chain([(frame, row)], box_centre(faces.boxes[row]), box_height(faces.boxes[row]), tracks[row])
                chains.append(chain)
                live.append(chain)
    return chains


def _track_ids(faces: Faces) -> list[int]:
    return [-1] * len(faces) if faces.track_ids is None else [int(t) for t in faces.track_ids]


def fill_gaps(state: SegmentState, config: TrackerConfig) -> int:
    """In place on ``state.faces`` and ``state.tracks``: each long enough chain one track, its
    gaps filled. Returns how many faces were added."""
    if config.max_gap_frames < 1:
        return 0
    frames = state.faces
    added = 0
    for chain in build_chains(frames, state.cuts, config):
        if len(chain.members) < config.min_chain:
            continue
        track = chain.track if chain.track >= 0 else max(state.tracks, default=-1) + 1
        for frame, row in chain.members:
            faces = frames[frame]
            if faces.track_ids is None:
                faces.track_ids = np.full(len(faces), -1, np.int64)
            if faces.track_ids[row] < 0:
                faces.track_ids[row] = track
                state.place(track, frame, faces.boxes[row])
        for (before, a), (after, b) in zip(chain.members, chain.members[1:]):
            for frame in range(before + 1, after):
                if frame not in state.damaged and _fill(frames, frame, before, a, after, b, track):
                    state.place(track, frame, frames[frame].boxes[-1])
                    added += 1
    return added


def _fill(frames: list[Faces], frame: int, before: int, a: int, after: int, b: int, track: int) -> bool:
    """A face on ``frame`` on the line between row ``a`` of ``before`` and row ``b`` of
    ``after``, unless a face is already there."""
    first, last = frames[before], frames[after]
    box, keypoints = on_line(first, a, last, b, (frame - before) / (after - before))
    if any(box_iou(box, other) >= EXPLAINED_IOU for other in frames[frame].boxes):
        return False
    labels = {name: values[a] for name, values in first.columns.items() if name != "temperature_c"}
    frames[frame] = frames[frame].added(box, min(first.scores[a], last.scores[b]), keypoints, track, labels)
    return True
