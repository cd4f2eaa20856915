"""TFLite SSD detector -> ONNX (opset 11), without TensorFlow.

The network up to (not including) ``TFLite_Detection_PostProcess`` becomes a float ONNX graph:

- input ``images`` float32 [N, 3, H, W] (NCHW), value ``(pixel - mean) * scale`` where mean and
  scale come from the TFLite input's quantisation (128 and 1/128 for ``detect.tflite``);
- outputs ``box_encodings`` [N, A, 4] and ``class_scores`` [N, A, C] (after the sigmoid);
- weights dequantised to float32, ``(q - zero_point) * scale``;
- every activation clamped to the range its uint8 quantisation can hold,
  ``[(0 - zp) * s, (255 - zp) * s]``: in the quantised SSD the ReLU6 exists only as those ranges
  (the convolutions' fused activation is NONE), and a float graph without them overflows.
  A clamp is left out where the value provably lies inside the range already.

The postprocess op is read, not converted: its anchors, box coder and NMS options become the
:class:`trtssd.core.spec.ModelSpec` stored as JSON in the ONNX metadata (key ``trtssd.spec``).

Only plain ops are emitted (Conv, Clip, Relu, Sigmoid, Transpose, Reshape, Concat, Add,
AveragePool, MaxPool), at opset 11 and IR version 6, which TensorRT 8.2's ONNX parser reads.
Convolutions with TF "SAME" padding get their exact (possibly asymmetric) pads.
"""
import hashlib
import math
import os
import time

import numpy as np

from ..core.errors import EnvironmentProblem, ModelError
from ..core.spec import SPEC_METADATA_KEY, BoxCoder, ModelSpec, NmsParams
from .tflite_reader import GET_THE_MODEL, TfliteGraph, TfliteOp, TfliteTensor, read_tflite

CONVERTER_VERSION = "1"
OPSET = 11
IR_VERSION = 6
POSTPROCESS_OP = "TFLite_Detection_PostProcess"
INPUT_NAME = "images"
OUTPUT_BOXES = "box_encodings"
OUTPUT_SCORES = "class_scores"
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE", "SQUEEZE", "CONCATENATION",
                 "LOGISTIC", "ADD", "RELU", "RELU6", "RELU_N1_TO_1", "AVERAGE_POOL_2D",
                 "MAX_POOL_2D", "QUANTIZE", "DEQUANTIZE", POSTPROCESS_OP)

_INF = float("inf")
_ACT_RANGES = {"NONE": (-_INF, _INF), "RELU": (0.0, _INF), "RELU6": (0.0, 6.0),
               "RELU_N1_TO_1": (-1.0, 1.0)}
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _import_onnx():
    try:
        import onnx
        return onnx
    except ImportError:
        raise EnvironmentProblem("converting to ONNX needs the `onnx` package: pip install onnx "
                                 "(or pip install trtssd[convert])")


class ConversionResult(object):
    """What :func:`convert_tflite` made: the ONNX ``model``, its ``spec``, op counts, seconds."""

    def __init__(self, model, spec, op_counts, seconds, source):
        self.model = model
        self.spec = spec
        self.op_counts = op_counts
        self.seconds = seconds
        self.source = source

    def save(self, path):
        onnx = _import_onnx()
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            os.makedirs(d)
        tmp = path + ".tmp%d" % os.getpid()
        onnx.save(self.model, tmp)
        os.replace(tmp, path)
        return path

    def summary(self):
        ops = ", ".join("%s x%d" % kv for kv in sorted(self.op_counts.items()))
        return ("%s: %d ONNX nodes (%s), %d anchors, %d classes, input %dx%d, %s%.2f s"
                % (self.source, sum(self.op_counts.values()), ops, self.spec.num_anchors,
                   self.spec.num_classes, self.spec.input_width, self.spec.input_height,
                   "SYNTHETIC WEIGHTS (timing only), " if self.spec.synthetic else "",
                   self.seconds))


