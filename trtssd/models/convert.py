"""TFLite SSD detector -> ONNX, without TensorFlow.

The network up to (not including) ``TFLite_Detection_PostProcess`` becomes an ONNX graph
(the operators are in :mod:`trtssd.models.tflite_ops`):

- input ``images`` float32 [N, 3, H, W] (NCHW), value ``(pixel - mean) * scale`` where mean and
  scale come from the TFLite input's quantisation (128 and 1/128 for ``detect.tflite``);
- outputs ``box_encodings`` [N, A, 4] and ``class_scores`` [N, A, C] (after the sigmoid, column 0
  the background: a model without one, EfficientDet-Lite's, gets a zero column in front);
- weights dequantised to float32, ``(q - zero_point) * scale`` (float16 weights to float32);
- every activation clamped to the range its integer quantisation can hold,
  ``[(qmin - zp) * s, (qmax - zp) * s]``: in the quantised SSD the ReLU6 exists only as those
  ranges (the convolutions' fused activation is NONE), and a float graph without them overflows.
  A clamp is left out where the value provably lies inside the range already.

With ``qdq="exact"`` (or True) the quantisation is written as QuantizeLinear/DequantizeLinear at
the model's own scales and zero points instead; ``qdq="symmetric"`` writes int8 with zero points
0 over the same ranges, which TensorRT takes (opset 13, for per-channel weights, both).

The postprocess op is read, not converted: its anchors, box coder and NMS options become the
:class:`trtssd.core.spec.ModelSpec` stored as JSON in the ONNX metadata (key ``trtssd.spec``).
A graph without it converts to its raw outputs (named as in the file); the metadata then holds
``trtssd.raw`` (input normalisation, outputs) but no spec: anchors and box coder come from the
model's spec sidecar.

Only plain ops are emitted, at opset 11 and IR version 6, which TensorRT 8.2's ONNX parser
reads. Convolutions with TF "SAME" padding get their exact (possibly asymmetric) pads.
"""
import hashlib
import json
import math
import os
import re
import time

import numpy as np

from ..core.errors import EnvironmentProblem, ModelError
from ..core.spec import SPEC_METADATA_KEY, BoxCoder, ModelSpec, NmsParams
from .tflite_ops import OnnxBuilder, OpTable, Value
from .tflite_reader import TfliteGraph, TfliteOp, TfliteTensor, read_tflite

CONVERTER_VERSION = "2"
OPSET = 11
QDQ_OPSET = 13          # per-axis DequantizeLinear (per-channel weights) needs 13
IR_VERSION = 6
QDQ_IR_VERSION = 7
POSTPROCESS_OP = "TFLite_Detection_PostProcess"
INPUT_NAME = "images"
OUTPUT_BOXES = "box_encodings"
OUTPUT_SCORES = "class_scores"
RAW_METADATA_KEY = "trtssd.raw"
SOURCES_METADATA_KEY = "trtssd.tflite_outputs"   # ONNX output -> TFLite tensor name it equals
_INF = float("inf")


def supported_ops():
    """The TFLite operators the converter knows, sorted (the detection op among them)."""
    return sorted(list(OpTable(None, None).handlers) + [POSTPROCESS_OP])


def _import_onnx():
    try:
        import onnx
        return onnx
    except ImportError:
        raise EnvironmentProblem("converting to ONNX needs the `onnx` package: pip install onnx "
                                 "(or pip install trtssd[convert])")


