"""Quiet GOPs (``PipelineConfig.quiet_gops``): on a still camera, GOPs whose packets show nothing
happening are not decoded while nothing is live; someone walking in is still found."""

from __future__ import annotations

import json

from tests.quietclip import Appearance, make_quiet_clip
from tests.test_motion_gate import inside
from workers import media, pipeline

FPS, GOP = 15, 15       # a keyframe a second
# As bench.quiet_hour's camera encodes (its noise mostly quantized away), the light drifting slowly.
CAMERA = {"preset": "veryfast", "crf": 26, "drift": 0.01, "noise": 3.0}


def analysed(path, quiet_gops: float, gate: bool = True):
    """The clip as one segment through detect and track: the result, and the frames not decoded."""
    info = media.probe(path)
    configs = {"detect": {"gate": {"enabled": gate}}}
    config = pipeline.PipelineConfig(analyzers=("detect", "track"), threads=1, quiet_gops=quiet_gops,
                                     analyzer_configs=json.dumps(configs, sort_keys=True))
    detector = pipeline.analyzer_chain(config.analyzers, config.analyzer_configs, config.plugins)[0]
    result = pipeline.analyse_segment(path, pipeline.whole_file(info), config)
    return result, detector.gate.looks["undecoded"] if detector.gate else 0


def test_an_empty_still_scene_decodes_its_first_gop_only_and_reports_the_same_empty_frames(tmp_path):
    clip = make_quiet_clip(tmp_path / "empty.mp4", seconds=8, fps=FPS, gop=GOP, **CAMERA)
    result, undecoded = analysed(clip.path, quiet_gops=4.0)
    decoded_all, none_undecoded = analysed(clip.path, quiet_gops=0)
    # The first GOP is decoded (the gate's first look, its background); nothing is live after
    # it, so every later GOP its packets call quiet is not (packet sizes vary with the encoder's
    # rate control too: not every empty GOP is called quiet).
    quiet = media.quiet_gops(clip.path, 4.0)
    assert undecoded == sum(len(stamps) for key, stamps in quiet.items() if key != 0) >= 3 * GOP
    assert none_undecoded == 0
    assert result.frames == decoded_all.frames == [[] for _ in range(clip.frames)]
    assert result.damage == [None] * clip.frames

    # The decoder itself: frame threads hold pictures back; they come out before a GOP is left
    # undecoded, every timestamp gets its item, in order.
    info = media.probe(clip.path)
    pts = sorted(p.pts for p in info.packets)
    items = list(media.segment_frames(clip.path, pts, info.tb, threads=4, timed=True,
                                      quiet=media.quiet_gops(clip.path, 4.0), may_skip=lambda: True))
    decoded = [item.frame.pts for item in items if not item.skipped]
    assert len(items) == clip.frames and decoded == sorted(decoded) and len(decoded) == clip.frames - undecoded


def test_someone_walking_in_mid_gop_is_found_on_every_frame_every_frame_detection_finds_them(tmp_path):
    # In at 5.5 s, halfway through a GOP, after five quiet GOPs; the GOPs with them are not quiet.
    clip = make_quiet_clip(tmp_path / "walk.mp4", seconds=10, fps=FPS, gop=GOP, **CAMERA,
                           appearances=[Appearance(5.5, 10, walk=True, height=110)])
    frame_of = {stamp: i for i, stamp in enumerate(sorted(p.pts for p in media.probe(clip.path).packets))}
    quiet = {frame_of[key] for key in media.quiet_gops(clip.path, 4.0)}
    assert 5 * GOP not in quiet and quiet & {GOP, 2 * GOP, 3 * GOP, 4 * GOP}    # the GOP they walk into is not
    skipping, undecoded = analysed(clip.path, quiet_gops=4.0)
    every, _ = analysed(clip.path, quiet_gops=0, gate=False)
    assert undecoded >= 3 * GOP
    found = lambda result, i: any(inside(face["box"], clip.photo_boxes[i]) for face in result.frames[i])
    on_screen = [i for i, box in enumerate(clip.photo_boxes) if box is not None]
    everys = [i for i in on_screen if found(every, i)]
    assert len(everys) >= 0.9 * len(on_screen)
    assert [i for i in everys if not found(skipping, i)] == []
