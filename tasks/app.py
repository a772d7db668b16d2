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
    pools.reset()          # kombu's global pools, keyed by broker URL
    app._after_fork()
    app._backend_cache = None
    app._local = threading.local()

