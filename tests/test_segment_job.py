"""The one message that crosses the Celery boundary to analyse a segment (core.segment_job)."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from core.messages import MessageShapeError
from core.segment_job import SegmentJob, SourceMedia, message_frames, message_owner

MEDIA = SourceMedia(Fraction(1, 15360), 25.0, 512, 1280, 720, True, pts_offset=1024, timed=True, intact=False)
SEGMENT = SegmentJob("job-1", 3, (512, 1024, 1536), MEDIA)


def test_a_segment_job_goes_through_json_and_comes_back_equal():
    for segment in (SEGMENT, SegmentJob("watch-1", 7, (0, 6000), MEDIA, fence=("cam-1", 12))):
        message = json.loads(json.dumps(segment.to_message()))     # what Redis carries
        assert SegmentJob.from_message("vidfarm.segment", (message,)) == segment
        assert message_frames([message]) == len(segment.pts)
        assert message_owner([message]) == segment.owner


def test_a_job_s_media_record_reads_back_as_ingest_wrote_it():
    summary = {"time_base": [1, 15360], "fps": 25.0, "start_pts": 512, "width": 1280, "height": 720,
               "has_audio": True, "pts_offset": 1024, "timed": True, "warning": "3 frames damaged"}
    assert SourceMedia.of_summary(summary) == MEDIA
    # a job split by an older version: no offset, untimed, as then
    old = SourceMedia.of_summary({"time_base": [1, 90000], "fps": 30.0})
    assert (old.pts_offset, old.timed, old.intact, old.start_pts) == (0, False, True, 0)


@pytest.mark.parametrize("args, said", [
    (("job-1", 3), r"was sent 2 argument\(s\) \('job-1', 3\)"),                  # the old positional form
    (("w", 0, {"pts": [0], "fps": 15}), r"was sent 3 argument\(s\)"),            # the old live form
    (({**SEGMENT.to_message(), "shape": "vidfarm.segment_job/2"},), r"was sent shape 'vidfarm.segment_job/2'"),
    ((), r"was sent 0 argument\(s\)"),
])
def test_a_message_of_another_shape_is_refused_saying_so(args, said):
    with pytest.raises(MessageShapeError, match=rf"^vidfarm.segment {said}.*reads one 'vidfarm.segment_job/1' message"):
        SegmentJob.from_message("vidfarm.segment", args)
    assert message_frames(args) is None and message_owner(args) is None


def test_a_malformed_message_of_the_right_shape_is_refused_saying_so():
    broken = {**SEGMENT.to_message(), "media": {"fps": 25.0}}
    with pytest.raises(MessageShapeError, match=r"^vidfarm.live_segment was sent a malformed 'vidfarm.segment_job/1'"):
        SegmentJob.from_message("vidfarm.live_segment", (broken,))
