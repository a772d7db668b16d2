"""Webhook deliveries of alerts: one signed POST per alert and URL, retried with backoff.

A delivery is its own Celery task, queued after the results that raised the alert were
published: a slow or broken receiver never holds up a job. Each try is recorded on the
delivery (attempts, status code, last error, when delivered); a failed try is retried after
``alert_webhook_backoff_s``, doubled each time, until ``alert_webhook_attempts`` tries were
made, and the delivery is then recorded as failed. A live camera's alerts are raised and
queued by its ingester as each segment is processed (``ring_live``). Delivery is at least once: a worker lost
in the middle of a POST is retried, and the receiver may see that alert twice.

A delivery whose task is lost (queueing failed after the rows were committed, the broker
forgot the task or its retry: a Redis restarted without persistence, or the worker holding it
was killed whole) would stay pending for good, or until Redis's visibility timeout (tens of
minutes) gave a killed worker's task back: the watchdog queues again every delivery whose try
is overdue by ``REQUEUE_AFTER_S`` and whose task is not waiting in a queue (``requeue_lost``).
A task claims its delivery before it POSTs
(``Alerts.claim``), so the original task, merely slow, and the one queued again never both send
it; the claim counts the try, so a try that never ends (its worker killed in the middle of the
POST, a receiver that never finishes its answer) uses one up too, and the watchdog fails the
delivery once all were taken.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta, timezone

import redis
import requests

from autoscaler.observe import broker_messages
from core.alerts import Alerts
from services import runtime
from tasks import leases
from tasks.app import app

SIGNATURE_HEADER = "X-Vidfarm-Signature"
# A pending delivery whose try was due this long ago has no task trying it: queued again. A
# watchdog period: its task may be waiting behind others on the ingest queue, and queueing it
# again then only adds a task that finds it claimed.
REQUEUE_AFTER_S = 60.0

log = logging.getLogger(__name__)


def signature(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``, as receivers check it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _encoded(body: dict) -> bytes:
    """The JSON body of one try, stamped with when it is sent (``sent_at``, inside the signed
    bytes): a receiver rejects a POST captured and replayed later by its age, and each try of a
    delivery is stamped anew. (Milliseconds: the precision of ECMAScript's date format.)"""
    sent_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return json.dumps({**body, "sent_at": sent_at}, separators=(",", ":")).encode()


def _post(url: str, body: bytes) -> tuple[int | None, str | None]:
    """(status code, error): error is None when the receiver answered 2xx."""
    settings = runtime.settings()
    headers = {"Content-Type": "application/json", "User-Agent": "vidfarm-alerts"}
    if settings.alert_webhook_secret:
        headers[SIGNATURE_HEADER] = signature(body, settings.alert_webhook_secret)
    try:
        response = requests.post(url, data=body, headers=headers, timeout=settings.alert_webhook_timeout_s,
                                 allow_redirects=False)
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code} {response.reason or ''}".strip()


def ring_live(camera_id: str, line: dict) -> list[dict]:
    """A live camera's processed segment (its ``live.jsonl`` line, each alert with the capture
    time of its frame, from its timestamp): record its alerts and queue their webhook
    deliveries now (none for a repeat). Returns each alert's ``{id, repeat_of}``, in the line's
    order (``repeat_of``: the alert it repeats, None if it rang)."""
    if not line["alerts"]:
        return []
    identities = {t["track"]: t.get("identity") for t in line.get("tracks") or []}
    settings = runtime.settings()
    deliveries, folds = Alerts(runtime.records()).raise_live(camera_id, line["alerts"], identities,
                                                             settings.alert_webhook_urls, settings.alert_repeat_s)
    queue_deliveries(deliveries)
    return folds


