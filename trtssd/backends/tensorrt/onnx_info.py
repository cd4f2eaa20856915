"""What the engine builder needs from an ONNX file, read without the onnx package.

A hand-written reader of the few protobuf fields involved (metadata, node operators, graph
inputs and outputs with their dims), so that building and cache checks work where only
TensorRT and numpy are installed (a Jetson's JetPack has no onnx package).
"""
import hashlib
import os

from ...core.errors import ModelError
from ...core.protobuf import fields as _fields
from ...core.spec import ModelSpec, SPEC_METADATA_KEY

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


class OnnxInfo(object):
    """What the builder needs from an ONNX file, read without the onnx package."""

    def __init__(self, path, data, metadata, op_types, inputs, outputs):
        self.path = path
        self.data = data
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.metadata = metadata          # {key: value}
        self.op_types = op_types          # node op types in graph order
        self.inputs = inputs              # [(name, dims)] dims: int or str (symbolic) or None
        self.outputs = outputs

    @property
    def has_qdq(self):
        return any(op in QDQ_OPS for op in self.op_types)

    def spec(self):
        text = self.metadata.get(SPEC_METADATA_KEY)
        if text is None:
            raise ModelError(
                "%s has no %r metadata, so it was not written by trtssd's converter; convert "
                "the TFLite model with `trtssd convert detect.tflite`"
                % (self.path, SPEC_METADATA_KEY))
        return ModelSpec.from_json(text)


def _value_info(buf):
    name, dims = None, None
    for num, _, val in _fields(buf):
        if num == 1:
            name = bytes(val).decode("utf-8")
        elif num == 2:                                  # TypeProto
            for tn, _, tv in _fields(val):
                if tn == 1:                             # tensor_type
                    for sn, _, sv in _fields(tv):
                        if sn == 2:                     # shape
                            dims = []
                            for dn, _, dv in _fields(sv):
                                if dn != 1:
                                    continue
                                d = None
                                for en, _, ev in _fields(dv):
                                    if en == 1:
                                        d = int(ev)
                                    elif en == 2:
                                        d = bytes(ev).decode("utf-8")
                                dims.append(d)
    return name, dims


def read_onnx(path):
    """Metadata, operators and I/O of an ONNX file (ModelError if it is not one)."""
    if not os.path.isfile(path):
        raise ModelError("ONNX model %s does not exist; convert the TFLite model first with "
                         "`trtssd convert`" % path)
    with open(path, "rb") as f:
        data = f.read()
    metadata, ops, inputs, outputs = {}, [], [], []
    try:
        view = memoryview(data)
        for num, wire, val in _fields(view):
            if num == 14 and wire == 2:                 # metadata_props
                k = v = None
                for en, _, ev in _fields(val):
                    if en == 1:
                        k = bytes(ev).decode("utf-8")
                    elif en == 2:
                        v = bytes(ev).decode("utf-8")
                if k is not None:
                    metadata[k] = v if v is not None else ""
            elif num == 7 and wire == 2:                # graph
                for gn, gw, gv in _fields(val):
                    if gn == 1 and gw == 2:             # node
                        for nn, _, nv in _fields(gv):
                            if nn == 4:
                                ops.append(bytes(nv).decode("utf-8"))
                    elif gn == 11 and gw == 2:
                        inputs.append(_value_info(gv))
                    elif gn == 12 and gw == 2:
                        outputs.append(_value_info(gv))
    except (ValueError, UnicodeDecodeError, IndexError) as e:
        raise ModelError("%s is not a readable ONNX file (%s); it may be truncated: convert the "
                         "model again with `trtssd convert`" % (path, e))
    if not ops and not inputs:
        raise ModelError("%s holds no ONNX graph; convert the model again" % path)
    return OnnxInfo(path, data, metadata, ops, inputs, outputs)
