"""The ONNX SSDs users already have: recognise them, and adapt them to trtssd's contract.

Every backend runs a graph with one input ``images`` [N, 3, H, W] float and two outputs
``box_encodings`` [N, A, 4] and ``class_scores`` [N, A, C], and the ModelSpec in its metadata
(trtssd.core.spec). A foreign ONNX is turned into such a graph once, written to the cache
beside the converted TFLite models (keyed on the file's sha256 and the spec), by renaming its
input and outputs and adding only what the layout needs:

- **pytorch-ssd / jetson-inference** (``train_ssd.py`` + ``onnx_export.py``), recognised with no
  flag: input ``input_0`` [N, 3, H, W] RGB, outputs ``scores`` [N, A, C] (softmaxed, column 0
  BACKGROUND) and ``boxes`` [N, A, 4] (x1, y1, x2, y2 in 0..1). Normalisation (x - 127) / 128,
  plain resize, per-class hard NMS at IoU 0.45 as its Predictor does it.
- **TensorRT's EfficientNMS_TRT** at the end of the graph (NVIDIA's TF2 Object Detection sample):
  the graph is cut before the plugin node, the plugin's inputs become the two outputs, and its
  attributes (box coding, score activation, background class, thresholds, anchors input) the
  spec; trtssd then decodes and suppresses with its own postprocessing. NHWC inputs get a
  Transpose in front.
- **any other SSD** with a spec (trtssd.models.sidecar: ``MODEL.json`` beside it, ``--spec``, or
  flags): decoded, raw with anchors, or post-NMS outputs (count, boxes, scores, classes, packed
  here into decoded boxes and one-hot scores, rows past the count scored -1).

A graph whose outputs match no known layout gets a ModelError listing its inputs and outputs
and the spec keys to give; a spec that contradicts the graph (names, shapes, label count) gets
one before anything runs. Nothing here runs at import; ``onnx`` is imported where needed.
"""
import json
import os

import numpy as np

from ..core.errors import EnvironmentProblem, ModelError
from ..core.spec import (SPEC_METADATA_KEY, BoxCoder, ModelSpec, NmsParams, OutputFormat)

ADAPTER_VERSION = "1"
INPUT_NAME = "images"
OUTPUT_NAMES = ("box_encodings", "class_scores")
PLUGIN_OPS = ("EfficientNMS_TRT",)
SPEC_HELP = ("give a spec: MODEL.json beside the model or --spec FILE (keys input_blob, "
             "output_bbox, output_cvg, output_kind, box_format, activation, background, "
             "num_classes, ...; docs/MODELS.md), or the same keys as flags (--input-blob, "
             "--output-bbox, --output-cvg, --output-kind, ...)")


def _onnx():
    try:
        import onnx
        return onnx
    except ImportError:
        raise EnvironmentProblem("reading a foreign ONNX model needs the onnx package: "
                                 "pip install onnx")


# ------------------------------------------------------------------------ facts of a graph

class GraphFacts(object):
    """Inputs, outputs (name, dims: int, or str for a symbolic dimension), value shapes,
    nodes and metadata of an ONNX model, with shapes inferred where ONNX can."""

    def __init__(self, model, path):
        onnx = _onnx()
        self.path = path
        self.model = model
        self.metadata = dict((p.key, p.value) for p in model.metadata_props)
        inits = set(i.name for i in model.graph.initializer)
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:   # a custom op ONNX cannot infer through: what the file says
            inferred = model
        self.shapes = {}
        self.types = {}
        for vi in (list(inferred.graph.value_info) + list(inferred.graph.input)
                   + list(inferred.graph.output)):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else
                                             (d.dim_param or "?") for d in t.shape.dim)
            self.types[vi.name] = t.elem_type
        self.inputs = [(i.name, self.shapes.get(i.name)) for i in model.graph.input
                       if i.name not in inits]
        self.outputs = [(o.name, self.shapes.get(o.name)) for o in model.graph.output]
        self.nodes = list(model.graph.node)

    def describe_io(self):
        def fmt(items):
            return ", ".join("%s %s" % (n, list(s) if s is not None else "[?]")
                             for n, s in items) or "none"
        return "inputs: %s; outputs: %s" % (fmt(self.inputs), fmt(self.outputs))

    def plugin_node(self):
        for node in self.nodes:
            if node.op_type in PLUGIN_OPS:
                return node
        return None

    def initializer(self, name):
        from onnx import numpy_helper
        for i in self.model.graph.initializer:
            if i.name == name:
                return numpy_helper.to_array(i)
        for node in self.nodes:     # a Constant node
            if node.op_type == "Constant" and node.output[0] == name:
                from onnx import helper
                for at in node.attribute:
                    if at.name == "value":
                        return numpy_helper.to_array(helper.get_attribute_value(at))
        return None


