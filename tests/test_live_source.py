"""The camera reader and the rolling segmenter, against a real RTSP server (GStreamer's)
and against servers that refuse, send junk or say nothing."""

from __future__ import annotations

import io
import threading
import time
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cli.redis_server import free_port
from tests.clipmaker import make_clip
from tests.rtsp_camera import (CorruptingProxy, JunkDescriptionServer, JunkServer, MjpegServer, RtspCamera,
                               SilentServer, gstreamer_missing)
from tests.waiting import wait_until
from workers import media
from workers.live.segmenter import RollingSegmenter, _Pending
from workers.live.source import Backoff, CameraSource
from workers.live.timeline import TIMELINE


@pytest.fixture(scope="module")
def gstreamer():
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def live_clips(tmp_path_factory) -> dict[str, Path]:
    """20 s clips with a face moving the whole time (so every frame differs from the next):
    H.264 with AAC audio, H.265 with B-frames and an open GOP (x265's defaults), both a
    keyframe a second; and H.264 with a keyframe every 10 s."""
    folder = tmp_path_factory.mktemp("live-clips")
    spec = {"h264": dict(codec="libx264", gop=15, audio=True),
            "h265": dict(codec="libx265", gop=15, audio=False),
            "long_gop": dict(codec="libx264", gop=150, audio=False)}
    return {name: make_clip(folder / f"{name}.mp4", seconds=20, fps=15, face_windows=[(0, 20)], **kw).path
            for name, kw in spec.items()}


@contextmanager
def watching(url: str, out_dir: Path, transport: str = "tcp", read_timeout: float = 3.0, open_timeout: float = 5.0,
             **source_options):
    """A camera read in a thread, its segments collected as they come."""
    segments = []
    segmenter = RollingSegmenter(out_dir, segments.append, segment_seconds=2.0)
    source = CameraSource(url, segmenter, transport=transport, open_timeout=open_timeout, read_timeout=read_timeout,
                          backoff=Backoff(first_s=0.2, max_s=1.0), **source_options)
    stop = threading.Event()
    thread = source.start(stop)
    try:
        yield source, segmenter, segments
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the camera reader did not stop"


def gray(frame) -> np.ndarray:
    return frame.to_ndarray(format="gray").astype(np.int16)


def clip_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [gray(f) for f in container.decode(video=0)]


def segment_pictures(segment) -> list[np.ndarray]:
    """A segment's own frames, decoded as a segment task decodes them: none damaged."""
    items = list(media.segment_frames(segment.path, segment.pts, TIMELINE))
    assert [item.damage for item in items] == [None] * segment.frames
    return [gray(item.frame) for item in items]


def assert_same_pictures(segments, clip: list[np.ndarray], tolerance: float) -> None:
    """The frames of consecutive segments are the clip's frames in order: none lost, repeated
    or reordered at a border. Each picture must be within ``tolerance`` (mean absolute
    difference) of the clip frame it should be, and nearer to it than to its neighbours."""
    pictures = [p for s in segments for p in segment_pictures(s)]
    assert len(pictures) == sum(s.frames for s in segments)
    start = int(np.argmin([np.abs(pictures[0] - c).mean() for c in clip]))
    for i, picture in enumerate(pictures):
        nearby = range(max(0, start + i - 2), min(len(clip), start + i + 3))
        differences = {k: float(np.abs(picture - clip[k]).mean()) for k in nearby}
        assert differences[start + i] <= tolerance, f"frame {i} differs by {differences[start + i]:.2f}"
        assert min(differences, key=differences.get) == start + i, f"frame {i} is nearer another: {differences}"


def assert_numbered(segments):
    for before, after in zip(segments, segments[1:]):
        assert after.first_frame == before.first_frame + before.frames
        assert after.index == before.index + 1
        assert after.pts[0] >= before.end_pts
    for segment in segments:
        assert segment.pts == sorted(set(segment.pts))


