"""Read a TensorFlow GraphDef (a TF1 ``frozen_inference_graph.pb``) without TensorFlow.

A reader (over the wire format of core/protobuf.py) of just the messages a frozen graph uses:
GraphDef (nodes), NodeDef (name, op, inputs, attributes), AttrValue, TensorProto and
TensorShapeProto. Field numbers are those of TensorFlow's .proto files (graph.proto,
node_def.proto, attr_value.proto, tensor.proto, tensor_shape.proto, types.proto).
"""
import struct

import numpy as np

from ..core.errors import ModelError
from ..core.protobuf import Truncated as _Truncated, fields, varint as _varint

# types.proto DataType -> numpy
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
           7: object, 9: np.int64, 10: np.bool_, 14: np.float16, 19: np.float16}
# 14 is bfloat16: never a weight of the graphs read here; it is read as raw halves only if used


def _packed(v, wt, kind):
    """Repeated scalars: packed (length-delimited) or one element."""
    if wt == 2:
        b = bytes(v)
        if kind == "f":
            return list(struct.unpack("<%df" % (len(b) // 4), b))
        if kind == "d":
            return list(struct.unpack("<%dd" % (len(b) // 8), b))
        out, pos = [], 0
        while pos < len(b):
            x, pos = _varint(b, pos)
            out.append(x)
        return out
    if kind == "f":
        return [struct.unpack("<f", bytes(v))[0]]
    if kind == "d":
        return [struct.unpack("<d", bytes(v))[0]]
    return [v]


def _signed(x, bits=64):
    return x - (1 << bits) if x >= 1 << (bits - 1) else x


class Node(object):
    def __init__(self, name, op, inputs, attr):
        self.name = name
        self.op = op
        self.inputs = inputs      # as written: "name", "name:1", "^control"
        self.attr = attr

    def __repr__(self):
        return "Node(%r, %s, %s)" % (self.name, self.op, self.inputs)


def parse_shape(buf):
    dims, unknown = [], False
    for num, wt, v in fields(buf):
        if num == 2:
            size = -1
            for n2, _, v2 in fields(v):
                if n2 == 1:
                    size = _signed(v2)
            dims.append(size)
        elif num == 3:
            unknown = bool(v)
    return None if unknown else dims


def parse_tensor(buf):
    """TensorProto -> numpy array."""
    dtype, shape, content = 1, [], None
    vals = {}
    for num, wt, v in fields(buf):
        if num == 1:
            dtype = v
        elif num == 2:
            shape = parse_shape(v) or []
        elif num == 4:
            content = bytes(v)
        elif num in (5, 6, 7, 10, 11, 13):
            kind = {5: "f", 6: "d"}.get(num, "i")
            vals.setdefault(num, []).extend(_packed(v, wt, kind))
        elif num == 8:
            vals.setdefault(8, []).append(bytes(v))
    if dtype not in _DTYPES:
        raise ModelError("a constant of TensorFlow type %d, which trtssd does not read" % dtype)
    np_type = _DTYPES[dtype]
    n = int(np.prod(shape)) if shape else 1
    if np_type is object:
        return np.array(vals.get(8, []), dtype=object).reshape(shape) if n else \
            np.zeros(shape, object)
    np_type = np.dtype(np_type)
    if content is not None:
        if len(content) != n * np_type.itemsize:
            raise ModelError("a constant tensor holds %d bytes, its shape %s needs %d"
                             % (len(content), shape, n * np_type.itemsize))
        return np.frombuffer(content, np_type).reshape(shape).copy()
    field = {np.dtype(np.float32): 5, np.dtype(np.float64): 6, np.dtype(np.int64): 10,
             np.dtype(np.bool_): 11, np.dtype(np.float16): 13}.get(np_type, 7)
    raw = vals.get(field, [])
    if np_type == np.float16:
        arr = np.array(raw, np.uint16).view(np.float16)
    elif np_type.kind in "iu":
        # negative int32 values are sign-extended to 64 bits on the wire, like int64 ones
        arr = np.array([_signed(x) for x in raw], np.int64).astype(np_type)
    else:
        arr = np.array(raw, np_type)
    if arr.size == n:
        return arr.reshape(shape)
    if arr.size == 1 or (arr.size and arr.size < n):   # the last value repeats to fill
        full = np.empty(n, np_type)
        full[:arr.size] = arr
        full[arr.size:] = arr[-1]
        return full.reshape(shape)
    if arr.size == 0:
        return np.zeros(shape, np_type)
    raise ModelError("a constant tensor of shape %s holds %d values" % (shape, arr.size))


def _parse_list(buf):
    out = {}
    for num, wt, v in fields(buf):
        if num == 2:
            out.setdefault("s", []).append(bytes(v))
        elif num == 3:
            out.setdefault("i", []).extend(_signed(x) for x in _packed(v, wt, "i"))
        elif num == 4:
            out.setdefault("f", []).extend(_packed(v, wt, "f"))
        elif num == 5:
            out.setdefault("b", []).extend(bool(x) for x in _packed(v, wt, "i"))
        elif num == 6:
            out.setdefault("type", []).extend(_packed(v, wt, "i"))
        elif num == 7:
            out.setdefault("shape", []).append(parse_shape(v))
    return out


def _parse_attr(buf):
    for num, wt, v in fields(buf):
        if num == 1:
            return _parse_list(v)
        if num == 2:
            return bytes(v)
        if num == 3:
            return _signed(v)
        if num == 4:
            return struct.unpack("<f", bytes(v))[0]
        if num == 5:
            return bool(v)
        if num == 6:
            return ("type", v)
        if num == 7:
            return parse_shape(v)
        if num == 8:
            return parse_tensor(v)
    return None


def _parse_node(buf):
    name, op, inputs, attr = "", "", [], {}
    for num, wt, v in fields(buf):
        if num == 1:
            name = bytes(v).decode("utf-8", "replace")
        elif num == 2:
            op = bytes(v).decode("utf-8", "replace")
        elif num == 3:
            inputs.append(bytes(v).decode("utf-8", "replace"))
        elif num == 5:
            key, val = None, None
            for n2, _, v2 in fields(v):
                if n2 == 1:
                    key = bytes(v2).decode("utf-8", "replace")
                elif n2 == 2:
                    val = v2
            if key is not None:
                attr[key] = val    # parsed on demand: most attributes are never read
    return Node(name, op, inputs, attr)


def attr(node, key, default=None):
    """The attribute ``key`` of ``node`` as a Python value (parsed on first use)."""
    v = node.attr.get(key)
    if v is None:
        return default
    if isinstance(v, memoryview):
        v = _parse_attr(v)
        node.attr[key] = v
    return v


def parse_graphdef(buf, path="<bytes>"):
    """The nodes of a serialised GraphDef, in file order. ModelError on anything else."""
    buf = memoryview(buf)
    nodes = []
    try:
        for num, wt, v in fields(buf):
            if num == 1 and wt == 2:
                node = _parse_node(v)
                if not node.op or not node.name:
                    raise _Truncated("a node without a name or op")
                nodes.append(node)
            elif num in (2, 3, 4) and wt == 2:
                continue     # library, version (deprecated), versions
            else:
                raise _Truncated("field %d (wire type %d) is not one of a GraphDef" % (num, wt))
    except (_Truncated, UnicodeDecodeError, struct.error, IndexError, ValueError) as e:
        raise ModelError("%s is not a readable TensorFlow GraphDef (frozen graph): %s; a TF1 "
                         "frozen_inference_graph.pb is needed, downloaded whole"
                         % (path, e))
    if not nodes:
        raise ModelError("%s holds no graph nodes; it is not a TensorFlow frozen graph" % path)
    return nodes
