"""The autoscaler: observe Celery queues in Redis, decide, resize workers.

policy (the pure rule) with forecast (how long queued tasks will wait with n workers),
observe (Redis + worker inspection) with work (frames and costs from the job records),
backends (kubernetes, local), loop (the running autoscaler, its metrics and stored state),
simulate (trace replay) with keda (the KEDA/HPA reference model) and optimum (the offline
lower bound, with optimum_dp its whole-pod half, and optimum_reactive the same bound for scalers
that ask for pods only while a task waits). Imports only ``core`` and libraries.
"""
