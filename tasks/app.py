"""The Celery application. Workers run ``celery -A tasks.app worker -Q live,ingest,cpu``."""

from celery import Celery, bootsteps

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


class ReclaimLapsedLeases(bootsteps.StartStopStep):
    """Every worker looks for lapsed leases too (``tasks.leases``), every half lease, on its
    event loop's timer (no thread: the prefork pool forks from this process), so a node lost
    with the beat pod on it does not stop the work of dead workers coming back."""
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.every = None

    def start(self, worker):
        from tasks import leases

        self.every = worker.timer.call_repeatedly(leases.lease_seconds() / 2, leases.reclaim_quietly)

    def stop(self, worker):
        if self.every is not None:
            self.every.cancel()


app.steps["worker"].add(ReclaimLapsedLeases)
