"""The small spec that describes an ONNX SSD trtssd does not recognise by itself.

A JSON file beside the model (``MODEL.json`` for ``MODEL.onnx``), or ``--spec FILE``, holds flat
keys; each key is also a command-line flag (``input_blob`` -> ``--input-blob``), and flags win
over the file. detectNet's names (``--input-blob``, ``--output-cvg``, ``--output-bbox``) are keys,
so a detectnet command line carries over. The keys (KEYS below, documented in docs/MODELS.md):

- input: ``input_blob``, ``input_layout`` (NCHW/NHWC), ``input_size`` (HxW), ``channel_order``
  (RGB/BGR), ``mean`` and ``std`` (one or three values: (pixel - mean) / std) or ``scale``;
- outputs: ``output_kind`` (raw, decoded, post_nms); ``output_bbox``, ``output_cvg`` and, for
  post_nms, ``output_count``, ``output_classes``, ``class_offset``; ``box_format`` (yxyx, xyxy,
  cxcywh; raw: encoded), ``encoding_order`` (yxhw, xywh), ``box_units`` (normalized, pixels),
  ``activation`` (none, sigmoid, softmax), ``background`` (a column, or none),
  ``num_classes``;
- raw: ``anchors`` (a .npy or .json file of [A, 4] (yc, xc, h, w) in 0..1, or in the JSON spec an
  object naming an anchor generator: {"generator": "pytorch-ssd", ...}, see
  ``generate_anchors``), ``scales`` (the box coder's four) or
  ``variances`` (pytorch-ssd's centre and size variance);
- NMS: ``nms`` (fast, per_class, none), ``iou_threshold``, ``score_threshold`` (the model's
  own; the CLI's --threshold still applies), ``nms_max_detections``, ``score_inclusive``,
  ``iou_eps``, ``candidates_per_class``;
- ``labels``: the label file.
"""
import io
import json
import math
import os

import numpy as np

from ..core.errors import InputError, ModelError
from ..core.spec import BoxCoder, ModelSpec, NmsParams, OutputFormat


def _floats(text):
    if isinstance(text, (list, tuple)):
        return [float(v) for v in text]
    if isinstance(text, (int, float)):
        return [float(text)]
    return [float(v) for v in str(text).replace("x", ",").split(",") if v.strip()]


def _bool(text):
    if isinstance(text, bool):
        return text
    t = str(text).strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean: %r" % (text,))


def _background(text):
    if text is None or str(text).strip().lower() in ("none", "-1", "null"):
        return "none"
    return int(text)


def _size(text):
    parts = [int(v) for v in str(text).lower().replace(",", "x").split("x")]
    if len(parts) != 2 or min(parts) < 1:
        raise ValueError("want HxW, e.g. 300x300")
    return parts