@pytest.mark.parametrize("codec,transport", [("h264", "tcp"), ("h264", "udp"), ("h265", "tcp"), ("h265", "udp")])
def test_stream_cut_into_remuxed_segments(gstreamer, live_clips, tmp_path, codec, transport):
    clip = live_clips[codec]
    with RtspCamera(clip, codec=codec, audio=(codec == "h264")) as camera, \
            watching(camera.url, tmp_path / "segments", transport) as (source, segmenter, segments):
        wait_until(lambda: len(segments) >= 3, 30, "three segments")
        received = time.time()
        assert str(source.status) == "live"
    states = [status.state for _, status in source.history]
    assert states[:2] == ["connecting", "live"] and "reconnecting" not in states
    assert segmenter.gaps == []
    assert_numbered(segments)
    assert segments[0].first_frame == 0 and not segments[0].continues
    assert all(s.continues and not s.reencoded for s in segments[1:])
    for segment in segments[:3]:
        # A keyframe a second, 2 s segments: cut at every second keyframe.
        assert segment.frames == 30 and segment.width == 480 and segment.height == 270
        assert segment.fps == pytest.approx(15, abs=0.1)
    # Capture times: from the camera's RTCP reports, 2 s apart, and before we had the segment.
    assert {s.clock for s in segments} == {"rtcp"}
    assert segments[1].captured_at - segments[0].captured_at == pytest.approx(2.0, abs=0.01)
    assert segments[2].captured_at + 2.0 <= received + 0.5
    assert received - segments[2].captured_at < 10
    assert_same_pictures(segments[:3], clip_frames(clip), tolerance=0.01)   # a remux: the same pictures


def test_long_gop_stream_is_reencoded_into_short_segments(gstreamer, live_clips, tmp_path):
    clip = live_clips["long_gop"]
    with RtspCamera(clip) as camera, watching(camera.url, tmp_path / "segments") as (source, segmenter, segments):
        wait_until(lambda: len(segments) >= 3, 40, "three segments")
    assert all(s.reencoded for s in segments)
    assert_numbered(segments)
    assert [s.frames for s in segments[:3]] == [30, 30, 30]
    for segment in segments[:3]:    # each one decodes on its own, from its first packet
        with av.open(str(segment.path)) as container:
            packets = [p for p in container.demux(video=0) if p.size]
        assert packets[0].is_keyframe and len(packets) == segment.frames
    assert_same_pictures(segments[:3], clip_frames(clip), tolerance=1.5)     # re-encoded: near, not equal


def test_a_29_97_fps_camera_is_read_at_the_rate_its_timestamps_say(gstreamer, tmp_path):
    """FFmpeg's probe estimates a stream's rate from its first packets: a 30000/1001 camera
    sending B-frames read as 60000/1001. Its segments then said 59.94 fps for 60 frames of 2 s,
    its first picture was placed half a frame early, and what counts frames at that rate (an
    alert's capture time, the detect pace, how long a lost track is kept) ran at half speed."""
    ntsc = Fraction(30000, 1001)
    clip = make_clip(tmp_path / "ntsc.mp4", seconds=10, fps=ntsc, size=(320, 180), gop=30, bframes=2,
                     face_windows=[(0, 10)], audio=False).path
    with RtspCamera(clip) as camera, watching(camera.url, tmp_path / "segments") as (source, segmenter, segments):
        wait_until(lambda: len(segments) >= 3, 30, "three segments")
    first = segments[0]
    assert_numbered(segments[:3])
    for segment in segments[:3]:
        # Cut at every second keyframe: 60 frames over 2.002 s, as 29.97 fps says.
        duration = (segment.end_pts - segment.pts[0]) * TIMELINE
        assert segment.frames == 60 and segment.fps == pytest.approx(float(ntsc), rel=1e-6)
        assert float(duration) == pytest.approx(60 / ntsc, abs=2 * float(TIMELINE))
        assert {b - a for a, b in zip(segment.pts, segment.pts[1:])} <= {3002, 3003, 3004}     # 1001/30000 s
        # Frames counted at its rate from the first land where the camera's clock put them:
        # no drift (at 59.94 fps, frame 179 was dated 3 s early).
        last = segment.first_frame + segment.frames - 1
        counted = first.captured_at + (last - first.first_frame) / segment.fps
        assert counted == pytest.approx(segmenter.timeline.captured_at(segment.pts[-1]), abs=0.5 / float(ntsc))