def read_facts(path):
    onnx = _onnx()
    try:
        model = onnx.load(path)
    except Exception as e:
        raise ModelError("%s is not a readable ONNX model (%s: %s); export it again"
                         % (path, type(e).__name__, e))
    return GraphFacts(model, path)


# ------------------------------------------------------------------------ family specs

def pytorch_ssd_spec(name, height, width, num_classes, num_boxes):
    """The spec of a pytorch-ssd / jetson-inference SSD export: its Predictor's semantics."""
    return ModelSpec(
        name=name, input_height=int(height), input_width=int(width), mean=(127.0,) * 3,
        scale=(1 / 128.0,) * 3, channel_order="RGB", num_classes=int(num_classes),
        anchors=np.zeros((0, 4), np.float32), box_coder=BoxCoder(),
        nms=NmsParams(score_threshold=0.01, iou_threshold=0.45, max_detections=100,
                      method="per_class", score_inclusive=False, iou_eps=1e-5,
                      candidates_per_class=200),
        outputs=OutputFormat(kind="decoded", box_format="xyxy", normalized=True,
                             activation="none", background=0),
        family="pytorch-ssd", num_boxes=int(num_boxes))


def _dims(facts, name, rank, what):
    shape = facts.shapes.get(name)
    if shape is None or len(shape) != rank:
        raise ModelError("%s: %s %r has shape %s, expected rank %d; %s"
                         % (facts.path, what, name, list(shape) if shape else "unknown", rank,
                            facts.describe_io()))
    return shape


def _box_dims(facts, name, flag):
    shape = _dims(facts, name, 3, "box output")
    if shape[2] != 4:
        raise ModelError("%s: box output %r has shape %s; boxes are [N, A, 4] (fix %s); %s"
                         % (facts.path, name, list(shape), flag, facts.describe_io()))
    return shape


def _static(facts, name, shape, axes, what, fix):
    for ax in axes:
        if not isinstance(shape[ax], int) or shape[ax] <= 0:
            raise ModelError("%s: %s %r has a dynamic dimension %d (%s); %s"
                             % (facts.path, what, name, ax, list(shape), fix))


def _input_geometry(facts, name, layout, keys):
    """(height, width, batch) of the network input, from the graph or the spec keys."""
    shape = _dims(facts, name, 4, "input")
    if layout == "NCHW":
        c, h, w = shape[1], shape[2], shape[3]
    else:
        h, w, c = shape[1], shape[2], shape[3]
    if c != 3:
        raise ModelError("%s: input %r %s has %s channels in layout %s, trtssd feeds 3; give "
                         "input_layout (NCHW or NHWC) if the layout is the other one"
                         % (facts.path, name, list(shape), c, layout))
    if keys.get("input_height"):
        h, w = int(keys["input_height"]), int(keys["input_width"])
    if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
        raise ModelError("%s: input %r has a dynamic size %s; give input_size HxW (--input-size)"
                         " or export with a fixed size" % (facts.path, name, list(shape)))
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else 0
    return h, w, batch


