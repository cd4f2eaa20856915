"""The TFLite operator table: each builtin op as plain ONNX nodes.

A TFLite tensor lives in the ONNX graph as a :class:`Value`: 4-D maps that convolutions made are
held NCHW (``layout='NCHW'``), everything else in TFLite's own layout (``'TF'``); an op that needs
the other layout gets a Transpose. Each value carries the bounds it provably lies in, so that
the clamp standing for a quantised tensor's range (see :mod:`trtssd.models.convert`) is left out
where it cannot change anything.

Two ways to write the quantisation of a quantised model:

- float (default): weights dequantised to float32, each quantised activation clamped to the range
  its integer type can hold (in quantisation-aware SSDs the ReLU6 exists only as those ranges);
- Q/DQ, ``qdq="exact"``: every quantised tensor passes QuantizeLinear -> DequantizeLinear at its
  own scale and zero point, weights are stored as their integers behind a DequantizeLinear (per
  channel where the file is), biases as int32 at scale ``input_scale * weight_scale``: the
  model's own integer arithmetic, which ONNX Runtime reproduces;
- Q/DQ, ``qdq="symmetric"``: what TensorRT's explicit-precision INT8 takes (int8, zero point 0):
  each quantised activation keeps its float range [lo, hi] (an explicit clamp where it is not
  symmetric, e.g. a ReLU6's [0, 6]) at scale max(|lo|, |hi|) / 127; weights requantised to int8
  per output channel at max|w| / 127, biases float. Not the model's integers: the file's
  uint8/asymmetric grids cannot be written for TensorRT, so this is a close re-quantisation.
"""
import numpy as np

from ..core.errors import ModelError

_INF = float("inf")
# Fused activations as the interpreter's kernels apply them: as a clamp of the output range.
# TANH and SIGN_BIT are in the schema, but no kernel applies them (the range they get is
# unbounded), so a file carrying them computes without: so does the converted graph.
_ACT_RANGES = {"NONE": (-_INF, _INF), "RELU": (0.0, _INF), "RELU6": (0.0, 6.0),
               "RELU_N1_TO_1": (-1.0, 1.0), "TANH": (-_INF, _INF), "SIGN_BIT": (-_INF, _INF)}
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}

# Every ONNX op type the converter may write (opset 11; the Q/DQ pair at 13): what a backend
# that imports the ONNX itself (the PyTorch one) has to know.
ONNX_OPS = ("Add", "AveragePool", "Clip", "Concat", "Conv", "DepthToSpace", "DequantizeLinear",
            "Div", "Expand", "HardSigmoid", "Identity", "LeakyRelu", "MaxPool", "Mul", "PRelu", "Pad",
            "QuantizeLinear", "ReduceMean", "Relu", "Reshape", "Resize", "Shape", "Sigmoid",
            "Slice", "Softmax", "SpaceToDepth", "Sub", "Tanh", "Transpose")


class Value(object):
    """A TFLite tensor as it exists in the ONNX graph being built."""

    def __init__(self, name, layout, rng, shape):
        self.name = name        # ONNX value name
        self.layout = layout    # 'NCHW' (a 4-D map held transposed) or 'TF' (TFLite's layout)
        self.range = rng        # (lo, hi) known bounds, or (-inf, inf)
        self.shape = tuple(shape)   # TFLite shape (batch 1)


class OnnxBuilder(object):
    """Nodes, initialisers and unique names of the graph being written."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes = []
        self.initializers = []
        self.names = set()
        self.counts = {}

    def unique(self, base):
        base = base.replace(":", "_") or "t"
        name, i = base, 1
        while name in self.names:
            i += 1
            name = "%s_%d" % (base, i)
        self.names.add(name)
        return name

    def const(self, base, array):
        name = self.unique(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, base, **attrs):
        out = self.unique(base)
        self.emit(op, inputs, out, **attrs)
        return out

    def emit(self, op, inputs, out, **attrs):
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        self.counts[op] = self.counts.get(op, 0) + 1


def same_pads(size, k, stride, dilation):
    """TF 'SAME' padding of one spatial axis: (before, after); asymmetric when total is odd."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _to_nchw_const(c):
    """A constant broadcast against an NHWC map, rearranged to broadcast against NCHW."""
    c = np.asarray(c)
    if c.ndim == 0:
        return c
    c = c.reshape((1,) * (4 - c.ndim) + c.shape)
    return np.ascontiguousarray(c.transpose(0, 3, 1, 2))


