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


OVERLAYS = ("box", "labels", "conf", "none")


def parse_overlay(text):
    """The set of what to draw from ``box,labels,conf`` (any of them, comma-separated) or
    ``none``; None or "" gives all three."""
    if text is None or text == "":
        return frozenset(("box", "labels", "conf"))
    if isinstance(text, (set, frozenset)):        # already parsed
        if not set(text) <= {"box", "labels", "conf"}:
            raise InputError("overlay %s: use any of box, labels, conf" % (sorted(text),))
        return frozenset(text)
    if isinstance(text, (list, tuple)):
        parts = [str(p).strip().lower() for p in text]
    else:
        parts = [p.strip().lower() for p in str(text).split(",") if p.strip()]
    bad = [p for p in parts if p not in OVERLAYS]
    if bad or not parts:
        raise InputError("--overlay %s: use any of box, labels, conf (comma-separated), or "
                         "none" % (text,))
    if "none" in parts:
        if len(parts) > 1:
            raise InputError("--overlay %s: none draws nothing, so it goes alone" % (text,))
        return frozenset()
    return frozenset(parts)


def scaled_sizes(height, width):
    """(line thickness, font scale) for a frame: 2 px and 0.5 at 640x480, growing with the
    shorter side, so boxes and text read the same on 320x240 and 4K."""
    short = max(1, min(int(height), int(width)))
    thickness = max(1, int(round(short / 240.0)))
    font_scale = max(0.35, short / 960.0)
    return thickness, font_scale


# The layout's items, in drawing order (``Layout.items``):
#   (BOX, x1, y1, x2, y2, colour)   a box outline of ``Layout.thickness`` (cv2.rectangle)
#   (TAG, x1, y1, x2, y2, colour)   a filled rectangle, corners inclusive (cv2.rectangle, -1)
#   (TEXT, x, y, text, colour)      a text run, baseline origin (x, y) (cv2.putText, LINE_AA)
BOX, TAG, TEXT = "box", "tag", "text"
FONT = 0                # cv2.FONT_HERSHEY_SIMPLEX (its value; cv2 is imported lazily)


class Layout(object):
    """Where ``draw_detections`` puts everything on a frame of ``shape`` (H, W): ``items`` in
    drawing order (see BOX, TAG, TEXT above) with the frame's ``thickness``, ``font_scale``
    and ``text_thickness``. One layout, several rasterisers: OpenCV here (``rasterise``),
    the GPU in trtssd.io.draw_gpu."""
    __slots__ = ("shape", "thickness", "font_scale", "text_thickness", "items")

    def __init__(self, shape, thickness, font_scale, text_thickness, items):
        self.shape = tuple(int(v) for v in shape[:2])
        self.thickness, self.font_scale = int(thickness), float(font_scale)
        self.text_thickness = int(text_thickness)
        self.items = items


def class_name(cid, name=None, labels=None):
    """What a tag calls class ``cid``: ``name`` (the detection's own label) when given, else
    its name in ``labels`` (a LabelMap or list by class id), else the id."""
    if name is not None:
        return str(name)
    if labels is not None:
        return labels.name(cid) if hasattr(labels, "name") else (
            str(labels[cid]) if 0 <= cid < len(labels) else str(cid))
    return str(cid)


def label_text(name, score, what):
    """A tag's text: "name 0.87" with what ``what`` (parse_overlay's set) asks for."""
    parts = []
    if "labels" in what:
        parts.append(name)
    if "conf" in what:
        parts.append("%.2f" % float(score))
    return " ".join(parts)


def _label_text(detections, i, cid, labels, what):
    name = None
    if "labels" in what:
        name = class_name(cid, None if detections.labels is None else detections.labels[i],
                          labels)
    return label_text(name, detections.scores[i], what)