def _check_name(facts, name, what, flag):
    """ModelError unless ``name`` is a tensor of the graph (an output or any node's output)."""
    known = set(n for n, _ in facts.outputs)
    for node in facts.nodes:
        known.update(node.output)
    if name not in known:
        raise ModelError("%s: the spec names %s %r, but the graph has no such tensor; %s. Fix %s"
                         % (facts.path, what, name, facts.describe_io(), flag))


# ------------------------------------------------------------------------ recognition

class Plan(object):
    """What to change in the graph: the input (name, layout), the tensors that become the two
    outputs (or the post-NMS four), and the node to cut at."""

    def __init__(self, spec, input_name, layout, boxes, scores, post_nms=None, cut=None):
        self.spec = spec
        self.input_name = input_name
        self.layout = layout
        self.boxes = boxes
        self.scores = scores
        self.post_nms = post_nms      # (count, boxes, scores, classes) names
        self.cut = cut                # the EfficientNMS_TRT node


def recognise(facts, keys=None, label_count=None):
    """A Plan for a foreign ONNX (``keys``: the spec keys given, trtssd.models.sidecar), or a
    ModelError listing what the graph has and the keys that would describe it."""
    from . import sidecar
    keys = dict(keys or {})
    base = os.path.splitext(os.path.basename(facts.path))[0]
    if len(facts.inputs) != 1 and "input_blob" not in keys:
        raise ModelError("%s has %d inputs; trtssd feeds one image tensor: give input_blob "
                         "(--input-blob); %s" % (facts.path, len(facts.inputs),
                                                 facts.describe_io()))
    in_name = keys.get("input_blob") or facts.inputs[0][0]
    if in_name not in [n for n, _ in facts.inputs]:
        raise ModelError("%s: input_blob %r is not an input of the graph (%s); fix --input-blob"
                         % (facts.path, in_name, facts.describe_io()))
    layout = keys.get("input_layout")
    if layout is None:
        s = facts.shapes.get(in_name) or ()
        layout = "NHWC" if len(s) == 4 and s[3] == 3 and s[1] != 3 else "NCHW"
    h, w, batch = _input_geometry(facts, in_name, layout, keys)

    plugin = facts.plugin_node()
    if plugin is not None and keys.get("output_kind") not in ("post_nms",):
        spec, boxes, scores = _efficient_nms_spec(facts, plugin, base, h, w, keys, label_count)
        plan = Plan(spec, in_name, layout, boxes, scores, cut=plugin)
    else:
        out_names = [n for n, _ in facts.outputs]
        kind = keys.get("output_kind")
        boxes = keys.get("output_bbox")
        scores = keys.get("output_cvg")
        if kind is None and (boxes or "boxes") in out_names and \
                (scores or "scores") in out_names:
            kind = "pytorch-ssd"    # its names, or detectNet's flags naming the two outputs
        if kind is None:
            raise ModelError("%s: its outputs match no layout trtssd knows (pytorch-ssd's "
                             "'scores' [N,A,C] + 'boxes' [N,A,4], an EfficientNMS_TRT node, or "
                             "trtssd's own metadata); %s. To run it, %s"
                             % (facts.path, facts.describe_io(), SPEC_HELP))
        if kind == "pytorch-ssd":
            boxes, scores = boxes or "boxes", scores or "scores"
            bshape = _box_dims(facts, boxes, "--output-bbox")
            sshape = _dims(facts, scores, 3, "score output")
            _static(facts, boxes, bshape, (1,), "box output", "re-export the model with a "
                    "fixed input size (torch.onnx.export without dynamic H, W)")
            _static(facts, scores, sshape, (1, 2), "score output", "re-export the model with "
                    "a fixed input size")
            spec = pytorch_ssd_spec(base, h, w, sshape[2], bshape[1])
            spec = sidecar.apply_keys(spec, keys)
            plan = Plan(spec, in_name, layout, boxes, scores)
        elif kind == "post_nms":
            names = tuple(keys.get(k) for k in ("output_count", "output_bbox", "output_cvg",
                                                "output_classes"))
            if not all(names):
                raise ModelError("%s: a post_nms spec needs output_count, output_bbox, "
                                 "output_cvg and output_classes (--output-count, --output-bbox,"
                                 " --output-cvg, --output-classes); %s"
                                 % (facts.path, facts.describe_io()))
            for n, flag in zip(names, ("--output-count", "--output-bbox", "--output-cvg",
                                       "--output-classes")):
                _check_name(facts, n, "output", flag)
            bshape = _box_dims(facts, names[1], "--output-bbox")
            _static(facts, names[1], bshape, (1,), "box output", "export with a fixed "
                    "maximum detection count")
            c = keys.get("num_classes") or label_count
            if not c:
                raise ModelError("%s: a post_nms model does not say its class count: give "
                                 "num_classes (--num-classes) or the label file (--labels)"
                                 % facts.path)
            spec = sidecar.spec_from_keys(base, h, w, int(c), keys, kind="post_nms",
                                          num_boxes=bshape[1])
            plan = Plan(spec, in_name, layout, None, None, post_nms=names)
        else:
            for n, flag in ((boxes, "--output-bbox"), (scores, "--output-cvg")):
                if not n:
                    raise ModelError("%s: a %s spec needs output_bbox and output_cvg "
                                     "(--output-bbox, --output-cvg); %s"
                                     % (facts.path, kind, facts.describe_io()))
                _check_name(facts, n, "output", flag)
            bshape = _box_dims(facts, boxes, "--output-bbox")
            sshape = _dims(facts, scores, 3, "score output")
            _static(facts, boxes, bshape, (1,), "box output", "re-export the model with a "
                    "fixed input size")
            _static(facts, scores, sshape, (2,), "score output", "re-export the model")
            if bshape[1] != sshape[1]:
                raise ModelError("%s: %s has %s boxes but %s has %s score rows; they must "
                                 "match (fix --output-bbox / --output-cvg)"
                                 % (facts.path, boxes, bshape[1], scores, sshape[1]))
            spec = sidecar.spec_from_keys(base, h, w, sshape[2], keys, kind=kind,
                                          num_boxes=bshape[1])
            plan = Plan(spec, in_name, layout, boxes, scores)
    plan.spec.batch = batch
    plan.spec.source = dict(plan.spec.source, path=os.path.abspath(facts.path),
                            input=in_name, layout=layout,
                            outputs=[n for n, _ in facts.outputs])
    if label_count is not None and label_count != plan.spec.num_classes:
        raise ModelError("%s: the label file has %d names but the model has %d score columns "
                         "(background included); pass the label file that came with the model "
                         "(--labels), one name per column" % (facts.path, label_count,
                                                              plan.spec.num_classes))
    if plan.spec.outputs.kind == "raw" and plan.spec.num_anchors != _rows(facts, plan):
        raise ModelError("%s: %d anchors given, but the box output has %s rows; fix the anchors "
                         "(--anchors)" % (facts.path, plan.spec.num_anchors, _rows(facts, plan)))
    return plan