def test_camera_that_drops_and_comes_back_leaves_a_gap(gstreamer, live_clips, tmp_path):
    camera = RtspCamera(live_clips["h264"], audio=True).start()
    try:
        with watching(camera.url, tmp_path / "segments") as (source, segmenter, segments):
            wait_until(lambda: len(segments) >= 2, 30, "two segments")
            killed_at = time.time()
            camera.kill()                                   # power lost mid-stream
            reason = wait_until(lambda: source.status.state == "reconnecting" and source.status.reason,
                                10, "reconnecting")
            frames_before = segmenter.frames
            time.sleep(2)
            restarted_at = time.time()
            camera.start()                                  # back, on the same port
            wait_until(lambda: len(segments) >= 4 and segments[-1].first_frame > frames_before, 30,
                       "segments after the camera came back")
            assert str(source.status) == "live"
    finally:
        camera.kill()
    assert "stream" in reason or "no data" in reason
    after = next(s for s in segments if s.first_frame >= frames_before)
    assert after.first_frame == frames_before and not after.continues
    assert_numbered(segments)
    [gap] = segmenter.gaps
    assert gap.after_frame == frames_before - 1 and gap.reason
    assert gap.since == pytest.approx(killed_at, abs=1.0)     # just after the last frame before it
    assert gap.until > restarted_at                           # the first frame after it
    assert gap.until == pytest.approx(after.captured_at)
    assert gap.until - gap.since > 2          # the time away is not joined over
    states = [str(status) for _, status in source.history]
    back = states.index("live", states.index(f"reconnecting ({reason})"))
    assert back > 0 and source.connections >= 2


def test_camera_that_stalls_is_noticed_and_rejoined(gstreamer, live_clips, tmp_path):
    with RtspCamera(live_clips["h264"]) as camera, \
            watching(camera.url, tmp_path / "segments", read_timeout=2.0) as (source, segmenter, segments):
        wait_until(lambda: segments, 30, "a segment")
        camera.freeze()                     # connection open, nothing sent
        frozen_at = time.monotonic()
        wait_until(lambda: source.status.state == "reconnecting", 10, "the stall noticed")
        noticed = time.monotonic() - frozen_at
        assert source.status.reason == "no data for 2 s"
        frames_before = segmenter.frames
        camera.thaw()
        wait_until(lambda: segments[-1].first_frame >= frames_before, 40, "segments after the stall")
        assert str(source.status) == "live"
    assert 1.5 <= noticed < 8
    assert len(segmenter.gaps) == 1 and segmenter.gaps[0].reason == "no data for 2 s"


def test_refused_connection_fails_with_its_reason(tmp_path):
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    with watching(url, tmp_path, give_up_after=2) as (source, segmenter, segments):
        wait_until(lambda: source.status.state == "failed", 20, "failed")
    assert str(source.status) == f"failed ({url}: cannot open (Connection refused))"
    assert [s.state for _, s in source.history] == ["connecting", "reconnecting", "failed"]
    assert segments == [] and segmenter.gaps == []


def test_junk_answers_fail_with_a_reason(tmp_path):
    # A short open timeout: each attempt may wait all of it for an answer it can read.
    with JunkServer() as server, watching(server.url, tmp_path, give_up_after=2, open_timeout=2.0) as \
            (source, _, segments):
        wait_until(lambda: source.status.state == "failed", 40, "failed")
    assert server.connections == 2 and segments == []
    # FFmpeg gives up on some random replies at once, and waits for more after others.
    assert str(source.status) in (f"failed ({server.url}: no usable answer within 2 s)",
                                  f"failed ({server.url}: cannot open (Invalid data found when processing input))")


