"""The one message that crosses the Celery boundary to draw a piece of a camera's live view
(core.view_job): it goes through JSON and comes back equal, and a message of another shape,
or of this shape with wrong fields, is refused with one line that says what is wrong."""

from __future__ import annotations

import json

import pytest

from core.messages import MessageShapeError
from core.view_job import ViewJob

LABELS = ((), ((10, 20, 110, 140, "#1 Ada 0.81", "known"),), ((12, 20, 112, 140, "#1 Ada 0.80", "known"),
                                                           (300, 40, 380, 130, "#2 0.66", "unknown")))
VIEW = ViewJob("cam-1", "a" * 32, 4, (0, 6000, 12000), 15.0, 640, 360, 1764900000.25, 120, 0.2, LABELS)


def test_a_view_job_goes_through_json_and_comes_back_equal():
    for job in (VIEW, ViewJob("cam-2", "b" * 32, 0, (0,), 30.0, 1280, 720, 1.0, 0, 0.033, ((),), keep_source=True)):
        message = json.loads(json.dumps(job.to_message()))     # what Redis carries
        assert message["shape"] == "vidfarm.view_job/1"
        assert ViewJob.from_message("vidfarm.live_view", (message,)) == job


@pytest.mark.parametrize("args, said", [
    # the old form: (camera_id, watch_id, index, {segment}, labels)
    (("cam-1", "a" * 32, 4, {"pts": [0], "fps": 15}, [[]]), r"was sent 5 argument\(s\) \('cam-1'"),
    (({**VIEW.to_message(), "shape": "vidfarm.view_job/2"},), r"was sent shape 'vidfarm.view_job/2'"),
    (({"pts": [0]},), r"was sent 1 argument\(s\)"),                          # a dict without a shape
    ((), r"was sent 0 argument\(s\)"),
])
def test_a_message_of_another_shape_is_refused_saying_so(args, said):
    with pytest.raises(MessageShapeError,
                       match=rf"^vidfarm.live_view {said}.*reads one 'vidfarm.view_job/1' message \(the producer"):
        ViewJob.from_message("vidfarm.live_view", args)


def _without(field: str) -> dict:
    return {k: v for k, v in VIEW.to_message().items() if k != field}


@pytest.mark.parametrize("message, said", [
    (_without("pts"), "it has no 'pts' field"),
    (_without("camera_id"), "it has no 'camera_id' field"),
    ({**VIEW.to_message(), "labels": [[], []]}, "2 frames of labels for 3 timestamps"),
    ({**VIEW.to_message(), "labels": [[], [[10, 20, 110, "Ada", "known"]], []]},
     r"a label is \[x1, y1, x2, y2, text, state\]"),
    ({**VIEW.to_message(), "labels": [[], [[10, 20, "x", 140, "Ada", "known"]], []]}, "invalid literal for int"),
    ({**VIEW.to_message(), "labels": [[], [[10, 20, 110, 140, None, "known"]], []]}, "a label is"),
    ({**VIEW.to_message(), "pts": "0,6000,12000"}, "invalid literal for int"),
    ({**VIEW.to_message(), "fps": 0}, "fps, width and height must be positive"),
    ({**VIEW.to_message(), "keep_source": "false"}, "keep_source must be true or false, not 'false'"),
])
def test_a_malformed_message_of_the_right_shape_is_refused_saying_what_is_wrong(message, said):
    with pytest.raises(MessageShapeError, match=rf"^vidfarm.live_view was sent a malformed 'vidfarm.view_job/1' "
                                                rf"message: .*{said}"):
        ViewJob.from_message("vidfarm.live_view", (message,))


def test_the_producer_cannot_build_labels_for_another_number_of_frames():
    with pytest.raises(ValueError, match="1 frames of labels for 3 timestamps"):
        ViewJob("cam-1", "a" * 32, 4, (0, 6000, 12000), 15.0, 640, 360, 1.0, 0, 0.2, ((),))


def test_the_drawing_task_refuses_the_old_arguments_before_it_touches_anything():
    """The task itself, run in this process (no worker, no store configured: the refusal comes
    first, so a stale message never reaches the store or the registry)."""
    from tasks.live_view import live_view

    with pytest.raises(MessageShapeError, match=r"^vidfarm.live_view was sent 5 argument\(s\)"):
        live_view.apply(args=("cam-1", "a" * 32, 4, {"pts": [0]}, [[]])).get()
