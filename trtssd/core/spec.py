"""ModelSpec: what preprocessing and decoding must know about an SSD detector.

It is read from the model (the TFLite file by the converter, a foreign ONNX by
trtssd.models.onnx_models, a JSON sidecar) and travels with every derived artefact: ONNX
metadata under the key ``trtssd.spec`` and the TensorRT engine's JSON sidecar.

Every network trtssd runs has the same two outputs, ``box_encodings`` [N, A, 4] and
``class_scores`` [N, A, C] (foreign graphs are renamed, or packed, to that); ``outputs``
(OutputFormat) says what their numbers mean, ``nms`` (NmsParams) how they are suppressed.
The defaults of both are the TFLite COCO SSD's, so a spec without them means what it always
meant.
"""
import json

import numpy as np
from dataclasses import dataclass, field

from .errors import ModelError

SPEC_METADATA_KEY = "trtssd.spec"


@dataclass
class BoxCoder:
    """Scales of the centre-size box coder: box = anchor + encoding / scale."""
    y_scale: float = 10.0
    x_scale: float = 10.0
    h_scale: float = 5.0
    w_scale: float = 5.0


NMS_METHODS = ("fast", "per_class", "none")
BOX_FORMATS = ("encoded", "yxyx", "xyxy", "cxcywh")
ENCODING_ORDERS = ("yxhw", "xywh")
ACTIVATIONS = ("none", "sigmoid", "softmax")
OUTPUT_KINDS = ("raw", "decoded", "post_nms")


@dataclass
class NmsParams:
    """How detections are selected. The first six fields are the options of TFLite's
    TFLite_Detection_PostProcess op, as the model holds them; the rest choose another
    family's semantics (their defaults are TFLite's):

    - ``method``: 'fast' = TFLite's fast NMS (the best non-background class per anchor, then
      class-agnostic greedy NMS); 'per_class' = every (anchor, class) pair above the threshold,
      greedy NMS within each class (pytorch-ssd's predictor, TensorRT's EfficientNMS); 'none'
      = the model did its own NMS (the post-NMS kind): threshold and cap only.
    - ``score_inclusive``: a candidate needs score >= threshold (TFLite) or > (pytorch-ssd).
    - ``iou_eps``: added to the IoU's denominator (pytorch-ssd's iou_of: 1e-5).
    - ``candidates_per_class``: per_class only, the best this many of each class enter its
      NMS (pytorch-ssd's candidate_size, 200); 0 = all.
    """
    score_threshold: float = 1e-8
    iou_threshold: float = 0.6
    max_detections: int = 10
    max_classes_per_detection: int = 1
    detections_per_class: int = 100
    use_regular_nms: bool = False
    method: str = "fast"
    score_inclusive: bool = True
    iou_eps: float = 0.0
    candidates_per_class: int = 0

    def __post_init__(self):
        if self.method not in NMS_METHODS:
            raise ModelError("nms method %r is not one of %s; fix the spec's nms.method"
                             % (self.method, ", ".join(NMS_METHODS)))
        self.candidates_per_class = int(self.candidates_per_class)
        self.iou_eps = float(self.iou_eps)
        self.score_inclusive = bool(self.score_inclusive)


@dataclass
class OutputFormat:
    """What the numbers of ``box_encodings`` and ``class_scores`` mean.

    - ``kind``: 'raw' (centre-size encodings against ``spec.anchors``), 'decoded' (boxes),
      'post_nms' (the model's own NMS result, packed by trtssd into decoded boxes and one-hot
      scores, rows past the model's count scored -1). Only 'raw' decodes.
    - ``box_format``: 'encoded' for raw (order ``encoding_order``: 'yxhw' = TF's
      (ty, tx, th, tw), 'xywh' = pytorch-ssd's (tx, ty, tw, th)); decoded boxes are 'yxyx'
      (ymin, xmin, ymax, xmax), 'xyxy' or 'cxcywh' (x centre, y centre, width, height).
    - ``normalized``: coordinates in 0..1 of the network input (True) or in its pixels.
    - ``activation``: applied by trtssd to ``class_scores``: 'none' (already probabilities),
      'sigmoid' or 'softmax' (over all C columns, background included).
    - ``background``: the score column that is never a detection, or None.
    - ``class_offset``: post_nms only, added to the model's class ids to give score columns.
    """
    kind: str = "raw"
    box_format: str = "encoded"
    encoding_order: str = "yxhw"
    normalized: bool = True
    activation: str = "none"
    background: object = 0
    class_offset: int = 0

    def __post_init__(self):
        for name, allowed in (("kind", OUTPUT_KINDS), ("box_format", BOX_FORMATS),
                              ("encoding_order", ENCODING_ORDERS),
                              ("activation", ACTIVATIONS)):
            if getattr(self, name) not in allowed:
                raise ModelError("output %s %r is not one of %s; fix the spec's outputs.%s"
                                 % (name, getattr(self, name), ", ".join(allowed), name))
        if (self.kind == "raw") != (self.box_format == "encoded"):
            raise ModelError("output kind %r with box_format %r: raw outputs are 'encoded' "
                             "and decoded ones are yxyx, xyxy or cxcywh; fix the spec"
                             % (self.kind, self.box_format))
        if self.background is not None:
            self.background = int(self.background)
        self.normalized = bool(self.normalized)
        self.class_offset = int(self.class_offset)


