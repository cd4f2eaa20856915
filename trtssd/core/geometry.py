"""Where a frame lands in the network input, and the one mapping of boxes back to the frame.

The preprocessing resizes a ``frame_width`` x ``frame_height`` frame by ``scale_x``,
``scale_y`` and (letterbox) shifts it by ``pad_x``, ``pad_y``::

    x_net = x_frame * scale_x + pad_x        y_net = y_frame * scale_y + pad_y

``FrameGeometry`` records that per frame; boxes go back with ``to_frame`` (network-input
pixels) or ``boxes_to_frame`` (the normalised (ymin, xmin, ymax, xmax) a detector outputs), both
through ``_net_to_frame``, clipped to the frame.
"""
import numpy as np
from dataclasses import dataclass


@dataclass(frozen=True)
class FrameGeometry:
    """How one frame maps into the network input: ``x_net = x_frame * scale_x + pad_x``."""
    frame_width: int
    frame_height: int
    scale_x: float
    scale_y: float
    pad_x: int = 0
    pad_y: int = 0

    @classmethod
    def compute(cls, frame_width, frame_height, options):
        """Geometry of a frame under ``options`` (anything with ``width``, ``height`` and
        ``letterbox``, as PreprocessOptions has; letterbox: centred, aspect kept)."""
        w, h = int(frame_width), int(frame_height)
        if options.letterbox:
            r = min(options.width / float(w), options.height / float(h))
            nw = max(1, min(options.width, int(round(w * r))))
            nh = max(1, min(options.height, int(round(h * r))))
            return cls(w, h, nw / float(w), nh / float(h),
                       (options.width - nw) // 2, (options.height - nh) // 2)
        return cls(w, h, options.width / float(w), options.height / float(h), 0, 0)

    @property
    def inner_size(self):
        """(width, height) of the resized frame inside the network input."""
        return (int(round(self.frame_width * self.scale_x)),
                int(round(self.frame_height * self.scale_y)))

    def to_frame(self, boxes):
        """Boxes [K, 4] (x1, y1, x2, y2) in network-input pixels -> frame pixels, clipped."""
        return _net_to_frame(np.asarray(boxes, np.float64).reshape(-1, 4),
                             _constants(self, None))

    def to_net(self, boxes):
        """Boxes [K, 4] (x1, y1, x2, y2) in frame pixels -> network-input pixels."""
        b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        b[:, 0::2] = b[:, 0::2] * self.scale_x + self.pad_x
        b[:, 1::2] = b[:, 1::2] * self.scale_y + self.pad_y
        return b


def _constants(geometry, net_size):
    """(size, pad, scale, limit): float64 [4] arrays of the mapping in (x, y, x, y) order:
    the network input's size (normalised boxes to its pixels; None without ``net_size``), the
    geometry's pad and scale (None without a geometry) and the clip limit. Made once per
    geometry and network size and kept on the geometry (geometries are cached per frame size
    upstream), so a result does not rebuild them."""
    key = None if net_size is None else (float(net_size[0]), float(net_size[1]))
    memo = None
    if geometry is not None:
        memo = geometry.__dict__.get("_to_frame_constants")
        if memo is None:
            memo = {}
            object.__setattr__(geometry, "_to_frame_constants", memo)   # not a field: eq, hash unchanged
        consts = memo.get(key)
        if consts is not None:
            return consts
    size = None if key is None else np.array(key + key)
    if geometry is None:
        return size, None, None, size
    px, py = float(geometry.pad_x), float(geometry.pad_y)
    sx, sy = float(geometry.scale_x), float(geometry.scale_y)
    fw, fh = float(geometry.frame_width), float(geometry.frame_height)
    consts = memo[key] = (size, np.array((px, py, px, py)), np.array((sx, sy, sx, sy)),
                          np.array((fw, fh, fw, fh)))
    return consts


def _net_to_frame(xy, constants):
    """Boxes [K, 4] (x1, y1, x2, y2) float64 in network-input pixels -> float32 frame pixels,
    clipped to the frame, by ``_constants`` of the frame's geometry (without a geometry: kept in
    network-input pixels, clipped to the input). Whole-array operations (a result of a few
    boxes costs a few NumPy calls, not one per coordinate): x = (x_net - pad_x) / scale_x, then
    the clip. The first operation makes a new array and the others work in it: ``xy`` is left
    as it is."""
    _, pad, scale, limit = constants
    if pad is not None:
        out = np.subtract(xy, pad)
        np.divide(out, scale, out=out)
        np.maximum(out, 0.0, out=out)
    else:
        out = np.maximum(xy, 0.0)
    # maximum then minimum: np.clip's result, NaN kept, without its dispatch
    np.minimum(out, limit, out=out)
    return out.astype(np.float32)


_XY_ORDER = np.array((1, 0, 3, 2))        # (ymin, xmin, ymax, xmax) -> (x1, y1, x2, y2)


def boxes_to_frame(boxes_norm, geometry, input_width, input_height):
    """Normalised (ymin, xmin, ymax, xmax) [K, 4] -> frame pixels (x1, y1, x2, y2), clipped.

    ``geometry`` is the frame's FrameGeometry, or None to report network-input pixels.
    Float32 boxes are read as they are (float32 times float64 is computed in float64, exactly
    as from a float64 copy).
    """
    b = np.asarray(boxes_norm)
    if b.dtype != np.float32:
        b = np.asarray(b, np.float64)
    constants = _constants(geometry, (input_width, input_height))
    xy = np.multiply(b.reshape(-1, 4)[:, _XY_ORDER], constants[0])      # a new float64 array
    return _net_to_frame(xy, constants)