def layout_detections(shape, detections, labels=None, thickness=None, font_scale=None,
                      show_scores=True, overlay=None):
    """The ``Layout`` of ``detections`` on a frame of ``shape`` (H, W[, C]): each box clamped
    to the frame in its class colour (corners sorted), with a filled tag "name 0.87" above it,
    or inside the box's top when there is no room above. Arguments as ``draw_detections``."""
    cv2 = _cv2()
    what = parse_overlay(overlay)
    if not show_scores:
        what = what - {"conf"}
    h, w = int(shape[0]), int(shape[1])
    t_auto, f_auto = scaled_sizes(h, w)
    thickness = t_auto if thickness is None else int(thickness)
    font_scale = f_auto if font_scale is None else float(font_scale)
    text_thick = max(1, thickness // 2)
    items = []
    if not what:
        return Layout((h, w), thickness, font_scale, text_thick, items)
    boxes = np.asarray(detections.boxes, np.float64).reshape(-1, 4)
    for i in range(len(detections)):
        x1, y1, x2, y2 = [int(round(float(v))) for v in boxes[i]]
        x1, x2 = sorted((max(0, min(x1, w - 1)), max(0, min(x2, w - 1))))
        y1, y2 = sorted((max(0, min(y1, h - 1)), max(0, min(y2, h - 1))))
        cid = int(detections.class_ids[i])
        colour = class_colour(cid)
        if "box" in what:
            items.append((BOX, x1, y1, x2, y2, colour))
        text = _label_text(detections, i, cid, labels, what)
        if not text:
            continue
        (tw, th), base = cv2.getTextSize(text, FONT, font_scale, text_thick)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else min(h - 1, y1 + th + base + 2)
        items.append((TAG, x1, ty - th - base, min(w - 1, x1 + tw + 2), ty, colour))
        items.append((TEXT, x1 + 1, ty - base, text, (0, 0, 0)))
    return Layout((h, w), thickness, font_scale, text_thick, items)


def rasterise(frame, layout):
    """Draw ``layout`` on ``frame`` (BGR uint8, writable) with OpenCV; returns the frame."""
    cv2 = _cv2()
    for item in layout.items:
        kind = item[0]
        if kind == BOX:
            cv2.rectangle(frame, item[1:3], item[3:5], item[5], layout.thickness)
        elif kind == TAG:
            cv2.rectangle(frame, item[1:3], item[3:5], item[5], -1)
        else:
            cv2.putText(frame, item[3], item[1:3], FONT, layout.font_scale, item[4],
                        layout.text_thickness, cv2.LINE_AA)
    return frame


def draw_detections(frame, detections, labels=None, copy=False, thickness=None,
                    font_scale=None, show_scores=True, overlay=None):
    """Draw each box in its class colour with a filled label tag "name 0.87" above it.

    ``labels``: a LabelMap or list of names by class id, used when ``detections.labels`` is
    None (else the class id is written). ``overlay``: what to draw (see ``parse_overlay``;
    default boxes, labels and scores). ``thickness``/``font_scale``: default scaled with the
    frame (``scaled_sizes``). Returns the frame drawn on. The placement is
    ``layout_detections``; the pixels are OpenCV's (``rasterise``).
    """
    if copy:
        frame = np.ascontiguousarray(frame).copy()
    _check_frame(frame)
    return rasterise(frame, layout_detections(frame.shape, detections, labels, thickness,
                                              font_scale, show_scores, overlay))


def draw_fps(frame, fps, copy=False, origin=(10, 30), font_scale=0.8):
    """Write "FPS 123.4" at ``origin`` (white on a dark box, readable on any picture)."""
    cv2 = _cv2()
    if copy:
        frame = np.ascontiguousarray(frame).copy()
    _check_frame(frame)
    text = "FPS %.1f" % float(fps)
    font = FONT
    (tw, th), base = cv2.getTextSize(text, font, font_scale, 2)
    x, y = int(origin[0]), int(origin[1])
    cv2.rectangle(frame, (x - 4, y - th - 4), (x + tw + 4, y + base + 2), (32, 32, 32), -1)
    cv2.putText(frame, text, (x, y), font, font_scale, (255, 255, 255), 2, cv2.LINE_AA)
    return frame
