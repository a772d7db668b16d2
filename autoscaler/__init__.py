"""The queue-length autoscaler: observe Celery queues in Redis, decide, resize workers.

policy (pure rule), observe (Redis + worker inspection), backends (kubernetes, local),
loop (the running autoscaler and its metrics), simulate (trace replay against a KEDA model).
Imports only ``core`` and libraries.
"""
