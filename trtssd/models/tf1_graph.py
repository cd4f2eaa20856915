"""TF1 Object Detection API SSD frozen graphs (``frozen_inference_graph.pb``) -> ONNX, without
TensorFlow.

The graph of an OD API SSD has three parts by name scope: ``Preprocessor`` (resize and
normalise, in a while loop), the network (``FeatureExtractor`` and ``BoxPredictor_*``, ending in
``concat`` = box encodings and ``concat_1`` = class logits), and ``Postprocessor`` (decode and
per-class NMS, in a while loop). Only the network is converted; the other two are *read*:

- the resize size (``Preprocessor/map/while/ResizeImage/stack``) and normalisation
  (``Preprocessor/mul`` and ``Preprocessor/sub``: value = pixel * m - s);
- the anchors: the anchor generator's constant subgraph (``Concatenate/concat``, corners
  ymin, xmin, ymax, xmax) evaluated here with NumPy, the feature-map shapes it reads inferred;
- the box coder's scales (``Postprocessor/Decode/truediv*/y``), the score converter
  (``Postprocessor/convert_scores``: Sigmoid, Softmax or Identity) and the logit scale;
- the NMS settings (``.../MultiClassNonMaxSuppression``: IoU and score thresholds, detections
  per class, total detections): per-class NMS, trtssd's ``use_regular_nms``.

The network's TF ops become the records of :mod:`trtssd.models.tflite_reader` (weights
rearranged to TFLite's layouts, FusedBatchNorm and BiasAdd folded into the convolution before
them), so the TFLite converter's op table writes the ONNX, with a stand-in for the detection op
that carries the settings above.
"""
import os
import time

import numpy as np

from ..core.errors import ModelError
from .graphdef import attr, parse_graphdef
from .tflite_reader import TfliteGraph, TfliteOp, TfliteTensor

BOXES_NODE = "concat"
LOGITS_NODE = "concat_1"
ANCHORS_NODE = "Concatenate/concat"
_NMS = "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/MultiClassNonMaxSuppression/"


def _split(ref):
    """'name:1' -> ('name', 1); control inputs ('^name') are not data."""
    if ":" in ref:
        n, i = ref.rsplit(":", 1)
        return n, int(i)
    return ref, 0


class _Graph(object):
    def __init__(self, nodes, path):
        self.path = path
        self.nodes = {n.name: n for n in nodes}
        self.consumers = {}
        for n in nodes:
            for ref in n.inputs:
                if not ref.startswith("^"):
                    self.consumers.setdefault(_split(ref)[0], []).append(n.name)

    def node(self, name, what):
        n = self.nodes.get(name)
        if n is None:
            raise ModelError("%s: no node %r (%s); it is not a TF1 Object Detection API SSD frozen "
                             "graph" % (self.path, name, what))
        return n

    def data_inputs(self, n):
        return [r for r in n.inputs if not r.startswith("^")]


