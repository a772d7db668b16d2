"""The retry policy of a task that meets the blob store away (tasks/store_wait.py), on a stand-in
task that records the retries it is asked for (tests/test_s3_outage.py runs it on real workers)."""

from __future__ import annotations

import types

import pytest

from core.storage import BlobStoreAway, BlobStoreUnavailable
from tasks import store_wait


class Retried(Exception):
    def __init__(self, countdown: float, headers: dict, max_retries: int):
        super().__init__(countdown)
        self.countdown, self.headers, self.max_retries = countdown, headers, max_retries


class StandInTask:
    """What the policy uses of a bound Celery task: its name, its request, and ``retry``."""
    name = "vidfarm.segment"

    def __init__(self, retries: int = 0, noted: dict | None = None):
        self.request = types.SimpleNamespace(id="t1", retries=retries)
        if noted is not None:
            setattr(self.request, store_wait.HEADER, noted)

    def retry(self, exc, countdown, max_retries, headers):
        return Retried(countdown, headers, max_retries)

    def retried(self, caught: Retried) -> "StandInTask":
        """The task as its retry message delivers it."""
        return StandInTask(self.request.retries + 1, caught.headers[store_wait.HEADER])


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(store_wait.time, "time", lambda: now[0])
    monkeypatch.setattr(store_wait.runtime, "settings", lambda: types.SimpleNamespace(blob_store_wait_s=60.0))
    return now


AWAY = BlobStoreAway("S3 bucket 'b' at http://s3 cannot be reached: connection refused")


def test_the_store_away_is_retried_ever_less_often_until_the_wait_is_spent(clock):
    task, countdowns = StandInTask(), []
    while True:
        try:
            gone = store_wait.wait_for_store(task, AWAY)
        except Retried as caught:
            assert caught.max_retries == task.request.retries + 1       # Celery's own cap does not stop it
            assert caught.headers[store_wait.HEADER]["since"] == 1000.0    # when it was first met
            countdowns.append(caught.countdown)
            clock[0] += caught.countdown
            task = task.retried(caught)
            continue
        break
    # Tried 2, 4, 8, 16 s after it met it, then at most 30 s apart; the last try when the 60 s are spent.
    assert countdowns == [2, 2, 4, 8, 16, 28]
    assert str(gone).startswith("the blob store was away for 60 s, longer than a task waits for it "
                                "(VIDFARM_BLOB_STORE_WAIT_S=60): S3 bucket 'b'")


def test_a_storage_error_under_another_is_waited_for_and_other_errors_are_not(clock):
    try:
        raise RuntimeError("stitch failed") from AWAY
    except RuntimeError as wrapped:
        with pytest.raises(Retried):
            store_wait.wait_for_store(StandInTask(), wrapped)
    assert store_wait.wait_for_store(StandInTask(), ValueError("a bug")) is None
    assert store_wait.wait_for_store(StandInTask(), FileNotFoundError("no blob")) is None


def test_retries_spent_waiting_for_the_store_leave_those_for_other_errors(clock):
    task = StandInTask(retries=5, noted={"since": 990.0, "retries": 5})
    assert store_wait.other_retries(task.request) == 0
    with pytest.raises(Retried) as caught:
        store_wait.retry_soon(task, ValueError("a hiccup"))
    again = task.retried(caught.value)
    assert caught.value.countdown == 1 and store_wait.other_retries(again.request) == 1
    # The store answered since: a later outage is timed from when it is met.
    with pytest.raises(Retried) as caught:
        store_wait.wait_for_store(again, AWAY)
    assert caught.value.headers[store_wait.HEADER] == {"since": 1000.0, "retries": 6}
    assert caught.value.countdown == 2


def test_no_wait_fails_at_once(clock, monkeypatch):
    monkeypatch.setattr(store_wait.runtime, "settings", lambda: types.SimpleNamespace(blob_store_wait_s=0.0))
    assert "away for 0 s" in str(store_wait.wait_for_store(StandInTask(), AWAY))


def test_a_store_that_refuses_the_farm_fails_the_task_at_once_saying_why(clock):
    """A missing bucket or refused credentials is no outage: neither waited for nor retried soon."""
    refused = BlobStoreUnavailable("S3 bucket 'b' at http://s3 refused the credentials: InvalidAccessKeyId")
    assert store_wait.wait_for_store(StandInTask(), refused) is None
    reasons = []
    with pytest.raises(BlobStoreUnavailable) as failed:
        store_wait.retry_or_fail(StandInTask(), refused, retries=2, fail=reasons.append)
    assert failed.value is refused and reasons == [str(refused)]
    with pytest.raises(Retried):           # another error is retried soon, as before
        store_wait.retry_or_fail(StandInTask(), ValueError("a hiccup"), retries=2, fail=reasons.append)
    with pytest.raises(Retried):           # and the store away waited for
        store_wait.retry_or_fail(StandInTask(), AWAY, fail=reasons.append)
    assert reasons == [str(refused)]


def _client_error(code: str, status: int):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "..."}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


def _botocore_error(name: str, **fields):
    from botocore import exceptions

    return getattr(exceptions, name)(**fields)


@pytest.mark.parametrize("error, outage", [
    (lambda: _client_error("SlowDown", 503), True),
    (lambda: _client_error("InternalError", 500), True),
    (lambda: _client_error("ServiceUnavailable", 503), True),
    (lambda: _client_error("Throttling", 400), True),
    (lambda: _client_error("TooManyRequests", 429), True),
    (lambda: _client_error("RequestTimeout", 400), True),
    (lambda: _client_error("NoSuchBucket", 404), False),
    (lambda: _client_error("AccessDenied", 403), False),
    (lambda: _client_error("InvalidAccessKeyId", 403), False),
    (lambda: _client_error("InvalidBucketName", 400), False),
    (lambda: _botocore_error("EndpointConnectionError", endpoint_url="http://s3"), True),
    (lambda: _botocore_error("ReadTimeoutError", endpoint_url="http://s3"), True),
    (lambda: _botocore_error("NoCredentialsError"), False),
])
def test_only_an_outage_is_waited_for(error, outage):
    """Unreachable, a dropped connection, a 5xx, SlowDown and throttling are an outage
    (BlobStoreAway); anything else S3 answers is the store refusing the farm."""
    from core.s3_storage import S3BlobStore

    store = S3BlobStore.__new__(S3BlobStore)        # the translation only: no client, no sweeper
    store.bucket, store.endpoint = "b", "http://s3"
    translated = store._translate(error(), None)
    assert isinstance(translated, BlobStoreUnavailable)
    assert isinstance(translated, BlobStoreAway) is outage, translated
