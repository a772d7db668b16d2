"""A worker process's start (imported by the worker through ``tasks.app``'s include list,
before its ``worker_init``): the database schema checked once, then per pool child its own
connections and the models loaded."""

import logging
import time

from celery.signals import worker_init, worker_process_init


@worker_init.connect
def _open_records_at_start(**_):
    # Upgrade (or check) the database schema before the worker takes any task; its pool
    # children open their own connections after the fork (below).
    from core.errors import SchemaOutOfDate
    from core.settings import get_settings
    from core.storage import BlobStoreUnavailable
    from services import runtime

    from workers.analyzer_configs import AnalyzerConfigError, check

    settings = runtime.configure(get_settings())   # parsed once, here; the pool children inherit them
    try:
        check(settings.analyzer_configs(), settings.plugins)
    except AnalyzerConfigError as error:
        raise SystemExit(f"vidfarm worker: bad setting {error}") from None   # a worker that would fail every segment
    try:
        runtime.store().check()
    except BlobStoreUnavailable as error:      # a wrong S3 endpoint, bucket or key
        raise SystemExit(f"vidfarm worker: blob store: {error}") from None
    try:
        runtime.records()
    except SchemaOutOfDate as error:
        # SystemExit, not the error: Celery logs and ignores what a worker_init handler raises
        # (before its logging is set up: unseen), and the worker would take tasks it must fail.
        raise SystemExit(f"vidfarm worker: {error}") from None


@worker_process_init.connect
def _prepare_worker_process(**_):
    # A forked pool child must not share database connections with its parent.
    from services import runtime
    from tasks import jobs

    runtime.configure(runtime.settings())
    # Load the models now, not inside the first segment a user is waiting for (a worker
    # forked by tasks.forkserver may find them loaded already).
    started = time.monotonic()
    jobs.warm_up()
    logging.getLogger(__name__).info("models ready in %.2f s", time.monotonic() - started)
