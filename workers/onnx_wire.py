"""Just enough of protobuf's wire format to read and edit an ONNX model without the ``onnx``
package: importing it (through ``ml_dtypes``) took 0.6 s of CPU, the largest part of the
workers' fork server's start, for two small jobs at model load (``models.without_prelu``,
``ArcFace``'s input scaling). The converter of the mask model, run at setup, still uses onnx.

A message is a list of ``Field(number, wire_type, value)`` in the order read: ``value`` is an
int for a varint, the bytes of a length-delimited field, the raw 4 or 8 bytes of a fixed one
(read ones are views of the message's bytes: a model's weights are not copied).
Fields are written back in the order given, so a model read and written unchanged is the
same bytes; protobuf writes a message's fields in field-number order, and so do the edits.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5

# Field numbers in onnx/onnx.proto (ONNX's schema).
MODEL_GRAPH, MODEL_METADATA = 7, 14
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_INPUT = 1, 5, 11
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE = 1, 2, 3, 4
TENSOR_DATA_TYPE, TENSOR_FLOAT_DATA, TENSOR_NAME = 2, 4, 8
VALUE_INFO_TYPE, TYPE_TENSOR, TENSOR_TYPE_ELEM = 2, 1, 1
ENTRY_KEY, ENTRY_VALUE = 1, 2
FLOAT = 1     # TensorProto.DataType.FLOAT


class Field(NamedTuple):
    number: int
    wire_type: int
    value: int | bytes | memoryview


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("not a protobuf message: it ends inside a varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def read(data: bytes | memoryview) -> list[Field]:
    """The fields of one message."""
    fields, at = [], 0
    view = memoryview(data)
    while at < len(data):
        key, at = _varint(data, at)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, at = _varint(data, at)
        elif wire_type == LEN:
            size, at = _varint(data, at)
            value, at = view[at:at + size], at + size
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            value, at = view[at:at + size], at + size
        else:
            raise ValueError(f"not a protobuf message this reader knows: wire type {wire_type}")
        if at > len(data):
            raise ValueError("not a protobuf message: a field runs past its end")
        fields.append(Field(number, wire_type, value))
    return fields


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def write(fields: list[Field]) -> bytes:
    parts = []
    for number, wire_type, value in fields:
        parts.append(_encode_varint(number << 3 | wire_type))
        if wire_type == VARINT:
            parts.append(_encode_varint(value))
        elif wire_type == LEN:
            parts += [_encode_varint(len(value)), value]
        else:
            parts.append(value)
    return b"".join(parts)


def text(number: int, value: str) -> Field:
    return Field(number, LEN, value.encode())


def strings(fields: list[Field], number: int) -> list[str]:
    return [bytes(f.value).decode() for f in fields if f.number == number]


def first(fields: list[Field], number: int) -> Field | None:
    return next((f for f in fields if f.number == number), None)


def inserted(fields: list[Field], new: list[Field]) -> list[Field]:
    """``new`` (fields of one number) placed after the fields numbered up to theirs, where
    protobuf writes them."""
    at = max((i + 1 for i, f in enumerate(fields) if f.number <= new[0].number), default=0)
    return [*fields[:at], *new, *fields[at:]]


class Model:
    """An ONNX model file's top-level fields and its graph's."""

    def __init__(self, data: bytes):
        self.fields = read(data)
        graph = first(self.fields, MODEL_GRAPH)
        if graph is None:
            raise ValueError("not an ONNX model: no graph")
        self.graph = read(graph.value)

    @classmethod
    def load(cls, path: Path | str) -> "Model":
        try:
            return cls(Path(path).read_bytes())
        except ValueError as error:     # which file, for a model setting that names a wrong one
            raise ValueError(f"{path}: {error}") from None

    def node_names(self, count: int) -> list[str]:
        """The first ``count`` nodes' names."""
        names = []
        for field in self.graph:
            if field.number == GRAPH_NODE and len(names) < count:
                names.append("".join(strings(read(field.value), NODE_NAME)))
        return names

    def input_elem_type(self) -> int:
        """The first graph input's tensor element type (0 where it has none)."""
        value_info = first(self.graph, GRAPH_INPUT)
        for number in (VALUE_INFO_TYPE, TYPE_TENSOR, TENSOR_TYPE_ELEM):
            if value_info is None or value_info.wire_type == VARINT:
                break
            value_info = first(read(value_info.value), number)
        return value_info.value if value_info is not None and value_info.wire_type == VARINT else 0

    def serialised(self) -> bytes:
        graph = Field(MODEL_GRAPH, LEN, write(self.graph))
        return write([graph if f.number == MODEL_GRAPH else f for f in self.fields])


def node(op_type: str, inputs: list[str], outputs: list[str], name: str) -> Field:
    """A NodeProto, as ``onnx.helper.make_node`` writes one without attributes or domain."""
    return Field(GRAPH_NODE, LEN, write([*(text(NODE_INPUT, x) for x in inputs),
                                        *(text(NODE_OUTPUT, y) for y in outputs),
                                        text(NODE_NAME, name), text(NODE_OP_TYPE, op_type)]))


def float_scalar(name: str, value_bytes: bytes) -> Field:
    """A float32 scalar TensorProto (``value_bytes``: its 4 little-endian bytes), as
    ``onnx.helper.make_tensor(name, FLOAT, [], [value])`` writes it (packed float_data)."""
    return Field(GRAPH_INITIALIZER, LEN, write([Field(TENSOR_DATA_TYPE, VARINT, FLOAT),
                                               Field(TENSOR_FLOAT_DATA, LEN, value_bytes),
                                               text(TENSOR_NAME, name)]))


def metadata_entry(key: str, value: str) -> Field:
    return Field(MODEL_METADATA, LEN, write([text(ENTRY_KEY, key), text(ENTRY_VALUE, value)]))
