"""The Celery application. Workers run ``celery -A tasks.app worker -Q live,ingest,cpu``."""

from celery import Celery

app = Celery("vidfarm", include=["tasks.jobs", "tasks.live", "tasks.live_view", "tasks.render", "tasks.reanalysis",
                                 "tasks.erasure", "tasks.watchdog", "tasks.alerts", "tasks.recording", "tasks.gallery",
                                 "tasks.leases", "tasks.worker"])
app.config_from_object("celeryconfig")


def point_at(redis_url: str) -> None:
    """Send tasks to another broker (the CLI's embedded farm picks its port at run time).

    Celery caches its connection pool, producer pool and result backend on first use; drop
    them so nothing keeps talking to the previous broker (Celery's own post-fork reset, plus
    the backend caches)."""
    import threading

    from kombu import pools

    app.conf.update(broker_url=redis_url, result_backend=redis_url)
    _drop_pending_reads(pools)
    pools.reset()          # kombu's global pools, keyed by broker URL
    app._after_fork()
    app._backend_cache = None
    app._local = threading.local()


def _drop_pending_reads(pools) -> None:
    """Closing a pooled Redis channel that kombu believes has a BRPOP in flight first reads its
    reply; where none comes (a broadcast's reply consumer that timed out with its BRPOP), that
    read waited forever and hung a CI test process in ``pools.reset``. The connections are being
    thrown away, so their pending replies need not be read."""
    for pool in list(pools.connections.values()):
        held = list(getattr(pool, "_dirty", ())) + list(getattr(getattr(pool, "_resource", None), "queue", ()))
        for connection in held:
            transport = getattr(connection, "_transport", None)
            for channel in list(getattr(transport, "channels", None) or ()):
                if getattr(channel, "_in_poll", False):
                    channel._in_poll = False
