"""Reading a recording stays bounded (issue 11, item 8): absurd frame rates and frame counts
are refused with a clear line, memory stays flat and reading has a time budget; the web
process only looks at the header and the first second, the ingest task reads the rest (the
ingest's refusal through the farm: tests/crafted.py, "1000 frames per second")."""

from __future__ import annotations

import tracemalloc

import av
import pytest

from tests.clipmaker import make_clip
from tests.crafted import tiny_packets
from workers import media

MEMORY_BOUND = 100 * 1024 * 1024    # generous: listing a million packets took 160-290 MB


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    """The issue's file: a million tiny packets at 1000 fps (15 MB)."""
    return tiny_packets(tmp_path_factory.mktemp("many") / "million.mkv", 1_000_000)


@pytest.fixture(scope="module")
def disguised(tmp_path_factory):
    """A million tiny packets whose first 300 come at 25 fps (what the header says), the rest at 1000."""
    return tiny_packets(tmp_path_factory.mktemp("many") / "disguised.mkv", 1_000_000, calm=300)


def peak_memory(read, path) -> tuple[str | None, int]:
    """(the refusal, or None) and the peak of Python memory allocated while ``read`` ran."""
    tracemalloc.start()
    try:
        read(path)
        refusal = None
    except media.MediaError as exc:
        refusal = str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return refusal, peak


@pytest.mark.parametrize("read", [media.check_upload, media.probe], ids=["upload check", "probe"])
def test_a_million_packets_at_1000_fps_are_refused_with_flat_memory(million, read):
    refusal, peak = peak_memory(read, million)
    assert refusal == "frame rate 1000 fps exceeds the 240 fps maximum"
    assert peak < MEMORY_BOUND


def test_a_rate_the_header_hides_is_refused_by_the_probe(disguised):
    # The web's check reads only the header and the first second (25 fps): it lets the file
    # through; the ingest's probe measures the rate as it reads and stops at the burst.
    refusal, peak = peak_memory(media.check_upload, disguised)
    assert refusal is None and peak < MEMORY_BOUND
    refusal, peak = peak_memory(media.probe, disguised)
    assert refusal is not None and refusal.endswith("the frame rate exceeds the 240 fps maximum")
    assert peak < MEMORY_BOUND


def test_too_many_frames_and_too_long_a_read_are_refused(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=20, fps=15, size=(64, 48), face_windows=[], audio=False)
    few = media.Limits(max_frames=100)
    for read in (media.check_upload, media.probe):      # the MP4 header declares 300 frames
        with pytest.raises(media.MediaError, match=r"^too many frames \(more than the 100 allowed\)$"):
            read(clip.path, few)
    with pytest.raises(media.MediaError, match="took longer than the 0 s allowed"):
        media.probe(clip.path, media.Limits(budget_s=0))
    assert media.probe(clip.path).frames == 300



def restamped(source, path, stamp_of, container: str):
    """``source``'s video packets remuxed into ``container`` with timestamps ``stamp_of(index)``."""
    with av.open(str(source)) as src, av.open(str(path), "w", format=container) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for index, packet in enumerate(p for p in src.demux(video=0) if p.size):
            packet.stream, packet.pts, packet.dts = stream, stamp_of(index), stamp_of(index)
            out.mux(packet)
    return path


@pytest.mark.parametrize("container", ["mp4", "matroska", "mpegts"])
def test_frames_whose_timestamps_are_all_zero_are_refused_for_that(tmp_path, container):
    # Seen: such an MP4 was refused as "frame rate 3746 fps exceeds the 240 fps maximum"
    # (its header's rate is frames over no time); Matroska and MPEG-TS ones passed the probe
    # and their split aborted the ingest worker (NUT's muxer asserts on repeated keyframe
    # times), leaving the job "splitting" for ever.
    clip = make_clip(tmp_path / "clip.mp4", seconds=2, fps=15, gop=15, size=(64, 48), face_windows=[], audio=False)
    zero = restamped(clip.path, tmp_path / f"zero.{container}", lambda index: 0, container)
    with pytest.raises(media.MediaError) as refusal:
        media.probe(zero)
    assert str(refusal.value) == ("its frames carry no usable timestamps: all 30 say 0.00 s "
                                  "(each frame needs its own time, later than the one before)")



def test_frames_stuck_at_one_time_are_refused_as_well(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=2, fps=15, gop=15, size=(64, 48), face_windows=[], audio=False)
    stuck = restamped(clip.path, tmp_path / "stuck.mkv", lambda index: 15360, "matroska")
    with pytest.raises(media.MediaError, match=r"^its frames carry no usable timestamps: all 30 say 1\.00 s"):
        media.probe(stuck)


def test_a_long_run_of_frames_at_one_time_is_refused_while_reading(tmp_path):
    clip = make_clip(tmp_path / "clip.mkv", seconds=20, fps=15, size=(64, 48), face_windows=[], audio=False)
    zero = restamped(clip.path, tmp_path / "zero.mkv", lambda index: 0, "matroska")
    for read in (media.check_upload, media.probe):
        with pytest.raises(media.MediaError, match=r"^its frames carry no usable timestamps: the first 241 all say 0\.00 s"):
            read(zero)