class _ConstEval(object):
    """NumPy evaluation of constant subgraphs (anchors, shapes); Shape reads inferred shapes."""

    def __init__(self, g, shapes):
        self.g = g
        self.shapes = shapes      # tensor ref -> static shape (batch 1) of the network's tensors
        self.memo = {}

    def __call__(self, ref):
        name, idx = _split(ref)
        if (name, idx) in self.memo:
            return self.memo[(name, idx)]
        n = self.g.node(name, "a constant's input")
        out = self._eval(n)
        vals = out if isinstance(out, list) else [out]
        for i, v in enumerate(vals):
            self.memo[(name, i)] = v
        return vals[idx]

    def _in(self, n):
        return [self(r) for r in self.g.data_inputs(n)]

    def _eval(self, n):
        op = n.op
        if op == "Const":
            return attr(n, "value")
        if op in ("Shape", "Size", "Rank"):
            ref = self.g.data_inputs(n)[0]
            shape = self.shapes.get(ref) or self.shapes.get(_split(ref)[0] + ":0")
            if shape is None:
                shape = list(np.shape(self(ref)))
            if op == "Size":
                return np.array(int(np.prod(shape)), np.int32)
            if op == "Rank":
                return np.array(len(shape), np.int32)
            return np.array(shape, np.int32)
        if op == "Assert":
            return np.zeros(0)
        x = self._in(n)
        binary = {"Add": np.add, "AddV2": np.add, "Sub": np.subtract, "Mul": np.multiply,
                  "RealDiv": np.true_divide, "Minimum": np.minimum, "Maximum": np.maximum,
                  "Equal": np.equal, "Less": np.less, "Greater": np.greater}
        if op in binary:
            r = binary[op](x[0], x[1])
            return r.astype(x[0].dtype) if op not in ("Equal", "Less", "Greater") else r
        if op in ("Identity", "StopGradient"):
            return x[0]
        if op == "Sqrt":
            return np.sqrt(x[0]).astype(x[0].dtype)
        if op == "Rsqrt":
            return (1.0 / np.sqrt(x[0])).astype(x[0].dtype)
        if op == "Square":
            return np.square(x[0])
        if op == "Neg":
            return np.negative(x[0])
        if op == "Exp":
            return np.exp(x[0]).astype(x[0].dtype)
        if op == "Cast":
            dt = attr(n, "DstT")
            from .graphdef import _DTYPES
            return x[0].astype(_DTYPES[dt[1]])
        if op == "Reshape":
            return x[0].reshape([int(v) for v in np.ravel(x[1])])
        if op == "ExpandDims":
            return np.expand_dims(x[0], int(np.ravel(x[1])[0]))
        if op == "Squeeze":
            dims = attr(n, "squeeze_dims", {}).get("i")
            return np.squeeze(x[0], tuple(dims)) if dims else np.squeeze(x[0])
        if op == "ConcatV2":
            return np.concatenate(x[:-1], int(x[-1]))
        if op == "Pack":
            return np.stack(x, attr(n, "axis", 0))
        if op == "Unpack":
            a = attr(n, "axis", 0)
            return [np.take(x[0], i, axis=a) for i in range(x[0].shape[a])]
        if op == "Fill":
            return np.full([int(v) for v in np.ravel(x[0])], x[1])
        if op == "Tile":
            return np.tile(x[0], [int(v) for v in np.ravel(x[1])])
        if op == "Range":
            return np.arange(x[0], x[1], x[2]).astype(np.result_type(x[0], x[1], x[2]))
        if op == "Slice":
            b = [int(v) for v in x[1]]
            s = [int(v) for v in x[2]]
            return x[0][tuple(slice(bb, None if ss == -1 else bb + ss) for bb, ss in zip(b, s))]
        if op == "Transpose":
            return np.transpose(x[0], [int(v) for v in x[1]])
        if op == "All":
            return np.all(x[0], axis=tuple(int(v) for v in np.ravel(x[1])))
        if op == "ZerosLike":
            return np.zeros_like(x[0])
        if op == "StridedSlice":
            return _strided_slice(n, *x)
        raise ModelError("%s: the constant subgraph at %r uses op %s, which trtssd cannot "
                         "evaluate" % (self.g.path, n.name, op))


def _strided_slice(n, x, begin, end, strides):
    bm, em = attr(n, "begin_mask", 0), attr(n, "end_mask", 0)
    sm, nm, elm = attr(n, "shrink_axis_mask", 0), attr(n, "new_axis_mask", 0), \
        attr(n, "ellipsis_mask", 0)
    if nm or elm:
        raise ModelError("StridedSlice %r uses new-axis or ellipsis masks" % n.name)
    idx = []
    for a, (b, e, s) in enumerate(zip(begin, end, strides)):
        b, e, s = int(b), int(e), int(s)
        if (sm >> a) & 1:
            idx.append(b)
        else:
            idx.append(slice(None if (bm >> a) & 1 else b, None if (em >> a) & 1 else e, s))
    return np.asarray(x[tuple(idx)])


