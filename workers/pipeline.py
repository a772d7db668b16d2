"""One segment's analysis: decode, run the analyzer chain, keep what it found.

Nothing is drawn here: labels (global track numbers, names) are only known once the stitch
has joined every segment's tracks, so the video is drawn from the published results
(``workers.render``). Importable without Celery: the segment task, the benchmarks and the
tests all call ``analyse_segment`` the same way.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from core.segment_job import SegmentJob, SourceMedia
from workers import media
from workers.analytics import detector, mask, recognizer, thermal, tracker  # noqa: F401  (register them)
from workers.analytics.detect_pace import fill_between_looks
from workers.analytics.faces import Faces
from workers.analytics.gallery import Gallery
from workers.analytics.registry import build_chain, load_plugins
from workers.analytics.tracks import SegmentState
from workers.thumbnails import SegmentFaceCrops


@dataclass(frozen=True)
class PipelineConfig:
    analyzers: tuple[str, ...] = ("detect", "track", "recognize", "mask", "thermal")
    # analyzer name -> its config, as a JSON string so the config is hashable for caching
    analyzer_configs: str = "{}"
    plugins: tuple[str, ...] = ()          # modules that register more analyzers
    threads: int = 1
    # Radiometric (16-bit) recordings: raw value -> degrees C; ignored for ordinary video.
    thermal_gain: float = 0.01
    thermal_offset: float = -273.15
    # Live cameras: the detector looks at most this many frames a second, the frames between
    # carry the faces of its last look (``SegmentState.detect_fps``); 0: every frame.
    detect_fps: float = 0.0


@dataclass
class SegmentResult:
    frames: list[list[dict]]                       # per frame (segment order): the faces
    tracks: list[dict] = field(default_factory=list)  # per track: what the analyzers learnt
    thumbnails: dict = field(default_factory=dict)    # first/last frame thumbnails (cut detection)
    stages: dict[str, float] = field(default_factory=dict)
    repaired_frames: int = 0                       # frames the decoder lost, filled by repeats
    # Per frame (segment order): why it is damaged (media.SegmentFrame.damage), None if intact.
    damage: list[str | None] = field(default_factory=list)
    # Each track's best face as the stitch would crop it: [frame in the segment, box, JPEG]
    # (thumbnails.SegmentFaceCrops), so that it decodes nothing for them.
    face_crops: list[list] = field(default_factory=list)
    # The decoded frames (one per frame, as decoded), kept when asked and within the bytes
    # asked for, on a segment without damage: its drawing need not decode them again.
    pictures: list | None = field(default=None, repr=False)


def analyzer_chain(names: tuple[str, ...], configs_json: str, plugins: tuple[str, ...] = ()):
    """Models load once per worker process and stay loaded for later segments. Each analyzer
    is kept on its own, so chains that differ only in which analyzers they hold share them:
    the fork server loads the default chain, and a job on ordinary video (fever screening left
    out) runs that chain less ``thermal``, with no second copy of every model to load."""
    load_plugins(list(plugins))
    configs = json.loads(configs_json)
    return [_analyzer(name, json.dumps(configs.get(name, {}), sort_keys=True)) for name in names]


@lru_cache(maxsize=8)     # two chains of five that differ in one analyzer's config (the benchmarks' gate on and off)
def _analyzer(name: str, config_json: str):
    return build_chain([name], {name: json.loads(config_json)})[0]


def whole_file(info: media.MediaInfo, pts: list[int] | None = None) -> SegmentJob:
    """A file read whole, as one segment (the benchmarks, the tests): its own times, no
    offset; ``pts``: its frames' (default: every packet's, in presentation order)."""
    frames = tuple(sorted(p.pts for p in info.packets) if pts is None else pts)
    return SegmentJob("file", 0, frames, replace(SourceMedia.of_summary(info.summary()), pts_offset=0, timed=True))


def analyse_segment(src: Path, segment: SegmentJob, config: PipelineConfig,
                    gallery: Gallery | None = None, cut_faces: bool = False,
                    keep_pictures_bytes: int = 0) -> SegmentResult:
    """Analyse a segment file's own frames (one per timestamp of ``segment.pts``). ``cut_faces``:
    also cut each track's best face (``SegmentResult.face_crops``: an upload's stitch uses them;
    a live camera's segment has no use for them). ``keep_pictures_bytes``: keep the decoded
    frames (``SegmentResult.pictures``) if all of them fit in that many bytes and none is damaged."""
    chain = analyzer_chain(config.analyzers, config.analyzer_configs, config.plugins)
    source = segment.media
    state = SegmentState(source.fps, gallery, config.detect_fps)
    calibration = thermal.Calibration(config.thermal_gain, config.thermal_offset)
    for analyzer in chain:
        analyzer.begin(state)
    cv2.setNumThreads(config.threads)  # OpenCV's pool would otherwise claim every core per worker
    stages = {"decode": 0.0, "analyze": 0.0}
    damage: list[str | None] = []
    repaired = 0
    crops = SegmentFaceCrops() if cut_faces else None
    pictures: list | None = [] if keep_pictures_bytes > 0 else None
    kept_bytes = 0
    # One item per timestamp, damage or not: a lost picture comes as a stand-in, marked.
    decoded = media.segment_frames(src, list(segment.pts), source.time_base, threads=config.threads,
                                   pts_offset=source.pts_offset, timed=source.timed)
    try:
        for _ in segment.pts:
            state.frame_index += 1
            t0 = time.perf_counter()
            item = next(decoded)
            t1 = time.perf_counter()
            faces, picture = Faces.empty(), None
            if item.damage is not None:     # a damaged frame carries no faces: none can be trusted
                state.damaged.add(state.frame_index)
            else:
                picture = thermal.picture_of_frame(item.frame, calibration)
                for analyzer in chain:
                    faces = analyzer(picture, faces)
            damage.append(item.damage)
            repaired += item.repeated
            if pictures is not None:
                kept_bytes += sum(plane.buffer_size for plane in item.frame.planes)
                if item.damage is None and kept_bytes <= keep_pictures_bytes:
                    pictures.append(item.frame)
                else:       # not all of them: the drawing decodes the file, so keep none
                    pictures = None
            state.faces.append(faces)
            if crops is not None:
                crops.frame(len(state.faces) - 1, picture, state.faces)
            stages["decode"] += t1 - t0
            stages["analyze"] += time.perf_counter() - t1
    finally:
        decoded.close()
    # A live camera's carried faces follow the line between the looks around them.
    fill_between_looks(state.faces)
    t0 = time.perf_counter()
    for analyzer in chain:
        analyzer.end(state)
    stages["analyze"] += time.perf_counter() - t0
    # Built after the last frame: the tracker may still have given a frame's face its track
    # on the frame after.
    frames = [faces.to_json() for faces in state.faces]
    thumbnails = {"first": state.first_thumbnail, "last": state.last_thumbnail}
    return SegmentResult(frames=frames, tracks=[r.to_json() for r in state.tracks.values()],
                         thumbnails={k: None if v is None else np.round(v).astype(int).tolist()
                                     for k, v in thumbnails.items()},
                         stages={k: round(v, 4) for k, v in stages.items()},
                         repaired_frames=repaired, damage=damage, face_crops=[] if crops is None else crops.crops(state.faces, frames),
                         pictures=pictures)
