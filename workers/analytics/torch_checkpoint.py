"""Read a PyTorch zip checkpoint (a ``state_dict`` saved by ``torch.save``) into numpy arrays,
without importing torch.

Since torch 1.6 a checkpoint is a zip: ``<archive>/data.pkl`` is a pickle whose tensors are
calls to ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``, and each
storage is a persistent id ``('storage', <dtype class>, key, location, numel)`` naming the raw
little-endian bytes in ``<archive>/data/<key>``. The unpickler below resolves only those few
globals (a pickle can otherwise run arbitrary code) and rebuilds each tensor as a strided
numpy view, copied so the result owns its memory.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

# torch's legacy storage classes, as they appear in the pickle, and their element types.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    """The file is not a torch zip checkpoint this reader understands."""


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


def _rebuild_tensor_v2(storage: np.ndarray, offset: int, size, stride, *_ignored) -> np.ndarray:
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view, dtype=storage.dtype.newbyteorder("="))


def _rebuild_parameter(data: np.ndarray, *_ignored) -> np.ndarray:
    return data


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(f"checkpoint needs {module}.{name}, which a plain state dict never does")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"unknown persistent object {pid!r}")
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            self.storages[key] = np.frombuffer(raw, dtype=storage_type.dtype, count=numel)
        return self.storages[key]


def load_state_dict(path: Path | str) -> dict[str, np.ndarray]:
    """Tensor name -> numpy array, in the checkpoint's order."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise CheckpointError(f"{path} is not a zip checkpoint (saved by torch < 1.6?)") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(f"{path} holds {len(pickles)} data.pkl files, expected 1")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise CheckpointError(f"{path} was saved big-endian")
        state = _StateDictUnpickler(archive.read(pickles[0]), archive, prefix).load()
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state
