"""Where the mask classifier's converted ONNX file is.

The converter (:mod:`workers.analytics.mask_convert`, run at setup) needs the onnx package,
whose import took 0.6 s of CPU; a worker that finds the converted file in its cache needs
only this module, so the workers' fork server does not import onnx.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

# Bump when the graph the converter writes changes: the cache key includes it.
CONVERTER_VERSION = "1"
INPUT_SIZE = 128
LABELS = ("mask", "no_mask")     # the model's output order: with_mask, without_mask


def source_weights() -> Path:
    """``model/model.pth`` inside the installed mask-recognition package (not imported: its
    ``__init__`` imports torch)."""
    spec = importlib.util.find_spec("mask_recognition")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("mask-recognition is not installed "
                                "(pip install --no-deps -r requirements-nodeps.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model" / "model.pth"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the mask-recognition package")
    return path


def cached_model_path(cache_dir: Path, source: Path) -> Path:
    digest = hashlib.sha256(source.read_bytes())
    digest.update(CONVERTER_VERSION.encode())
    return Path(cache_dir).expanduser() / f"mask_mobilenet_v2_{digest.hexdigest()[:16]}.onnx"


def converted_path(settings_or_dir) -> Path:
    """Where the converted ONNX file is (or goes). Takes a ``Settings`` (its
    ``model_cache_dir``) or a cache folder."""
    cache_dir = getattr(settings_or_dir, "model_cache_dir", settings_or_dir)
    return cached_model_path(Path(cache_dir), source_weights())
