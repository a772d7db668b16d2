"""What the task modules share: JSON blobs, scratch folders, and the workers' configs built
from the settings."""

from __future__ import annotations

import json
import tempfile
from io import BytesIO

from core import storage
from services import runtime
from workers import media, pipeline
from workers.render import RenderConfig
from workers.results import ResultOptions


def stored_versions(job_id: str) -> dict[int, str]:
    return storage.stored_versions(runtime.store(), job_id)


def scratch_dir() -> tempfile.TemporaryDirectory:
    root = runtime.settings().data_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=root)


def media_limits(budget_s: float | None = None) -> media.Limits:
    """What ingest accepts; ``budget_s``: how long reading may take (default: the probe's)."""
    return media.Limits(**runtime.settings().media_limits(budget_s))


def put_json(key: str, data) -> None:
    _put_bytes(key, _json_bytes(data))


def _json_bytes(data) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _put_bytes(key: str, data: bytes) -> None:
    runtime.store().put_stream(key, BytesIO(data))


def _pipeline_config(job_options: dict) -> pipeline.PipelineConfig:
    s = runtime.settings()
    configs = s.analyzer_configs()
    names = job_options.get("analyzers") or s.analyzers
    calibration = _calibration(job_options)
    return pipeline.PipelineConfig(analyzers=tuple(names), analyzer_configs=json.dumps(configs), plugins=s.plugins,
                                   threads=s.effective_threads, thermal_gain=calibration["gain"],
                                   thermal_offset=calibration["offset"])


def _calibration(job_options: dict) -> dict:
    s = runtime.settings()
    return job_options.get("thermal") or {"gain": s.thermal_gain, "offset": s.thermal_offset}


def render_config(job_options: dict) -> RenderConfig:
    s = runtime.settings()
    calibration = _calibration(job_options)
    return RenderConfig(threads=s.effective_threads, x264_preset=s.x264_preset, x264_crf=s.x264_crf,
                        x264_params=s.x264_params, fever_c=s.fever_threshold_c, stream_copy=s.stream_copy,
                        thermal_gain=calibration["gain"], thermal_offset=calibration["offset"])


def result_options(watchlist: frozenset[str]) -> ResultOptions:
    s = runtime.settings()
    return ResultOptions(recognition_threshold=s.recognition_threshold, fever_c=s.fever_threshold_c,
                         alerts=s.alerts, watchlist=watchlist)
