"""Webhook deliveries whose task is lost still reach their receivers, and no delivery is POSTed
twice because it was queued twice. The records' part on SQLite and PostgreSQL (which
deliveries the watchdog's sweep takes, the claim a task makes before it POSTs); then a farm of
its own with two workers and a real HTTP receiver on 127.0.0.1: an alert whose queueing failed
after its rows were committed (the broker away for a moment) is POSTed once the watchdog has
run, and a delivery queued twice while its POST is under way is POSTed once. A worker killed
whole (SIGKILL of its process group) in the middle of a POST or while it holds a retry for its
countdown: the sweep queues the delivery again and the other worker sends it."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import psutil
import pytest
from kombu.exceptions import OperationalError

from tests.conftest import private_farm
from tests.test_alert_webhooks import receiver  # noqa: F401  (the fixture: a real receiver)
from tests.test_records import records  # noqa: F401  (the fixture: SQLite and PostgreSQL)
from tests.waiting import wait_until

TRIES = 3       # alert_webhook_attempts here
FEVER = {"kind": "fever", "track": 1, "frame": 0, "t": 0.0, "detail": "38.5 C (threshold 37.5 C)"}


def raise_fever(records, url: str = "http://127.0.0.1:9/hook", camera: str = "gate") -> int:
    """An unknown face's fever alert on a live camera (never folded: it rings), with one
    pending delivery to ``url``; its id."""
    from core.alerts import Alerts

    deliveries, _ = Alerts(records).raise_live(camera, [FEVER], {1: None}, (url,))
    return deliveries[0]


def delivery_row(records, delivery_id: int):
    from core.alerts import AlertDelivery

    with records.session() as s:
        return s.get(AlertDelivery, delivery_id)


def test_the_sweep_takes_pending_deliveries_overdue_and_a_claim_is_given_once(records):
    from core.alerts import Alerts

    alerts = Alerts(records)
    lost, retrying, sent, failed = (raise_fever(records) for _ in range(4))
    alerts.record_attempt(retrying, "pending", 500, "HTTP 500", retry_in_s=600)   # its retry is 10 min away
    alerts.record_attempt(sent, "delivered", 204, None)
    alerts.record_attempt(failed, "failed", 500, "HTTP 500")
    # A sweep's cutoff is a minute before it runs: ``later(s)``, that of a sweep s seconds on.
    def later(seconds: float) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=seconds - 60)
    assert alerts.overdue(later(0), TRIES) == []          # made just now: its task may yet come
    assert alerts.overdue(later(61), TRIES) == [lost]     # due a minute ago, and nobody took it
    # Marked due again when queued again: the sweep a minute on leaves it to that task.
    assert alerts.overdue(later(30), TRIES) == []
    assert alerts.overdue(later(61), TRIES) == [lost]

    # Two tasks for one delivery (the original, slow, and the sweep's): one claim wins, and
    # while its try is under way (held for it) nobody else gets the delivery.
    assert alerts.claim(lost, hold_s=60, max_attempts=TRIES) is True
    assert alerts.claim(lost, hold_s=60, max_attempts=TRIES) is False
    assert alerts.overdue(later(61), TRIES) == []           # held for its try
    assert alerts.claim(retrying, hold_s=60, max_attempts=TRIES) is False                 # its retry is not due
    assert alerts.claim(sent, hold_s=60, max_attempts=TRIES) is False
    assert alerts.claim(failed, hold_s=60, max_attempts=TRIES) is False
    assert delivery_row(records, lost).attempts == 1                  # the claim counted its try


def test_two_threads_claiming_one_delivery_at_once_get_it_once(records):
    """The claim is one conditional update: of racing tasks exactly one may POST."""
    from core.alerts import Alerts

    alerts = Alerts(records)
    for _ in range(5):
        delivery_id = raise_fever(records)
        start, won = threading.Barrier(4), []

        def claim():
            start.wait()
            won.append(alerts.claim(delivery_id, hold_s=60, max_attempts=TRIES))
        threads = [threading.Thread(target=claim) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(won) == [False, False, False, True]


def test_a_claim_made_while_the_sweep_runs_is_not_undone_by_it(records):
    """A slow task claims its overdue delivery between the sweep's look for overdue deliveries
    and its marking them due now. The marking used to undo the claim (it checked only that
    the delivery was still pending): the sweep's task then claimed it too, and both POSTed."""
    from sqlalchemy import event

    from core.alerts import Alerts

    alerts = Alerts(records)
    lost = raise_fever(records)
    claimed = []

    def claim_first(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE ALERT_DELIVERIES") and not claimed:
            claimed.append(None)       # the claim's own update passes through
            claimed[0] = alerts.claim(lost, hold_s=60, max_attempts=TRIES)      # the slow task, on a connection of its own
    event.listen(records.engine, "before_cursor_execute", claim_first)
    try:
        alerts.overdue(datetime.now(timezone.utc) + timedelta(seconds=1), TRIES)
    finally:
        event.remove(records.engine, "before_cursor_execute", claim_first)
    assert claimed == [True]
    assert alerts.claim(lost, hold_s=60, max_attempts=TRIES) is False        # still held for the slow task's try


def test_a_delivery_whose_tries_are_taken_and_never_end_fails_after_the_limit(records):
    """Every try is taken and never recorded: its worker killed in the middle of the POST, or a
    receiver that trickles its answer for ever. The claim counts the try, so the sweep queues
    the delivery again until its tries are used up, then fails it. Tries used to be counted only
    when their outcome was recorded: the sweep queued it again every minute, for ever."""
    from core.alerts import Alerts

    alerts = Alerts(records)
    lost = raise_fever(records)

    def sweep() -> tuple[list[int], list[int]]:
        """The watchdog's, a minute and a second on (its cutoff a second from now)."""
        cutoff = datetime.now(timezone.utc) + timedelta(seconds=1)
        return alerts.exhausted(cutoff, TRIES), alerts.overdue(cutoff, TRIES)

    for taken in range(1, TRIES + 1):
        assert alerts.claim(lost, hold_s=0, max_attempts=TRIES) is True     # ... and the try never ends
        assert delivery_row(records, lost).attempts == taken
        if taken < TRIES:
            assert sweep() == ([], [lost])            # queued again: a try is left
    assert alerts.claim(lost, hold_s=0, max_attempts=TRIES) is False        # due, but no try is left
    assert sweep() == ([lost], [])
    row = delivery_row(records, lost)
    assert (row.status, row.attempts) == ("failed", TRIES)
    assert "never ended" in row.last_error
    assert sweep() == ([], [])


def test_the_sweep_queues_no_delivery_again_whose_task_waits_in_the_broker(tmp_path, monkeypatch):
    """No worker serves the ingest queue (a backlog: every one busy): the deliveries' tasks wait
    there, their tries overdue. Each sweep used to queue another task for each of them."""
    from autoscaler.observe import broker_messages
    from services import runtime
    from tasks import alerts as alert_tasks
    from tasks.leases import client
    from tasks.watchdog import fail_stalled_jobs

    with private_farm(tmp_path / "farm", workers=0):
        deliveries = [raise_fever(runtime.records(), camera="backlog") for _ in range(2)]
        alert_tasks.queue_deliveries(deliveries)
        monkeypatch.setattr(alert_tasks, "REQUEUE_AFTER_S", 0.0)    # the sweeps past the margin
        fail_stalled_jobs()
        fail_stalled_jobs()
        queued = [m.args[0] for m in broker_messages(client(), ["ingest"]) if m.task == "vidfarm.deliver_alert"]
        assert sorted(queued) == sorted(deliveries)


@pytest.fixture(scope="module")
def outbox_farm(receiver, tmp_path_factory):
    with private_farm(tmp_path_factory.mktemp("outbox-farm"), workers=2,
                      VIDFARM_ALERT_WEBHOOK_URLS=receiver.url("/ok")) as farm:
        from tasks.app import app

        farm.wait_ready(app)
        yield farm


def settled(delivery_id: int):
    from services import runtime

    row = delivery_row(runtime.records(), delivery_id)
    return row if row.status != "pending" else None


def test_an_alert_whose_deliveries_could_not_be_queued_is_posted_after_the_watchdog_ran(
        outbox_farm, receiver, monkeypatch):
    """The broker is away for a moment as a live camera's alert rings: its rows are committed,
    its task is not queued. It used to stay pending for good, POSTed to nobody."""
    from sqlalchemy import select

    from core.alerts import AlertDelivery
    from services import runtime
    from tasks import alerts as alert_tasks
    from tasks.watchdog import fail_stalled_jobs

    line = {"alerts": [FEVER], "tracks": [{"track": 1, "identity": None}], "first_frame": 0,
            "captured_at": time.time()}

    def broker_away(*args, **kwargs):
        raise OperationalError("Error 111 connecting to the broker: Connection refused")
    with monkeypatch.context() as broken:
        broken.setattr(alert_tasks.deliver_alert, "apply_async", broker_away)
        try:
            alert_tasks.ring_live("outbox-gate", line)
        except OperationalError:
            pass                  # the code of before let it through, the alerts committed already
    with runtime.records().session() as s:
        [delivery_id] = s.scalars(select(AlertDelivery.id).where(AlertDelivery.url == receiver.url("/ok")))
    assert delivery_row(runtime.records(), delivery_id).status == "pending"

    # The watchdog, a minute later (here: its margin set to nothing rather than waited for).
    monkeypatch.setattr(alert_tasks, "REQUEUE_AFTER_S", 0.0, raising=False)
    fail_stalled_jobs()
    row = wait_until(lambda: settled(delivery_id), 60, "the lost delivery POSTed")
    assert (row.status, row.attempts, row.status_code) == ("delivered", 1, 204)
    assert len(receiver.to("/ok")) == 1
    # Delivered: the next sweeps send it no more.
    fail_stalled_jobs()
    fail_stalled_jobs()
    time.sleep(2)
    assert len(receiver.to("/ok")) == 1


def test_a_delivery_queued_again_while_its_post_is_under_way_is_posted_once(outbox_farm, receiver):
    """Its first task is merely slow (the receiver takes 3 s) when a second one comes for it
    (the watchdog's, or a redelivery): both workers take one at once. Each used to read it
    pending and POST it."""
    from services import runtime
    from tasks.alerts import deliver_alert

    delivery_id = raise_fever(runtime.records(), receiver.url("/slow"), camera="outbox-door")
    deliver_alert.apply_async((delivery_id,))
    wait_until(lambda: receiver.to("/slow"), 30, "the first POST begun")
    # The other worker is idle: it takes it now (its result kept, to wait for its end below).
    second = deliver_alert.apply_async((delivery_id,), ignore_result=False)
    row = wait_until(lambda: settled(delivery_id), 30, "the delivery POSTed")
    assert (row.status, row.attempts, row.status_code) == ("delivered", 1, 200)
    second.get(timeout=60)        # the other task ended: a second POST it sent has been received
    assert len(receiver.to("/slow")) == 1


HOLD_TIMEOUT_S = 2.0        # alert_webhook_timeout_s of the farm below: a try is held 2 * 2 + 30 s


@pytest.fixture
def killable_farm(receiver, tmp_path):
    """A farm of the test's own (one of its two workers is killed): three tries, the first
    retry 30 s after a failed try (the sweep below is run as if it had passed)."""
    with private_farm(tmp_path / "farm", workers=2, VIDFARM_ALERT_WEBHOOK_ATTEMPTS=str(TRIES),
                      VIDFARM_ALERT_WEBHOOK_BACKOFF_S="30", VIDFARM_ALERT_WEBHOOK_TIMEOUT_S=str(HOLD_TIMEOUT_S)) as farm:
        from tasks.app import app

        farm.wait_ready(app)
        yield farm


def kill_the_worker_holding(farm, delivery_id: int, running: bool):
    """SIGKILL the process group (main process and pool child: an OOM kill, a pod evicted) of
    the worker holding the delivery's task: running it (``running``) or keeping its retry for the
    countdown. Its task stays in kombu's unacked hash, given back only after Redis's visibility
    timeout (the longest task limit plus 5 min)."""
    import os
    import signal

    from autoscaler.observe import broker_messages
    from tasks.app import app
    from tasks.leases import client

    def holder() -> str | None:
        inspect = app.control.inspect(timeout=1)
        replies = (inspect.active() if running else inspect.scheduled()) or {}
        for node, tasks in replies.items():
            for task in tasks:
                request = task.get("request", task)    # scheduled() wraps it with its ETA
                if request.get("name") == "vidfarm.deliver_alert" and list(request.get("args") or [])[:1] == [delivery_id]:
                    return node
        return None
    node = wait_until(holder, 30, "a worker holding the delivery's task")
    process = next(p for p in farm.processes if p.name == node.split("@")[0])
    main = psutil.Process(process.popen.pid)
    redis_port = client().connection_pool.connection_kwargs["port"]
    ports = {f"127.0.0.1:{c.laddr.port}" for p in (main, *main.children())
             for c in p.net_connections("tcp") if c.raddr and c.raddr.port == redis_port}
    assert ports, "the worker holds no connection to Redis"
    os.killpg(main.pid, signal.SIGKILL)
    # Until Redis has dropped its connections: a task queued before would be handed to its
    # BRPOP, still blocked (it waits for tasks while it holds a retry), and lost with it. (A
    # sweep comes a minute after the try was due; that one would queue it again.)
    wait_until(lambda: not ports & {c["addr"] for c in client().client_list()}, 10,
               "Redis dropping the killed worker's connections")
    in_broker = [m.args[0] for m in broker_messages(client(), ["ingest"]) if m.task == "vidfarm.deliver_alert"]
    assert in_broker == [delivery_id]


def sweep_a_minute_after_its_try(delivery_id: int, monkeypatch) -> list[int]:
    """The watchdog's sweep, run a minute after the delivery's try was due (its try's hold ran
    out, or its retry's countdown did): its margin moved there rather than waited for."""
    from core.models import aware
    from services import runtime
    from tasks import alerts as alert_tasks

    due = aware(delivery_row(runtime.records(), delivery_id).next_attempt_at)
    monkeypatch.setattr(alert_tasks, "REQUEUE_AFTER_S", -(due - datetime.now(timezone.utc)).total_seconds() - 1)
    return alert_tasks.requeue_lost()


def test_a_delivery_whose_worker_is_killed_in_the_middle_of_its_post_is_sent_by_another(
        killable_farm, receiver, monkeypatch):
    """The whole worker is killed while the receiver has the POST (it answers nothing yet). Its
    task stayed in kombu's unacked hash and the sweep took it for one still in the broker: the
    alert waited for Redis's visibility timeout, tens of minutes. The sweep after the try's hold
    queues it again, and the other worker POSTs it (at least once: the receiver got it twice)."""
    from services import runtime
    from tasks.alerts import deliver_alert

    delivery_id = raise_fever(runtime.records(), receiver.url("/hold"), camera="killed-mid-post")
    deliver_alert.apply_async((delivery_id,))
    wait_until(lambda: receiver.to("/hold"), 30, "the first POST begun")
    kill_the_worker_holding(killable_farm, delivery_id, running=True)
    assert delivery_row(runtime.records(), delivery_id).status == "pending"

    assert sweep_a_minute_after_its_try(delivery_id, monkeypatch) == [delivery_id]
    swept = time.monotonic()
    row = wait_until(lambda: settled(delivery_id), 30, "the delivery POSTed by the other worker")
    print(f"\nrecovery: delivered by the other worker {time.monotonic() - swept:.1f} s after the sweep")
    assert (row.status, row.attempts, row.status_code) == ("delivered", 2, 200)
    assert len(receiver.to("/hold")) == 2
    receiver.release.set()      # the killed worker's POST: its thread answers nobody


def test_a_retry_whose_worker_is_killed_during_its_countdown_is_sent_by_another(
        killable_farm, receiver, monkeypatch):
    """The first try is answered 500; the worker holding the retry for its countdown (a Celery
    ETA task, unacknowledged until it runs, whatever acks_late says) is killed whole. The sweep
    skipped it as in the broker until Redis's visibility timeout gave it back."""
    from services import runtime
    from tasks.alerts import deliver_alert

    delivery_id = raise_fever(runtime.records(), receiver.url("/once"), camera="killed-in-countdown")
    deliver_alert.apply_async((delivery_id,))
    kill_the_worker_holding(killable_farm, delivery_id, running=False)
    row = delivery_row(runtime.records(), delivery_id)
    assert (row.status, row.attempts, row.status_code) == ("pending", 1, 500)

    assert sweep_a_minute_after_its_try(delivery_id, monkeypatch) == [delivery_id]
    swept = time.monotonic()
    row = wait_until(lambda: settled(delivery_id), 30, "the retry POSTed by the other worker")
    print(f"\nrecovery: retry delivered by the other worker {time.monotonic() - swept:.1f} s after the sweep")
    assert (row.status, row.attempts, row.status_code) == ("delivered", 2, 200)
