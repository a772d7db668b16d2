"""Celery settings, and only those (read by ``tasks.app`` with ``config_from_object``).

Segments are long tasks, so: acknowledge after the work (``acks_late``) and requeue when a
worker dies (``reject_on_worker_lost``), take one task at a time (prefetch 1) so an idle
worker is never starved by a busy one's backlog, and keep Redis's visibility timeout above
the longest task's time limit so a slow task is not handed to a second worker while still
running. A worker that vanishes whole (SIGKILL, OOM, node lost) leaves no one to requeue its
task: the leases of ``tasks.leases`` bring that work back in seconds, the visibility timeout
only in the end.
"""

from celery.schedules import crontab
from kombu import Queue

from core.settings import get_settings

_settings = get_settings()

# Where a process with no REDIS_URL sends its tasks (a Redis on this machine's standard port).
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
broker_url = _settings.redis_url or DEFAULT_BROKER_URL
result_backend = broker_url
broker_connection_retry_on_startup = True
# A worker takes from its queues in the order it lists them (``-Q live,ingest,cpu``): a live
# segment waiting goes before any batch task (kombu's default would rotate between them).
_longest_task_s = max(_settings.segment_time_limit_s, _settings.stitch_time_limit_s)
# A read on the broker waits at most 30 s (kombu's default is forever): a connection whose BRPOP
# reply never comes (a broker gone without closing TCP, or a pooled channel closed while kombu
# thinks a BRPOP is pending, which hung a test process for 30 minutes) becomes a connection
# error kombu reconnects from. Far above the 1 s BRPOP timeout, so a healthy broker never meets it.
broker_transport_options = {"visibility_timeout": _longest_task_s + 300, "queue_order_strategy": "priority",
                            "socket_timeout": 30}
result_backend_transport_options = {"visibility_timeout": _longest_task_s + 300}
result_expires = 24 * 3600
# A Redis blip while a segment stores its result should not turn the finished segment into a
# failed one: retry storing it with backoff. (Celery retries the result store only, not the
# chord counter; where the chord still fails, job_failed sees every segment done and stitches.)
result_backend_always_retry = True
result_backend_max_retries = 20

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_track_started = True
task_send_sent_event = True
worker_send_task_events = True
task_serializer = result_serializer = "json"
accept_content = ["json"]

task_queues = (Queue("live"), Queue("ingest"), Queue("cpu"), Queue("gpu"))
task_default_queue = "cpu"
task_routes = {
    "vidfarm.ingest": {"queue": "ingest"},
    "vidfarm.stitch": {"queue": "ingest"},
    "vidfarm.job_failed": {"queue": "ingest"},
    "vidfarm.segment": {"queue": "cpu"},
    "vidfarm.live_segment": {"queue": "live"},
    "vidfarm.live_view": {"queue": "live"},
    "vidfarm.render_segment": {"queue": "cpu"},
    "vidfarm.join_video": {"queue": "ingest"},
    "vidfarm.render_failed": {"queue": "ingest"},
    "vidfarm.redraw": {"queue": "ingest"},
    "vidfarm.erase": {"queue": "ingest"},
    "vidfarm.embed_photos": {"queue": "ingest"},
    "vidfarm.reidentify": {"queue": "ingest"},
    "vidfarm.reidentify_stale": {"queue": "ingest"},
    "vidfarm.reanalyse_window": {"queue": "ingest"},
    "vidfarm.reanalyse_recent": {"queue": "ingest"},
    "vidfarm.watchdog": {"queue": "ingest"},
    "vidfarm.reclaim": {"queue": "ingest"},
    "vidfarm.deliver_alert": {"queue": "ingest"},
    "vidfarm.record_hour": {"queue": "ingest"},
    "vidfarm.expire_recordings": {"queue": "ingest"},
}

# Celery beat: `celery -A tasks.beat_app beat` (started by `make run` and by the chart; it sends
# these by name, so it loads no task module).
beat_schedule = {
    "reidentify-after-gallery-changes": {"task": "vidfarm.reidentify_stale",
                                         "schedule": _settings.reidentify_every_s},
    "fail-stalled-jobs": {"task": "vidfarm.watchdog", "schedule": 60.0},
    "reclaim-work-of-dead-workers": {"task": "vidfarm.reclaim", "schedule": _settings.segment_lease_s / 2,
                                     "options": {"expires": _settings.segment_lease_s}},
    "expire-camera-recordings": {"task": "vidfarm.expire_recordings", "schedule": _settings.recording_check_s},
}
if _settings.reanalyse_hours:
    beat_schedule["reanalyse-recent-recordings"] = {
        "task": "vidfarm.reanalyse_recent", "args": (_settings.reanalyse_hours,),
        "schedule": crontab(hour=_settings.reanalyse_at_hour, minute=0)}
task_annotations = {
    "vidfarm.segment": {"time_limit": _settings.segment_time_limit_s,
                        "soft_time_limit": _settings.segment_time_limit_s - 30},
    "vidfarm.live_segment": {"time_limit": _settings.segment_time_limit_s,
                             "soft_time_limit": _settings.segment_time_limit_s - 30},
    "vidfarm.live_view": {"time_limit": _settings.segment_time_limit_s,
                          "soft_time_limit": _settings.segment_time_limit_s - 30},
    "vidfarm.render_segment": {"time_limit": _settings.segment_time_limit_s,
                               "soft_time_limit": _settings.segment_time_limit_s - 30},
    "vidfarm.join_video": {"time_limit": _settings.stitch_time_limit_s,
                           "soft_time_limit": _settings.stitch_time_limit_s - 30},
    "vidfarm.record_hour": {"time_limit": _settings.stitch_time_limit_s,
                            "soft_time_limit": _settings.stitch_time_limit_s - 30},
    "vidfarm.erase": {"time_limit": _settings.stitch_time_limit_s,
                      "soft_time_limit": _settings.stitch_time_limit_s - 30},
    "vidfarm.ingest": {"time_limit": _settings.stitch_time_limit_s,
                       "soft_time_limit": _settings.stitch_time_limit_s - 30},
    "vidfarm.stitch": {"time_limit": _settings.stitch_time_limit_s,
                       "soft_time_limit": _settings.stitch_time_limit_s - 30},
}
