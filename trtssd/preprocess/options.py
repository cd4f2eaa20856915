"""What the network wants from a frame (``PreprocessOptions``) and the input formats.

Both paths, ``cpu_preprocess`` (the reference) and ``GpuPreprocessor``, produce, per frame,
``(pixel - mean[c]) * scale[c]`` with the channels in ``channel_order``, resized to ``width`` x
``height`` with OpenCV's INTER_LINEAR (half-pixel centres) or INTER_NEAREST semantics,
optionally letterboxed (aspect kept, the rest filled with ``pad_value``), as float32 or
float16, NCHW or NHWC, with a batch dimension.

``pad_value`` is in *pixel* units (0-255, before normalisation), like the border value of
``cv2.copyMakeBorder``: padding with 114 gives what a 114-grey border would give.

YUV input (``YUV_FORMATS``): NV12, NV21, I420, YV12 (4:2:0; OpenCV's single buffer of
(H*3/2, W) bytes, or planes: trtssd.preprocess.frames.YuvFrame) and YUYV, UYVY (packed 4:2:2,
(H, W, 2)); H and W even for 4:2:0, W even for 4:2:2. Each pixel is converted to RGB first, as
``cv2.cvtColor(frame, cv2.COLOR_YUV2RGB_<format>)`` does (chroma of a 2x2 or 2x1 block shared,
integer arithmetic with 20-bit coefficients, rounded, saturated to 0-255), then resized and
normalised as an RGB frame. ``yuv_matrix`` BT601 or BT709, ``yuv_range`` limited (Y 16-235,
C 16-240; Y below 16 counts as 16, as in OpenCV) or full (0-255). BT601 limited is OpenCV's
conversion with OpenCV's coefficients (1.164, 1.596, -0.813, -0.391, 2.018); the others use the
exact coefficients of their matrix and range (``yuv_coefficients``).
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

YUV_FORMATS = {
    # format: (layout, byte offsets). "420sp" (semi-planar): U, V in a chroma pair; "420p"
    # (planar): which of the two planes after Y is U and which V; "422" (packed):
    # Y0, U, Y1, V in a 4-byte macropixel.
    "NV12": ("420sp", (0, 1)),
    "NV21": ("420sp", (1, 0)),
    "I420": ("420p", (0, 1)),
    "YV12": ("420p", (1, 0)),
    "YUYV": ("422", (0, 1, 2, 3)),
    "UYVY": ("422", (1, 0, 3, 2)),
}
YUV_MATRICES = {"BT601": (0.299, 0.114), "BT709": (0.2126, 0.0722)}    # (Kr, Kb)
YUV_RANGES = ("limited", "full")
_YUV_LAYOUT_CODE = {"420sp": 1, "420p": 2, "422": 3}
YUV_SHIFT = 20
# OpenCV's BT.601 limited-range coefficients (modules/imgproc color_yuv: ITUR_BT_601_*), x 2^20.
_OPENCV_BT601 = (1220542, 2116026, -409993, -852492, 1673527)


def yuv_coefficients(matrix="BT601", yuv_range="limited"):
    """(cy, cub, cug, cvg, cvr, y_offset): R = (max(Y - y_offset, 0) cy + cvr (V - 128)) / 2^20,
    G with cug (U - 128) + cvg (V - 128), B with cub (U - 128); integers (x 2^20)."""
    if matrix == "BT601" and yuv_range == "limited":
        return _OPENCV_BT601 + (16,)
    kr, kb = YUV_MATRICES[matrix]
    kg = 1.0 - kr - kb
    ys, cs, off = (255.0 / 219.0, 255.0 / 224.0, 16) if yuv_range == "limited" else (1.0, 1.0, 0)
    one = float(1 << YUV_SHIFT)
    vals = (ys, 2.0 * (1.0 - kb) * cs, -2.0 * kb * (1.0 - kb) / kg * cs,
            -2.0 * kr * (1.0 - kr) / kg * cs, 2.0 * (1.0 - kr) * cs)
    return tuple(int(round(v * one)) for v in vals) + (off,)


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
    yuv_matrix: str = "BT601"
    yuv_range: str = "limited"

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
                  ("input_format", tuple(INPUT_FORMATS) + tuple(YUV_FORMATS)),
                  ("channel_order", ("RGB", "BGR")), ("yuv_matrix", tuple(YUV_MATRICES)),
                  ("yuv_range", YUV_RANGES))
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
    def is_yuv(self):
        return self.input_format in YUV_FORMATS

    @property
    def yuv_layout(self):
        """"420sp", "420p", "422", or None for the RGB and grey formats."""
        return YUV_FORMATS[self.input_format][0] if self.is_yuv else None

    @property
    def in_channels(self):
        """Channels of a frame's array: 1, 3, 4 (pixels), 1 (a 4:2:0 buffer), 2 (4:2:2)."""
        if self.is_yuv:
            return 2 if self.yuv_layout == "422" else 1
        return INPUT_FORMATS[self.input_format][0]

    def frame_bytes(self, height, width):
        """Bytes of a packed frame of ``height`` x ``width`` pixels in this format."""
        if self.yuv_layout in ("420sp", "420p"):
            return height * width * 3 // 2
        return height * width * self.in_channels

    def buffer_shape(self, height, width):
        """The array shape of a frame of ``height`` x ``width`` pixels: (H, W, C), (H, W) for
        GRAY, (H*3/2, W) for 4:2:0, (H, W, 2) for 4:2:2."""
        if self.yuv_layout in ("420sp", "420p"):
            return (height * 3 // 2, width)
        if self.in_channels == 1:
            return (height, width)
        return (height, width, self.in_channels)

    @property
    def np_dtype(self):
        return np.dtype(self.dtype)

    def source_channels(self):
        """Index in the input pixel (YUV: in the converted R, G, B) of each output channel."""
        r, g, b = (0, 1, 2) if self.is_yuv else INPUT_FORMATS[self.input_format][1]
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
        d = {"OUT_C0_SRC": c0, "OUT_C1_SRC": c1, "OUT_C2_SRC": c2,
             "OUT_HALF": int(self.dtype == "float16"), "OUT_NHWC": int(self.layout == "NHWC"),
             "NEAREST": int(self.interpolation == "nearest")}
        if not self.is_yuv:
            d["IN_CH"] = self.in_channels
            return d
        layout, offs = YUV_FORMATS[self.input_format]
        d["YUV"] = _YUV_LAYOUT_CODE[layout]
        if layout == "420sp":
            d["YUV_U"], d["YUV_V"] = offs
        elif layout == "422":
            d["YUV_Y0"], d["YUV_U"], d["YUV_Y1"], d["YUV_V"] = offs
        cy, cub, cug, cvg, cvr, off = yuv_coefficients(self.yuv_matrix, self.yuv_range)
        d.update(YUV_CY=cy, YUV_CUB=cub, YUV_CUG=cug, YUV_CVG=cvg, YUV_CVR=cvr, YUV_YOFF=off)
        return d
