"""Split and concat on awkward inputs, and the probe's verdict on bad files."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests import crafted
from tests.clipmaker import count_video_frames, make_clip
from workers import media


def roundtrip(src: Path, work: Path, target_s: float = 2.0):
    """Split, re-encode each segment with the recorded timestamps, concat: like the farm,
    without the model."""
    info = media.probe(src)
    plans = media.plan_segments(info, target_s)
    files = media.split_segments(src, info, plans, work / "split")
    encoded = []
    for plan, path in zip(plans, files):
        out = work / f"enc{plan.index}.mp4"
        with media.H264Writer(out, info.width, info.height, info.tb, info.fps, preset="ultrafast") as writer:
            # A segment file starts at a keyframe: its own frames are plan.frames from plan.pts[0] on.
            frames = own_frames(path, plan, info)
            assert len(frames) == plan.frames
            for frame, pts in zip(frames, plan.pts):
                writer.write(frame if writer.fits(frame) else writer.canvas(frame.to_ndarray(format="bgr24")), pts)
        encoded.append(out)
    joined = work / "joined.mp4"
    count = media.concat_segments(encoded, [media.SegmentTiming(p.pts, p.end_pts) for p in plans],
                                  info.tb, joined, src if info.has_audio else None)
    return info, plans, joined, count


def own_frames(path: Path, plan, info) -> list[av.VideoFrame]:
    """A segment file's own pictures, every one intact (these sources are undamaged)."""
    frames = list(media.segment_frames(path, plan.pts, info.tb, pts_offset=info.pts_offset, timed=info.timed))
    assert [f.damage for f in frames] == [None] * plan.frames
    return [f.frame for f in frames]


