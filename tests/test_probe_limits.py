"""Reading a recording stays bounded (issue 11, item 8): absurd frame rates and frame counts
are refused with a clear line, memory stays flat and reading has a time budget; the web
process only looks at the header and the first second, the ingest task reads the rest (the
ingest's refusal through the farm: tests/crafted.py, "1000 frames per second")."""

from __future__ import annotations

import tracemalloc

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