class ConversionResult(object):
    """What :func:`convert_tflite` made: the ONNX ``model``, its ``spec`` (None for a graph
    without the detection op), op counts, seconds."""

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
        try:
            onnx.save(self.model, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    def summary(self):
        ops = ", ".join("%s x%d" % kv for kv in sorted(self.op_counts.items()))
        n = sum(self.op_counts.values())
        if self.spec is None:
            outs = ", ".join("%s %s" % (o.name, _dims(o)) for o in self.model.graph.output)
            return ("%s: %d ONNX nodes (%s), raw outputs %s (no detection op: anchors and box "
                    "coder come from a spec), %.2f s" % (self.source, n, ops, outs, self.seconds))
        return ("%s: %d ONNX nodes (%s), %d anchors, %d classes, input %dx%d, %s%.2f s"
                % (self.source, n, ops, self.spec.num_anchors,
                   self.spec.num_classes, self.spec.input_width, self.spec.input_height,
                   "SYNTHETIC WEIGHTS (timing only), " if self.spec.synthetic else "",
                   self.seconds))


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _onnx_name(name, taken):
    base = re.sub(r"[^A-Za-z0-9_./-]", "_", name) or "output"
    out, i = base, 1
    while out in taken:
        i += 1
        out = "%s_%d" % (base, i)
    return out


class _Converter(object):
    def __init__(self, graph, onnx, qdq=None, normalization=None):
        self.g = graph
        qdq = _qdq_mode(qdq)
        self.qdq = qdq
        self.normalization = normalization
        self.b = OnnxBuilder(onnx)
        self.b.names.add(INPUT_NAME)
        self.ops = OpTable(graph, self.b, qdq)

    def tensor(self, i):
        return self.g.tensors[i]

    def _check_supported(self, needed):
        bad = {}
        for op in self.g.ops:
            if op.index in needed and op.type not in self.ops.handlers:
                bad.setdefault(op.type, []).append(op)
        if not bad:
            return
        parts = []
        for t, ops in sorted(bad.items()):
            where = ", ".join("op %d -> %r" % (o.index, self.tensor(o.outputs[0]).name)
                              for o in ops[:3]) + (", ..." if len(ops) > 3 else "")
            parts.append("%s x%d (%s)" % (t, len(ops), where))
        raise ModelError("%s: %d operator%s that trtssd's converter does not know: %s; it "
                         "converts %s" % (self.g.path, sum(len(v) for v in bad.values()),
                                          "" if sum(len(v) for v in bad.values()) == 1 else "s",
                                          "; ".join(parts), ", ".join(supported_ops())))

    def _input(self):
        g = self.g
        if len(g.inputs) != 1:
            raise ModelError("%s has %d inputs; trtssd converts models with one image input"
                             % (g.path, len(g.inputs)))
        inp = self.tensor(g.inputs[0])
        if inp.quantized:
            s, z = float(inp.scale[0]), float(inp.zero_point[0])
            mean = z + (128.0 if inp.dtype == np.int8 else 0.0)   # int8 input = pixel - 128
            scale, rng = s, inp.quant_range()
        elif inp.dtype == np.float32:
            # the float SSDs' [-1, 1], unless the source says otherwise (a TF1 graph's own)
            mean, scale = self.normalization or (127.5, 1.0 / 127.5)
            rng = (-_INF, _INF)
        else:
            raise ModelError("%s: input of type %s; trtssd feeds uint8, int8 or float32 models"
                             % (g.path, inp.dtype))
        layout = "NCHW" if len(inp.shape) == 4 else "TF"
        name = INPUT_NAME
        if self.qdq and inp.quantized:   # the network sees the input's own integers
            name = self.ops.quantize(INPUT_NAME, inp, INPUT_NAME)
        self.ops.values[g.inputs[0]] = Value(name, layout, rng, inp.shape)
        return inp, mean, scale

    def _needed(self, targets):
        """Indices of the ops that ``targets`` depend on."""
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

    def _convert_needed(self, targets):
        needed = self._needed(targets)
        self._check_supported(needed)
        for op in self.g.ops:
            if op.index in needed:
                self.ops.convert(op)

    def _output(self, v, out, shape):
        shape_c = self.b.const(out + "/shape", np.array([-1] + list(shape[1:]), np.int64))
        self.b.emit("Reshape", [v.name, shape_c], out)

    # -- the whole graph -------------------------------------------------------------------
    def run(self, name, synthetic):
        g = self.g
        post = [op for op in g.ops if op.type == POSTPROCESS_OP]
        if not post:
            return self.run_raw(name)
        post = post[0]
        self.b.names.update([OUTPUT_BOXES, OUTPUT_SCORES])
        inp, mean, scale = self._input()
        if len(inp.shape) != 4 or inp.shape[3] != 3:
            raise ModelError("%s: input %r has shape %s; trtssd feeds [1, H, W, 3] images"
                             % (g.path, inp.name, list(inp.shape)))
        h, w = inp.shape[1], inp.shape[2]
        self._convert_needed(post.inputs[:2])

        anchors = self.ops.const(post.inputs[2], "anchors").reshape(-1, 4)
        n_anchors = anchors.shape[0]
        box_v = self.ops.to_tf(self.ops.value(post.inputs[0], post))
        score_v = self.ops.to_tf(self.ops.value(post.inputs[1], post))
        o = post.options
        n_cols = int(self.tensor(post.inputs[1]).shape[-1])
        n_real = int(o.get("num_classes", n_cols - 1))
        if n_cols not in (n_real, n_real + 1):
            raise ModelError("%s: the detection op says %d classes but its scores have %d "
                             "columns" % (g.path, n_real, n_cols))
        if int(np.prod(box_v.shape)) != n_anchors * 4:
            raise ModelError("%s: box encodings %s do not match %d anchors"
                             % (g.path, list(box_v.shape), n_anchors))
        if int(np.prod(score_v.shape)) != n_anchors * n_cols:
            raise ModelError("%s: class scores %s do not match %d anchors x %d classes"
                             % (g.path, list(score_v.shape), n_anchors, n_cols))
        self._output(box_v, OUTPUT_BOXES, (1, n_anchors, 4))
        if n_cols == n_real:
            # no background column (EfficientDet-Lite): put a zero one in front, so that class
            # k of the model is column k + 1 as in every other SSD that trtssd decodes
            flat = self.b.node("Reshape", [score_v.name, self.b.const(
                "scores/flat", np.array([-1, n_anchors, n_cols], np.int64))], "scores/flat")
            first = self.b.node("Slice", [flat, self.b.const("scores/s0", np.array([0])),
                                          self.b.const("scores/s1", np.array([1])),
                                          self.b.const("scores/ax", np.array([2]))],
                                "scores/first")
            zero = self.b.node("Mul", [first, self.b.const("scores/zero", np.array(
                0.0, np.float32))], "scores/background")
            cat = self.b.node("Concat", [zero, flat], "scores/with_background", axis=2)
            score_v = Value(cat, "TF", score_v.range, (1, n_anchors, n_cols + 1))
        self._output(score_v, OUTPUT_SCORES, (1, n_anchors, n_real + 1))
        spec = ModelSpec(
            name=name, input_height=int(h), input_width=int(w), mean=(mean,) * 3,
            scale=(scale,) * 3, channel_order="RGB", num_classes=n_real + 1, anchors=anchors,
            box_coder=BoxCoder(float(o.get("y_scale", 10.0)), float(o.get("x_scale", 10.0)),
                               float(o.get("h_scale", 5.0)), float(o.get("w_scale", 5.0))),
            nms=NmsParams(score_threshold=float(o.get("nms_score_threshold", 1e-8)),
                          iou_threshold=float(o.get("nms_iou_threshold", 0.6)),
                          max_detections=int(o.get("max_detections", 10)),
                          max_classes_per_detection=int(o.get("max_classes_per_detection", 1)),
                          detections_per_class=int(o.get("detections_per_class", 100)),
                          use_regular_nms=bool(o.get("use_regular_nms", False))),
            synthetic=synthetic)
        outputs = [(OUTPUT_BOXES, [n_anchors, 4]), (OUTPUT_SCORES, [n_anchors, n_real + 1])]
        sources = {OUTPUT_BOXES: self.tensor(post.inputs[0]).name,
                   OUTPUT_SCORES: self.tensor(post.inputs[1]).name}
        meta = {SPEC_METADATA_KEY: spec.to_json(),
                "trtssd.synthetic": "true" if synthetic else "false",
                SOURCES_METADATA_KEY: json.dumps(sources)}
        if n_cols == n_real:
            meta["trtssd.background_column_added"] = "true"
        doc = ("SSD detector converted by trtssd from %s%s. Input images float32 [N,3,%d,%d] "
               "NCHW RGB, (pixel - %g) * %g; outputs box_encodings (ty,tx,th,tw) and "
               "class_scores after the sigmoid, before NMS."
               % (name, " (SYNTHETIC random weights: timing only)" if synthetic else "",
                  h, w, mean, scale))
        return self._model(name, inp, outputs, meta, doc), spec

    def run_raw(self, name):
        """A graph without the detection op: its own outputs, bound by name."""
        g = self.g
        inp, mean, scale = self._input()
        names = []
        for i in g.outputs:     # reserved first: the outputs keep the file's names
            names.append(_onnx_name(self.tensor(i).name, self.b.names))
            self.b.names.add(names[-1])
        self._convert_needed(g.outputs)
        outputs, sources = [], {}
        for i, out in zip(g.outputs, names):
            t = self.tensor(i)
            if i not in self.ops.values:
                raise ModelError("%s: output %r is not computed from the input (a constant "
                                 "output); trtssd converts networks" % (g.path, t.name))
            if not t.shape:
                raise ModelError("%s: output %r is a scalar; trtssd needs a batch axis"
                                 % (g.path, t.name))
            self._output(self.ops.to_tf(self.ops.values[i]), out, t.shape)
            outputs.append((out, list(t.shape[1:])))
            sources[out] = t.name
        raw = {"input": INPUT_NAME, "input_layout": "NCHW" if len(inp.shape) == 4 else "TF",
               "input_shape": list(inp.shape), "mean": mean, "scale": scale,
               "channel_order": "RGB",
               "outputs": [{"name": n, "shape": ["N"] + s} for n, s in outputs]}
        meta = {RAW_METADATA_KEY: json.dumps(raw), SOURCES_METADATA_KEY: json.dumps(sources)}
        doc = ("network converted by trtssd from %s without a detection op: raw outputs %s; "
               "anchors and box coder come from the model's spec"
               % (name, ", ".join(n for n, _ in outputs)))
        return self._model(name, inp, outputs, meta, doc), None

    def _model(self, name, inp, outputs, meta, doc):
        onnx = self.b.onnx
        helper = onnx.helper
        f32 = onnx.TensorProto.FLOAT
        shape = list(inp.shape)
        in_dims = (["N", shape[3], shape[1], shape[2]] if len(shape) == 4
                   else ["N"] + shape[1:])
        graph = helper.make_graph(
            self.b.nodes, name, [helper.make_tensor_value_info(INPUT_NAME, f32, in_dims)],
            [helper.make_tensor_value_info(n, f32, ["N"] + list(s)) for n, s in outputs],
            initializer=self.b.initializers)
        opset = QDQ_OPSET if self.qdq else OPSET
        model = helper.make_model(graph, producer_name="trtssd",
                                  producer_version=CONVERTER_VERSION,
                                  opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = QDQ_IR_VERSION if self.qdq else IR_VERSION
        model.doc_string = doc
        meta = dict(meta)
        meta["trtssd.converter"] = CONVERTER_VERSION
        meta["trtssd.qdq"] = self.qdq or "none"
        for k, v in sorted(meta.items()):
            p = model.metadata_props.add()
            p.key, p.value = k, v
        return model


QDQ_MODES = ("exact", "symmetric")


def _qdq_mode(qdq):
    if qdq is True:
        return "exact"
    if not qdq:
        return None
    if qdq not in QDQ_MODES:
        raise ModelError("--qdq %s: the modes are %s" % (qdq, ", ".join(QDQ_MODES)))
    return qdq


def convert_graph(graph, name=None, synthetic=False, qdq=None, normalization=None):
    """Convert a parsed :class:`TfliteGraph` -> ``(onnx.ModelProto, ModelSpec or None,
    op_counts)``; the spec is None for a graph without the detection op (raw outputs).
    ``normalization`` = (mean, scale) of a float input, where the source states it."""
    onnx = _import_onnx()
    c = _Converter(graph, onnx, qdq, normalization)
    name = name or os.path.splitext(os.path.basename(graph.path or "model"))[0]
    model, spec = c.run(name, synthetic)
    return model, spec, dict(c.b.counts)


def convert_tflite(path, qdq=False):
    """Convert the .tflite file at ``path``; returns a :class:`ConversionResult`."""
    t0 = time.perf_counter()
    graph = read_tflite(path)
    if qdq and not any(t.quantized for t in graph.tensors if t.data is not None):
        raise ModelError("%s holds no quantised weights, so there are no scales for --qdq to "
                         "write; convert it without --qdq" % path)
    model, spec, counts = convert_graph(graph, qdq=qdq)
    p = model.metadata_props.add()
    p.key, p.value = "trtssd.source_sha256", file_digest(path)
    return ConversionResult(model, spec, counts, time.perf_counter() - t0,
                            os.path.basename(path))


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


MODEL_EXTENSIONS = (".tflite", ".pb")


def convert_model(path, qdq=False):
    """Convert a .tflite or a TF1 Object Detection API frozen graph (.pb) to ONNX."""
    if path.lower().endswith(".pb"):
        if qdq:
            raise ModelError("%s is a float TF1 graph: it has no quantisation for --qdq to "
                             "write; convert it without --qdq" % path)
        from .tf1_graph import convert_frozen_graph
        return convert_frozen_graph(path)
    return convert_tflite(path, qdq=qdq)


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