def _rows(facts, plan):
    s = facts.shapes.get(plan.boxes)
    return s[1] if s and len(s) >= 2 else None


def _attrs(node):
    from onnx import helper
    return dict((a.name, helper.get_attribute_value(a)) for a in node.attribute)


def _efficient_nms_spec(facts, node, base, h, w, keys, label_count):
    """The spec that trtssd's postprocessing needs to do what the EfficientNMS_TRT node does,
    from its documented attributes (TensorRT's plugin README):
    box_coding 0 = corners (x1, y1, x2, y2), 1 = centre-size (x, y, w, h); with a third input
    the boxes are deltas decoded against those anchors (centre-size: centre + delta * size,
    size * exp(delta), no variances); score_activation 1 = sigmoid; background_class (-1 none);
    class_agnostic 0 = per-class NMS; scores must exceed score_threshold; max_output_boxes."""
    from . import sidecar
    from .. import postprocess
    a = _attrs(node)
    boxes, scores = node.input[0], node.input[1]
    anchors_in = node.input[2] if len(node.input) > 2 and node.input[2] else None
    sshape = facts.shapes.get(scores)
    if not sshape or len(sshape) != 3 or not isinstance(sshape[2], int):
        raise ModelError("%s: the EfficientNMS_TRT node's scores input %r has shape %s; trtssd "
                         "needs [N, A, C] with a fixed C; %s" % (facts.path, scores, sshape,
                                                                 SPEC_HELP))
    coding = int(a.get("box_coding", 0))
    bg = int(a.get("background_class", -1))
    kw = dict(kind="decoded", box_format="xyxy" if coding == 0 else "cxcywh")
    anchors = None
    if anchors_in:
        if coding != 1:
            raise ModelError("%s: EfficientNMS_TRT with anchors and box_coding 0 (corner "
                             "deltas) is not a coding trtssd decodes; run it on TensorRT"
                             % facts.path)
        anc = facts.initializer(anchors_in)
        if anc is None:
            raise ModelError("%s: the EfficientNMS_TRT anchors input %r is computed, not a "
                             "constant; give anchors (--anchors FILE.npy)" % (facts.path,
                                                                            anchors_in))
        anc = np.asarray(anc, np.float32).reshape(-1, 4)        # x, y, w, h
        anchors = anc[:, [1, 0, 3, 2]]                           # -> yc, xc, h, w
        kw = dict(kind="raw", box_format="encoded", encoding_order="xywh")
    method = "fast" if int(a.get("class_agnostic", 0)) else "per_class"
    max_det = min(int(a.get("max_output_boxes", 100)), postprocess.MAX_DETECTIONS_GPU)
    kw["output_kind"] = kw.pop("kind")
    d = dict(kw, activation="sigmoid" if int(a.get("score_activation", 0)) else "none",
             background="none" if bg < 0 else bg, nms=method,
             iou_threshold=float(a.get("iou_threshold", 0.5)),
             score_threshold=float(a.get("score_threshold", 0.0)),
             nms_max_detections=max_det, score_inclusive=False, scales=[1, 1, 1, 1])
    d.update(keys)
    spec = sidecar.spec_from_keys(base, h, w, int(sshape[2]), d, kind=d["output_kind"],
                                  num_boxes=sshape[1] if isinstance(sshape[1], int) else 0,
                                  anchors=anchors)
    spec.family = "tensorrt-efficientnms"
    spec.source = {"plugin": node.op_type, "plugin_attributes": dict(
        (k, v.decode() if isinstance(v, bytes) else v) for k, v in a.items())}
    return spec, boxes, scores


