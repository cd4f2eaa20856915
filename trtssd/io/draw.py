"""Drawing helpers for the sinks: boxes, labels with scores, an FPS overlay (OpenCV, lazy).

Frames are BGR uint8 [H, W, 3] numpy arrays, drawn in place unless ``copy=True``. A class
always gets the same colour (derived from its id), so a tracked object keeps its colour.
"""
import numpy as np

from ..core.env import import_cv2
from ..core.errors import InputError


_cv2 = import_cv2


def class_colour(class_id):
    """A stable, well-spread BGR colour (ints 0..255) for a class id."""
    # Golden-ratio walk around the hue circle; saturation/value high enough to read on video.
    h = (int(class_id) * 0.618033988749895) % 1.0
    i = int(h * 6.0)
    f = h * 6.0 - i
    v, s = 1.0, 0.85
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return (int(round(b * 255)), int(round(g * 255)), int(round(r * 255)))


def _check_frame(frame):
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 \
            or frame.shape[2] != 3:
        raise InputError("drawing needs a BGR uint8 frame [H, W, 3], got %s %s; convert with "
                         "cv2.cvtColor first" % (getattr(frame, "shape", type(frame).__name__),
                                                 getattr(frame, "dtype", "")))
    if not frame.flags.c_contiguous or not frame.flags.writeable:
        raise InputError("drawing in place needs a writable C-contiguous frame; pass copy=True "
                         "or np.ascontiguousarray(frame)")


def draw_detections(frame, detections, labels=None, copy=False, thickness=2, font_scale=0.5,
                    show_scores=True):
    """Draw each box in its class colour with a filled label tag "name 0.87" above it.

    ``labels``: a LabelMap or list of names by class id, used when ``detections.labels`` is
    None (else the class id is written). Returns the frame drawn on.
    """
    cv2 = _cv2()
    if copy:
        frame = np.ascontiguousarray(frame).copy()
    _check_frame(frame)
    h, w = frame.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(len(detections)):
        x1, y1, x2, y2 = [int(round(float(v))) for v in detections.boxes[i]]
        x1, x2 = max(0, min(x1, w - 1)), max(0, min(x2, w - 1))
        y1, y2 = max(0, min(y1, h - 1)), max(0, min(y2, h - 1))
        cid = int(detections.class_ids[i])
        colour = class_colour(cid)
        cv2.rectangle(frame, (x1, y1), (x2, y2), colour, thickness)
        if detections.labels is not None:
            name = detections.labels[i]
        elif labels is not None:
            name = labels.name(cid) if hasattr(labels, "name") else (
                str(labels[cid]) if 0 <= cid < len(labels) else str(cid))
        else:
            name = str(cid)
        text = "%s %.2f" % (name, float(detections.scores[i])) if show_scores else name
        (tw, th), base = cv2.getTextSize(text, font, font_scale, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else min(h - 1, y1 + th + base + 2)
        cv2.rectangle(frame, (x1, ty - th - base), (min(w - 1, x1 + tw + 2), ty), colour, -1)
        cv2.putText(frame, text, (x1 + 1, ty - base), font, font_scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return frame


def draw_fps(frame, fps, copy=False, origin=(10, 30), font_scale=0.8):
    """Write "FPS 123.4" at ``origin`` (white on a dark box, readable on any picture)."""
    cv2 = _cv2()
    if copy:
        frame = np.ascontiguousarray(frame).copy()
    _check_frame(frame)
    text = "FPS %.1f" % float(fps)
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, font_scale, 2)
    x, y = int(origin[0]), int(origin[1])
    cv2.rectangle(frame, (x - 4, y - th - 4), (x + tw + 4, y + base + 2), (32, 32, 32), -1)
    cv2.putText(frame, text, (x, y), font, font_scale, (255, 255, 255), 2, cv2.LINE_AA)
    return frame
