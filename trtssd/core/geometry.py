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
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        return _net_to_frame(b[:, 0::2], b[:, 1::2], self, None)

    def to_net(self, boxes):
        """Boxes [K, 4] (x1, y1, x2, y2) in frame pixels -> network-input pixels."""
        b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        b[:, 0::2] = b[:, 0::2] * self.scale_x + self.pad_x
        b[:, 1::2] = b[:, 1::2] * self.scale_y + self.pad_y
        return b


def _net_to_frame(x_net, y_net, geometry, net_size):
    """x [K, 2] and y [K, 2] (float64) in network-input pixels -> boxes [K, 4] (x1, y1, x2, y2)
    float32 in frame pixels, clipped to the frame; ``geometry`` None: kept in network-input
    pixels, clipped to ``net_size`` (width, height)."""
    if geometry is None:
        fw, fh = float(net_size[0]), float(net_size[1])
        xs, ys = x_net, y_net
    else:
        fw, fh = float(geometry.frame_width), float(geometry.frame_height)
        xs = (x_net - float(geometry.pad_x)) / float(geometry.scale_x)
        ys = (y_net - float(geometry.pad_y)) / float(geometry.scale_y)
    xs = np.clip(xs, 0.0, fw)
    ys = np.clip(ys, 0.0, fh)
    return np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1).astype(np.float32)


def boxes_to_frame(boxes_norm, geometry, input_width, input_height):
    """Normalised (ymin, xmin, ymax, xmax) [K, 4] -> frame pixels (x1, y1, x2, y2), clipped.

    ``geometry`` is the frame's FrameGeometry, or None to report network-input pixels.
    """
    b = np.asarray(boxes_norm, dtype=np.float64).reshape(-1, 4)
    x_net = b[:, [1, 3]] * float(input_width)
    y_net = b[:, [0, 2]] * float(input_height)
    return _net_to_frame(x_net, y_net, geometry, (input_width, input_height))