class OpTable(object):
    """Converts the operators of one TfliteGraph; ``convert(op)`` dispatches on ``op.type``."""

    def __init__(self, graph, builder, qdq=None):
        self.g = graph
        self.b = builder
        if qdq not in (None, "exact", "symmetric"):
            raise ValueError("qdq must be None, 'exact' or 'symmetric', not %r" % (qdq,))
        self.qdq = qdq
        self.values = {}
        self.consts = {}
        self.handlers = {
            "CONV_2D": lambda op: self.conv(op, False),
            "DEPTHWISE_CONV_2D": lambda op: self.conv(op, True),
            "ADD": lambda op: self.binary(op, "Add"),
            "SUB": lambda op: self.binary(op, "Sub"),
            "MUL": lambda op: self.binary(op, "Mul"),
            "DIV": lambda op: self.binary(op, "Div"),
            "PRELU": lambda op: self.binary(op, "PRelu"),
            "LOGISTIC": lambda op: self.unary(op, "Sigmoid", (0.0, 1.0)),
            "TANH": lambda op: self.unary(op, "Tanh", (-1.0, 1.0)),
            "RELU": self.relu,
            "RELU6": self.relu,
            "RELU_N1_TO_1": self.relu,
            "LEAKY_RELU": self.leaky_relu,
            "HARD_SWISH": self.hard_swish,
            "AVERAGE_POOL_2D": lambda op: self.pool(op, "AveragePool"),
            "MAX_POOL_2D": lambda op: self.pool(op, "MaxPool"),
            "MEAN": self.mean,
            "PAD": self.pad,
            "PADV2": self.pad,
            "RESIZE_BILINEAR": lambda op: self.resize(op, "linear"),
            "RESIZE_NEAREST_NEIGHBOR": lambda op: self.resize(op, "nearest"),
            "DEPTH_TO_SPACE": lambda op: self.block(op, "DepthToSpace"),
            "SPACE_TO_DEPTH": lambda op: self.block(op, "SpaceToDepth"),
            "CONCATENATION": self.concat,
            "RESHAPE": self.reshape,
            "SQUEEZE": self.reshape,
            "TRANSPOSE": self.transpose,
            "STRIDED_SLICE": self.strided_slice,
            "SOFTMAX": self.softmax,
            "QUANTIZE": self.requantize,
            "DEQUANTIZE": self.requantize,
        }

    # -- helpers ---------------------------------------------------------------------------
    def fail(self, op, text):
        raise ModelError("%s: operator %d (%s, output %r): %s"
                         % (self.g.path, op.index, op.type, self.tensor(op.outputs[0]).name, text))

    def tensor(self, i):
        return self.g.tensors[i]

    def is_const(self, i):
        return i in self.consts or self.tensor(i).data is not None

    def const(self, i, what):
        if i in self.consts:
            return self.consts[i]
        t = self.tensor(i)
        if t.data is None:
            raise ModelError("%s: the %s %r is not a constant tensor; trtssd converts only "
                             "models with constant weights" % (self.g.path, what, t.name))
        return t.dequantized()

    def int_const(self, i, op, what):
        t = self.tensor(i)
        if t.data is None:
            self.fail(op, "its %s must be a constant tensor" % what)
        return [int(v) for v in np.asarray(t.data).ravel()]

    def value(self, i, op):
        if i not in self.values:
            raise ModelError("%s: operator %d (%s) reads tensor %r that no converted operator "
                             "produces" % (self.g.path, op.index, op.type, self.tensor(i).name))
        return self.values[i]

    def to_tf(self, v):
        if v.layout == "NCHW":
            name = self.b.node("Transpose", [v.name], v.name + "/nhwc", perm=[0, 2, 3, 1])
            return Value(name, "TF", v.range, v.shape)
        return v

    def to_nchw(self, v, op):
        if v.layout == "NCHW":
            return v
        if len(v.shape) != 4:
            self.fail(op, "needs a 4-D feature map, got shape %s" % list(v.shape))
        name = self.b.node("Transpose", [v.name], v.name + "/nchw", perm=[0, 3, 1, 2])
        return Value(name, "NCHW", v.range, v.shape)

    def out_name(self, op, suffix):
        return self.tensor(op.outputs[0]).name + "/" + suffix

    def finish(self, op, raw_name, layout, rng, activation="NONE"):
        """Apply the fused activation and the output's quantisation; register the value."""
        out_t = self.tensor(op.outputs[0])
        if activation not in _ACT_RANGES:
            self.fail(op, "fused activation %s is not one trtssd converts (it converts %s)"
                      % (activation, ", ".join(sorted(_ACT_RANGES))))
        name = raw_name
        lo, hi = _ACT_RANGES[activation]
        q = out_t.quant_range()
        if self.qdq and q is not None:
            if self.qdq == "symmetric":   # the range's clamp, which a symmetric grid lacks
                lo, hi = max(lo, q[0]), min(hi, q[1])
                if rng[0] < lo or rng[1] > hi:
                    name = self.clip(name, out_t.name + "/act", lo, hi)
            elif lo > -_INF or hi < _INF:   # the fused ReLU before the rounding, as TFLite does
                name = self.clip(name, out_t.name + "/act", lo, hi)
            name = self.quantize(name, out_t, out_t.name)
            rng = (max(rng[0], lo, q[0]), min(rng[1], hi, q[1]))
        else:
            if q is not None:
                lo, hi = max(lo, q[0]), min(hi, q[1])
            if rng[0] < lo or rng[1] > hi:
                name = self.clip(name, out_t.name, lo, hi)
                rng = (max(rng[0], lo), min(rng[1], hi))
        self.values[op.outputs[0]] = Value(name, layout, rng, out_t.shape)

    def clip(self, name, base, lo, hi):
        if lo == 0.0 and hi == _INF:
            return self.b.node("Relu", [name], base)
        big = float(np.finfo(np.float32).max)
        cmin = self.b.const(base + "/min", np.array(max(lo, -big), np.float32))
        cmax = self.b.const(base + "/max", np.array(min(hi, big), np.float32))
        return self.b.node("Clip", [name, cmin, cmax], base)

    def quantize(self, name, t, base):
        """QuantizeLinear -> DequantizeLinear at tensor ``t``'s own scale and zero point (or,
        symmetric, int8 over the same float range)."""
        if self.qdq == "symmetric":
            lo, hi = t.quant_range()
            scale, zp = max(abs(lo), abs(hi)) / 127.0, np.int8(0)
        else:
            scale, zp = t.scale[0], np.array(t.zero_point[0], t.dtype)
        s = self.b.const(base + "/scale", np.array(scale, np.float32))
        z = self.b.const(base + "/zero_point", np.array(zp, np.asarray(zp).dtype))
        q = self.b.node("QuantizeLinear", [name, s, z], base + "/q")
        return self.b.node("DequantizeLinear", [q, s, z], base + "/dq")

    def weight(self, i, base, perm=None, axis_map=None):
        """A weight initialiser (float32, or its integers behind DequantizeLinear in Q/DQ)."""
        t = self.tensor(i)
        if not (self.qdq and t.quantized and t.data is not None and i not in self.consts):
            w = self.const(i, "weights")
            if perm is not None:
                w = w.transpose(perm)
            return self.b.const(base, np.ascontiguousarray(w, np.float32))
        if self.qdq == "symmetric":   # int8 per output channel (axis 0 of ONNX's layout)
            w = self.const(i, "weights")
            w = (w if perm is None else w.transpose(perm)).astype(np.float64)
            amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
            scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
            q = np.clip(np.round(w / scale.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127)
            qname = self.b.const(base + "/quantized", np.ascontiguousarray(q.astype(np.int8)))
            s = self.b.const(base + "/scale", scale)
            z = self.b.const(base + "/zero_point", np.zeros(scale.shape, np.int8))
            return self.b.node("DequantizeLinear", [qname, s, z], base, axis=0)
        data = t.data if perm is None else t.data.transpose(perm)
        qname = self.b.const(base + "/quantized", np.ascontiguousarray(data))
        attrs = {}
        if t.scale.size > 1:
            attrs["axis"] = int(axis_map[t.quantized_dimension] if axis_map else
                                t.quantized_dimension)
        s = self.b.const(base + "/scale", t.scale.astype(np.float32))
        z = self.b.const(base + "/zero_point", t.zero_point.astype(t.dtype))
        return self.b.node("DequantizeLinear", [qname, s, z], base, **attrs)

    def bias(self, i, base):
        t = self.tensor(i)
        if self.qdq == "exact" and t.quantized and t.data is not None and t.dtype == np.int32:
            q = self.b.const(base + "/quantized", np.ascontiguousarray(t.data))
            s = self.b.const(base + "/scale", t.scale.astype(np.float32))
            z = self.b.const(base + "/zero_point", np.zeros(t.scale.shape, np.int32))
            attrs = {"axis": 0} if t.scale.size > 1 else {}
            return self.b.node("DequantizeLinear", [q, s, z], base, **attrs)
        return self.b.const(base, self.const(i, "bias").astype(np.float32))

    def operand(self, i, op, layout):
        """Input ``i`` of a binary op as (onnx name, range), a constant laid out for ``layout``."""
        if i in self.values:
            v = self.values[i]
            return (self.to_tf(v) if layout == "TF" else v).name, v.range
        c = np.asarray(self.const(i, "operand"), np.float32)
        if layout == "NCHW":
            c = _to_nchw_const(c)
        name = self.b.const(self.out_name(op, "const"), np.ascontiguousarray(c, np.float32))
        return name, (float(c.min()), float(c.max())) if c.size else (0.0, 0.0)

    # -- operators -------------------------------------------------------------------------
    def conv(self, op, depthwise):
        o = op.options
        x = self.to_nchw(self.value(op.inputs[0], op), op)
        wt = self.tensor(op.inputs[1])
        base = self.tensor(op.outputs[0]).name
        if depthwise:   # [1, KH, KW, C*mult] -> [C*mult, 1, KH, KW], one group per input channel
            perm, axis_map, group = (3, 0, 1, 2), {3: 0}, x.shape[3]
            kh, kw = wt.shape[1], wt.shape[2]
        else:           # [O, KH, KW, I] -> [O, I, KH, KW]
            perm, axis_map, group = (0, 3, 1, 2), {0: 0}, 1
            kh, kw = wt.shape[1], wt.shape[2]
            if wt.shape[3] != x.shape[3]:
                self.fail(op, "weights take %d channels, input has %d" % (wt.shape[3],
                                                                          x.shape[3]))
        sh, sw = o.get("StrideH", 1), o.get("StrideW", 1)
        dh, dw = o.get("DilationHFactor", 1) or 1, o.get("DilationWFactor", 1) or 1
        if o.get("Padding", "SAME") == "SAME":
            pt, pb = same_pads(x.shape[1], kh, sh, dh)
            pl, pr = same_pads(x.shape[2], kw, sw, dw)
        else:
            pt = pb = pl = pr = 0
        w_name = self.weight(op.inputs[1], base + "/weights", perm, axis_map)
        inputs = [x.name, w_name]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(self.bias(op.inputs[2], base + "/bias"))
        raw = self.b.node("Conv", inputs, base + "/conv", kernel_shape=[int(kh), int(kw)],
                          strides=[int(sh), int(sw)], dilations=[int(dh), int(dw)],
                          pads=[int(pt), int(pl), int(pb), int(pr)], group=int(group))
        self.finish(op, raw, "NCHW", (-_INF, _INF), o.get("FusedActivationFunction", "NONE"))

    def binary(self, op, kind):
        a_i, b_i = op.inputs[:2]
        var = [self.values[i] for i in (a_i, b_i) if i in self.values]
        if not var:
            self.fail(op, "has no activation input (both operands are constants)")
        ranks = set(len(v.shape) for v in var)
        layout = "NCHW" if all(v.layout == "NCHW" for v in var) and ranks == {4} else "TF"
        if kind == "PRelu" and layout == "NCHW" and not self.is_const(b_i):
            layout = "TF"
        a, ra = self.operand(a_i, op, layout)
        b, rb = self.operand(b_i, op, layout)
        rng = (-_INF, _INF)
        if kind == "Add":
            rng = (ra[0] + rb[0], ra[1] + rb[1])
        elif kind == "Sub":
            rng = (ra[0] - rb[1], ra[1] - rb[0])
        raw = self.b.node(kind, [a, b], self.out_name(op, kind.lower()))
        self.finish(op, raw, layout, rng, op.options.get("FusedActivationFunction", "NONE"))

    def unary(self, op, kind, rng, **attrs):
        x = self.value(op.inputs[0], op)
        raw = self.b.node(kind, [x.name], self.out_name(op, kind.lower()), **attrs)
        self.finish(op, raw, x.layout, rng)

    def relu(self, op):
        x = self.value(op.inputs[0], op)
        lo, hi = _ACT_RANGES[op.type]
        raw = self.clip(x.name, self.out_name(op, "relu"), lo, hi)
        self.finish(op, raw, x.layout, (max(x.range[0], lo), min(x.range[1], hi)))

    def leaky_relu(self, op):
        self.unary(op, "LeakyRelu", (-_INF, _INF), alpha=float(op.options.get("Alpha", 0.2)))

    def hard_swish(self, op):
        # x * relu6(x + 3) / 6; HardSwish itself is opset 14, HardSigmoid is in opset 11
        x = self.value(op.inputs[0], op)
        hs = self.b.node("HardSigmoid", [x.name], self.out_name(op, "hardsigmoid"),
                         alpha=1.0 / 6, beta=0.5)
        raw = self.b.node("Mul", [x.name, hs], self.out_name(op, "hardswish"))
        self.finish(op, raw, x.layout, (-0.375, max(x.range[1], 0.0)))   # min at x = -1.5

    def pool(self, op, kind):
        o = op.options
        x = self.to_nchw(self.value(op.inputs[0], op), op)
        kh, kw = o.get("FilterHeight", 1), o.get("FilterWidth", 1)
        sh, sw = o.get("StrideH", 1), o.get("StrideW", 1)
        if o.get("Padding", "SAME") == "SAME":
            pt, pb = same_pads(x.shape[1], kh, sh, 1)
            pl, pr = same_pads(x.shape[2], kw, sw, 1)
        else:
            pt = pb = pl = pr = 0
        attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[pt, pl, pb, pr])
        if kind == "AveragePool":
            attrs["count_include_pad"] = 0   # TF's SAME average ignores the padding
        raw = self.b.node(kind, [x.name], self.out_name(op, "pool"), **attrs)
        self.finish(op, raw, "NCHW", x.range, o.get("FusedActivationFunction", "NONE"))

    def mean(self, op):
        x = self.value(op.inputs[0], op)
        rank = len(x.shape)
        axes = sorted(set(a + rank if a < 0 else a for a in self.int_const(op.inputs[1], op,
                                                                             "axes")))
        keep = bool(op.options.get("KeepDims", 0))
        if x.layout == "NCHW" and keep:
            onnx_axes = sorted(_NHWC_TO_NCHW_AXIS[a] for a in axes)
        else:
            x = self.to_tf(x)
            onnx_axes = axes
        if 0 in axes:
            self.fail(op, "averages over the batch axis, which trtssd keeps free")
        raw = self.b.node("ReduceMean", [x.name], self.out_name(op, "mean"), axes=onnx_axes,
                          keepdims=int(keep))
        self.finish(op, raw, x.layout, x.range)

    def pad(self, op):
        x = self.value(op.inputs[0], op)
        pads = np.asarray(self.int_const(op.inputs[1], op, "paddings")).reshape(-1, 2)
        if pads[0].any():
            self.fail(op, "pads the batch axis, which trtssd keeps free")
        value = 0.0
        if op.type == "PADV2" and len(op.inputs) > 2:
            value = float(np.asarray(self.const(op.inputs[2], "pad value")).ravel()[0])
        if x.layout == "NCHW":
            pads = pads[[0, 3, 1, 2]]
        p = self.b.const(self.out_name(op, "pads"),
                         np.concatenate([pads[:, 0], pads[:, 1]]).astype(np.int64))
        v = self.b.const(self.out_name(op, "value"), np.array(value, np.float32))
        raw = self.b.node("Pad", [x.name, p, v], self.out_name(op, "pad"), mode="constant")
        self.finish(op, raw, x.layout, (min(x.range[0], value), max(x.range[1], value)))

    def resize(self, op, mode):
        x = self.to_nchw(self.value(op.inputs[0], op), op)
        oh, ow = self.int_const(op.inputs[1], op, "size")
        align = bool(op.options.get("AlignCorners", 0))
        half = bool(op.options.get("HalfPixelCenters", 0))
        attrs = {"mode": mode}
        if mode == "linear":
            attrs["coordinate_transformation_mode"] = (
                "align_corners" if align else "half_pixel" if half else "asymmetric")
        else:
            # TFLite: floor((o + 0.5 * half) * in/out), or round(o * (in-1)/(out-1)) aligned
            if align:
                attrs["coordinate_transformation_mode"] = "align_corners"
                attrs["nearest_mode"] = "round_prefer_ceil"
            else:
                attrs["coordinate_transformation_mode"] = (
                    "tf_half_pixel_for_nn" if half else "asymmetric")
                attrs["nearest_mode"] = "floor"
        # sizes = [N, C] of the input (batch stays free) + [oh, ow]
        shape = self.b.node("Shape", [x.name], self.out_name(op, "shape"))
        starts = self.b.const(self.out_name(op, "s0"), np.array([0], np.int64))
        ends = self.b.const(self.out_name(op, "s2"), np.array([2], np.int64))
        nc = self.b.node("Slice", [shape, starts, ends], self.out_name(op, "nc"))
        hw = self.b.const(self.out_name(op, "hw"), np.array([oh, ow], np.int64))
        sizes = self.b.node("Concat", [nc, hw], self.out_name(op, "sizes"), axis=0)
        roi = self.b.const(self.out_name(op, "roi"), np.zeros(0, np.float32))
        scales = self.b.const(self.out_name(op, "scales"), np.zeros(0, np.float32))
        raw = self.b.node("Resize", [x.name, roi, scales, sizes], self.out_name(op, "resize"),
                          **attrs)
        self.finish(op, raw, "NCHW", x.range)

    def block(self, op, kind):
        x = self.to_nchw(self.value(op.inputs[0], op), op)
        attrs = {"blocksize": int(op.options.get("BlockSize", 2))}
        if kind == "DepthToSpace":
            attrs["mode"] = "DCR"    # TF's channel order: (row, column, channel)
        raw = self.b.node(kind, [x.name], self.out_name(op, kind.lower()), **attrs)
        self.finish(op, raw, "NCHW", x.range)

    def concat(self, op):
        vals = [self.value(i, op) if i in self.values else None for i in op.inputs]
        rank = len(self.tensor(op.outputs[0]).shape)
        axis = op.options.get("Axis", 0)
        axis = axis + rank if axis < 0 else axis
        if all(v is not None and v.layout == "NCHW" for v in vals):
            layout, onnx_axis = "NCHW", _NHWC_TO_NCHW_AXIS[axis]
        else:
            layout, onnx_axis = "TF", axis
        names, lo, hi = [], _INF, -_INF
        batch = None
        var = [v for v in vals if v is not None]
        if not var:
            self.fail(op, "concatenates constants only; trtssd converts networks")
        for i in op.inputs:
            n, r = self.operand(i, op, layout)
            if i not in self.values:   # a constant: repeated over the free batch axis
                if batch is None:
                    v0 = self.to_tf(var[0]) if layout == "TF" else var[0]
                    shape = self.b.node("Shape", [v0.name], self.out_name(op, "shape"))
                    c = self.b.const
                    batch = self.b.node("Slice", [shape, c(self.out_name(op, "b0"),
                                                           np.array([0], np.int64)),
                                                  c(self.out_name(op, "b1"),
                                                    np.array([1], np.int64))],
                                        self.out_name(op, "batch"))
                arr = np.asarray(self.const(i, "operand"))
                if layout == "NCHW":
                    arr = _to_nchw_const(arr)
                dims = self.b.const(self.out_name(op, "dims"),
                                    np.array(arr.shape[1:], np.int64))
                full = self.b.node("Concat", [batch, dims], self.out_name(op, "full"), axis=0)
                n = self.b.node("Expand", [n, full], self.out_name(op, "expand"))
            names.append(n)
            lo, hi = min(lo, r[0]), max(hi, r[1])
        raw = self.b.node("Concat", names, self.out_name(op, "concat"), axis=int(onnx_axis))
        # the schema lets CONCATENATION carry a fused activation, but the interpreter's kernel
        # does not apply it (the output's quantised range still is)
        self.finish(op, raw, layout, (lo, hi))

    def reshape(self, op):
        x = self.to_tf(self.value(op.inputs[0], op))
        out_shape = self.tensor(op.outputs[0]).shape
        if not out_shape:
            self.fail(op, "reshapes to a scalar, which leaves no batch axis")
        shape = self.b.const(self.out_name(op, "shape"),
                             np.array([-1] + list(out_shape[1:]), np.int64))
        raw = self.b.node("Reshape", [x.name, shape], self.out_name(op, "r"))
        self.finish(op, raw, "TF", x.range)

    def transpose(self, op):
        x = self.to_tf(self.value(op.inputs[0], op))
        perm = self.int_const(op.inputs[1], op, "permutation")
        if perm[0] != 0:
            self.fail(op, "moves the batch axis (perm %s), which trtssd keeps first" % perm)
        raw = self.b.node("Transpose", [x.name], self.out_name(op, "transpose"), perm=perm)
        self.finish(op, raw, "TF", x.range)

    def strided_slice(self, op):
        x = self.to_tf(self.value(op.inputs[0], op))
        o = op.options
        if o.get("EllipsisMask") or o.get("NewAxisMask") or o.get("Offset"):
            self.fail(op, "uses the ellipsis, new-axis or offset option, which trtssd does not "
                          "convert")
        begin = self.int_const(op.inputs[1], op, "begin")
        end = self.int_const(op.inputs[2], op, "end")
        strides = self.int_const(op.inputs[3], op, "strides")
        starts, ends, axes, steps = [], [], [], []
        for a, (b0, e0, st) in enumerate(zip(begin, end, strides)):
            size = x.shape[a]
            if st == 0:
                self.fail(op, "has stride 0 on axis %d" % a)
            if (o.get("ShrinkAxisMask", 0) >> a) & 1:
                b0 = b0 + size if b0 < 0 else b0
                sl = slice(b0, b0 + 1, 1)
            else:   # TF's strided slice clamps exactly as Python's slices do
                sl = slice(None if (o.get("BeginMask", 0) >> a) & 1 else b0,
                           None if (o.get("EndMask", 0) >> a) & 1 else e0, st)
            start, stop, step = sl.indices(size)
            picked = list(range(start, stop, step))
            if picked == list(range(size)):
                continue
            if a == 0:
                self.fail(op, "slices the batch axis, which trtssd keeps free")
            if not picked:
                self.fail(op, "selects nothing on axis %d" % a)
            starts.append(start)
            ends.append(stop if stop >= 0 else -(1 << 62))   # walking backwards past index 0
            axes.append(a)
            steps.append(step)
        name = x.name
        if axes:
            c = self.b.const
            name = self.b.node("Slice", [name, c(self.out_name(op, "starts"),
                                                 np.array(starts, np.int64)),
                                         c(self.out_name(op, "ends"), np.array(ends, np.int64)),
                                         c(self.out_name(op, "axes"), np.array(axes, np.int64)),
                                         c(self.out_name(op, "steps"),
                                           np.array(steps, np.int64))],
                               self.out_name(op, "slice"))
        out_shape = self.tensor(op.outputs[0]).shape
        if o.get("ShrinkAxisMask"):
            if not out_shape:
                self.fail(op, "slices down to a scalar, which leaves no batch axis")
            shape = self.b.const(self.out_name(op, "shape"),
                                 np.array([-1] + list(out_shape[1:]), np.int64))
            name = self.b.node("Reshape", [name, shape], self.out_name(op, "r"))
        if name == x.name:
            name = self.b.node("Identity", [name], self.out_name(op, "identity"))
        self.finish(op, name, "TF", x.range)

    def softmax(self, op):
        x = self.to_tf(self.value(op.inputs[0], op))
        beta = float(op.options.get("Beta", 1.0))
        name = x.name
        if beta != 1.0:
            name = self.b.node("Mul", [name, self.b.const(self.out_name(op, "beta"),
                                                          np.array(beta, np.float32))],
                               self.out_name(op, "scaled"))
        # opset 11 Softmax flattens from `axis` on: on the last axis that is per row
        raw = self.b.node("Softmax", [name], self.out_name(op, "softmax"),
                          axis=len(x.shape) - 1)
        self.finish(op, raw, "TF", (0.0, 1.0))

    def requantize(self, op):
        i = op.inputs[0]
        if i in self.values:
            x = self.values[i]
            self.finish(op, x.name, x.layout, x.range)
        else:   # a constant (e.g. float16 weights dequantised at load time)
            self.consts[op.outputs[0]] = self.const(i, "input")

    def convert(self, op):
        self.handlers[op.type](op)