class _Value(object):
    """A TFLite tensor as it exists in the ONNX graph being built."""

    def __init__(self, name, layout, rng, shape):
        self.name = name        # ONNX value name
        self.layout = layout    # 'NCHW' (a 4-D map held transposed) or 'TF' (TFLite's layout)
        self.range = rng        # (lo, hi) known bounds, or (-inf, inf)
        self.shape = shape      # TFLite shape (batch 1)


class _Builder(object):
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
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        self.counts[op] = self.counts.get(op, 0) + 1
        return out


def _same_pads(size, k, stride, dilation):
    """TF 'SAME' padding of one spatial axis: (before, after); asymmetric when total is odd."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Converter(object):
    def __init__(self, graph, onnx):
        self.g = graph
        self.b = _Builder(onnx)
        self.values = {}
        self.consts = {}

    # -- helpers ---------------------------------------------------------------------------
    def tensor(self, i):
        return self.g.tensors[i]

    def const(self, i, what):
        if i in self.consts:
            return self.consts[i]
        t = self.tensor(i)
        if t.data is None:
            raise ModelError("%s: the %s of operator %r is not a constant tensor; trtssd converts "
                             "only models with constant weights" % (self.g.path, what, t.name))
        return t.dequantized()

    def value(self, i, op):
        if i not in self.values:
            raise ModelError("%s: operator %d (%s) reads tensor %r that no converted operator "
                             "produces" % (self.g.path, op.index, op.type, self.tensor(i).name))
        return self.values[i]

    def to_tf(self, v):
        if v.layout == "NCHW":
            name = self.b.node("Transpose", [v.name], v.name + "/nhwc", perm=[0, 2, 3, 1])
            return _Value(name, "TF", v.range, v.shape)
        return v

    def to_nchw(self, v, op):
        if v.layout == "NCHW":
            return v
        if len(v.shape) != 4:
            raise ModelError("%s: operator %d (%s) needs a 4-D feature map, got shape %s"
                             % (self.g.path, op.index, op.type, list(v.shape)))
        name = self.b.node("Transpose", [v.name], v.name + "/nchw", perm=[0, 3, 1, 2])
        return _Value(name, "NCHW", v.range, v.shape)

    def finish(self, op, raw_name, layout, rng, activation="NONE"):
        """Apply the fused activation and the output's quantised range; register the value."""
        out_t = self.tensor(op.outputs[0])
        lo, hi = _ACT_RANGES.get(activation, (None, None))
        if lo is None:
            raise ModelError("%s: operator %d (%s) has fused activation %s, which trtssd does not "
                             "convert" % (self.g.path, op.index, op.type, activation))
        q = out_t.quant_range()
        if q is not None:
            lo, hi = max(lo, q[0]), min(hi, q[1])
        name = raw_name
        if rng[0] < lo or rng[1] > hi:
            if lo == 0.0 and hi == _INF:
                name = self.b.node("Relu", [raw_name], out_t.name)
            else:
                big = float(np.finfo(np.float32).max)
                cmin = self.b.const(out_t.name + "/min", np.array(max(lo, -big), np.float32))
                cmax = self.b.const(out_t.name + "/max", np.array(min(hi, big), np.float32))
                name = self.b.node("Clip", [raw_name, cmin, cmax], out_t.name)
            rng = (max(rng[0], lo), min(rng[1], hi))
        self.values[op.outputs[0]] = _Value(name, layout, rng, out_t.shape)

    # -- operators -------------------------------------------------------------------------
    def conv(self, op, depthwise):
        o = op.options
        x = self.to_nchw(self.value(op.inputs[0], op), op)
        w = self.const(op.inputs[1], "weights")
        out_t = self.tensor(op.outputs[0])
        if depthwise:   # [1, KH, KW, C*mult] -> [C*mult, 1, KH, KW], one group per input channel
            cin = x.shape[3]
            w = np.ascontiguousarray(w.transpose(3, 0, 1, 2))
            group = cin
        else:           # [O, KH, KW, I] -> [O, I, KH, KW]
            w = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
            group = 1
            if w.shape[1] != x.shape[3]:
                raise ModelError("%s: CONV_2D %d: weights take %d channels, input has %d"
                                 % (self.g.path, op.index, w.shape[1], x.shape[3]))
        kh, kw = w.shape[2], w.shape[3]
        sh, sw = o.get("StrideH", 1), o.get("StrideW", 1)
        dh, dw = o.get("DilationHFactor", 1) or 1, o.get("DilationWFactor", 1) or 1
        if o.get("Padding", "SAME") == "SAME":
            pt, pb = _same_pads(x.shape[1], kh, sh, dh)
            pl, pr = _same_pads(x.shape[2], kw, sw, dw)
        else:
            pt = pb = pl = pr = 0
        base = out_t.name
        inputs = [x.name, self.b.const(base + "/weights", w.astype(np.float32))]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(self.b.const(base + "/bias",
                                       self.const(op.inputs[2], "bias").astype(np.float32)))
        raw = self.b.node("Conv", inputs, base + "/conv", kernel_shape=[int(kh), int(kw)],
                          strides=[int(sh), int(sw)], dilations=[int(dh), int(dw)],
                          pads=[int(pt), int(pl), int(pb), int(pr)], group=int(group))
        self.finish(op, raw, "NCHW", (-_INF, _INF), o.get("FusedActivationFunction", "NONE"))

    def reshape(self, op):
        x = self.to_tf(self.value(op.inputs[0], op))
        out_shape = self.tensor(op.outputs[0]).shape
        shape = self.b.const(self.tensor(op.outputs[0]).name + "/shape",
                             np.array([-1] + list(out_shape[1:]), np.int64))
        raw = self.b.node("Reshape", [x.name, shape], self.tensor(op.outputs[0]).name + "/r")
        self.finish(op, raw, "TF", x.range)

    def concat(self, op):
        vals = [self.value(i, op) for i in op.inputs]
        rank = len(self.tensor(op.outputs[0]).shape)
        axis = op.options.get("Axis", 0)
        axis = axis + rank if axis < 0 else axis
        if all(v.layout == "NCHW" for v in vals):
            layout, onnx_axis = "NCHW", _NHWC_TO_NCHW_AXIS[axis]
        else:
            vals = [self.to_tf(v) for v in vals]
            layout, onnx_axis = "TF", axis
        rng = (min(v.range[0] for v in vals), max(v.range[1] for v in vals))
        raw = self.b.node("Concat", [v.name for v in vals],
                          self.tensor(op.outputs[0]).name + "/concat", axis=int(onnx_axis))
        self.finish(op, raw, layout, rng, op.options.get("FusedActivationFunction", "NONE"))

    def add(self, op):
        a_i, b_i = op.inputs[:2]
        act = op.options.get("FusedActivationFunction", "NONE")
        base = self.tensor(op.outputs[0]).name
        var = [i for i in (a_i, b_i) if i in self.values]
        if len(var) == 2:
            a, b = self.values[a_i], self.values[b_i]
            if a.layout != b.layout:
                a, b = self.to_tf(a), self.to_tf(b)
            raw = self.b.node("Add", [a.name, b.name], base + "/add")
            self.finish(op, raw, a.layout, (a.range[0] + b.range[0], a.range[1] + b.range[1]),
                        act)
            return
        if len(var) != 1:
            raise ModelError("%s: ADD %d has no activation input" % (self.g.path, op.index))
        a = self.values[var[0]]
        c = self.const(b_i if var[0] == a_i else a_i, "addend")
        if a.layout == "NCHW":
            if c.ndim == 4:
                c = c.transpose(0, 3, 1, 2)
            elif c.ndim == 1:
                c = c.reshape(-1, 1, 1)
        name = self.b.const(base + "/addend", np.ascontiguousarray(c, np.float32))
        raw = self.b.node("Add", [a.name, name], base + "/add")
        self.finish(op, raw, a.layout, (a.range[0] + float(c.min()), a.range[1] + float(c.max())),
                    act)

    def pool(self, op, kind):
        o = op.options
        x = self.to_nchw(self.value(op.inputs[0], op), op)
        kh, kw = o.get("FilterHeight", 1), o.get("FilterWidth", 1)
        sh, sw = o.get("StrideH", 1), o.get("StrideW", 1)
        if o.get("Padding", "SAME") == "SAME":
            pt, pb = _same_pads(x.shape[1], kh, sh, 1)
            pl, pr = _same_pads(x.shape[2], kw, sw, 1)
        else:
            pt = pb = pl = pr = 0
        attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[pt, pl, pb, pr])
        if kind == "AveragePool":
            attrs["count_include_pad"] = 0   # TF's SAME average ignores the padding
        raw = self.b.node(kind, [x.name], self.tensor(op.outputs[0]).name + "/pool", **attrs)
        self.finish(op, raw, "NCHW", x.range, o.get("FusedActivationFunction", "NONE"))

    def convert_op(self, op):
        t = op.type
        if t == "CONV_2D":
            self.conv(op, False)
        elif t == "DEPTHWISE_CONV_2D":
            self.conv(op, True)
        elif t in ("RESHAPE", "SQUEEZE"):
            self.reshape(op)
        elif t == "CONCATENATION":
            self.concat(op)
        elif t == "LOGISTIC":
            x = self.value(op.inputs[0], op)
            raw = self.b.node("Sigmoid", [x.name], self.tensor(op.outputs[0]).name + "/sigmoid")
            self.finish(op, raw, x.layout, (0.0, 1.0))
        elif t == "ADD":
            self.add(op)
        elif t in ("RELU", "RELU6", "RELU_N1_TO_1"):
            x = self.value(op.inputs[0], op)
            self.finish(op, x.name, x.layout, x.range, t)
        elif t == "AVERAGE_POOL_2D":
            self.pool(op, "AveragePool")
        elif t == "MAX_POOL_2D":
            self.pool(op, "MaxPool")
        elif t in ("QUANTIZE", "DEQUANTIZE"):
            if op.inputs[0] in self.values:
                x = self.values[op.inputs[0]]
                self.finish(op, x.name, x.layout, x.range)
            else:   # a constant (e.g. float16 weights dequantised at load time)
                self.consts[op.outputs[0]] = self.const(op.inputs[0], "input")
        else:
            raise ModelError("%s: operator %s (op %d) is not supported by the trtssd converter; "
                             "it converts %s" % (self.g.path, t, op.index,
                                                 ", ".join(SUPPORTED_OPS)))

    # -- the whole graph -------------------------------------------------------------------
    def run(self, name, synthetic):
        g = self.g
        post = [op for op in g.ops if op.type == POSTPROCESS_OP]
        if not post:
            raise ModelError("%s is a TFLite model but not an SSD detection model (it has no %s "
                             "operator); %s" % (g.path, POSTPROCESS_OP, GET_THE_MODEL))
        post = post[0]
        if len(g.inputs) != 1:
            raise ModelError("%s has %d inputs; an SSD detector has one image input"
                             % (g.path, len(g.inputs)))
        inp = self.tensor(g.inputs[0])
        if len(inp.shape) != 4 or inp.shape[3] != 3:
            raise ModelError("%s: input %r has shape %s; trtssd feeds [1, H, W, 3] images"
                             % (g.path, inp.name, list(inp.shape)))
        if inp.quantized:
            s, z = float(inp.scale[0]), float(inp.zero_point[0])
            mean = z + (128.0 if inp.dtype == np.int8 else 0.0)   # int8 input = pixel - 128
            scale = s
            rng = inp.quant_range()
        elif inp.dtype == np.float32:
            mean, scale, rng = 127.5, 1.0 / 127.5, (-_INF, _INF)   # the float SSDs' [-1, 1]
        else:
            raise ModelError("%s: input of type %s; trtssd feeds uint8, int8 or float32 models"
                             % (g.path, inp.dtype))
        h, w = inp.shape[1], inp.shape[2]
        self.values[g.inputs[0]] = _Value(INPUT_NAME, "NCHW", rng, inp.shape)

        needed = self._needed(post.inputs[:2])
        for op in g.ops:
            if op.index in needed:
                self.convert_op(op)

        anchors = self.const(post.inputs[2], "anchors").reshape(-1, 4)
        n_anchors = anchors.shape[0]
        box_v = self.to_tf(self.value(post.inputs[0], post))
        score_v = self.to_tf(self.value(post.inputs[1], post))
        n_classes = int(self.tensor(post.inputs[1]).shape[-1])
        if int(np.prod(box_v.shape)) != n_anchors * 4:
            raise ModelError("%s: box encodings %s do not match %d anchors"
                             % (g.path, list(box_v.shape), n_anchors))
        if int(np.prod(score_v.shape)) != n_anchors * n_classes:
            raise ModelError("%s: class scores %s do not match %d anchors x %d classes"
                             % (g.path, list(score_v.shape), n_anchors, n_classes))
        self.b.names.update([OUTPUT_BOXES, OUTPUT_SCORES])
        for v, out, k in ((box_v, OUTPUT_BOXES, 4), (score_v, OUTPUT_SCORES, n_classes)):
            shape = self.b.const(out + "/shape", np.array([-1, n_anchors, k], np.int64))
            self.b.nodes.append(self.b.onnx.helper.make_node("Reshape", [v.name, shape], [out],
                                                             name=out))
            self.b.counts["Reshape"] = self.b.counts.get("Reshape", 0) + 1

        o = post.options
        spec = ModelSpec(
            name=name, input_height=int(h), input_width=int(w), mean=(mean,) * 3,
            scale=(scale,) * 3, channel_order="RGB", num_classes=n_classes, anchors=anchors,
            box_coder=BoxCoder(float(o.get("y_scale", 10.0)), float(o.get("x_scale", 10.0)),
                               float(o.get("h_scale", 5.0)), float(o.get("w_scale", 5.0))),
            nms=NmsParams(score_threshold=float(o.get("nms_score_threshold", 1e-8)),
                          iou_threshold=float(o.get("nms_iou_threshold", 0.6)),
                          max_detections=int(o.get("max_detections", 10)),
                          max_classes_per_detection=int(o.get("max_classes_per_detection", 1)),
                          detections_per_class=int(o.get("detections_per_class", 100)),
                          use_regular_nms=bool(o.get("use_regular_nms", False))),
            synthetic=synthetic)
        return self._model(spec, n_anchors, n_classes), spec

    def _needed(self, targets):
        """Indices of the ops that the postprocess inputs depend on."""
        producers = {}
        for op in self.g.ops:
            for t in op.outputs:
                producers[t] = op
        needed, stack = set(), list(targets)
        while stack:
            t = stack.pop()
            op = producers.get(t)
            if op is None or op.index in needed:
                continue
            needed.add(op.index)
            stack.extend(i for i in op.inputs if i >= 0)
        return needed

    def _model(self, spec, n_anchors, n_classes):
        onnx = self.b.onnx
        helper = onnx.helper
        f32 = onnx.TensorProto.FLOAT
        graph = helper.make_graph(
            self.b.nodes, spec.name,
            [helper.make_tensor_value_info(INPUT_NAME, f32,
                                           ["N", 3, spec.input_height, spec.input_width])],
            [helper.make_tensor_value_info(OUTPUT_BOXES, f32, ["N", n_anchors, 4]),
             helper.make_tensor_value_info(OUTPUT_SCORES, f32, ["N", n_anchors, n_classes])],
            initializer=self.b.initializers)
        model = helper.make_model(graph, producer_name="trtssd",
                                  producer_version=CONVERTER_VERSION,
                                  opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        model.doc_string = ("SSD detector converted by trtssd from %s%s. Input images float32 "
                            "[N,3,%d,%d] NCHW %s, (pixel - %g) * %g; outputs box_encodings "
                            "(ty,tx,th,tw) and class_scores after the sigmoid, before NMS."
                            % (spec.name, " (SYNTHETIC random weights: timing only)"
                               if spec.synthetic else "", spec.input_height, spec.input_width,
                               spec.channel_order, spec.mean[0], spec.scale[0]))
        meta = {SPEC_METADATA_KEY: spec.to_json(), "trtssd.converter": CONVERTER_VERSION,
                "trtssd.synthetic": "true" if spec.synthetic else "false"}
        for k, v in sorted(meta.items()):
            p = model.metadata_props.add()
            p.key, p.value = k, v
        return model


def convert_graph(graph, name=None, synthetic=False):
    """Convert a parsed :class:`TfliteGraph` -> ``(onnx.ModelProto, ModelSpec, op_counts)``."""
    onnx = _import_onnx()
    c = _Converter(graph, onnx)
    name = name or os.path.splitext(os.path.basename(graph.path or "model"))[0]
    model, spec = c.run(name, synthetic)
    return model, spec, dict(c.b.counts)


def convert_tflite(path):
    """Convert the .tflite file at ``path``; returns a :class:`ConversionResult`."""
    t0 = time.perf_counter()
    graph = read_tflite(path)
    model, spec, counts = convert_graph(graph)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    p = model.metadata_props.add()
    p.key, p.value = "trtssd.source_sha256", digest
    return ConversionResult(model, spec, counts, time.perf_counter() - t0,
                            os.path.basename(path))


# ---- synthetic model: same architecture, random weights ---------------------------------------
# SSD-MobileNet-v1 (depth multiplier 0.75) at 300x300, as in the official detect.tflite:
# (depthwise stride, pointwise channels) for the 13 separable blocks after Conv2d_0 (24 ch).
_MOBILENET_BLOCKS = ((1, 48), (2, 96), (1, 96), (2, 192), (1, 192), (2, 384), (1, 384),
                     (1, 384), (1, 384), (1, 384), (1, 384), (2, 768), (1, 768))
_EXTRA_LAYERS = ((192, 384), (96, 192), (96, 192), (48, 96))   # 1x1 then 3x3 stride 2


def ssd_anchors(grid_sizes=(19, 10, 5, 3, 2, 1), min_scale=0.2, max_scale=0.95,
                aspect_ratios=(1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)):
    """Anchors (yc, xc, h, w) of the SSD multiple-grid generator with a reduced lowest layer."""
    n = len(grid_sizes)
    scales = [min_scale + (max_scale - min_scale) * i / (n - 1) for i in range(n)] + [1.0]
    out = []
    for layer, g in enumerate(grid_sizes):
        if layer == 0:
            specs = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            specs = [(scales[layer], ar) for ar in aspect_ratios]
            specs.append((math.sqrt(scales[layer] * scales[layer + 1]), 1.0))
        for y in range(g):
            for x in range(g):
                for s, ar in specs:
                    r = math.sqrt(ar)
                    out.append(((y + 0.5) / g, (x + 0.5) / g, s / r, s * r))
    return np.array(out, np.float32)


def synthetic_graph(seed=0, num_classes=91):
    """A TfliteGraph with the official model's architecture and quantisation ranges, random
    float weights. Feeds the same converter as a real file."""
    rng = np.random.RandomState(seed)
    tensors, ops = [], []

    def act(shape, lo, hi):
        s = (hi - lo) / 255.0
        t = TfliteTensor(len(tensors), "act%d" % len(tensors), shape, np.uint8,
                         np.array([s], np.float32), np.array([int(round(-lo / s))], np.int64))
        tensors.append(t)
        return t.index

    def const(data, name):
        t = TfliteTensor(len(tensors), name, data.shape, data.dtype, data=data)
        tensors.append(t)
        return t.index

    def conv(x, cout, k, stride, depthwise=False, lo=0.0, hi=6.0):
        h, w, cin = tensors[x].shape[1:]
        oh, ow = (h + stride - 1) // stride, (w + stride - 1) // stride
        if depthwise:
            wt = rng.normal(0, math.sqrt(2.0 / (k * k)), (1, k, k, cin)).astype(np.float32)
            cout = cin
        else:
            wt = rng.normal(0, math.sqrt(2.0 / (k * k * cin)), (cout, k, k, cin))
            wt = wt.astype(np.float32)
        b = rng.normal(0, 0.05, (cout,)).astype(np.float32)
        y = act((1, oh, ow, cout), lo, hi)
        opts = {"Padding": "SAME", "StrideH": stride, "StrideW": stride,
                "FusedActivationFunction": "NONE", "DilationHFactor": 1, "DilationWFactor": 1}
        if depthwise:
            opts["DepthMultiplier"] = 1
        ops.append(TfliteOp(len(ops), "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
                            [x, const(wt, "w%d" % len(ops)), const(b, "b%d" % len(ops))], [y],
                            opts))
        return y

    def reshape(x, shape):
        lo, hi = tensors[x].quant_range()
        y = act(shape, lo, hi)
        ops.append(TfliteOp(len(ops), "RESHAPE", [x], [y]))
        return y

    x = act((1, 300, 300, 3), -1.0, 1.0 - 1.0 / 128)
    tensors[x].scale[:] = 1.0 / 128
    tensors[x].zero_point[:] = 128
    inp = x
    x = conv(x, 24, 3, 2)
    feats = []
    for i, (stride, cout) in enumerate(_MOBILENET_BLOCKS):
        x = conv(x, 0, 3, stride, depthwise=True)
        x = conv(x, cout, 1, 1)
        if i in (10, 12):
            feats.append(x)
    for mid, cout in _EXTRA_LAYERS:
        x = conv(x, mid, 1, 1)
        x = conv(x, cout, 3, 2)
        feats.append(x)
    boxes, scores = [], []
    for i, f in enumerate(feats):
        g = tensors[f].shape[1]
        a = 3 if i == 0 else 6
        bx = conv(f, a * 4, 1, 1, lo=-10.0, hi=6.0)
        boxes.append(reshape(bx, (1, g * g * a, 1, 4)))
        sc = conv(f, a * num_classes, 1, 1, lo=-11.0, hi=1.6)
        scores.append(reshape(sc, (1, g * g * a, num_classes)))
    anchors = ssd_anchors()
    n = len(anchors)
    bcat = act((1, n, 1, 4), -10.0, 6.0)
    ops.append(TfliteOp(len(ops), "CONCATENATION", boxes, [bcat], {"Axis": 1}))
    bsq = reshape(bcat, (1, n, 4))
    scat = act((1, n, num_classes), -11.0, 1.6)
    ops.append(TfliteOp(len(ops), "CONCATENATION", scores, [scat], {"Axis": 1}))
    sig = act((1, n, num_classes), 0.0, 255.0 / 256)
    ops.append(TfliteOp(len(ops), "LOGISTIC", [scat], [sig]))
    anc = const(anchors, "anchors")
    outs = [act((), 0.0, 1.0) for _ in range(4)]
    ops.append(TfliteOp(len(ops), POSTPROCESS_OP, [bsq, sig, anc], outs,
                        {"y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0, "w_scale": 5.0,
                         "nms_score_threshold": 1e-8, "nms_iou_threshold": 0.6,
                         "max_detections": 10, "max_classes_per_detection": 1,
                         "num_classes": num_classes - 1}, custom=True))
    return TfliteGraph(tensors, ops, [inp], outs, "synthetic", "synthetic")


def synthetic_model(seed=0):
    """ONNX with the official SSD-MobileNet-v1 architecture and random weights
    (spec.synthetic = True): for timing on machines that lack the real file, never for results."""
    t0 = time.perf_counter()
    model, spec, counts = convert_graph(synthetic_graph(seed), name="synthetic-ssd-mobilenet-v1",
                                        synthetic=True)
    return ConversionResult(model, spec, counts, time.perf_counter() - t0, "synthetic")