# key, parser, choices or None, help
KEYS = (
    ("input_blob", str, None, "name of the image input (detectNet's --input-blob)"),
    ("input_layout", str, ("NCHW", "NHWC"), "layout of the image input"),
    ("input_size", _size, None, "network input HxW when the graph's is dynamic"),
    ("channel_order", str, ("RGB", "BGR"), "channel order the network expects"),
    ("mean", _floats, None, "pixel mean(s) subtracted: one value or three"),
    ("std", _floats, None, "divisor(s) after the mean: one value or three"),
    ("scale", _floats, None, "multiplier(s) after the mean (instead of std)"),
    ("output_kind", str, ("raw", "decoded", "post_nms"), "what the outputs hold"),
    ("output_bbox", str, None, "the boxes output (detectNet's --output-bbox)"),
    ("output_cvg", str, None, "the scores output (detectNet's --output-cvg)"),
    ("output_count", str, None, "post_nms: the detection count output"),
    ("output_classes", str, None, "post_nms: the class id output"),
    ("class_offset", int, None, "post_nms: added to the class ids to give label lines"),
    ("box_format", str, ("encoded", "yxyx", "xyxy", "cxcywh"), "box coordinate order"),
    ("encoding_order", str, ("yxhw", "xywh"), "raw: order of the box encodings"),
    ("box_units", str, ("normalized", "pixels"), "boxes in 0..1 or in input pixels"),
    ("activation", str, ("none", "sigmoid", "softmax"), "applied to the scores by trtssd"),
    ("background", _background, None, "the background score column, or none"),
    ("num_classes", int, None, "score columns (post_nms: label lines)"),
    ("anchors", str, None, "raw: anchors file (.npy/.json, [A,4] yc,xc,h,w in 0..1)"),
    ("scales", _floats, None, "raw: box coder scales y,x,h,w (TF: 10,10,5,5)"),
    ("variances", _floats, None, "raw: centre,size variances (pytorch-ssd: 0.1,0.2)"),
    ("nms", str, ("fast", "per_class", "none"), "NMS family"),
    ("iou_threshold", float, None, "NMS IoU threshold"),
    ("score_threshold", float, None, "the model's own score threshold"),
    ("nms_max_detections", int, None, "the model's own detection cap"),
    ("score_inclusive", _bool, None, "candidates need score >= threshold (else >)"),
    ("iou_eps", float, None, "added to the IoU's denominator"),
    ("candidates_per_class", int, None, "per_class: best N of each class enter NMS (0: all)"),
    ("labels", str, None, "the label file"),
)
_PARSE = dict((k, (p, ch)) for k, p, ch, _ in KEYS)
# internal names some callers use (the EfficientNMS reader)
_ALIASES = {"kind": "output_kind", "nms_method": "nms", "max_detections": "nms_max_detections"}


def parse_keys(raw, where):
    """Checked, parsed spec keys from a dict of strings or JSON values."""
    out = {}
    for key, value in raw.items():
        key = _ALIASES.get(key, key)
        if key == "anchors" and isinstance(value, dict):
            out[key] = value
            continue
        if key not in _PARSE:
            raise ModelError("%s: unknown spec key %r; the keys are %s"
                             % (where, key, ", ".join(k for k, _, _, _ in KEYS)))
        parse, choices = _PARSE[key]
        try:
            v = parse(value)
        except (TypeError, ValueError) as e:
            raise ModelError("%s: spec key %s=%r is not valid (%s)" % (where, key, value, e))
        if choices and v not in choices:
            raise ModelError("%s: spec key %s=%r must be one of %s"
                             % (where, key, value, ", ".join(choices)))
        out[key] = v
    if "input_size" in out:
        out["input_height"], out["input_width"] = out.pop("input_size")
    return out


def load_spec_file(path):
    """The keys of a JSON spec file."""
    if not os.path.isfile(path):
        raise ModelError("spec file %s does not exist; give --spec FILE (JSON)" % path)
    try:
        with io.open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except ValueError as e:
        raise ModelError("spec file %s is not valid JSON (%s); fix it" % (path, e))
    if not isinstance(raw, dict):
        raise ModelError("spec file %s must hold one JSON object of keys" % path)
    keys = parse_keys(raw, path)
    base = os.path.dirname(os.path.abspath(path))
    for k in ("anchors", "labels"):     # files named relative to the spec
        if isinstance(keys.get(k), str) and not os.path.isabs(keys[k]):
            keys[k] = os.path.join(base, keys[k])
    return keys


def sidecar_path(model_path):
    return os.path.splitext(model_path)[0] + ".json"


def merged_keys(model_path, keys=None):
    """MODEL.json's keys (when beside the model), then ``keys`` over them; ``keys`` may name a
    spec file under 'spec'."""
    keys = dict(keys or {})
    out = {}
    spec_file = keys.pop("spec", None)
    side = sidecar_path(model_path)
    if spec_file:
        out.update(load_spec_file(spec_file))
    elif os.path.isfile(side):
        out.update(load_spec_file(side))
    out.update(keys)
    return out


# ------------------------------------------------------------------------ anchors

