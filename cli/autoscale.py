"""``vidfarm autoscale``: the queue-length autoscaler loop, and ``vidfarm autoscale simulate``."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from autoscaler.keda import KedaSettings
from cli.signals import stop_on_signals
from core.settings import WEB_ONLY_VARIABLES, ScaleSettings, Settings


class UsageError(RuntimeError):
    """Something the user can fix; main() prints it as one line."""


def add_parser(commands) -> None:
    autoscale = commands.add_parser("autoscale", help="resize worker Deployments (or local workers) from queue length")
    autoscale.add_argument("--backend", choices=("kubernetes", "local"), default="kubernetes")
    autoscale.add_argument("--queues", default=None,
                           help="comma-separated queues to scale (default: cpu,gpu on kubernetes, cpu locally; "
                                "live: the live worker Deployment)")
    autoscale.add_argument("--kubeconfig", default=None,
                           help="kubeconfig file (default: in-cluster credentials, else ~/.kube/config)")
    autoscale.add_argument("--once", action="store_true", help="one decision per queue, then exit")
    sub = autoscale.add_subparsers(dest="autoscale_command")
    simulate = sub.add_parser("simulate", help="replay an arrival trace through our policy and a KEDA/HPA model")
    simulate.add_argument("trace", type=Path)
    simulate.add_argument("--max-workers", type=int, default=None,
                          help="cap on workers, both sides (default: the trace's, else VIDFARM_AUTOSCALE_CPU__MAX_REPLICAS)")
    simulate.add_argument("--grace-s", type=float, default=None,
                          help="termination grace of a stopped busy worker, both sides (default: the trace's, else 30)")
    simulate.add_argument("--target-wait-s", type=float, default=None,
                          help="vidfarm's target wait (default: VIDFARM_AUTOSCALE_CPU__TARGET_WAIT_S)")
    keda = KedaSettings()
    simulate.add_argument("--keda-cooldown-s", type=float, default=keda.cooldown_s, help="KEDA cooldownPeriod")
    simulate.add_argument("--keda-window-s", type=float, default=keda.window_s,
                          help="HPA behavior.scaleDown.stabilizationWindowSeconds")
    simulate.add_argument("--keda-polling-s", type=float, default=keda.polling_s, help="KEDA pollingInterval")


def targets(settings: Settings, queues: str | None, backend: str) -> list[ScaleSettings]:
    wanted = (queues or ("cpu,gpu" if backend == "kubernetes" else "cpu")).split(",")
    known = {t.queue: t for t in settings.scaled_deployments}
    unknown = [q for q in wanted if q not in known]
    if unknown:
        raise UsageError(f"unknown queue {unknown[0]!r} (scaled queues: {', '.join(known)})")
    return [known[q] for q in wanted]


def make_backend(args, settings: Settings):
    if args.backend == "kubernetes":
        from autoscaler.backends.kubernetes import KubernetesBackend, load_api_client

        api_client, namespace = load_api_client(args.kubeconfig)
        return KubernetesBackend(api_client, settings.autoscale_namespace or namespace or "default")
    from autoscaler.backends.local import LocalBackend

    # Workers get the farm's own settings, but not the web app's secrets (they parse untrusted video).
    env = {name: value for name, value in os.environ.items() if name not in WEB_ONLY_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    return LocalBackend(env, settings.data_dir / "logs", drain_limit_s=settings.segment_time_limit_s + 60,
                        pin_threads=settings.effective_threads if settings.pin_workers else None, forked=True)


def run_simulate(args, settings: Settings) -> int:
    from autoscaler.simulate import Bounds, compare, load_trace

    for flag, value, least in (("--max-workers", args.max_workers, 1), ("--grace-s", args.grace_s, 0),
                               ("--keda-cooldown-s", args.keda_cooldown_s, 0), ("--keda-window-s", args.keda_window_s, 0)):
        if value is not None and value < least:
            raise UsageError(f"{flag} must be at least {least} (got {value:g})")
    for flag, value in (("--target-wait-s", args.target_wait_s), ("--keda-polling-s", args.keda_polling_s)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be above 0 (got {value:g})")
    trace = load_trace(args.trace)
    ours = settings.autoscale_cpu
    if args.target_wait_s is not None:
        ours = ours.model_copy(update={"target_wait_s": args.target_wait_s})
    bounds = Bounds.of(trace, args.max_workers, args.grace_s, default_max_workers=ours.max_replicas)
    keda = KedaSettings(polling_s=args.keda_polling_s, cooldown_s=args.keda_cooldown_s, window_s=args.keda_window_s)
    print(json.dumps(compare(trace, ours, settings.autoscale_poll_s, keda, bounds)))
    return 0


def run_autoscale(args, settings: Settings) -> int:
    if args.autoscale_command == "simulate":
        return run_simulate(args, settings)
    if not settings.redis_url:      # (one that does not answer: main says so, as for process and ingest)
        raise UsageError("REDIS_URL is not set: the autoscaler watches a running farm's queues")
    # A stop ends it wherever it waits, a poll included (a database that does not answer held
    # it for ever: a handler that only ends the loop runs, and the wait goes on), with one line
    # (main); as PID 1 of a container, without a handler, SIGTERM was ignored while it started.
    with stop_on_signals():
        return watch_the_farm(args, settings)


def watch_the_farm(args, settings: Settings) -> int:
    import redis

    from autoscaler.live_work import LiveWork, camera_rates
    from autoscaler.loop import Autoscaler, ScaleMetrics
    from autoscaler.observe import QueueObserver
    from autoscaler.work import open_work_source
    from core.cameras import CameraRegistry

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("vidfarm.autoscaler").setLevel(logging.INFO)   # each decision and its reason
    scaled = targets(settings, args.queues, args.backend)
    backend = make_backend(args, settings)
    client = redis.Redis.from_url(settings.redis_url)
    observer = QueueObserver(settings.redis_url, work=LiveWork(client, open_work_source(settings)))
    registry = CameraRegistry.from_url(settings.redis_url)
    metrics = ScaleMetrics()
    try:
        scaler = Autoscaler(backend, observer, scaled, metrics, cameras=lambda: camera_rates(registry),
                            shared_max=settings.autoscale_shared_max)
        if args.once:
            scaler.tick(settings.autoscale_poll_s)
            return 0
        if settings.autoscale_metrics_port:
            metrics.serve(settings.autoscale_metrics_port, settings.autoscale_metrics_host)
        scaler.run(settings.autoscale_poll_s, threading.Event())     # until a stop signal
        return 0
    finally:
        observer.close()
        backend.close()
        registry.redis.close()
