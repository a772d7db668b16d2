"""The producers' side of the queue (web, CLI, beat's callers): tasks are sent by name, so a
producer never imports a task's module, and with it the models, codecs and analyzers it uses.
Routing by name is ``celeryconfig.task_routes``."""

from __future__ import annotations

from contextlib import contextmanager

from celery import chord
from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from core.errors import BrokerUnavailable, FarmTimeout
from core.segment_job import SegmentJob
from tasks.app import app


def send(name: str, *args, countdown: float | None = None) -> None:
    """Queue a task nobody waits for (its progress lives in the records): the producer does
    not subscribe to its result."""
    with broker_reached(name):
        app.send_task(name, args=args, countdown=countdown, ignore_result=True)


def call(name: str, *args, timeout_s: float):
    """Queue a task and wait for its return value: ``timeout_s`` seconds, give or take the
    one second between Celery's looks at the result backend.

    Redis gone while it waits: Celery's result consumer tries it again for 20 s, then gives up
    with a RuntimeError ("the Celery application must be restarted": it need not be, the next
    call subscribes afresh). That is ``BrokerUnavailable`` here (the web's 503), and the result
    is not forgotten: forgetting it would retry that Redis for a minute more (the key expires
    with result_expires)."""
    with broker_reached(name):
        reach_the_broker()
        result = app.send_task(name, args=args)
    reachable = True
    try:
        return result.get(timeout=timeout_s)
    except CeleryTimeout:
        raise FarmTimeout(f"no worker finished {name} within {timeout_s:g} s") from None
    except (RuntimeError, RedisError) as exc:
        if isinstance(exc, RuntimeError) and not isinstance(exc.__cause__, RedisError):
            raise       # the task's own error, or a bug: as it is
        reachable = False
        raise BrokerUnavailable(f"the task queue (Redis) went away while waiting for {name}; "
                                f"try again: {' '.join(str(exc).split())}") from None
    finally:
        if reachable:
            result.forget()


def fan_out(job_id: str, segments: list[SegmentJob], queue: str = "cpu", run: float | None = None) -> None:
    """One ``vidfarm.segment`` per segment (its SegmentJob as one message), then
    ``vidfarm.stitch`` once all of them are done (a Celery chord; ``vidfarm.job_failed`` is
    its errback, told which ``run`` of the job it is for: ``Job.run``)."""
    header = [app.signature("vidfarm.segment", (segment.to_message(),), immutable=True).set(queue=queue)
              for segment in segments]
    stitch = app.signature("vidfarm.stitch", (job_id,), immutable=True)
    with broker_reached("vidfarm.segment"):
        reach_the_broker()
        errback = app.signature("vidfarm.job_failed", (job_id,), {} if run is None else {"run": run})
        chord(header)(stitch.on_error(errback))


def reach_the_broker() -> None:
    """Reach the broker before sending what subscribes to results (a task waited on, a chord,
    whose header the result backend records first): that subscription rides out a Redis that
    is away for 20 s (the backend's retry policy), then fails with a RuntimeError, where an
    unreachable broker is a quick, clear no (kombu's OperationalError: ``broker_reached``)."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0)


@contextmanager
def broker_reached(name: str):
    """Kombu's connection error (after its own few quick retries) as ``BrokerUnavailable``:
    one line the callers can tell apart from a bug (the web answers 503, not 500)."""
    try:
        yield
    except OperationalError as exc:
        raise BrokerUnavailable(f"the task queue (Redis) cannot be reached, {name} was not queued: {exc}") from None