def generate_anchors(params):
    """Anchors [A, 4] (yc, xc, h, w) from an anchor generator's parameters:
    {"generator": "pytorch-ssd", "image_size": 300, "specs": [[19, 16, 60, 105, [2, 3]], ...],
    "clamp": true}: pytorch-ssd's generate_ssd_priors (feature map size, shrinkage, min and
    max box size, aspect ratios per layer). TF Object Detection API models: give the anchors
    as a file (their exports hold them as a constant; TensorRT's sample passes them to the
    plugin, where trtssd reads them itself).
    """
    kind = params.get("generator")
    if kind == "pytorch-ssd":
        size = float(params.get("image_size", 300))
        out = []
        for fm, shrink, bmin, bmax, ratios in params["specs"]:
            scale = size / float(shrink)
            for j in range(int(fm)):
                for i in range(int(fm)):
                    xc, yc = (i + 0.5) / scale, (j + 0.5) / scale
                    s = bmin / size
                    out.append((yc, xc, s, s))
                    s2 = math.sqrt(bmax * bmin) / size
                    out.append((yc, xc, s2, s2))
                    for r in ratios:
                        r = math.sqrt(r)
                        out.append((yc, xc, s / r, s * r))     # w * r, h / r
                        out.append((yc, xc, s * r, s / r))     # w / r, h * r
        a = np.asarray(out, np.float32)
        if params.get("clamp", True):
            np.clip(a, 0.0, 1.0, out=a)
        return a
    raise ModelError("anchor generator %r is not one trtssd has (pytorch-ssd); give "
                     "the anchors as a .npy file instead" % (kind,))


def load_anchors(value):
    if isinstance(value, dict):
        return generate_anchors(value)
    if not os.path.isfile(value):
        raise ModelError("anchors file %s does not exist; fix --anchors" % value)
    if value.lower().endswith(".npy"):
        a = np.load(value)
    else:
        with io.open(value, "r", encoding="utf-8") as f:
            a = json.load(f)
        if isinstance(a, dict):
            return generate_anchors(a)
    a = np.asarray(a, np.float32)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ModelError("anchors file %s holds shape %s; it must be [A, 4] (yc, xc, h, w)"
                         % (value, a.shape))
    return a


# ------------------------------------------------------------------------ keys -> spec

def _three(key, v):
    if len(v) == 1:
        return tuple(v) * 3
    if len(v) == 3:
        return tuple(v)
    raise ModelError("spec key %s needs one or three values, got %d" % (key, len(v)))


def spec_from_keys(name, height, width, num_classes, keys, kind, num_boxes=0, anchors=None):
    """A ModelSpec from spec keys over the generic defaults: raw pixels (mean 0, std 1), RGB,
    normalised decoded yxyx boxes, scores as given, background column 0, fast NMS at 0.5."""
    k = dict(keys)
    kind = k.get("output_kind", kind)
    fmt = k.get("box_format", "encoded" if kind == "raw" else "yxyx")
    if kind == "raw":
        if anchors is None:
            if "anchors" not in k:
                raise ModelError("%s: a raw model needs its anchors: give anchors (--anchors "
                                 "FILE.npy, or a generator in the JSON spec)" % name)
            anchors = load_anchors(k["anchors"])
    else:
        anchors = np.zeros((0, 4), np.float32)
    spec = ModelSpec(
        name=name, input_height=int(height), input_width=int(width), mean=(0.0,) * 3,
        scale=(1.0,) * 3, channel_order="RGB",
        num_classes=int(k.get("num_classes", num_classes)), anchors=anchors,
        box_coder=BoxCoder(), nms=NmsParams(score_threshold=0.0, iou_threshold=0.5,
                                            max_detections=100),
        outputs=OutputFormat(kind=kind, box_format=fmt), family="spec",
        num_boxes=int(num_boxes or 0))
    return apply_keys(spec, k)