def test_junk_stream_description_fails_with_a_reason(tmp_path):
    with JunkDescriptionServer() as server, watching(server.url, tmp_path, give_up_after=2) as (source, _, _):
        wait_until(lambda: source.status.state == "failed", 30, "failed")
    assert str(source.status) == f"failed ({server.url}: no video stream)"


def test_garbage_mid_stream_is_survived(gstreamer, live_clips, tmp_path):
    with RtspCamera(live_clips["h264"]) as camera, CorruptingProxy(camera.port) as proxy, \
            watching(proxy.url, tmp_path / "segments") as (source, segmenter, segments):
        wait_until(lambda: len(segments) >= 2, 30, "two segments")
        frames_before = segmenter.frames
        proxy.corrupt()
        wait_until(lambda: source.status.state == "reconnecting", 15, "the garbage noticed")
        reason = source.status.reason
        proxy.corrupting.clear()       # the camera sends sense again
        wait_until(lambda: segments[-1].first_frame >= frames_before and source.status.state == "live", 40,
                   "segments after the garbage")
    assert reason
    assert_numbered(segments)
    assert segmenter.gaps and segmenter.gaps[0].after_frame >= frames_before - 1
    for segment in segments:          # whatever was written decodes (damaged pictures may be lost)
        with av.open(str(segment.path)) as container:
            assert sum(1 for _ in container.decode(video=0)) >= 1


def test_silent_server_times_out(tmp_path):
    with SilentServer() as server, watching(server.url, tmp_path, give_up_after=1) as (source, _, segments):
        wait_until(lambda: source.status.state == "failed", 20, "failed")
    assert str(source.status) == f"failed ({server.url}: no usable answer within 5 s)"


@pytest.mark.parametrize("keys,cut", [
    ([1.0, 2.0], [False, True]),            # a keyframe a second: cut at 2 s
    ([1.9], [True]),                        # GOP 1.9 s: 1.9 s segments, not 3.8 s
    ([0.5, 1.0, 1.5, 2.0], [False, False, False, True]),
    ([1.4], [True]),                        # 1.4 s short of 2 is nearer than 2.8 s would be
    ([0.9, 1.8], [False, True]),            # 1.8 is nearer than 2.7
    ([3.0], [True]),
])
def test_cut_at_the_keyframe_nearest_the_target(keys, cut):
    pending = _Pending(start=0, packets=[])
    ticks = round(1 / TIMELINE)
    assert [pending.cut_at(round(k * ticks), 2 * ticks) for k in keys] == cut


def test_backoff_doubles_up_to_a_limit():
    assert [Backoff(0.5, 4).delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]


def test_http_mjpeg_camera_is_timed_by_arrival(tmp_path):
    """FFmpeg's HTTP MJPEG reader numbers pictures at 25 a second whatever the camera sends:
    a 10 fps camera read by those numbers said 25 fps, cut 5 s "2 s" segments and dated its
    frames later and later behind capture. Its pictures are timed by arrival instead."""
    clip = make_clip(tmp_path / "door.mp4", seconds=4, fps=10, face_windows=[(0, 4)], audio=False).path
    pictures = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            buffer = io.BytesIO()
            frame.to_image().save(buffer, "JPEG", quality=85)
            pictures.append(buffer.getvalue())
    with MjpegServer(pictures, fps=10) as camera, \
            watching(camera.url, tmp_path / "segments") as (source, segmenter, segments):
        wait_until(lambda: len(segments) >= 3, 60, "three segments")
        sent = list(camera.sent)
    assert_numbered(segments[:3])
    assert {s.clock for s in segments} == {"arrival"}
    for segment in segments[1:3]:      # the first may hold the burst FFmpeg read while probing
        assert segment.fps == pytest.approx(10, rel=0.3)
    last = segments[2].first_frame + segments[2].frames - 1
    captured = segmenter.timeline.captured_at(segments[2].pts[-1]) - segments[0].captured_at
    assert captured == pytest.approx(sent[last] - sent[segments[0].first_frame], rel=0.25)
    assert sum(len(segment_pictures(s)) for s in segments[:3]) == last + 1