# ------------------------------------------------------------------------ adaptation

def adapt(facts, plan):
    """A new ModelProto with trtssd's input, outputs and spec metadata (the original is not
    changed)."""
    onnx = _onnx()
    from onnx import TensorProto, helper
    model = onnx.ModelProto()
    model.CopyFrom(facts.model)
    g = model.graph
    spec = plan.spec
    if plan.cut is not None:
        _cut_at(g, plan.cut)
    # input: rename to `images`, NCHW float; a Transpose in front of an NHWC graph
    old_in = plan.input_name
    h, w = spec.input_height, spec.input_width
    batch_dim = spec.batch if spec.batch else "N"
    new_nodes = []
    src_name = INPUT_NAME
    in_type = facts.types.get(old_in, TensorProto.FLOAT)
    if plan.layout == "NHWC":
        new_nodes.append(helper.make_node("Transpose", [INPUT_NAME], ["trtssd_nhwc"],
                                          perm=[0, 2, 3, 1], name="trtssd_to_nhwc"))
        src_name = "trtssd_nhwc"
    if in_type != TensorProto.FLOAT:
        new_nodes.append(helper.make_node("Cast", [src_name], ["trtssd_cast_in"], to=in_type,
                                          name="trtssd_cast_input"))
        src_name = "trtssd_cast_in"
    for node in g.node:
        for i, name in enumerate(node.input):
            if name == old_in:
                node.input[i] = src_name
    keep_inputs = [i for i in g.input if i.name != old_in]
    del g.input[:]
    g.input.extend([helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                                  [batch_dim, 3, h, w])])
    inits = set(i.name for i in g.initializer)
    g.input.extend([i for i in keep_inputs if i.name in inits])   # old-style initializer inputs
    # outputs
    a, c = spec.num_anchors, spec.num_classes
    if plan.post_nms is not None:
        box_src, score_src = _pack_post_nms(g, plan.post_nms, a, c, spec.outputs.class_offset)
    else:
        box_src, score_src = plan.boxes, plan.scores
    tail = [helper.make_node("Identity", [box_src], [OUTPUT_NAMES[0]], name="trtssd_boxes"),
            helper.make_node("Identity", [score_src], [OUTPUT_NAMES[1]], name="trtssd_scores")]
    nodes = new_nodes + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    del g.output[:]
    g.output.extend([
        helper.make_tensor_value_info(OUTPUT_NAMES[0], TensorProto.FLOAT, [batch_dim, a, 4]),
        helper.make_tensor_value_info(OUTPUT_NAMES[1], TensorProto.FLOAT, [batch_dim, a, c])])
    _prune(g)
    del g.value_info[:]
    props = [p for p in model.metadata_props if p.key != SPEC_METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key = SPEC_METADATA_KEY
    entry.value = spec.to_json()
    return model


def _cut_at(g, node):
    """Remove ``node`` and everything computed from its outputs."""
    dead = set(node.output)
    keep = []
    for n in g.node:
        if n is node or n.name and n.name == node.name and n.op_type == node.op_type:
            continue
        if any(i in dead for i in n.input):
            dead.update(n.output)
            continue
        keep.append(n)
    del g.node[:]
    g.node.extend(keep)


def _prune(g):
    """Drop nodes and initializers the outputs do not need (after a cut)."""
    need = set(o.name for o in g.output)
    keep = []
    for n in reversed(list(g.node)):
        if any(o in need for o in n.output):
            keep.append(n)
            need.update(i for i in n.input if i)
            for at in n.attribute:          # subgraphs (If/Loop) read outer names
                if at.g is not None:
                    for sn in at.g.node:
                        need.update(sn.input)
    keep.reverse()
    del g.node[:]
    g.node.extend(keep)
    inits = [i for i in g.initializer if i.name in need]
    del g.initializer[:]
    g.initializer.extend(inits)


def _pack_post_nms(g, names, k, c, offset):
    """Nodes packing (count [N] or [N,1], boxes [N,K,4], scores [N,K], classes [N,K]) into
    boxes [N,K,4] and one-hot scores [N,K,C]: the class column holds the score, every other
    column -1, rows at or past the count -1 everywhere."""
    from onnx import TensorProto, helper, numpy_helper
    count, boxes, scores, classes = names

    def const(name, value):
        g.initializer.extend([numpy_helper.from_array(np.asarray(value), name)])
        return name

    cols = const("trtssd_cols", np.arange(c, dtype=np.float32) - np.float32(offset))
    rows = const("trtssd_rows", np.arange(k, dtype=np.float32))
    shape_nk1 = const("trtssd_shape_nk1", np.array([0, 0, 1], np.int64))
    shape_n1 = const("trtssd_shape_n1", np.array([-1, 1], np.int64))
    one = const("trtssd_one", np.array(1.0, np.float32))
    mk = helper.make_node
    nodes = [
        mk("Cast", [classes], ["trtssd_cls_f"], to=TensorProto.FLOAT),
        mk("Reshape", ["trtssd_cls_f", shape_nk1], ["trtssd_cls3"]),
        mk("Equal", ["trtssd_cls3", cols], ["trtssd_hot_b"]),
        mk("Cast", ["trtssd_hot_b"], ["trtssd_hot"], to=TensorProto.FLOAT),
        mk("Cast", [count], ["trtssd_count_f"], to=TensorProto.FLOAT),
        mk("Reshape", ["trtssd_count_f", shape_n1], ["trtssd_count2"]),
        mk("Less", [rows, "trtssd_count2"], ["trtssd_valid_b"]),
        mk("Cast", ["trtssd_valid_b"], ["trtssd_valid"], to=TensorProto.FLOAT),
        mk("Cast", [scores], ["trtssd_score_f"], to=TensorProto.FLOAT),
        # s = valid ? score : -1  ->  score * valid + valid - 1
        mk("Mul", ["trtssd_score_f", "trtssd_valid"], ["trtssd_sv"]),
        mk("Add", ["trtssd_sv", "trtssd_valid"], ["trtssd_sv1"]),           # s + 1
        mk("Reshape", ["trtssd_sv1", shape_nk1], ["trtssd_sv13"]),
        mk("Mul", ["trtssd_hot", "trtssd_sv13"], ["trtssd_packed1"]),        # hot * (s + 1)
        mk("Sub", ["trtssd_packed1", one], ["trtssd_packed"]),               # ... - 1
        mk("Cast", [boxes], ["trtssd_boxes_f"], to=TensorProto.FLOAT),
    ]
    g.node.extend(nodes)
    return "trtssd_boxes_f", "trtssd_packed"


# ------------------------------------------------------------------------ entry points

def prepare_onnx(path, keys=None, label_path=None, cache_dir=None):
    """The path of an ONNX that trtssd's backends run for ``path``: itself when it carries
    trtssd's spec and no keys override it, else the adapted graph in the cache (made on first
    use, written atomically). ``keys``: spec keys (trtssd.models.sidecar), merged over
    ``MODEL.json`` beside the model."""
    from . import sidecar
    from .resolve import default_cache_dir, file_sha256, resolve_labels
    facts = read_facts(path)
    keys = sidecar.merged_keys(path, keys)
    if SPEC_METADATA_KEY in facts.metadata and not keys:
        return path
    if SPEC_METADATA_KEY in facts.metadata:
        raise ModelError("%s carries trtssd's own spec (it was made by trtssd's converter); "
                         "spec keys cannot override it: give the original model instead"
                         % path)
    label_count = None
    label_path = keys.get("labels") or label_path or resolve_labels(None, path,
                                                                    beside_only=True)
    if label_path:
        from ..core.detections import LabelMap
        label_count = len(LabelMap.from_file(label_path))
    plan = recognise(facts, keys, label_count)
    text = json.dumps({"spec": plan.spec.to_dict(), "keys": keys}, sort_keys=True)
    import hashlib
    tag = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    base = os.path.splitext(os.path.basename(path))[0]
    folder = cache_dir or default_cache_dir()
    out = os.path.join(folder, "%s-%s-%s-a%s.onnx" % (base, file_sha256(path)[:16], tag,
                                                       ADAPTER_VERSION))
    if not os.path.isfile(out):
        model = adapt(facts, plan)
        if not os.path.isdir(folder):
            os.makedirs(folder)
        tmp = "%s.%d.tmp" % (out, os.getpid())
        try:
            with open(tmp, "wb") as f:
                f.write(model.SerializeToString())
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return out


# ------------------------------------------------------------------------ what trtssd understood

_KIND_TEXT = {
    "raw": "raw: box encodings against anchors, decoded by trtssd",
    "decoded": "decoded boxes",
    "post_nms": "the model's own NMS result (count, boxes, scores, classes; packed by trtssd)",
}
_NMS_TEXT = {
    "fast": "TFLite's fast NMS: best class per anchor, class-agnostic greedy",
    "per_class": "greedy NMS per class over every (anchor, class) pair",
    "none": "none (the model did it): threshold and cap only",
}


def describe_spec(spec, labels=None, model_path=None):
    """Lines saying how trtssd reads a model: the user checks them before running it."""
    o, n, src = spec.outputs, spec.nms, spec.source or {}
    mean = ", ".join("%g" % v for v in spec.mean)
    std = ", ".join("%g" % (1.0 / v) if v else "inf" for v in spec.scale)
    lines = ["Model: %s" % (model_path or spec.name),
             "  family: %s" % spec.family]
    layout = src.get("layout", "NCHW")
    lines.append("  input: %s %s, %dx%d (HxW), %s, float (pixel - [%s]) / [%s]; resized "
                 "without letterbox, boxes map back by the frame's width and height"
                 % (src.get("input", INPUT_NAME), layout, spec.input_height, spec.input_width,
                    spec.channel_order, mean, std))
    if spec.batch:
        lines.append("  batch: fixed at %d by the graph" % spec.batch)
    else:
        lines.append("  batch: dynamic")
    if "plugin" in src:
        lines.append("  plugin: %s %s (cut before it; trtssd decodes and suppresses)"
                     % (src["plugin"], json.dumps(src.get("plugin_attributes", {}),
                                                  sort_keys=True)))
    if src.get("outputs"):
        lines.append("  graph outputs: %s" % ", ".join(src["outputs"]))
    if o.kind == "raw":
        form = "encodings (%s) against anchors, scales y,x,h,w %s" % (
            o.encoding_order, ", ".join("%g" % v for v in vars(spec.box_coder).values()))
    else:
        form = "%s, %s" % (o.box_format, "normalised 0..1" if o.normalized else "input pixels")
    lines.append("  outputs: %s; boxes %s; scores [%d, %d] %s" % (
        _KIND_TEXT[o.kind], form, spec.num_anchors, spec.num_classes,
        "used as given" if o.activation == "none" else "through a " + o.activation))
    lines.append("  classes: %d score columns, background %s%s" % (
        spec.num_classes, "none" if o.background is None else "column %d" % o.background,
        ", class id offset %d" % o.class_offset if o.kind == "post_nms" else ""))
    if labels is not None:
        names = list(labels)
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        lines.append("  labels: %d names (%s)" % (len(names), shown))
    else:
        lines.append("  labels: none found (give --labels FILE; class ids are reported)")
    if o.kind == "raw":
        a = spec.anchors
        lines.append("  anchors: %d (yc, xc, h, w), h %.3g..%.3g, w %.3g..%.3g"
                     % (len(a), a[:, 2].min(), a[:, 2].max(), a[:, 3].min(), a[:, 3].max()))
    else:
        lines.append("  anchors: none needed (%d boxes a frame)" % spec.num_anchors)
    extra = []
    if n.method == "per_class" and n.candidates_per_class:
        extra.append("best %d per class enter NMS" % n.candidates_per_class)
    if n.iou_eps:
        extra.append("IoU eps %g" % n.iou_eps)
    lines.append("  NMS: %s; IoU > %g suppresses; a candidate needs score %s threshold "
                 "(model's own %g; --threshold overrides); at most %d detections%s"
                 % (_NMS_TEXT[n.method], n.iou_threshold, ">=" if n.score_inclusive else ">",
                    n.score_threshold, n.max_detections,
                    "; " + ", ".join(extra) if extra else ""))
    return "\n".join(lines)


def describe_model(path, keys=None, labels_path=None):
    """``trtssd info MODEL``: what trtssd understood of a model file (and the spec keys)."""
    from ..core.detections import LabelMap
    from .resolve import load_spec, onnx_for, resolve_labels, resolve_model
    model = resolve_model(path)
    if model.lower().endswith(".onnx") and keys:
        onnx_path = prepare_onnx(model, keys, label_path=labels_path)
    else:
        onnx_path = onnx_for(model)
    spec = load_spec(onnx_path)
    lp = labels_path or resolve_labels(None, model)
    labels = LabelMap.from_file(lp, spec.num_classes) if lp else None
    return describe_spec(spec, labels, model)