def video_pts(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(float(f.pts * s.time_base) for f in c.decode(s))


@pytest.mark.parametrize("kind, kwargs", [
    ("with audio", dict(gop=15)),
    ("no audio", dict(gop=15, audio=False)),
    ("long GOP, one keyframe", dict(gop=1000, audio=False)),
    ("irregular GOP", dict(gop=7)),
    ("variable frame rate", dict(gop=10, vfr=True)),
    ("odd dimensions", dict(gop=15, size=(321, 181), pix_fmt="yuv444p")),
    ("matroska container", dict(gop=15, container="matroska")),
])
def test_split_and_concat_keep_every_frame_and_timestamp(tmp_path, kind, kwargs):
    suffix = ".mkv" if kwargs.get("container") == "matroska" else ".mp4"
    clip = make_clip(tmp_path / f"src{suffix}", seconds=5, fps=15, face_windows=[], **kwargs)
    info, plans, joined, count = roundtrip(clip.path, tmp_path)

    assert info.frames == clip.frames == count == count_video_frames(joined)
    assert sum(p.frames for p in plans) == clip.frames
    assert [p.start_frame for p in plans] == list(np.cumsum([0] + [p.frames for p in plans[:-1]]))
    if kwargs.get("gop", 0) >= 1000:
        assert len(plans) == 1           # no keyframe to cut at: one segment, never a mid-GOP cut
    else:
        assert len(plans) > 1
    assert video_pts(joined) == pytest.approx(video_pts(clip.path), abs=1e-3)
    out = media.probe(joined)
    assert out.duration_s == pytest.approx(info.duration_s, abs=1e-3)
    assert out.has_audio == info.has_audio
    assert out.width == info.width + info.width % 2   # 4:2:0 output pads odd sizes by a pixel


def test_segments_start_on_keyframes_and_are_not_reencoded(tmp_path):
    clip = make_clip(tmp_path / "src.mp4", seconds=6, fps=15, gop=15, face_windows=[], audio=False)
    info = media.probe(clip.path)
    plans = media.plan_segments(info, 2.0)
    files = media.split_segments(clip.path, info, plans, tmp_path / "split")
    with av.open(str(clip.path)) as c:
        source_packets = [bytes(p) for p in c.demux(video=0) if p.size]
    split_packets = []
    for path in files:
        with av.open(str(path)) as c:
            packets = [p for p in c.demux(video=0) if p.size]
            assert packets[0].is_keyframe
            split_packets += [bytes(p) for p in packets]
    assert split_packets == source_packets   # byte-identical: a remux, not a re-encode


def test_segment_length_follows_target(tmp_path):
    clip = make_clip(tmp_path / "src.mp4", seconds=8, fps=15, gop=15, face_windows=[], audio=False)
    info = media.probe(clip.path)
    assert [p.frames for p in media.plan_segments(info, 4.0)] == [60, 60]
    assert [p.frames for p in media.plan_segments(info, 2.0)] == [30, 30, 30, 30]


# --- bad input -----------------------------------------------------------------------------

def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def good_mp4(tmp_path) -> Path:
    return make_clip(tmp_path / "good.mp4", seconds=2, fps=15, gop=15, face_windows=[]).path


def bad_inputs(tmp_path: Path, good_mp4: Path) -> dict[str, tuple[Path, str]]:
    data = good_mp4.read_bytes()
    return {
        "text": (write_bytes(tmp_path / "notes.mp4", b"this is not a video\n" * 50), "not a readable video"),
        "empty": (write_bytes(tmp_path / "empty.mp4", b""), "empty"),
        # PyAV writes the index (moov) last: cut in half, nothing says where a frame lies.
        "truncated": (write_bytes(tmp_path / "cut.mp4", data[: len(data) // 2]), "cut short before its index"),
        "audio only": (crafted.audio_only(tmp_path), "no video, only audio"),
        "png image": (crafted.still_image(".png")(tmp_path), "this is a photo, not a video"),
        "jpeg image": (crafted.still_image(".jpg")(tmp_path), "this is a photo, not a video"),
    }


@pytest.mark.parametrize("case", ["text", "empty", "truncated", "audio only", "png image", "jpeg image"])
def test_probe_refuses_bad_input_with_one_clear_line(tmp_path, good_mp4, case):
    path, expected = bad_inputs(tmp_path, good_mp4)[case]
    with pytest.raises(media.MediaError) as caught:
        media.probe(path)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message and 0 < len(message) < 300


@pytest.mark.parametrize("bframes", [0, 2])
def test_truncated_with_index_first_keeps_the_frames_its_index_lists(tmp_path, bframes):
    """moov at the front (faststart), data cut short: the index still lists every frame. The
    ones past the end count, as frames the file lost (a damaged recording is salvaged, not
    refused: tests/test_damage.py follows such a file through the farm). With B-frames (the
    shared Intel clips have them) the cut falls in decode order: some pictures shown before
    the last one present are lost too, and the count stays the index's."""
    clip = make_clip(tmp_path / "src.mp4", seconds=3, fps=15, gop=15, face_windows=[], audio=False,
                     bframes=bframes)
    fast = tmp_path / "fast.mp4"
    with av.open(str(clip.path)) as src, av.open(str(fast), "w", format="mp4",
                                                  options={"movflags": "+faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    data = fast.read_bytes()
    whole = media.probe(fast)
    for fraction in (0.5, 0.6, 0.7, 0.8, 0.9):       # where the cut falls in a GOP matters
        info = media.probe(write_bytes(tmp_path / "cut.mp4", data[: int(len(data) * fraction)]))
        assert (info.frames, info.duration_s) == (whole.frames, whole.duration_s) == (45, 3.0), fraction
        present = {p.pts for p in info.packets if p.shown}
        assert sorted(info.lost) == sorted(p.pts for p in whole.packets if p.pts not in present), fraction


def test_limits_refuse_tiny_frames(tmp_path):
    clip = make_clip(tmp_path / "tiny.mp4", seconds=1, fps=15, size=(64, 36), face_windows=[], audio=False)
    with pytest.raises(media.MediaError, match="too small"):
        media.probe(clip.path, media.Limits(min_side=40))
    assert media.probe(clip.path).frames == 15


def test_short_recordings_are_cut_finer_into_equal_pieces(tmp_path):
    clip = make_clip(tmp_path / "src.mp4", seconds=6.2, fps=15, gop=15, face_windows=[], audio=False)
    info = media.probe(clip.path)
    # 4 s target, but 6 segments wanted: 93 frames in six equal pieces, cut mid-GOP where needed.
    assert [p.frames for p in media.plan_segments(info, 4.0, min_segments=6)] == [16, 15, 15, 16, 16, 15]
    assert [p.frames for p in media.plan_segments(info, 4.0)] == [46, 47]


@pytest.mark.parametrize("duration_s, expected", [
    (6.2, 1.0),           # short: cut finer, down to 1 s, as before
    (60.0, 4.0),          # 15 segments of 4 s: within both bounds
    (120.0, 4.0),         # 30 of 4 s
    (600.0, 600 / 32),    # 150 of 4 s would be too many: 32 of 18.75 s
    (3600.0, 60.0),       # 32 of 112.5 s would be too long: 60 segments of 60 s
])
def test_long_recordings_get_longer_segments_up_to_a_ceiling(duration_s, expected):
    assert media.segment_length(duration_s, 4.0, min_segments=8, max_segments=32, longest_s=60.0) == \
        pytest.approx(expected)


def test_segment_length_bounds_never_shorten_a_longer_target():
    assert media.segment_length(3600.0, 120.0, 8, max_segments=32, longest_s=60.0) == 120.0   # growth only
    assert media.segment_length(3600.0, 4.0, 8, max_segments=0) == 4.0                       # 0: no limit
    assert media.segment_length(3600.0, 4.0, 8, max_segments=32) == pytest.approx(112.5)     # no ceiling


def test_a_long_recording_is_cut_into_at_most_max_segments_equal_pieces(tmp_path):
    clip = make_clip(tmp_path / "src.mp4", seconds=40, fps=15, size=(96, 54), gop=30, face_windows=[], audio=False)
    info = media.probe(clip.path)
    assert len(media.plan_segments(info, 4.0, min_segments=2)) == 10                    # as before
    plans = media.plan_segments(info, 4.0, min_segments=2, max_segments=4)
    assert [p.frames for p in plans] == [150, 150, 150, 150]                             # 10 s each
    plans = media.plan_segments(info, 4.0, min_segments=2, max_segments=4, longest_s=7.0)
    assert [p.frames for p in plans] == [100, 100, 100, 100, 100, 100]                   # 6 of 6.7 s
    assert_segments_decode_to_their_own_pictures(clip.path, info, plans, tmp_path / "split")


def test_a_segment_starting_mid_gop_carries_its_gop_and_yields_only_its_frames(tmp_path):
    clip = make_clip(tmp_path / "src.mp4", seconds=4, fps=15, gop=20, face_windows=[], audio=False)
    info = media.probe(clip.path)
    plans = media.plan_segments(info, 1.0)                  # 60 frames, GOPs of 20: four pieces of 15
    # Each file runs from its GOP's keyframe to its own last frame (no B-frames here: decode
    # order is presentation order), not to the end of that GOP.
    assert [(p.start_frame, p.frames, p.first_packet, p.end_packet) for p in plans] == \
        [(0, 15, 0, 15), (15, 15, 0, 30), (30, 15, 20, 45), (45, 15, 40, 60)]
    files = media.split_segments(clip.path, info, plans, tmp_path / "split")
    with av.open(str(clip.path)) as c:
        source = [bytes(p) for p in c.demux(video=0) if p.size]
    for plan, path in zip(plans, files):
        with av.open(str(path)) as c:
            assert [bytes(p) for p in c.demux(video=0) if p.size] == source[plan.first_packet:plan.end_packet]
        own = own_frames(path, plan, info)
        assert [float(f.pts * f.time_base) for f in own] == [float(p * info.tb) for p in plan.pts]


def assert_segments_decode_to_their_own_pictures(path: Path, info, plans, work: Path) -> None:
    with av.open(str(path)) as c:
        whole = {f.pts * f.time_base: f.to_ndarray(format="gray") for f in c.decode(video=0)}
    assert len(whole) == info.frames == sum(p.frames for p in plans)
    for plan, file in zip(plans, media.split_segments(path, info, plans, work)):
        own = own_frames(file, plan, info)
        times = [pts * info.tb for pts in plan.pts]
        assert [f.pts * f.time_base - info.pts_offset * info.tb for f in own] == times
        assert all(np.array_equal(f.to_ndarray(format="gray"), whole[t]) for f, t in zip(own, times))


@pytest.mark.parametrize("x264_params", ["keyint=20:bframes=3", "open-gop=1:keyint=20:bframes=3:b-pyramid=normal"])
def test_segments_of_a_b_frame_stream_decode_to_exactly_their_own_pictures(tmp_path, x264_params):
    """Decode order differs from presentation order: a segment's file must hold every picture
    its frames reference (for an open GOP's first pictures, the GOP before), its timestamps
    must stay the source's (MP4 B-frame streams decode from before 0), and it may end before
    its GOP does."""
    path = crafted._encode(tmp_path / "b.mp4", "libx264", (160, 96), frames=80, options={"x264-params": x264_params})
    info = media.probe(path)
    assert any(a.pts > b.pts for a, b in zip(info.packets, info.packets[1:]))   # really reordered
    plans = media.plan_segments(info, 1.0, min_segments=7)
    gop_ends = [i for i, p in enumerate(info.packets) if p.keyframe][1:] + [len(info.packets)]
    assert any(p.end_packet not in gop_ends for p in plans)                    # some end mid-GOP
    assert_segments_decode_to_their_own_pictures(path, info, plans, tmp_path / "split")


def test_a_trimmed_mp4s_pre_roll_is_decoded_but_never_counted_or_shown(tmp_path):
    """An edit list keeps the frames before the trim point as pre-roll, with negative
    timestamps: NUT refuses those, so segment files shift every timestamp by one offset."""
    path = crafted.trimmed(tmp_path)
    info = media.probe(path)
    hidden = [p for p in info.packets if not p.shown]
    assert len(hidden) == 5 and all(p.pts < 0 for p in hidden)
    assert (info.frames, info.start_pts, info.pts_offset) == (len(info.packets) - 5, 0, -min(p.pts for p in hidden))
    for min_segments in (1, 3, 6):
        plans = media.plan_segments(info, 1.0, min_segments=min_segments)
        assert plans[0].pts[0] == 0
        assert_segments_decode_to_their_own_pictures(path, info, plans, tmp_path / f"split{min_segments}")


def assert_segments_hold_their_pictures_in_order(path: Path, work: Path) -> None:
    """For streams whose decoded frames carry no usable times: compare by position."""
    info = media.probe(path)
    with av.open(str(path)) as c:
        whole = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    plans = media.plan_segments(info, 0.5, min_segments=4)
    assert len(plans) > 1 and len(whole) == info.frames == sum(p.frames for p in plans)
    for plan, file in zip(plans, media.split_segments(path, info, plans, work)):
        own = own_frames(file, plan, info)
        assert len(own) == plan.frames
        assert all(np.array_equal(f.to_ndarray(format="gray"), whole[plan.start_frame + i]) for i, f in enumerate(own))


@pytest.mark.parametrize("name, codec, options", [
    ("raw.h264", "libx264", {"x264-params": "bframes=0:keyint=10"}),
    ("bframes.h264", "libx264", {"x264-params": "bframes=3:keyint=10"}),
    ("raw.hevc", "libx265", {"x265-params": "bframes=0:keyint=10:log-level=none"}),
])
def test_raw_streams_without_timestamps_split_into_their_own_pictures(tmp_path, name, codec, options):
    """An elementary stream carries no timestamps: probe counts them, and each segment file
    carries the counted ones (NUT would number every file's frames from 0 again)."""
    path = crafted._encode(tmp_path / name, codec, (160, 96), frames=40, container=name.split(".")[1],
                           options=options)
    assert not any(p.timed for p in media.probe(path).packets)
    assert_segments_hold_their_pictures_in_order(path, tmp_path / "split")


def test_decode_order_times_are_not_taken_for_presentation_times(tmp_path):
    """H.264 with B-frames in AVI: the times rise in decode order, so they say nothing of where
    a picture is shown; cuts go to keyframes, where decode and presentation order agree."""
    path = crafted._encode(tmp_path / "bframes.avi", "libx264", (160, 96), frames=40,
                           options={"x264-params": "bframes=3:keyint=10"})
    info = media.probe(path)
    assert not any(p.timed for p in info.packets)
    assert_segments_hold_their_pictures_in_order(path, tmp_path / "split")


def test_av1_splits_though_its_decoder_has_a_name_of_its_own(tmp_path):
    """PyAV looks for an encoder named like the decoder (libdav1d): there is none."""
    path = crafted._encode(tmp_path / "av1.mkv", "libsvtav1", (160, 96), frames=40,
                           options={"svtav1-params": "keyint=10"})
    assert_segments_hold_their_pictures_in_order(path, tmp_path / "split")


def test_a_recording_cut_from_a_running_stream_counts_only_the_pictures_it_shows(tmp_path):
    path = crafted.cut_from_a_running_stream(tmp_path)
    info = media.probe(path)
    hidden = [p for p in info.packets if not p.shown]
    assert hidden and all(p.pts < info.packets[0].pts for p in hidden)     # the open GOP's leading pictures
    for min_segments in (1, 4):
        plans = media.plan_segments(info, 0.5, min_segments=min_segments)
        assert_segments_decode_to_their_own_pictures(path, info, plans, tmp_path / f"split{min_segments}")


def test_long_open_gops_are_cut_where_their_keyframe_is_shown(tmp_path):
    """An open GOP shows a few pictures before its keyframe. Cutting there would make the
    segment decode the whole GOP before as well; the cut goes to the keyframe itself, and the
    pictures before it stay with the previous segment."""
    path = crafted._encode(tmp_path / "open.mp4", "libx264", (160, 96), frames=120,
                           options={"x264-params": "open-gop=1:keyint=40:min-keyint=40:scenecut=0:bframes=3"})
    info = media.probe(path)
    keyframes = [i for i, p in enumerate(info.packets) if p.keyframe]
    assert any(info.packets[k].pts > min(p.pts for p in info.packets[k:k + 4]) for k in keyframes[1:])  # open
    plans = media.plan_segments(info, 1.0, min_segments=8)                   # GOPs of 40, pieces of 15
    assert len(plans) == len(keyframes) > 1
    assert [p.first_packet for p in plans] == keyframes
    assert [p.pts[0] for p in plans] == [info.packets[k].pts for k in keyframes]
    assert_segments_decode_to_their_own_pictures(path, info, plans, tmp_path / "split")


def test_long_gops_are_not_cut_mid_gop(tmp_path):
    """A GOP of two segments or more would be decoded again and again: cut at keyframes."""
    clip = make_clip(tmp_path / "src.mp4", seconds=8, fps=15, gop=60, face_windows=[], audio=False)
    info = media.probe(clip.path)
    plans = media.plan_segments(info, 1.0)                  # 8 pieces wanted, GOPs of 4 s
    assert [p.start_frame for p in plans] == [0, 60]
    assert all(p.first_packet == p.start_frame for p in plans)


def test_keyframe_snap_moves_cuts_to_near_keyframes_and_keeps_the_count_and_the_last_segments(tmp_path):
    """GOPs of 45 frames, 8 segments of 30: a cut within half a segment (15 frames) of a
    keyframe moves there, unless the keyframe is taken by the cut before or lies past the next
    equal cut (a segment would be lost); the last two segments stay as equal cuts make them."""
    clip = make_clip(tmp_path / "src.mp4", seconds=8, fps=30, size=(96, 54), gop=45, face_windows=[], audio=False)
    info = media.probe(clip.path)
    keyframes = [i for i, p in enumerate(info.packets) if p.keyframe]
    assert keyframes == [0, 45, 90, 135, 180, 225]
    equal = media.plan_segments(info, 1.0, min_segments=8)
    assert [p.start_frame for p in equal] == [0, 30, 60, 90, 120, 150, 180, 210]
    assert media.plan_segments(info, 1.0, min_segments=8, keyframe_snap=0.0) == equal
    plans = media.plan_segments(info, 1.0, min_segments=8, keyframe_snap=0.5)
    # 30 -> 45; 60 stays (45 is taken); 90 is one; 120 -> 135; 150 stays (135 is taken);
    # 180 and 210 start the last two segments: equal, though 180 is a keyframe anyway.
    assert [p.start_frame for p in plans] == [0, 45, 60, 90, 135, 150, 180, 210]
    assert plans[-2:] == equal[-2:]
    assert sum(p.first_packet != p.start_frame for p in plans) == 3      # mid-GOP starts: 5 equal
    assert sum(p.first_packet != p.start_frame for p in equal) == 5
    narrow = media.plan_segments(info, 1.0, min_segments=8, keyframe_snap=0.25)   # reach 7.5 frames
    assert [p.start_frame for p in narrow] == [p.start_frame for p in equal]
    assert_segments_decode_to_their_own_pictures(clip.path, info, plans, tmp_path / "split")


def test_keyframe_snap_splits_an_open_gop_b_frame_stream_into_its_own_pictures(tmp_path):
    path = crafted._encode(tmp_path / "open.mp4", "libx264", (160, 96), frames=240,
                           options={"x264-params": "open-gop=1:keyint=45:min-keyint=45:scenecut=0:bframes=3"})
    info = media.probe(path)                                    # 15 fps: 8 segments of 2 s, 30 frames
    plans = media.plan_segments(info, 2.0, min_segments=8, keyframe_snap=0.5)
    equal = media.plan_segments(info, 2.0, min_segments=8)
    keyframe_shown = {info.packets[i].pts for i, p in enumerate(info.packets) if p.keyframe}

    def keyframe_starts(segments):
        return sum(p.pts[0] in keyframe_shown for p in segments[1:])

    # Equal cuts meet a keyframe twice (90, 180); the snap moves 30 and 120 onto theirs (45, 135).
    assert len(plans) == len(equal) == 8
    assert (keyframe_starts(equal), keyframe_starts(plans)) == (2, 4)
    assert_segments_decode_to_their_own_pictures(path, info, plans, tmp_path / "split")


def _keyframed(total: int, keyframes: set[int], fps: int = 30) -> media.MediaInfo:
    """A probe's verdict on an all-intra-or-P stream (no B-frames) with keyframes at ``keyframes``."""
    return media.MediaInfo(container="mp4", video_codec="h264", width=64, height=48, fps=fps, time_base=(1, fps),
                           frames=total, start_pts=0, duration_s=total / fps, has_audio=False,
                           packets=[media.PacketInfo(pts=i, duration=1, keyframe=i in keyframes) for i in range(total)])


def _starts(info: media.MediaInfo, target_s: float, keyframe_snap: float) -> list[int]:
    return [p.start_frame for p in media.plan_segments(info, target_s, min_segments=8, keyframe_snap=keyframe_snap)]


def test_keyframe_snap_never_merges_a_cut_into_one_the_long_gop_rule_moved():
    """The GOP 40-100 spans two segments of 30: the long-GOP rule moves the cut at 60 back to
    40, so the cut at 30 may not snap onto 40 (the two segments would become one)."""
    info = _keyframed(240, {0, 40, 100, 160, 220})
    assert _starts(info, 1.0, 0.0) == [0, 30, 40, 100, 160, 220]
    assert _starts(info, 1.0, 0.5) == [0, 30, 40, 100, 160, 220]


def test_keyframe_snap_keeps_the_count_and_moves_cuts_only_onto_near_keyframes():
    """Random keyframe layouts, 8 segments wanted: the snap keeps every segment snap 0 plans,
    and each cut stays where snap 0 put it or moves to a keyframe within half a segment."""
    chance = random.Random(15)
    for _ in range(400):
        total = chance.randint(60, 480)
        keyframes = {0}
        while max(keyframes) < total:
            keyframes.add(max(keyframes) + chance.randint(3, 90))
        info = _keyframed(total, keyframes)
        target_s = info.duration_s / 8
        equal, snapped = _starts(info, target_s, 0.0), _starts(info, target_s, 0.5)
        assert len(snapped) == len(equal), (total, sorted(keyframes), equal, snapped)
        for before, after in zip(equal, snapped):
            assert after == before or (after in keyframes and abs(after - before) <= total / 8 / 2), \
                (total, sorted(keyframes), equal, snapped)


def _x264_options(path: Path) -> str:
    """The options x264 wrote into the stream's SEI ("x264 - core ... - options: ...")."""
    data = path.read_bytes()
    start = data.index(b"options: ") + len(b"options: ")
    return data[start:data.index(b"\x00", start)].decode("ascii", "replace")


@pytest.mark.parametrize("params, subme", [("", "subme=2"), ("subme=1", "subme=1"), ("subme=3:me=dia", "subme=3")])
def test_x264_params_reach_the_encoder(tmp_path, params, subme):
    out = tmp_path / "out.mp4"
    with media.H264Writer(out, 64, 48, Fraction(1, 30), 30.0, preset="veryfast", params=params) as writer:
        for index in range(3):
            writer.write(av.VideoFrame.from_ndarray(np.full((72, 64), 16 * index, np.uint8), format="yuv420p"), index)
    options = _x264_options(out).split()
    assert subme in options
    if "me=dia" in params:
        assert "me=dia" in options


def test_the_farm_encodes_with_half_strength_adaptive_quantisation_and_no_p_frame_8x8_partitions(tmp_path):
    # docs/benchmarks.md, "Busy path: the encoder's options": these take 14-21 % off x264's time on
    # the busy clips for fewer bytes at the same PSNR; adaptive quantisation stays (half strength).
    from core.settings import Settings

    settings = Settings()
    out = tmp_path / "out.mp4"
    with media.H264Writer(out, 64, 48, Fraction(1, 30), 30.0, preset=settings.x264_preset, crf=settings.x264_crf,
                          params=settings.x264_params) as writer:
        for index in range(3):
            writer.write(av.VideoFrame.from_ndarray(np.full((72, 64), 16 * index, np.uint8), format="yuv420p"), index)
    options = dict(option.split("=", 1) for option in _x264_options(out).split() if "=" in option)
    assert options["subme"] == "1"
    assert options["aq"] == "1:0.50"                  # adaptive quantisation on, at half strength
    intra, inter = (int(flags, 16) for flags in options["analyse"].split(":"))
    assert intra == 0x3 and inter == 0x1              # P-frames: 16x16 and 4x4 intra, no 8x8 partitions
    assert options["me"] == "hex"


def test_the_canvas_of_a_decoded_frame_is_a_new_frame_with_its_pixels_to_draw_on(tmp_path):
    # 322 pixels wide: the decoder's rows are padded beyond the picture (line_size > width).
    src = make_clip(tmp_path / "src.mp4", seconds=1, fps=10, size=(322, 180), audio=False).path
    with av.open(str(src)) as container:
        frame = next(container.decode(video=0))
    assert frame.planes[0].line_size > frame.width
    before = frame.to_ndarray().copy()
    with media.H264Writer(tmp_path / "out.mp4", 322, 180, Fraction(1, 10), 10.0) as writer:
        canvas = writer.canvas(frame)
        assert isinstance(canvas, av.VideoFrame) and writer.fits(canvas)
        assert np.array_equal(canvas.to_ndarray(), before)
        for plane in media.yuv_planes(canvas):      # drawn on, every pixel ...
            plane[:] = 0
        assert np.array_equal(frame.to_ndarray(), before)     # ... the decoded frame is as it was
        assert not canvas.to_ndarray().any()
        writer.write(canvas, 0)
    assert count_video_frames(tmp_path / "out.mp4") == 1


def test_bad_x264_params_are_refused_as_a_setting(monkeypatch):
    from pydantic import ValidationError

    from core.settings import Settings

    monkeypatch.setenv("VIDFARM_X264_PARAMS", "subme=1;rm -rf")
    with pytest.raises(ValidationError, match="x264_params"):
        Settings()
    monkeypatch.setenv("VIDFARM_X264_PARAMS", "")
    assert Settings().x264_params == ""


def test_files_that_reveal_streams_only_when_probed_still_open_and_decode(tmp_path):
    """MPEG program streams expose no stream until probed, so per-stream options (skipping the
    probe's picture decoding) cannot apply: opening falls back to a full probe."""
    path = crafted.program_stream(tmp_path / "program.mpg")
    with pytest.raises(ValueError):     # what the fallback is for: PyAV refuses the options here
        av.open(str(path), stream_options=[{"skip_frame": "all"}])
    assert media.probe(path).frames == 25
    assert sum(1 for _ in media.decode_frames(path)) == 25


def test_a_timestamp_the_demuxer_repeats_splits_with_every_frame_in_order(tmp_path):
    """The MPEG-PS demuxer guesses some times and here gives two pictures the same one: the
    split's NUT muxer refused the repeat ("Invalid argument"). The second picture moves one
    tick on; every segment decodes to its own frames, intact and in order."""
    path = crafted.program_stream(tmp_path / "program.mpg")
    with av.open(str(path)) as container:
        stamps = [p.pts for p in container.demux(video=0) if p.size]
    assert len(set(stamps)) < len(stamps)          # the demuxer does repeat one
    info = media.probe(path)
    plans = media.plan_segments(info, 0.4)
    assert len(plans) > 1 and info.frames == 25
    times = [pts for plan in plans for pts in plan.pts]
    assert all(a < b for a, b in zip(times, times[1:]))
    shades = []
    for plan, segment in zip(plans, media.split_segments(path, info, plans, tmp_path / "segments")):
        frames = list(media.segment_frames(segment, plan.pts, info.tb, pts_offset=info.pts_offset))
        assert len(frames) == plan.frames and not any(f.damage for f in frames)
        shades += [int(f.frame.to_ndarray(format="gray")[120, 160]) for f in frames]
    assert shades == sorted(shades) and len(set(shades)) == 25


@pytest.mark.parametrize("container,ext", [("mpegts", "ts"), ("avi", "avi"), ("nut", "nut"), ("matroska", "mkv")])
def test_an_upload_s_frame_rate_is_the_one_its_timestamps_say(tmp_path, container, ext):
    """A 29.97 fps H.264 stream with B-frames whose timing info counts half-frames (x264 writes
    it so for a half-frame time base; cameras' encoders do too). MPEG-TS has no frame-rate
    field of its own and AVI's muxer fills its one from the codec: FFmpeg read both as 59.94
    fps, and results.json, the job view and the tracks' lost-frame buffer took that. The frames' timestamps say 29.97. NUT and Matroska (a millisecond clock: 33
    and 34 ms steps) were read right, and still are."""
    ntsc = Fraction(30000, 1001)
    clip = make_clip(tmp_path / f"ntsc.{ext}", seconds=4, fps=ntsc, size=(320, 180), gop=30, bframes=2,
                     audio=False, container=container, face_windows=[])
    info = media.probe(clip.path)
    assert info.fps == pytest.approx(float(ntsc), rel=1e-6)
    assert info.frames == 120 and info.duration_s == pytest.approx(4.004, abs=0.04)


def test_a_variable_rate_upload_keeps_its_average_rate(tmp_path):
    """Intervals of one and two frames at 15 fps: the median interval would say 15 fps, the
    recording runs at 10.3 on average (as FFmpeg reads it): the average stands."""
    clip = make_clip(tmp_path / "vfr.mp4", seconds=4, fps=15, size=(320, 180), vfr=True, audio=False, face_windows=[])
    info = media.probe(clip.path)
    assert 9 < info.fps < 12
