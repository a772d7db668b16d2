"""Flower's Celery app (``celery -A tasks.flower_app flower``: `vidfarm up` and the chart):
beat's (``tasks.beat_app``, no analysis code), and a broker page that lists every queue of
the farm.

Flower lists the queues that the workers it knows consume (their ``active_queues``), and the
configured ones only while it knows no worker. The farm's workers come and go with the
autoscaler (a cpu or gpu pool at 0 has none), so its broker page and ``/api/queues/length``
showed ``ingest`` alone (with cameras, ``live`` too), as if work waiting on the others did
not exist. Redis has no API that lists queues (``--broker-api`` is RabbitMQ's management
API), and Flower has no option naming them: this names the farm's ``task_queues``
(celeryconfig) to Flower, with any other queue a worker consumes.
"""

from flower.views import BaseHandler

from tasks.beat_app import app

__all__ = ["app"]

_consumed = BaseHandler.get_active_queue_names


def _every_queue(handler: BaseHandler) -> list[str]:
    return sorted(set(_consumed(handler)) | {queue.name for queue in handler.capp.conf.task_queues or ()})


# Flower's handlers all ask this one method (the broker page and the queue-length API).
BaseHandler.get_active_queue_names = _every_queue
