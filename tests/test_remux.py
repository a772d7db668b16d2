"""Drawing a segment by copying its untouched GOPs (workers.remux, workers.render): frame
count, timestamps, copied packets byte for byte, and the joined video with its audio."""

from __future__ import annotations

import av
import numpy as np
import pytest

from tests.clipmaker import count_video_frames, make_clip
from tests.quietclip import Appearance, make_quiet_clip
from workers import media, remux
from workers.render import RenderConfig, render_segment

LABEL = [[100, 60, 180, 160, "#1 0.90", "unknown"]]


def packets(path) -> list[tuple[bytes, bool]]:
    with av.open(str(path)) as container:
        return [(bytes(p), p.is_keyframe) for p in container.demux(video=0) if p.size]


def pictures(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray") for f in container.decode(video=0)]


def without_parameter_sets(data: bytes) -> bytes:
    """A packet's NAL units after its in-band SPS and PPS (types 7 and 8)."""
    position = 0
    while position + 4 < len(data) and data[position + 4] & 0x1F in (7, 8):
        position += 4 + int.from_bytes(data[position:position + 4], "big")
    return data[position:]


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    """6 s at 10 fps, a keyframe every 10 frames; a face on screen from 2.0 to 3.5 s."""
    folder = tmp_path_factory.mktemp("remux")
    clip = make_quiet_clip(folder / "quiet.mp4", seconds=6, fps=10, gop=10,
                           appearances=[Appearance(2.0, 3.5, walk=True, height=100)])
    info = media.probe(clip.path)
    return clip, info, sorted(p.pts for p in info.packets)


def draw(src, out, info, pts, labels, **kw):
    return render_segment(src, out, pts, info.tb, info.fps, info.width, info.height, labels,
                          RenderConfig(**kw), intact=True)


def test_untouched_gops_are_copied_byte_for_byte_and_drawn_ones_re_encoded(quiet, tmp_path):
    clip, info, pts = quiet
    labels = [LABEL if box is not None else [] for box in clip.photo_boxes]
    stages = draw(clip.path, tmp_path / "out.mp4", info, pts, labels)
    assert stages["copy"] > 0
    source, drawn = packets(clip.path), packets(tmp_path / "out.mp4")
    assert len(drawn) == len(source) == clip.frames == 60
    gop_drawn = [any(labels[i:i + 10]) for i in range(0, 60, 10)]
    assert gop_drawn == [False, False, True, True, False, False]
    for gop, was_drawn in enumerate(gop_drawn):
        for i in range(gop * 10, gop * 10 + 10):
            data, keyframe = drawn[i]
            if was_drawn:
                assert without_parameter_sets(data) != source[i][0]
            else:
                assert (without_parameter_sets(data) if keyframe else data) == source[i][0]
        # A copied GOP starts with the source's IDR; so does the first drawn one after it.
        if not was_drawn or not gop_drawn[gop - 1]:
            assert drawn[gop * 10][1] and remux.is_idr(av.Packet(drawn[gop * 10][0]))
    # Every frame decodes: a copied one is the source's picture, a drawn one differs.
    original, output = pictures(clip.path), pictures(tmp_path / "out.mp4")
    assert len(output) == 60
    for i in range(60):
        if not gop_drawn[i // 10]:
            assert np.array_equal(original[i], output[i])
        elif labels[i]:
            assert np.abs(original[i].astype(int) - output[i].astype(int)).max() > 100
        else:
            assert np.abs(original[i].astype(int) - output[i].astype(int)).mean() < 3
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert [f.pts for f in container.decode(video=0)] == [round(p * info.tb / container.streams.video[0].time_base)
                                                               for p in pts]


def test_a_segment_with_nothing_to_draw_is_the_source_and_one_with_everything_is_encoded(quiet, tmp_path):
    clip, info, pts = quiet
    draw(clip.path, tmp_path / "none.mp4", info, pts, [[] for _ in pts])
    assert [without_parameter_sets(d) for d, _ in packets(tmp_path / "none.mp4")] == [d for d, _ in packets(clip.path)]
    stages = draw(clip.path, tmp_path / "all.mp4", info, pts, [LABEL for _ in pts])
    assert stages["copy"] == 0 and count_video_frames(tmp_path / "all.mp4") == 60
    stages = draw(clip.path, tmp_path / "off.mp4", info, pts, [[] for _ in pts], stream_copy=False)
    assert "copy" not in stages and count_video_frames(tmp_path / "off.mp4") == 60


def test_a_recording_cut_mid_gop_joins_into_the_source_frames_with_copies_where_untouched(quiet, tmp_path):
    clip, info, pts = quiet
    plans = media.plan_segments(info, target_s=2.5)      # 60 frames in 2 segments of 30: mid-GOP cuts
    assert [p.start_frame for p in plans] == [0, 30] or len(plans) > 1
    files = media.split_segments(clip.path, info, plans, tmp_path / "segments")
    drawn, copied = [], 0
    for plan, path in zip(plans, files):
        labels = [LABEL if clip.photo_boxes[plan.start_frame + i] is not None else [] for i in range(plan.frames)]
        out = tmp_path / f"{plan.index}.mp4"
        copied += render_segment(path, out, plan.pts, info.tb, info.fps, info.width, info.height, labels,
                                 RenderConfig(), info.pts_offset, True, intact=True)["copy"] > 0
        drawn.append(out)
    joined = tmp_path / "joined.mp4"
    timings = [media.SegmentTiming(p.pts, p.end_pts) for p in plans]
    assert media.concat_segments(drawn, timings, info.tb, joined) == 60
    assert copied == len(plans)
    original, output = pictures(clip.path), pictures(joined)
    assert len(output) == 60
    # Copied or re-encoded, every untouched frame shows the scene as the source does.
    untouched = [i for i, box in enumerate(clip.photo_boxes) if box is None]
    assert all(np.abs(original[i].astype(int) - output[i].astype(int)).mean() < 3 for i in untouched)


def test_audio_and_timestamps_survive_the_join_of_copied_and_drawn_segments(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", seconds=4, fps=10, gop=10, audio=True, face_windows=[(1.0, 2.0)])
    info = media.probe(clip.path)
    pts = sorted(p.pts for p in info.packets)
    labels = [LABEL if box is not None else [] for box in clip.photo_boxes]
    out = tmp_path / "seg.mp4"
    render_segment(clip.path, out, pts, info.tb, info.fps, info.width, info.height, labels, RenderConfig(),
                   intact=True)
    joined = tmp_path / "joined.mp4"
    end = pts[-1] + (pts[-1] - pts[-2])
    assert media.concat_segments([out], [media.SegmentTiming(pts, end)], info.tb, joined, audio_source=clip.path) == 40
    joined_info = media.probe(joined)
    assert joined_info.has_audio and joined_info.frames == 40
    assert sorted(p.pts for p in joined_info.packets) == [round(p * info.tb / joined_info.tb) for p in pts]


def test_parameter_sets_come_out_of_an_avcc_record_as_annex_b_and_packets_convert_both_ways():
    sps, pps = bytes([0x67, 1, 2, 3]), bytes([0x68, 9])
    avcc = bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1]) + len(sps).to_bytes(2, "big") + sps + bytes([1]) \
        + len(pps).to_bytes(2, "big") + pps
    assert remux.parameter_sets(avcc) == remux.START + sps + remux.START + pps
    assert remux.parameter_sets(remux.START + sps + remux.START + pps + remux.START + bytes([0x06, 5])) \
        == remux.START + sps + remux.START + pps
    slice_ = bytes([0x65, 0x88, 0, 0, 3, 1, 7])        # an IDR slice, emulation prevention kept
    framed = len(slice_).to_bytes(4, "big") + slice_
    assert remux.annexb(framed) == remux.START + slice_
    assert remux.nal_units(remux.annexb(framed), annexb_framing=True) == remux.nal_units(framed) == [slice_]
    assert remux.is_idr(av.Packet(framed)) and not remux.is_idr(av.Packet(len(sps).to_bytes(4, "big") + sps))
    # A 256-511 byte NAL unit's length reads 00 00 01 xx, like a start code: the stream's
    # extradata, not the packet, says how packets are framed.
    long_slice = bytes([0x41]) + bytes(range(1, 256)) + bytes(range(1, 100))
    framed = len(long_slice).to_bytes(4, "big") + long_slice
    assert framed.startswith(b"\x00\x00\x01") and remux.annexb(framed) == remux.START + long_slice
    assert not remux.is_annexb(avcc) and remux.is_annexb(remux.START + sps)


def test_a_segment_drawn_from_its_analysis_pictures_is_the_file_its_own_decode_draws(quiet, tmp_path):
    """A busy segment drawn ahead by the worker that analysed it takes the frames it decoded
    (``pictures``) and decodes nothing, not even the GOP's frames before a mid-GOP start: the
    file is byte for byte the one drawn by decoding, copied GOPs and all."""
    clip, info, pts = quiet
    plans = media.plan_segments(info, target_s=1.5)     # 4 segments of 15 frames
    files = media.split_segments(clip.path, info, plans, tmp_path / "segments")
    drawn_mid_gop = 0
    for plan, path in zip(plans, files):
        labels = [LABEL if clip.photo_boxes[plan.start_frame + i] is not None else [] for i in range(plan.frames)]
        if not plan.start_frame % 10 or not any(labels):
            continue
        drawn_mid_gop += 1
        assert not all(labels)
        decoded = [item.frame for item in media.segment_frames(path, plan.pts, info.tb, pts_offset=info.pts_offset)]
        args = (plan.pts, info.tb, info.fps, info.width, info.height, labels, RenderConfig(), info.pts_offset, True)
        by_decoding = render_segment(path, tmp_path / "decoding.mp4", *args, intact=True)
        from_pictures = render_segment(path, tmp_path / "pictures.mp4", *args, intact=True, pictures=decoded)
        assert by_decoding["render_decode"] > 0 and from_pictures["render_decode"] == 0
        assert "copy" in from_pictures     # the copying drawing, which takes decoded frames
        assert (tmp_path / "pictures.mp4").read_bytes() == (tmp_path / "decoding.mp4").read_bytes()
    assert drawn_mid_gop == 1
