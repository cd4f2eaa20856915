"""What the network wants from a frame (``PreprocessOptions``) and the input formats.

Both paths, ``cpu_preprocess`` (the reference) and ``GpuPreprocessor``, produce, per frame,
``(pixel - mean[c]) * scale[c]`` with the channels in ``channel_order``, resized to ``width`` x
``height`` with OpenCV's INTER_LINEAR (half-pixel centres) or INTER_NEAREST semantics,
optionally letterboxed (aspect kept, the rest filled with ``pad_value``), as float32 or
float16, NCHW or NHWC, with a batch dimension.

``pad_value`` is in *pixel* units (0-255, before normalisation), like the border value of
``cv2.copyMakeBorder``: padding with 114 gives what a 114-grey border would give.
"""
import numpy as np
from dataclasses import dataclass

from ..core.errors import InputError

INPUT_FORMATS = {
    # format: (channels, index of R, G, B in a pixel)
    "BGR": (3, (2, 1, 0)),
    "RGB": (3, (0, 1, 2)),
    "BGRA": (4, (2, 1, 0)),
    "RGBA": (4, (0, 1, 2)),
    "GRAY": (1, (0, 0, 0)),
}


def _three(name, value):
    if np.isscalar(value):
        value = (value,) * 3
    try:
        value = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError("%s must be a number or 3 numbers, got %r" % (name, value))
    if len(value) != 3 or not all(np.isfinite(value)):
        raise InputError("%s must be 3 finite numbers (one per output channel), got %r"
                         % (name, value))
    return value


@dataclass
class PreprocessOptions:
    """What the network wants. Validates itself; see the module docstring for the semantics.

    TF SSD ``x*2/255-1``: mean=127.5, scale=1/127.5. Quantised SSD ``(x-128)/128``: mean=128,
    scale=1/128. ImageNet: mean=(123.675, 116.28, 103.53), scale=(1/58.395, 1/57.12, 1/57.375)
    with channel_order='RGB'.
    """
    width: int = 300
    height: int = 300
    dtype: str = "float32"
    layout: str = "NCHW"
    interpolation: str = "linear"
    input_format: str = "BGR"
    channel_order: str = "RGB"
    mean: tuple = (127.5, 127.5, 127.5)
    scale: tuple = (1 / 127.5, 1 / 127.5, 1 / 127.5)
    letterbox: bool = False
    pad_value: float = 0.0

    def __post_init__(self):
        try:
            self.width, self.height = int(self.width), int(self.height)
        except (TypeError, ValueError):
            raise InputError("width and height must be integers, got %r x %r"
                             % (self.width, self.height))
        if not (1 <= self.width <= 16384 and 1 <= self.height <= 16384):
            raise InputError("output size %dx%d is out of range: width and height must be 1..16384"
                             % (self.width, self.height))
        self.dtype = str(np.dtype(self.dtype)) if self.dtype in (np.float32, np.float16) else self.dtype
        checks = (("dtype", ("float32", "float16")), ("layout", ("NCHW", "NHWC")),
                  ("interpolation", ("linear", "nearest")),
                  ("input_format", tuple(INPUT_FORMATS)), ("channel_order", ("RGB", "BGR")))
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise InputError("%s=%r is not supported: use one of %s"
                                 % (name, getattr(self, name), ", ".join(allowed)))
        self.mean = _three("mean", self.mean)
        self.scale = _three("scale", self.scale)
        self.letterbox = bool(self.letterbox)
        self.pad_value = float(self.pad_value)
        if not np.isfinite(self.pad_value):
            raise InputError("pad_value must be finite (a pixel value, 0-255), got %r"
                             % self.pad_value)

    @classmethod
    def from_spec(cls, spec, input_format="BGR", **overrides):
        """Options for a ModelSpec's network input; ``overrides`` replace any field."""
        kw = dict(width=spec.input_width, height=spec.input_height, mean=spec.mean,
                  scale=spec.scale, channel_order=spec.channel_order, input_format=input_format)
        kw.update(overrides)
        return cls(**kw)

    @property
    def in_channels(self):
        return INPUT_FORMATS[self.input_format][0]

    @property
    def np_dtype(self):
        return np.dtype(self.dtype)

    def source_channels(self):
        """Index in the input pixel of each output channel."""
        r, g, b = INPUT_FORMATS[self.input_format][1]
        return (r, g, b) if self.channel_order == "RGB" else (b, g, r)

    def frame_shape(self):
        """(H, W, 3) or (3, H, W): one frame of the output."""
        if self.layout == "NCHW":
            return (3, self.height, self.width)
        return (self.height, self.width, 3)

    def output_shape(self, n):
        return (int(n),) + self.frame_shape()

    def normalised_pad(self):
        """pad_value after normalisation, per output channel, as float32 (what both paths write)."""
        m = np.asarray(self.mean, np.float32)
        k = np.asarray(self.scale, np.float32)
        return (np.float32(self.pad_value) - m) * k

    def kernel_defines(self):
        c0, c1, c2 = self.source_channels()
        return {"IN_CH": self.in_channels, "OUT_C0_SRC": c0, "OUT_C1_SRC": c1, "OUT_C2_SRC": c2,
                "OUT_HALF": int(self.dtype == "float16"), "OUT_NHWC": int(self.layout == "NHWC"),
                "NEAREST": int(self.interpolation == "nearest")}
