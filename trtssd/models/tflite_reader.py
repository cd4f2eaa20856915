"""Read a TFLite flatbuffer into plain Python objects, without TensorFlow.

The ``tflite`` package (the schema compiled for Python) parses the flatbuffer; this module turns
what it returns into small records the converter works on: tensors with their shape, type,
quantisation and constant data, and operators with their name, inputs, outputs and options.
The custom options of ``TFLite_Detection_PostProcess`` are a flexbuffer map, read by the small
reader at the end of this module.
"""
import os
import struct

import numpy as np

from ..core.errors import EnvironmentProblem, ModelError

TFLITE_IDENTIFIER = b"TFL3"
OFFICIAL_ARCHIVE = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.zip"
GET_THE_MODEL = ("get the official model from the TFLite hosted models archive %s "
                 "(detect.tflite and labelmap.txt inside)"
                 % OFFICIAL_ARCHIVE)

# tflite.TensorType codes -> numpy dtypes (only those a detector's tensors use)
_TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64,
                 6: np.bool_, 7: np.int16, 9: np.int8}

# fused activation codes of the schema
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH",
               5: "SIGN_BIT"}
PADDINGS = {0: "SAME", 1: "VALID"}


class TfliteTensor(object):
    """One tensor: shape as TFLite states it (NHWC), dtype, quantisation, constant data."""

    def __init__(self, index, name, shape, dtype, scale=None, zero_point=None,
                 quantized_dimension=0, data=None):
        self.index = index
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.scale = scale            # float32 array or None
        self.zero_point = zero_point  # int64 array or None
        self.quantized_dimension = quantized_dimension
        self.data = data              # numpy array shaped `shape`, or None (an activation)

    @property
    def quantized(self):
        return self.scale is not None and self.dtype.kind in "iu"

    def dequantized(self):
        """Constant data as float32: (q - zero_point) * scale, per axis where it is per-axis."""
        if self.data is None:
            raise ModelError("tensor %r has no constant data" % self.name)
        if not self.quantized:
            return self.data.astype(np.float32)
        scale, zp = self.scale, self.zero_point
        if scale.size > 1:
            bshape = [1] * len(self.shape)
            bshape[self.quantized_dimension] = -1
            scale = scale.reshape(bshape)
            zp = zp.reshape(bshape)
        return ((self.data.astype(np.float64) - zp) * scale).astype(np.float32)

    def quant_range(self):
        """(lo, hi) of the float values this quantised activation can hold, or None."""
        if not self.quantized or self.scale.size != 1:
            return None
        info = np.iinfo(self.dtype)
        s, z = float(self.scale[0]), float(self.zero_point[0])
        return ((info.min - z) * s, (info.max - z) * s)

    def __repr__(self):
        return "TfliteTensor(%d, %r, %s, %s)" % (self.index, self.name, self.shape, self.dtype)


class TfliteOp(object):
    """One operator: ``type`` is the builtin name (``CONV_2D``) or the custom code."""

    def __init__(self, index, type, inputs, outputs, options=None, custom=False):
        self.index = index
        self.type = type
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.options = options or {}
        self.custom = custom

    def __repr__(self):
        return "TfliteOp(%d, %s, in=%s, out=%s)" % (self.index, self.type, self.inputs,
                                                    self.outputs)


class TfliteGraph(object):
    """The first subgraph of a TFLite model, as plain records."""

    def __init__(self, tensors, ops, inputs, outputs, description="", path=None):
        self.tensors = tensors
        self.ops = ops
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.description = description
        self.path = path

    def producer(self, tensor_index):
        for op in self.ops:
            if tensor_index in op.outputs:
                return op
        return None


def _import_tflite():
    try:
        import tflite  # noqa: F401
        return tflite
    except ImportError:
        raise EnvironmentProblem("reading a .tflite model needs the pure-Python `tflite` package: "
                                 "pip install tflite (or pip install trtssd[convert])")


def _enum_names(cls):
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def read_tflite(path):
    """Parse ``path`` into a TfliteGraph. A missing, truncated or foreign file is a ModelError."""
    if not os.path.isfile(path):
        raise ModelError("model file %s does not exist; %s" % (path, GET_THE_MODEL))
    with open(path, "rb") as f:
        buf = f.read()
    return parse_tflite(buf, path)