@dataclass
class ModelSpec:
    """Input format and output decoding of one SSD detector.

    Network input: float [N, 3, input_height, input_width], value (pixel - mean[c]) * scale[c],
    channels in ``channel_order``. Raw outputs: box encodings [N, A, 4] (ty, tx, th, tw) and
    class scores [N, A, num_classes] after the sigmoid, column 0 the background.
    """
    name: str
    input_height: int
    input_width: int
    mean: tuple
    scale: tuple
    channel_order: str
    num_classes: int
    anchors: np.ndarray
    box_coder: BoxCoder = field(default_factory=BoxCoder)
    nms: NmsParams = field(default_factory=NmsParams)
    synthetic: bool = False
    outputs: OutputFormat = field(default_factory=OutputFormat)
    family: str = "tflite-ssd"
    batch: int = 0               # the graph's fixed batch size; 0 = dynamic
    source: dict = field(default_factory=dict)   # facts of the original file, for `info`
    num_boxes: int = 0           # decoded/post-NMS kinds: rows of the outputs (no anchors)

    def __post_init__(self):
        self.anchors = np.ascontiguousarray(self.anchors, dtype=np.float32)
        if self.anchors.ndim == 1 and self.anchors.size == 0:
            self.anchors = self.anchors.reshape(0, 4)
        if self.anchors.ndim != 2 or self.anchors.shape[1] != 4 or (
                len(self.anchors) == 0 and self.outputs.kind == "raw"):
            raise ModelError("ModelSpec %r: anchors must be [A, 4] (yc, xc, h, w), got shape %s; "
                             "the model file is not an SSD of the supported family"
                             % (self.name, self.anchors.shape))
        self.mean = tuple(float(v) for v in self.mean)
        self.scale = tuple(float(v) for v in self.scale)
        if len(self.mean) != 3 or len(self.scale) != 3:
            raise ModelError("ModelSpec %r: mean and scale need 3 values each" % self.name)
        if self.channel_order not in ("RGB", "BGR"):
            raise ModelError("ModelSpec %r: channel_order must be 'RGB' or 'BGR', got %r"
                             % (self.name, self.channel_order))
        bg = self.outputs.background
        if self.num_classes < (2 if bg is not None else 1):
            raise ModelError("ModelSpec %r: num_classes must count the background too" % self.name)
        if bg is not None and not 0 <= bg < self.num_classes:
            raise ModelError("ModelSpec %r: background column %d outside 0..%d; fix the spec's "
                             "background" % (self.name, bg, self.num_classes - 1))
        self.num_boxes = int(self.num_boxes)
        if self.outputs.kind == "raw":
            self.num_boxes = len(self.anchors)
        elif self.num_boxes < 1:
            raise ModelError("ModelSpec %r: a decoded model needs its box count (num_boxes > 0)"
                             % self.name)

    @property
    def num_anchors(self):
        """Rows of the two outputs (A): the anchors, or a decoded model's box count."""
        return self.num_boxes

    @property
    def foreground_columns(self):
        """The score columns that can be detections (every column but the background)."""
        return [c for c in range(int(self.num_classes)) if c != self.outputs.background]

    def to_dict(self):
        return {
            "name": self.name,
            "input_height": int(self.input_height),
            "input_width": int(self.input_width),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "channel_order": self.channel_order,
            "num_classes": int(self.num_classes),
            "anchors": self.anchors.round(8).tolist(),
            "box_coder": vars(self.box_coder).copy(),
            "nms": vars(self.nms).copy(),
            "synthetic": bool(self.synthetic),
            "outputs": vars(self.outputs).copy(),
            "family": self.family,
            "batch": int(self.batch),
            "num_boxes": self.num_boxes,
            "source": dict(self.source),
        }

    def to_json(self):
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d):
        try:
            spec = cls(
                name=d["name"], input_height=int(d["input_height"]),
                input_width=int(d["input_width"]), mean=tuple(d["mean"]),
                scale=tuple(d["scale"]), channel_order=d["channel_order"],
                num_classes=int(d["num_classes"]),
                anchors=np.asarray(d["anchors"], dtype=np.float32),
                box_coder=BoxCoder(**d["box_coder"]), nms=NmsParams(**d["nms"]),
                synthetic=bool(d.get("synthetic", False)),
                outputs=OutputFormat(**d.get("outputs", {})),
                family=str(d.get("family", "tflite-ssd")), batch=int(d.get("batch", 0)),
                source=dict(d.get("source", {})), num_boxes=int(d.get("num_boxes", 0)))
            return spec
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError("model metadata %r is not a trtssd ModelSpec (%s: %s); re-convert "
                             "the model with `trtssd convert`"
                             % (SPEC_METADATA_KEY, type(e).__name__, e))

    @classmethod
    def from_json(cls, text):
        try:
            d = json.loads(text)
        except ValueError as e:
            raise ModelError("model metadata %r is not valid JSON (%s); re-convert the model"
                             % (SPEC_METADATA_KEY, e))
        return cls.from_dict(d)
