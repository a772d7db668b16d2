"""`vidfarm up` (an embedded farm with the local autoscaler): an enrolment goes on while the
cameras keep the live workers busy. Real Redis, real Celery workers."""

from __future__ import annotations

from cli.farm import EmbeddedFarm
from tests.conftest import pointed_at

LIVE_BACKLOG = 1500   # live tasks that keep the live workers busy for a good while


def test_enrolment_does_not_wait_behind_the_live_backlog(tmp_path):
    from tasks.app import app

    with EmbeddedFarm(tmp_path / "farm", workers=1, autoscale=True) as farm, pointed_at(farm):
        farm.wait_ready(app)
        # A camera backlog: live tasks the live workers take (these fail at once on
        # their malformed message, but each still takes a worker's turn).
        for _ in range(LIVE_BACKLOG):
            app.send_task("vidfarm.live_segment", args=["not a segment"])
        enrolment = app.send_task("vidfarm.embed_photos", args=[[]])
        enrolment.get(timeout=300)    # a refusal (no photos) is still an answer
        # Ordering, not speed: the enrolment ended while live segments were still waiting.
        # With one worker taking live before ingest it runs only once the backlog has drained.
        waiting = app.backend.client.llen("live")
        assert waiting > 0, "the enrolment waited for the whole live backlog"