def parse_tflite(buf, path="<bytes>"):
    if len(buf) < 16 or buf[4:8] != TFLITE_IDENTIFIER:
        raise ModelError("%s is not a TFLite model (no %r flatbuffer identifier; %d bytes); %s"
                         % (path, TFLITE_IDENTIFIER.decode(), len(buf), GET_THE_MODEL))
    tflite = _import_tflite()
    try:
        return _parse(tflite, buf, path)
    except ModelError:
        raise
    except Exception as e:  # struct.error, IndexError, ValueError from a cut or corrupt buffer
        raise ModelError("%s is truncated or corrupt (%s: %s while reading the flatbuffer, "
                         "%d bytes); download it again: %s"
                         % (path, type(e).__name__, e, len(buf), GET_THE_MODEL))


def _parse(tflite, buf, path):
    model = tflite.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError("%s holds no subgraph; %s" % (path, GET_THE_MODEL))
    op_names = _enum_names(tflite.BuiltinOperator)
    opt_names = _enum_names(tflite.BuiltinOptions)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        custom = oc.CustomCode()
        if custom is not None and op_names.get(code) == "CUSTOM":
            codes.append((custom.decode("utf-8", "replace"), True))
        else:
            codes.append((op_names.get(code, "BUILTIN_%d" % code), False))

    g = model.Subgraphs(0)
    tensors = []
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        ttype = int(t.Type())
        if ttype not in _TENSOR_TYPES:
            raise ModelError("%s: tensor %d has TFLite type %d, which trtssd does not read"
                             % (path, i, ttype))
        dtype = np.dtype(_TENSOR_TYPES[ttype])
        shape = t.ShapeAsNumpy() if t.ShapeLength() else np.zeros(0, np.int32)
        scale = zp = None
        qdim = 0
        q = t.Quantization()
        if q is not None and q.ScaleLength():
            scale = np.asarray(q.ScaleAsNumpy(), np.float32).ravel()
            zp = (np.asarray(q.ZeroPointAsNumpy(), np.int64).ravel() if q.ZeroPointLength()
                  else np.zeros(scale.shape, np.int64))
            qdim = int(q.QuantizedDimension())
        data = None
        b = model.Buffers(t.Buffer())
        if b is not None and b.DataLength():
            raw = b.DataAsNumpy()
            n = int(np.prod(shape)) if len(shape) else 1
            if raw.size != n * dtype.itemsize:
                raise ModelError("%s: constant tensor %r holds %d bytes, its shape %s needs %d"
                                 % (path, t.Name(), raw.size, list(shape), n * dtype.itemsize))
            data = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(tuple(shape))
        name = (t.Name() or b"").decode("utf-8", "replace")
        tensors.append(TfliteTensor(i, name, shape, dtype, scale, zp, qdim, data))

    ops = []
    for i in range(g.OperatorsLength()):
        o = g.Operators(i)
        name, custom = codes[o.OpcodeIndex()]
        inputs = [int(v) for v in o.InputsAsNumpy()] if o.InputsLength() else []
        outputs = [int(v) for v in o.OutputsAsNumpy()] if o.OutputsLength() else []
        if custom:
            raw = o.CustomOptionsAsNumpy() if o.CustomOptionsLength() else None
            options = read_flexbuffer_map(raw.tobytes()) if raw is not None else {}
        else:
            options = _builtin_options(tflite, o, opt_names)
        ops.append(TfliteOp(i, name, inputs, outputs, options, custom))
    inputs = [int(v) for v in g.InputsAsNumpy()]
    outputs = [int(v) for v in g.OutputsAsNumpy()]
    desc = model.Description()
    desc = desc.decode("utf-8", "replace") if desc else ""
    return TfliteGraph(tensors, ops, inputs, outputs, desc, path)


# fields read from each options table, by the table's schema name
_OPTION_FIELDS = {
    "Conv2DOptions": ("Padding", "StrideW", "StrideH", "FusedActivationFunction",
                      "DilationWFactor", "DilationHFactor"),
    "DepthwiseConv2DOptions": ("Padding", "StrideW", "StrideH", "DepthMultiplier",
                               "FusedActivationFunction", "DilationWFactor", "DilationHFactor"),
    "ConcatenationOptions": ("Axis", "FusedActivationFunction"),
    "AddOptions": ("FusedActivationFunction",),
    "SubOptions": ("FusedActivationFunction",),
    "MulOptions": ("FusedActivationFunction",),
    "DivOptions": ("FusedActivationFunction",),
    "Pool2DOptions": ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight",
                      "FusedActivationFunction"),
    "LeakyReluOptions": ("Alpha",),
    "ReducerOptions": ("KeepDims",),
    "ResizeBilinearOptions": ("AlignCorners", "HalfPixelCenters"),
    "ResizeNearestNeighborOptions": ("AlignCorners", "HalfPixelCenters"),
    "DepthToSpaceOptions": ("BlockSize",),
    "SpaceToDepthOptions": ("BlockSize",),
    "SoftmaxOptions": ("Beta",),
    "StridedSliceOptions": ("BeginMask", "EndMask", "EllipsisMask", "NewAxisMask",
                            "ShrinkAxisMask", "Offset"),
    "SqueezeOptions": ("SqueezeDims",),
}


