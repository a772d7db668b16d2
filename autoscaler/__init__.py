"""The autoscaler: observe Celery queues in Redis, decide, resize workers.

policy (the pure rule) with forecast (how long queued tasks will wait with n workers),
observe (Redis + worker inspection) with work (frames and costs from the job records),
backends (kubernetes, local), loop (the running autoscaler, its metrics and stored state),
simulate (trace replay) with keda (the KEDA/HPA reference model) and optimum (the offline
lower bound, with optimum_dp its whole-pod half). Imports only ``core`` and libraries.
"""
