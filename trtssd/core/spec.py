"""ModelSpec: what preprocessing and decoding must know about an SSD detector.

It is read from the model (the TFLite file) by the converter and travels with every derived
artefact: ONNX metadata under the key ``trtssd.spec`` and the TensorRT engine's JSON sidecar.
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


@dataclass
class NmsParams:
    """The options of TFLite's TFLite_Detection_PostProcess op, as the model holds them."""
    score_threshold: float = 1e-8
    iou_threshold: float = 0.6
    max_detections: int = 10
    max_classes_per_detection: int = 1
    detections_per_class: int = 100
    use_regular_nms: bool = False


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

    def __post_init__(self):
        self.anchors = np.ascontiguousarray(self.anchors, dtype=np.float32)
        if self.anchors.ndim != 2 or self.anchors.shape[1] != 4 or len(self.anchors) == 0:
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
        if self.num_classes < 2:
            raise ModelError("ModelSpec %r: num_classes must count the background too" % self.name)

    @property
    def num_anchors(self):
        return int(self.anchors.shape[0])

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
        }

    def to_json(self):
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d):
        try:
            return cls(
                name=d["name"], input_height=int(d["input_height"]),
                input_width=int(d["input_width"]), mean=tuple(d["mean"]),
                scale=tuple(d["scale"]), channel_order=d["channel_order"],
                num_classes=int(d["num_classes"]),
                anchors=np.asarray(d["anchors"], dtype=np.float32),
                box_coder=BoxCoder(**d["box_coder"]), nms=NmsParams(**d["nms"]),
                synthetic=bool(d.get("synthetic", False)))
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