def _builtin_options(tflite, o, opt_names):
    otype = int(o.BuiltinOptionsType())
    name = opt_names.get(otype)
    if not otype or name not in _OPTION_FIELDS:
        return {}
    table = o.BuiltinOptions()
    if table is None:
        return {}
    obj = getattr(tflite, name)()
    obj.Init(table.Bytes, table.Pos)
    out = {}
    for field in _OPTION_FIELDS[name]:
        if hasattr(obj, field + "AsNumpy"):       # a vector field (SqueezeDims)
            n = getattr(obj, field + "Length")()
            out[field] = [int(v) for v in getattr(obj, field + "AsNumpy")()] if n else []
            continue
        v = getattr(obj, field)()
        out[field] = float(v) if isinstance(v, float) else int(v)
    if "Padding" in out:
        out["Padding"] = PADDINGS.get(out["Padding"], out["Padding"])
    if "FusedActivationFunction" in out:
        out["FusedActivationFunction"] = ACTIVATIONS.get(out["FusedActivationFunction"],
                                                         out["FusedActivationFunction"])
    return out


# ---- flexbuffers: just enough to read a map of scalars ----------------------------------------
_FBT_NULL, _FBT_INT, _FBT_UINT, _FBT_FLOAT = 0, 1, 2, 3
_FBT_KEY, _FBT_STRING = 4, 5
_FBT_INDIRECT_INT, _FBT_INDIRECT_UINT, _FBT_INDIRECT_FLOAT = 6, 7, 8
_FBT_MAP = 9
_FBT_BOOL = 26


def _uint(buf, pos, width):
    return int.from_bytes(buf[pos:pos + width], "little", signed=False)


def _int(buf, pos, width):
    return int.from_bytes(buf[pos:pos + width], "little", signed=True)


def _float(buf, pos, width):
    if width == 4:
        return struct.unpack_from("<f", buf, pos)[0]
    if width == 8:
        return struct.unpack_from("<d", buf, pos)[0]
    raise ModelError("flexbuffer float of %d bytes" % width)


def _scalar(buf, pos, parent_width, packed):
    ftype, width = packed >> 2, 1 << (packed & 3)
    if ftype == _FBT_NULL:
        return None
    if ftype == _FBT_INT:
        return _int(buf, pos, parent_width)
    if ftype == _FBT_UINT:
        return _uint(buf, pos, parent_width)
    if ftype == _FBT_BOOL:
        return bool(_uint(buf, pos, parent_width))
    if ftype == _FBT_FLOAT:
        return _float(buf, pos, parent_width)
    target = pos - _uint(buf, pos, parent_width)
    if ftype == _FBT_INDIRECT_INT:
        return _int(buf, target, width)
    if ftype == _FBT_INDIRECT_UINT:
        return _uint(buf, target, width)
    if ftype == _FBT_INDIRECT_FLOAT:
        return _float(buf, target, width)
    if ftype == _FBT_STRING:
        size = _uint(buf, target - width, width)
        return buf[target:target + size].decode("utf-8", "replace")
    return ("<flexbuffer type %d>" % ftype)


def _cstring(buf, pos):
    end = buf.index(b"\x00", pos)
    return buf[pos:end].decode("utf-8", "replace")


def read_flexbuffer_map(buf):
    """Decode a flexbuffer whose root is a map of scalars (custom op options) into a dict."""
    buf = bytes(buf)
    try:
        root_width = buf[-1]
        packed = buf[-2]
        root_pos = len(buf) - 2 - root_width
        if packed >> 2 != _FBT_MAP:
            raise ModelError("custom options are a flexbuffer of type %d, not a map"
                             % (packed >> 2))
        width = 1 << (packed & 3)
        mpos = root_pos - _uint(buf, root_pos, root_width)
        size = _uint(buf, mpos - width, width)
        keys_width = _uint(buf, mpos - 2 * width, width)
        kfield = mpos - 3 * width
        kpos = kfield - _uint(buf, kfield, width)
        out = {}
        for i in range(size):
            kp = kpos + i * keys_width
            key = _cstring(buf, kp - _uint(buf, kp, keys_width))
            out[key] = _scalar(buf, mpos + i * width, width, buf[mpos + size * width + i])
        return out
    except ModelError:
        raise
    except Exception as e:
        raise ModelError("the custom operator's options are not a readable flexbuffer map "
                         "(%s: %s); the model file is corrupt: %s"
                         % (type(e).__name__, e, GET_THE_MODEL))