class _Translator(object):
    """The network's TF nodes -> TfliteTensor/TfliteOp records, shapes inferred (batch 1)."""

    SUPPORTED = ("Conv2D", "DepthwiseConv2dNative", "BiasAdd", "FusedBatchNorm",
                 "FusedBatchNormV3", "Relu", "Relu6", "Add", "AddV2", "Sub", "Mul", "RealDiv",
                 "ConcatV2", "Reshape", "Squeeze", "Identity", "Sigmoid", "Softmax", "MaxPool",
                 "AvgPool")

    def __init__(self, g, input_ref, input_shape):
        self.g = g
        self.dependent = _dependent(g, _split(input_ref)[0])
        self.tensors, self.ops = [], []
        self.index = {}           # TF tensor ref 'name:i' -> tensor index
        self.shapes = {}
        self.conv_of = {}         # tensor index -> conv op whose only consumer may fold into it
        self.input_ref = input_ref
        self.evaluator = _ConstEval(g, self.shapes)
        t = self._tensor(input_ref, input_shape)
        self.input = t

    def _tensor(self, ref, shape, data=None):
        i = len(self.tensors)
        self.tensors.append(TfliteTensor(i, ref, shape, np.float32, data=data))
        self.index[ref] = i
        self.shapes[ref] = list(shape)
        return i

    def const(self, data, name):
        data = np.asarray(data, np.float32)
        i = len(self.tensors)
        self.tensors.append(TfliteTensor(i, name, data.shape, np.float32, data=data))
        return i

    def const_of(self, ref, what):
        try:
            return np.asarray(self.evaluator(ref))
        except ModelError:
            raise
        except Exception as e:
            raise ModelError("%s: the %s %r is not a constant this converter can evaluate (%s)"
                             % (self.g.path, what, ref, e))

    def needed(self, targets):
        """The network's nodes between the input and ``targets``, in dependency order, and the
        unsupported ops among them."""
        order, seen, bad = [], set(), {}
        stack = [(_split(t)[0], False) for t in targets]
        while stack:
            name, done = stack.pop()
            if done:
                order.append(name)
                continue
            if name in seen or name + ":0" == self.input_ref or name == self.input_ref:
                continue
            seen.add(name)
            n = self.g.node(name, "an input of the network")
            if n.op == "Const" or name not in self.dependent:
                continue      # a constant, or a subgraph of constants: evaluated where read
            if n.op not in self.SUPPORTED:
                bad.setdefault(n.op, []).append(name)   # and on through it: count them all
            else:
                stack.append((name, True))
            data = self.g.data_inputs(n)
            if n.op in ("Reshape", "ConcatV2"):
                data = data[:1] if n.op == "Reshape" else data[:-1]
            for ref in data:
                stack.append((_split(ref)[0], False))
        if bad:
            parts = ["%s x%d (%s%s)" % (op, len(v), ", ".join(repr(x) for x in v[:3]),
                                         ", ..." if len(v) > 3 else "")
                     for op, v in sorted(bad.items())]
            raise ModelError("%s: %d node%s of the network that trtssd's converter does not "
                             "know: %s; it converts %s"
                             % (self.g.path, sum(len(v) for v in bad.values()),
                                "" if sum(len(v) for v in bad.values()) == 1 else "s",
                                "; ".join(parts), ", ".join(self.SUPPORTED)))
        return order

    def run(self, targets):
        for name in self.needed(targets):
            self.translate(self.g.nodes[name])

    def value(self, ref):
        name, idx = _split(ref)
        key = "%s:%d" % (name, idx)
        if key in self.index:
            return self.index[key]
        if idx == 0 and name in self.index:
            return self.index[name]
        n = self.g.node(name, "a tensor of the network")
        if n.op == "Const":
            return self.const(attr(n, "value"), name)
        if name not in self.dependent:   # e.g. an unfused batch norm's rsqrt(var + eps) * gamma
            return self.const(self.const_of(ref, "constant operand"), name)
        raise ModelError("%s: node %r reads %r, which the converted network does not produce"
                         % (self.g.path, name, ref))

    def alias(self, n, i):
        self.index[n.name + ":0"] = i
        self.shapes[n.name + ":0"] = list(self.tensors[i].shape)

    def single_use(self, n):
        return len(self.g.consumers.get(n.name, [])) == 1

    def out(self, n, shape):
        return self._tensor(n.name + ":0", shape)

    def translate(self, n):
        op = n.op
        ins = self.g.data_inputs(n)
        if op in ("Identity",):
            self.alias(n, self.value(ins[0]))
        elif op in ("Conv2D", "DepthwiseConv2dNative"):
            self.conv(n, ins, op == "DepthwiseConv2dNative")
        elif op in ("BiasAdd", "FusedBatchNorm", "FusedBatchNormV3"):
            self.affine(n, ins)
        elif op in ("Relu", "Relu6", "Sigmoid", "Softmax"):
            x = self.value(ins[0])
            y = self.out(n, self.tensors[x].shape)
            kind = {"Relu": "RELU", "Relu6": "RELU6", "Sigmoid": "LOGISTIC",
                    "Softmax": "SOFTMAX"}[op]
            self.ops.append(TfliteOp(len(self.ops), kind, [x], [y],
                                     {"Beta": 1.0} if kind == "SOFTMAX" else {}))
        elif op in ("Add", "AddV2", "Sub", "Mul", "RealDiv"):
            a, b = self.value(ins[0]), self.value(ins[1])
            shape = np.broadcast(np.empty(self.tensors[a].shape),
                                 np.empty(self.tensors[b].shape)).shape
            y = self.out(n, shape)
            kind = {"Add": "ADD", "AddV2": "ADD", "Sub": "SUB", "Mul": "MUL",
                    "RealDiv": "DIV"}[op]
            self.ops.append(TfliteOp(len(self.ops), kind, [a, b], [y], {}))
        elif op == "ConcatV2":
            xs = [self.value(r) for r in ins[:-1]]
            axis = int(self.const_of(ins[-1], "concatenation axis"))
            rank = len(self.tensors[xs[0]].shape)
            axis = axis + rank if axis < 0 else axis
            shape = list(self.tensors[xs[0]].shape)
            shape[axis] = sum(self.tensors[x].shape[axis] for x in xs)
            y = self.out(n, shape)
            self.ops.append(TfliteOp(len(self.ops), "CONCATENATION", xs, [y], {"Axis": axis}))
        elif op == "Reshape":
            x = self.value(ins[0])
            shape = [int(v) for v in np.ravel(self.const_of(ins[1], "reshape target"))]
            total = int(np.prod(self.tensors[x].shape))
            if shape and shape[0] == -1 and shape.count(-1) == 1:
                shape[0] = 1
            if -1 in shape:
                known = int(np.prod([v for v in shape if v != -1]))
                shape[shape.index(-1)] = total // max(known, 1)
            if int(np.prod(shape)) != total:
                raise ModelError("%s: Reshape %r of %s to %s" % (self.g.path, n.name,
                                                              self.tensors[x].shape, shape))
            y = self.out(n, shape)
            self.ops.append(TfliteOp(len(self.ops), "RESHAPE", [x], [y], {}))
        elif op == "Squeeze":
            x = self.value(ins[0])
            dims = attr(n, "squeeze_dims", {}).get("i") or \
                [a for a, d in enumerate(self.tensors[x].shape) if d == 1 and a > 0]
            shape = [d for a, d in enumerate(self.tensors[x].shape) if a not in dims]
            y = self.out(n, shape)
            self.ops.append(TfliteOp(len(self.ops), "SQUEEZE", [x], [y], {}))
        elif op in ("MaxPool", "AvgPool"):
            x = self.value(ins[0])
            k, s = attr(n, "ksize")["i"], attr(n, "strides")["i"]
            pad = attr(n, "padding").decode()
            h, w, c = self.tensors[x].shape[1:]
            y = self.out(n, [1, _out(h, k[1], s[1], 1, pad), _out(w, k[2], s[2], 1, pad), c])
            self.ops.append(TfliteOp(len(self.ops), "MAX_POOL_2D" if op == "MaxPool" else
                                     "AVERAGE_POOL_2D", [x], [y],
                                     {"Padding": pad, "StrideH": s[1], "StrideW": s[2],
                                      "FilterHeight": k[1], "FilterWidth": k[2]}))

    def conv(self, n, ins, depthwise):
        if attr(n, "data_format", b"NHWC") != b"NHWC":
            raise ModelError("%s: %s %r is not NHWC" % (self.g.path, n.op, n.name))
        x = self.value(ins[0])
        w = np.asarray(self.const_of(ins[1], "weights"), np.float32)
        s = attr(n, "strides")["i"]
        d = (attr(n, "dilations") or {}).get("i") or [1, 1, 1, 1]
        pad = attr(n, "padding").decode()
        if pad not in ("SAME", "VALID"):
            raise ModelError("%s: %s %r has padding %s" % (self.g.path, n.op, n.name, pad))
        kh, kw = w.shape[0], w.shape[1]
        h, wd, c = self.tensors[x].shape[1:]
        if depthwise:    # [KH, KW, C, M] -> [1, KH, KW, C*M] (TF's channel c*M + m, as TFLite)
            w = w.reshape(1, kh, kw, -1)
        else:            # [KH, KW, I, O] -> [O, KH, KW, I]
            w = np.ascontiguousarray(w.transpose(3, 0, 1, 2))
        cout = w.shape[3] if depthwise else w.shape[0]
        y = self.out(n, [1, _out(h, kh, s[1], d[1], pad), _out(wd, kw, s[2], d[2], pad), cout])
        wi = self.const(w, n.name + "/weights")
        bi = self.const(np.zeros(cout, np.float32), n.name + "/bias")
        opts = {"Padding": pad, "StrideH": s[1], "StrideW": s[2], "DilationHFactor": d[1],
                "DilationWFactor": d[2], "FusedActivationFunction": "NONE"}
        if depthwise:
            opts["DepthMultiplier"] = cout // c
        op = TfliteOp(len(self.ops), "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
                      [x, wi, bi], [y], opts)
        self.ops.append(op)
        if self.single_use(n):
            self.conv_of[y] = op

    def affine(self, n, ins):
        """BiasAdd and inference-mode FusedBatchNorm: y = x * scale + shift per channel, folded
        into the convolution before it where it is that convolution's only consumer."""
        x = self.value(ins[0])
        c = self.tensors[x].shape[-1]
        if n.op == "BiasAdd":
            scale, shift = np.ones(c, np.float32), self.const_of(ins[1], "bias")
        else:
            if attr(n, "is_training", False):
                raise ModelError("%s: %r is a training-mode batch norm; export the graph for "
                                 "inference" % (self.g.path, n.name))
            gamma, beta, mean, var = [np.asarray(self.const_of(r, "batch-norm parameter"),
                                                 np.float64) for r in ins[1:5]]
            eps = float(attr(n, "epsilon", 1e-3))
            scale = gamma / np.sqrt(var + eps)
            shift = beta - mean * scale
        scale = np.asarray(scale, np.float64)
        shift = np.asarray(shift, np.float64)
        conv = self.conv_of.pop(x, None)
        if conv is not None:
            w = self.tensors[conv.inputs[1]]
            b = self.tensors[conv.inputs[2]]
            axis = 3 if conv.type == "DEPTHWISE_CONV_2D" else 0
            bshape = [1, 1, 1, 1]
            bshape[axis] = -1
            w.data = (w.data * scale.reshape(bshape)).astype(np.float32)
            b.data = (b.data * scale + shift).astype(np.float32)
            self.alias(n, x)
            if self.single_use(n):
                self.conv_of[x] = conv
            return
        y = x
        if not np.all(scale == 1.0):
            m = self.out(n, self.tensors[x].shape)
            self.ops.append(TfliteOp(len(self.ops), "MUL", [y, self.const(scale, n.name +
                                                                          "/scale")], [m], {}))
            y = m
        z = self._tensor(n.name + ":0/shift", self.tensors[x].shape)
        self.ops.append(TfliteOp(len(self.ops), "ADD", [y, self.const(shift, n.name +
                                                                      "/shift")], [z], {}))
        self.alias(n, z)


