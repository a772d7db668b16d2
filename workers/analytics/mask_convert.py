"""Convert the mask classifier that ``mask-recognition`` 0.0.1 (MIT) ships to ONNX, without torch.

The package holds a torch state dict (``model/model.pth``) of
``bottom`` = torchvision's MobileNetV2 ``features`` and
``top`` = Linear(20480, 256) -> ReLU -> Linear(256, 2) -> LogSoftmax, outputs [with_mask,
without_mask], input RGB 128x128 scaled to [-1, 1]. Its own code needs torch, torchvision and
facenet-pytorch, so the package is installed with ``--no-deps`` and never imported: we read the
weights with :mod:`workers.analytics.torch_checkpoint` and write the same network with
``onnx.helper``. Batch norms are folded into the convolutions before them (inference only).

The converted file is cached outside the repository, named by the hash of the source weights
and of this converter's version (``mask_model``, where the workers look it up without
importing onnx), so a new package or converter makes a new file. Run at setup:
``python -m workers.analytics.mask_convert`` (the Makefile's install step does).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from workers.analytics.mask_model import (  # noqa: F401  (the converter's callers find them here too)
    CONVERTER_VERSION, INPUT_SIZE, LABELS, cached_model_path, converted_path, source_weights)
from workers.analytics.torch_checkpoint import load_state_dict

BN_EPS = 1e-5                    # torchvision's MobileNetV2 uses BatchNorm2d's default
OPSET = 17

# torchvision's MobileNetV2 inverted-residual table: expansion t, output channels c,
# repeats n, first stride s. The state dict has no strides, so they come from here; channel
# counts are checked against the weights.
_INVERTED_RESIDUALS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class _GraphBuilder:
    def __init__(self, weights: dict[str, np.ndarray]):
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.used: set[str] = set()

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def take(self, key: str) -> np.ndarray:
        self.used.add(key)
        return self.weights[key]

    def conv_bn(self, x: str, conv: str, bn: str, stride: int, groups: int, relu6: bool) -> str:
        """Conv2d(bias=False) + BatchNorm2d (+ ReLU6), with the batch norm folded in."""
        weight = self.take(f"{conv}.weight")
        gamma, beta = self.take(f"{bn}.weight"), self.take(f"{bn}.bias")
        mean, var = self.take(f"{bn}.running_mean"), self.take(f"{bn}.running_var")
        self.used.add(f"{bn}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        w = self.constant(f"{conv}.w", (weight * scale[:, None, None, None]).astype(np.float32))
        b = self.constant(f"{conv}.b", (beta - mean * scale).astype(np.float32))
        k = weight.shape[-1]
        out = f"{conv}.out"
        self.nodes.append(helper.make_node("Conv", [x, w, b], [out], kernel_shape=[k, k],
                                           strides=[stride, stride], pads=[k // 2] * 4, group=groups))
        if not relu6:
            return out
        self.nodes.append(helper.make_node("Clip", [out, "zero", "six"], [f"{conv}.relu6"]))
        return f"{conv}.relu6"

    def inverted_residual(self, x: str, prefix: str, in_ch: int, out_ch: int, t: int, stride: int) -> str:
        hidden = in_ch * t
        layer, y = 0, x
        if t != 1:   # 1x1 expansion
            y = self.conv_bn(y, f"{prefix}.conv.0.0", f"{prefix}.conv.0.1", 1, 1, relu6=True)
            layer = 1
        y = self.conv_bn(y, f"{prefix}.conv.{layer}.0", f"{prefix}.conv.{layer}.1", stride, hidden, relu6=True)
        y = self.conv_bn(y, f"{prefix}.conv.{layer + 1}", f"{prefix}.conv.{layer + 2}", 1, 1, relu6=False)
        got = self.weights[f"{prefix}.conv.{layer + 1}.weight"].shape[:2]
        if got != (out_ch, hidden):
            raise ValueError(f"{prefix}: weights are {got}, MobileNetV2 expects {(out_ch, hidden)}")
        if stride == 1 and in_ch == out_ch:
            self.nodes.append(helper.make_node("Add", [x, y], [f"{prefix}.sum"]))
            return f"{prefix}.sum"
        return y

    def linear(self, x: str, prefix: str) -> str:
        w = self.constant(f"{prefix}.w", self.take(f"{prefix}.weight"))
        b = self.constant(f"{prefix}.b", self.take(f"{prefix}.bias"))
        self.nodes.append(helper.make_node("Gemm", [x, w, b], [f"{prefix}.out"], transB=1))
        return f"{prefix}.out"


def build_model(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    g = _GraphBuilder(weights)
    g.constant("zero", np.array(0, np.float32))
    g.constant("six", np.array(6, np.float32))
    x = g.conv_bn("input", "bottom.0.0", "bottom.0.1", 2, 1, relu6=True)
    index, channels = 1, 32
    for t, c, n, s in _INVERTED_RESIDUALS:
        for repeat in range(n):
            x = g.inverted_residual(x, f"bottom.{index}", channels, c, t, s if repeat == 0 else 1)
            index, channels = index + 1, c
    x = g.conv_bn(x, f"bottom.{index}.0", f"bottom.{index}.1", 1, 1, relu6=True)   # 320 -> 1280
    g.nodes.append(helper.make_node("Flatten", [x], ["features"], axis=1))         # NCHW order, as view()
    x = g.linear("features", "top.0")
    g.nodes.append(helper.make_node("Relu", [x], ["top.1.out"]))
    x = g.linear("top.1.out", "top.2")
    g.nodes.append(helper.make_node("LogSoftmax", [x], ["log_probs"], axis=1))
    unused = sorted(set(weights) - g.used)
    if unused:
        raise ValueError(f"the checkpoint has tensors this MobileNetV2 graph does not use: {unused[:5]}")
    graph = helper.make_graph(
        g.nodes, "mask_mobilenet_v2",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["batch", len(LABELS)])],
        initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="vidfarm.mask_convert", producer_version=CONVERTER_VERSION)
    model.ir_version = 8   # what onnxruntime releases of the last few years all read
    helper.set_model_props(model, {"labels": ",".join(LABELS), "source": "mask-recognition 0.0.1 (MIT)"})
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    features = [v for v in inferred.graph.value_info if v.name == "features"]
    dims = [d.dim_value for d in features[0].type.tensor_type.shape.dim[1:]] if features else []
    if dims != [weights["top.0.weight"].shape[1]]:
        raise ValueError(f"flattened features are {dims}, the first Linear expects "
                         f"{weights['top.0.weight'].shape[1]}")
    return model


def convert(source: Path, target: Path) -> Path:
    model = build_model(load_state_dict(source))
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: several worker processes may prepare the model at the same time.
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(model.SerializeToString())
        os.chmod(tmp, 0o644)   # mkstemp makes it private; other users' workers read it too
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def ensure_mask_model(settings_or_dir=None) -> Path:
    """The converted ONNX file, converting it on the first call. Takes a ``Settings`` (its
    ``model_cache_dir``), a cache folder, or nothing (the process's settings)."""
    if settings_or_dir is None:
        from core.settings import get_settings
        settings_or_dir = get_settings()
    target = converted_path(settings_or_dir)
    if not target.is_file():
        convert(source_weights(), target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prepare the mask classifier (ONNX) in the model cache.")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache folder (default: VIDFARM_MODEL_CACHE_DIR or ~/.cache/vidfarm/models)")
    args = parser.parse_args(argv)
    try:
        path = ensure_mask_model(args.cache_dir)
    except (OSError, ValueError) as exc:
        print(f"mask model: {exc}", file=sys.stderr)
        return 1
    print(f"mask model ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
