"""Face tracking with ByteTrack from Roboflow's ``trackers`` (on supervision Detections)."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import numpy as np
import supervision as sv
from pydantic import BaseModel

from core.analyzer_configs import TrackerConfig
from workers.analytics.faces import Faces
from workers.analytics.gaps import fill_gaps
from workers.analytics.motion_gate import thumbnail as grey_thumbnail
from workers.analytics.picture import Picture
from workers.analytics.registry import Analyzer, register
from workers.analytics.tracks import SegmentState, continuations, is_scene_cut


@register
class FaceTracker(Analyzer):
    name: ClassVar[str] = "track"
    Config: ClassVar[type[BaseModel]] = TrackerConfig

    def __init__(self, config: TrackerConfig):
        # Imported as the analyzer is built, not at a segment's start: the workers' fork server
        # builds the chain, so no worker pays the import (about 60 ms) in its first job.
        from trackers import ByteTrackTracker

        self.config = config
        self.state: SegmentState | None = None
        self.tracker = None
        self.tracker_class = ByteTrackTracker

    def begin(self, state: SegmentState) -> None:
        """A fresh tracker per segment (tracks are joined across segments at stitch)."""
        self.state = state
        self.thumbnail = None
        self.id_base = 0      # ByteTrack restarts its ids after a reset; ours keep counting
        fps = max(1.0, state.fps)
        self.tracker = self.tracker_class(
            lost_track_buffer=max(1, round(self.config.lost_track_seconds * fps)), frame_rate=fps,
            track_activation_threshold=self.config.activation_threshold, minimum_consecutive_frames=1,
            minimum_iou_threshold=self.config.min_iou, high_conf_det_threshold=self.config.high_confidence)

    def _is_scene_cut(self, picture: Picture) -> bool:
        """An edited recording cuts between cameras; a box in the same place after a cut is
        someone else, so tracks must not continue across it."""
        thumbnail = grey_thumbnail(picture)    # from the luma plane: no colour conversion
        previous, self.thumbnail = self.thumbnail, thumbnail
        if previous is None:
            self.state.first_thumbnail = thumbnail
        self.state.last_thumbnail = thumbnail
        if callable(previous):
            previous = previous()
        return is_scene_cut(previous, thumbnail, self.config.scene_cut)

    def __call__(self, picture, faces: Faces) -> Faces:
        picture = Picture.of(picture)
        if not len(faces) and not self.tracker.tracks and self.thumbnail is not None:
            return self._untracked(picture, faces)
        if self._is_scene_cut(picture):
            self.state.cuts.add(self.state.frame_index)
            self.tracker.reset()
            self.id_base = max(self.state.tracks, default=-1) + 1
        detections = sv.Detections(xyxy=faces.boxes.astype(np.float32), confidence=faces.scores,
                                   data={"row": np.arange(len(faces))})
        tracked = self.tracker.update(detections)
        track_ids = np.full(len(faces), -1, np.int64)
        if len(tracked):
            ids = np.asarray(tracked.tracker_id, np.int64)
            track_ids[tracked.data["row"]] = np.where(ids >= 0, ids + self.id_base, -1)
        faces.track_ids = track_ids
        self.state.observe(track_ids, faces.boxes)
        self._claim_previous_frame(faces)
        return faces

    def end(self, state: SegmentState) -> None:
        fill_gaps(state, self.config)

    def _untracked(self, picture: Picture, faces: Faces) -> Faces:
        """No face, and no track alive (an empty scene): ByteTrack would change nothing, and a
        scene cut here would cut no track. The frame's thumbnail is made only if it is needed:
        by the next frame's cut test, or as the segment's last (quiet frames are most frames,
        and their thumbnail and ByteTrack's empty update cost more than the rest of them
        after the decode and the motion stage)."""
        thumbnail = partial(grey_thumbnail, picture)
        self.thumbnail = self.state.last_thumbnail = thumbnail
        faces.track_ids = np.zeros(0, np.int64)
        return faces

    def _claim_previous_frame(self, faces: Faces) -> None:
        """ByteTrack confirms a new track on the second frame it sees the face: the first one
        reads -1. Give that earlier face (as the chain left it) its track, and the track its
        true first frame."""
        if not self.state.faces or len(self.state.faces) != self.state.frame_index:
            return   # the first frame, or the frames' faces are not kept (a bare tracker)
        earlier = self.state.faces[-1]
        if earlier.track_ids is None:
            earlier.track_ids = np.full(len(earlier), -1, np.int64)
        for row, track_id in continuations(earlier.boxes, earlier.track_ids, faces.boxes, faces.track_ids):
            earlier.track_ids[row] = track_id
            self.state.backdate(track_id, earlier.boxes[row])