def _dependent(g, input_name):
    """Nodes whose values depend on the input's values (a Shape of it does not)."""
    dep, stack = set(), [input_name]
    while stack:
        for c in g.consumers.get(stack.pop(), []):
            if c not in dep and g.nodes[c].op not in ("Shape", "Size", "Rank"):
                dep.add(c)
                stack.append(c)
    return dep


def _first_input(g, name):
    """The data input 0 of node ``name`` as a tensor ref, or None where there is no such node."""
    n = g.nodes.get(name)
    return g.data_inputs(n)[0] if n is not None and g.data_inputs(n) else None


def _out(size, k, stride, dilation, pad):
    if pad == "SAME":
        return -(-size // stride)
    return (size - (k - 1) * dilation - 1) // stride + 1


def _const_value(g, name, what):
    n = g.node(name, what)
    seen = 0
    while n.op in ("Identity", "Enter") and seen < 8:
        n = g.node(_split(g.data_inputs(n)[0])[0], what)
        seen += 1
    if n.op != "Const":
        raise ModelError("%s: %s (%r) is not a constant" % (g.path, what, name))
    return np.asarray(attr(n, "value"))


def read_frozen_graph(path):
    """Parse ``path`` into (a TfliteGraph of the network with a detection-op stand-in, input
    normalisation (mean, scale)). ModelError for a foreign, truncated or non-SSD file."""
    if not os.path.isfile(path):
        raise ModelError("model file %s does not exist" % path)
    with open(path, "rb") as f:
        buf = f.read()
    return frozen_graph_from_nodes(parse_graphdef(buf, path), path)


def frozen_graph_from_nodes(nodes, path):
    """:func:`read_frozen_graph` on parsed nodes."""
    g = _Graph(nodes, path)
    # the Postprocessor's inputs, found from it (node names moved between OD API versions)
    boxes_ref = _first_input(g, "Postprocessor/raw_box_encodings") or BOXES_NODE
    logits_ref = _first_input(g, "Postprocessor/scale_logits") or LOGITS_NODE
    anchors_ref = _first_input(g, "Postprocessor/ExpandDims") or (
        ANCHORS_NODE if ANCHORS_NODE in g.nodes else "MultipleGridAnchorGenerator/" +
        ANCHORS_NODE)
    for ref in (boxes_ref, logits_ref, anchors_ref, "Preprocessor/sub",
                "Postprocessor/convert_scores"):
        if _split(ref)[0] not in g.nodes:
            raise ModelError("%s is a TensorFlow graph but not a TF1 Object Detection API SSD "
                             "(no node %r); trtssd converts the SSD frozen_inference_graph.pb "
                             "of the OD API" % (path, _split(ref)[0]))
    resize = [n for n in nodes if n.name.startswith("Preprocessor/") and
              n.op in ("ResizeBilinear", "ResizeNearestNeighbor")]
    if len(resize) != 1:
        raise ModelError("%s: %d resize nodes in the Preprocessor, trtssd reads graphs with one"
                         % (path, len(resize)))
    size = [int(v) for v in np.ravel(_const_value(g, _split(g.data_inputs(resize[0])[1])[0],
                                                  "the resize size"))]
    if len(size) != 2:
        raise ModelError("%s: the resize size %s is not (height, width)" % (path, size))
    mul = float(np.ravel(_const_value(g, "Preprocessor/mul/x", "the input scale"))[0]) \
        if "Preprocessor/mul/x" in g.nodes else 1.0
    sub = float(np.ravel(_const_value(g, "Preprocessor/sub/y", "the input offset"))[0])
    mean, scale = sub / mul, mul          # pixel * mul - sub = (pixel - sub / mul) * mul

    net_input = "Preprocessor/sub:0"
    tr = _Translator(g, net_input, [1, size[0], size[1], 3])
    scale_logits = 1.0
    if "Postprocessor/scale_logits/y" in g.nodes:
        scale_logits = float(np.ravel(_const_value(g, "Postprocessor/scale_logits/y",
                                                   "the logit scale"))[0])
    conv = g.node("Postprocessor/convert_scores", "the score converter").op
    if conv not in ("Sigmoid", "Softmax", "Identity"):
        raise ModelError("%s: score converter %s; trtssd knows Sigmoid, Softmax and Identity"
                         % (path, conv))
    tr.run([boxes_ref, logits_ref])
    boxes = tr.value(boxes_ref)
    bshape = tr.tensors[boxes].shape
    n_anchors = int(np.prod(bshape)) // 4
    sq = tr._tensor("box_encodings_squeezed", [1, n_anchors, 4])
    tr.ops.append(TfliteOp(len(tr.ops), "RESHAPE", [boxes], [sq], {}))
    scores = tr.value(logits_ref)
    n_cols = tr.tensors[scores].shape[-1]
    if scale_logits != 1.0:
        y = tr._tensor("scaled_logits", tr.tensors[scores].shape)
        tr.ops.append(TfliteOp(len(tr.ops), "DIV", [scores, tr.const(np.float32(scale_logits),
                                                                     "logit_scale")], [y], {}))
        scores = y
    if conv != "Identity":
        y = tr._tensor("class_scores_activated", tr.tensors[scores].shape)
        tr.ops.append(TfliteOp(len(tr.ops), "LOGISTIC" if conv == "Sigmoid" else "SOFTMAX",
                               [scores], [y], {"Beta": 1.0}))
        scores = y

    anchors = np.asarray(tr.const_of(anchors_ref, "anchor table"), np.float64).reshape(-1, 4)
    if anchors.shape[0] != n_anchors:
        raise ModelError("%s: %d anchors but %d box encodings" % (path, anchors.shape[0],
                                                                  n_anchors))
    ymin, xmin, ymax, xmax = anchors.T
    centre = np.stack([(ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin], 1)
    anc = tr.const(centre.astype(np.float32), "anchors")

    def num(name, default):
        return float(np.ravel(_const_value(g, name, name))[0]) if name in g.nodes else default

    dec = "Postprocessor/Decode/truediv%s/y"
    options = {"y_scale": num(dec % "", 10.0), "x_scale": num(dec % "_1", 10.0),
               "h_scale": num(dec % "_2", 5.0), "w_scale": num(dec % "_3", 5.0),
               "nms_iou_threshold": num(_NMS + "non_max_suppression/iou_threshold", 0.6),
               "nms_score_threshold": num(_NMS + "non_max_suppression/score_threshold", 1e-8),
               "detections_per_class": int(num(_NMS + "Minimum/x", 100)),
               "max_detections": int(num(_NMS + "Minimum_1/x", 100)),
               "max_classes_per_detection": 1, "num_classes": n_cols - 1,
               # the OD API suppresses per class; with one class that is the same as TFLite's
               # fast NMS (best class per box, then one suppression), which trtssd runs
               "use_regular_nms": n_cols - 1 > 1}
    outs = [tr._tensor("detection_%s" % k, [1]) for k in ("boxes", "classes", "scores", "num")]
    tr.ops.append(TfliteOp(len(tr.ops), "TFLite_Detection_PostProcess", [sq, scores, anc], outs,
                           options, custom=True))
    graph = TfliteGraph(tr.tensors, tr.ops, [tr.input], outs, "TF1 frozen graph", path)
    return graph, (mean, scale)


def convert_frozen_graph(path):
    """Convert a TF1 OD API SSD ``frozen_inference_graph.pb``; returns a ConversionResult."""
    from .convert import ConversionResult, convert_graph, file_digest
    t0 = time.perf_counter()
    graph, norm = read_frozen_graph(path)
    name = os.path.splitext(os.path.basename(path))[0]
    if name == "frozen_inference_graph":
        name = os.path.basename(os.path.dirname(os.path.abspath(path))) or name
    model, spec, counts = convert_graph(graph, name=name, normalization=norm)
    p = model.metadata_props.add()
    p.key, p.value = "trtssd.source_sha256", file_digest(path)
    q = model.metadata_props.add()
    q.key, q.value = "trtssd.source_format", "tf1-frozen-graph"
    return ConversionResult(model, spec, counts, time.perf_counter() - t0,
                            os.path.basename(path))