def apply_keys(spec, keys):
    """``spec`` with the keys given replacing its fields (a new, validated spec)."""
    if not keys:
        return spec
    d = spec.to_dict()
    k = dict(keys)
    if "input_height" in k:
        d["input_height"], d["input_width"] = int(k["input_height"]), int(k["input_width"])
    if "channel_order" in k:
        d["channel_order"] = k["channel_order"]
    if "mean" in k:
        d["mean"] = list(_three("mean", k["mean"]))
    if "std" in k:
        d["scale"] = [1.0 / v for v in _three("std", k["std"])]
    if "scale" in k:
        d["scale"] = list(_three("scale", k["scale"]))
    o = d["outputs"]
    for key, field in (("output_kind", "kind"), ("box_format", "box_format"),
                       ("encoding_order", "encoding_order"), ("activation", "activation"),
                       ("class_offset", "class_offset")):
        if key in k:
            o[field] = k[key]
    if "box_units" in k:
        o["normalized"] = k["box_units"] == "normalized"
    if "background" in k:
        o["background"] = None if k["background"] == "none" else int(k["background"])
    if o["kind"] == "post_nms":
        o["box_format"] = o["box_format"] if o["box_format"] != "encoded" else "yxyx"
        d["nms"]["method"] = "none"
    if "num_classes" in k:
        d["num_classes"] = int(k["num_classes"])
    if "anchors" in k and o["kind"] == "raw":
        d["anchors"] = load_anchors(k["anchors"])
    if "scales" in k:
        s = k["scales"]
        if len(s) != 4:
            raise ModelError("spec key scales needs 4 values (y, x, h, w), got %d" % len(s))
        d["box_coder"] = dict(zip(("y_scale", "x_scale", "h_scale", "w_scale"), s))
    if "variances" in k:
        v = k["variances"]
        if len(v) != 2 or min(v) <= 0:
            raise ModelError("spec key variances needs 2 positive values (centre, size)")
        d["box_coder"] = dict(y_scale=1 / v[0], x_scale=1 / v[0], h_scale=1 / v[1],
                              w_scale=1 / v[1])
    n = d["nms"]
    for key, field in (("nms", "method"), ("iou_threshold", "iou_threshold"),
                       ("score_threshold", "score_threshold"),
                       ("nms_max_detections", "max_detections"),
                       ("score_inclusive", "score_inclusive"), ("iou_eps", "iou_eps"),
                       ("candidates_per_class", "candidates_per_class")):
        if key in k:
            n[field] = k[key]
    if o["kind"] == "post_nms":
        n["method"] = "none"
    if isinstance(d["anchors"], list):
        d["anchors"] = np.asarray(d["anchors"], np.float32).reshape(-1, 4)
    return ModelSpec.from_dict(d)


# ------------------------------------------------------------------------ command line

def add_spec_arguments(parser):
    """The spec keys as flags (``--input-blob`` ...), and ``--spec FILE``."""
    g = parser.add_argument_group("model spec (an ONNX trtssd does not recognise by itself; "
                                  "docs/MODELS.md)")
    g.add_argument("--spec", default=None, metavar="FILE",
                   help="JSON spec of the model (default: MODEL.json beside it)")
    for key, _, choices, help_text in KEYS:
        if key == "labels":
            continue    # the command's own --labels
        g.add_argument("--" + key.replace("_", "-"), dest="spec_" + key, default=None,
                       choices=choices, help=help_text)


def spec_overrides_from_args(args):
    """The spec keys given on the command line (parsed and checked), with 'spec' for --spec."""
    raw = {}
    for key, _, _, _ in KEYS:
        v = getattr(args, "spec_" + key, None)
        if v is not None:
            raw[key] = v
    keys = parse_keys(raw, "command line")
    if getattr(args, "spec", None):
        keys["spec"] = args.spec
    return keys


def model_for_args(model_path, args):
    """The model path the backends get for ``--model`` and the spec flags: unchanged unless
    it is an ONNX and spec flags were given (then the adapted ONNX in the cache)."""
    keys = spec_overrides_from_args(args)
    if not keys:
        return model_path
    if not str(model_path).lower().endswith(".onnx"):
        raise InputError("spec flags (--spec, --input-blob, ...) describe an ONNX model; %s is "
                         "not one" % model_path)
    from .onnx_models import prepare_onnx
    return prepare_onnx(model_path, keys, label_path=getattr(args, "labels", None))
