"""The Celery application of beat and Flower: the farm's settings (queues, routes, schedule)
without its task modules. Both only send tasks by name and watch events, so they need none of
the analysis code that ``tasks.app``'s include list loads (onnxruntime, OpenCV, PyAV: about
250 MiB, above the 256Mi the chart gives beat). ``celery -A tasks.beat_app beat``; Flower runs it
through ``tasks.flower_app``."""

from celery import Celery

app = Celery("vidfarm")
app.config_from_object("celeryconfig")