def queue_deliveries(delivery_ids: list[int]) -> None:
    """Queue the tasks of deliveries just committed. The broker may be away for a moment: the
    deliveries stay pending and the watchdog queues them (``requeue_lost``); the alerts are
    recorded, and whoever raised them goes on."""
    for done, delivery_id in enumerate(delivery_ids):
        try:
            deliver_alert.apply_async((delivery_id,))
        except Exception as error:      # kombu's OperationalError, a Redis error, whatever the broker said
            log.warning("%d webhook deliveries not queued (%s): the watchdog queues them within %.0f s",
                        len(delivery_ids) - done, error, REQUEUE_AFTER_S + 60)
            return


def requeue_lost() -> list[int]:
    """The watchdog's part: fail the deliveries whose every try was taken and whose last never
    ended, and queue again those that nobody is trying (none whose task waits in a queue: behind
    a backed-up ingest queue it comes in its turn, and one more each minute would only pile up
    tasks that find it claimed). Nothing is queued when the broker cannot be read."""
    alerts, settings = Alerts(runtime.records()), runtime.settings()
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=REQUEUE_AFTER_S)
    given_up = alerts.exhausted(cutoff, settings.alert_webhook_attempts)
    if given_up:
        log.warning("%d webhook deliveries failed: their last try never ended", len(given_up))
    if not alerts.any_overdue(cutoff):
        return []           # the usual round: no need to read the queues
    try:
        queued = _waiting_delivery_ids()
    except redis.RedisError as exc:
        log.warning("the watchdog cannot read the broker (%s): no webhook delivery is queued again", exc)
        return []
    lost = alerts.overdue(cutoff, settings.alert_webhook_attempts, waiting=queued)
    if lost:
        log.warning("%d webhook deliveries overdue (their tasks were lost): queued again", len(lost))
        queue_deliveries(lost)
    return lost


def _waiting_delivery_ids() -> set[int]:
    """The deliveries whose task waits in a queue. Not those in a worker's hands (kombu's
    unacked hash): a task there whose delivery is overdue is one whose worker was killed
    whole, in the middle of its POST (the try's hold ran out) or holding its retry for the
    countdown (due, and not claimed), and kombu gives it back only after Redis's visibility
    timeout (the longest task limit plus 5 min). A live worker's task there is no reason to
    wait either: its try under way is held, so not overdue, and a retry it cannot start (every
    process busy) is better taken by another worker; the claim keeps it to one POST."""
    messages = broker_messages(leases.client(), [queue.name for queue in app.conf.task_queues], in_hand=False)
    return {message.args[0] for message in messages
            if message.task == deliver_alert.name and message.args and isinstance(message.args[0], int)}


def _try_hold_s(timeout_s: float) -> float:
    """How long one try may take: requests' timeout bounds the connection and each read (about
    twice it in all), and a little more to record the answer."""
    return 2 * timeout_s + 30


@app.task(name="vidfarm.deliver_alert", bind=True, ignore_result=True, max_retries=None)
def deliver_alert(self, delivery_id: int) -> dict:
    alerts, settings = Alerts(runtime.records()), runtime.settings()
    # Claimed before it is read: another task queued for it (the watchdog's, while this one
    # waited in the queue) cannot POST it too.
    if not alerts.claim(delivery_id, _try_hold_s(settings.alert_webhook_timeout_s), settings.alert_webhook_attempts):
        return {"skipped": True}      # deleted, sent or failed already, out of tries, or another task's try is under way
    found = alerts.delivery(delivery_id)
    if found is None:
        return {"skipped": True}      # its alert or job was deleted meanwhile
    delivery, body = found
    code, error = _post(delivery.url, _encoded(body))
    attempt = delivery.attempts       # this try's number: the claim counted it
    if error is None:
        alerts.record_attempt(delivery_id, "delivered", code, None)
        return {"delivered": delivery_id, "attempts": attempt}
    if attempt >= settings.alert_webhook_attempts:
        alerts.record_attempt(delivery_id, "failed", code, error)
        return {"failed": delivery_id, "attempts": attempt}
    countdown = settings.alert_webhook_backoff_s * 2 ** (attempt - 1)
    alerts.record_attempt(delivery_id, "pending", code, error, retry_in_s=countdown)
    raise self.retry(countdown=countdown)
