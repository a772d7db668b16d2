"""A webhook delivery whose worker is killed whole in the middle of its POST, recovered in real
time: ``python -m bench.webhook_worker_lost [TIMEOUT_S]`` (not part of ``make bench``).

A farm of its own (2 workers, Celery beat running the watchdog every minute) and a receiver on
127.0.0.1 that keeps the first POST unanswered; once it has the POST, the worker holding the
task is SIGKILLed with its pool child (an OOM kill, a pod evicted). Prints how long after the
kill the other worker delivered it: by design the try's hold (twice ``TIMEOUT_S``, the webhook
timeout, default 10, and 30 s), a minute, then up to one watchdog period. The tests
(``tests/test_alert_outbox.py``) run the sweep as if that time had passed instead."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import private_farm
from tests.test_alert_outbox import delivery_row, kill_the_worker_holding, raise_fever, settled
from tests.test_alert_webhooks import Receiver
from tests.waiting import wait_until


def main(timeout_s: str = "10") -> None:
    with tempfile.TemporaryDirectory() as data, Receiver() as receiver, private_farm(
            Path(data), workers=2, beat=True, VIDFARM_ALERT_WEBHOOK_TIMEOUT_S=timeout_s) as farm:
        from services import runtime
        from tasks.alerts import deliver_alert
        from tasks.app import app

        farm.wait_ready(app)
        delivery_id = raise_fever(runtime.records(), receiver.url("/hold"), camera="bench")
        deliver_alert.apply_async((delivery_id,))
        wait_until(lambda: receiver.to("/hold"), 30, "the first POST")
        kill_the_worker_holding(farm, delivery_id, running=True)
        killed = time.monotonic()
        row = wait_until(lambda: settled(delivery_id), 600, "the delivery by the other worker", poll=0.2)
        print(f"webhook timeout {timeout_s} s: {row.status} by the other worker {time.monotonic() - killed:.1f} s "
              f"after the kill (try {row.attempts}; the receiver got {len(receiver.to('/hold'))} POSTs)")
        receiver.release.set()
        assert delivery_row(runtime.records(), delivery_id).status == "delivered"


if __name__ == "__main__":
    main(*sys.argv[1:])
