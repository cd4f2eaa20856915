"""SSD postprocessing in NumPy: the reference every GPU kernel test is held to, and the path of
the ``sync``/``async`` modes.

One frame's outputs, ``box_encodings`` [A, 4] and ``class_scores`` [A, C], become detections
in the steps below; ``spec.outputs`` (trtssd.core.spec.OutputFormat) and ``spec.nms``
(NmsParams) choose the variant of each step, and their defaults are TFLite's
``TFLite_Detection_PostProcess`` op with ``use_regular_nms=false`` (the COCO SSD's).

1. Boxes, as (ymin, xmin, ymax, xmax) in the model's units (0..1, or network-input pixels
   when ``outputs.normalized`` is false):

   - raw (``box_format='encoded'``): each anchor's centre-size encoding decoded against its
     anchor (ya, xa, ha, wa) with the box coder's scales; ``encoding_order='yxhw'`` reads the
     encoding as (ty, tx, th, tw) (TF), ``'xywh'`` as (tx, ty, tw, th) (pytorch-ssd)::

         yc = ty / y_scale * ha + ya        xc = tx / x_scale * wa + xa
         h  = exp(th / h_scale) * ha        w  = exp(tw / w_scale) * wa
         box = (yc - h/2, xc - w/2, yc + h/2, xc + w/2)

     computed in float64 and rounded to float32, as TFLite does (the CUDA kernel computes in
     float32: a few ulp apart, far below a pixel);
   - decoded: 'yxyx' as is, 'xyxy' reordered, 'cxcywh' to corners in float32
     (``c - 0.5 * size``, ``c + 0.5 * size``; the kernel does the same operations, bit for bit).

2. Scores: ``outputs.activation`` 'none' (as given), 'sigmoid' (``1 / (1 + exp(-x))``) or
   'softmax' over all C columns of the anchor (background included), computed in float64 and
   rounded to float32 (the kernel: float32, a few ulp apart). The ``outputs.background``
   column (None: no such column) is never a detection; class ids are score columns.

3. Candidates, by ``nms.method``:

   - 'fast' and 'none': per anchor its best foreground column on the *raw* scores (the first
     maximum wins a tie, as TFLite's ArgMax; every activation is monotonic), scored with the
     activated value of that column;
   - 'per_class': every (anchor, foreground column) pair;

   and of those, the ones whose score is ``>= score_threshold`` (``nms.score_inclusive``, TFLite)
   or ``> score_threshold`` (pytorch-ssd, EfficientNMS).

4. Order: score descending; equal scores by anchor index, then column (a total order: a
   stable sort, as TFLite's ``std::stable_sort``). With ``nms.candidates_per_class`` K > 0
   ('per_class' only) only the first K candidates of each column stay (pytorch-ssd's
   ``candidate_size``).

5. Greedy NMS over that order: keep the next unsuppressed candidate and suppress every later
   one whose IoU with it is ``> iou_threshold`` ('fast': any later candidate; 'per_class': a
   later one of the same column; 'none': nothing is suppressed). IoU is ``inter / (area_a +
   area_b - inter + nms.iou_eps)`` in float32, and 0 when either box has zero (or negative)
   area. Stop after ``max_detections`` kept boxes.

6. Boxes go to frame pixels: model units * (input_width, input_height) (normalised) gives
   network-input pixels, then FrameGeometry.to_frame inverts the preprocessing's resize and
   letterbox and clips to the frame (no geometry: network-input pixels, clipped to the input).

Thresholding first with the caller's threshold (say 0.3) instead of TFLite's 1e-8 and
filtering afterwards gives the same detections above it: the greedy walk visits boxes in
descending score order, so a box below the threshold is visited after every box above it and
can never suppress one of them, and the max_detections cut keeps a prefix of that order.

``max_detections=None`` means the model's own (``spec.nms.max_detections``, 10 for
detect.tflite), so results equal the TFLite interpreter's.
"""
import numpy as np

from ..core.detections import Detections, check_labels, label_names
from ..core.errors import InputError, ModelError
from ..core.geometry import boxes_to_frame

f32 = np.float32


# ----------------------------------------------------------------------------- boxes

def decode_boxes(encodings, anchors, box_coder, order="yxhw"):
    """Centre-size encodings [..., A, 4] against anchors [A, 4] (yc, xc, h, w) -> boxes
    [..., A, 4] (ymin, xmin, ymax, xmax), float32. ``order``: 'yxhw' reads an encoding as
    (ty, tx, th, tw), 'xywh' as (tx, ty, tw, th). Computed in float64 and rounded, as TFLite
    does."""
    enc = np.asarray(encodings, dtype=np.float64)
    anc = np.asarray(anchors, dtype=np.float64)
    if enc.shape[-1] != 4 or anc.ndim != 2 or anc.shape[1] != 4 or enc.shape[-2] != anc.shape[0]:
        raise InputError("decode_boxes: encodings [..., A, 4] and anchors [A, 4] needed, got %s "
                         "and %s; pass the model's box_encodings output and spec.anchors"
                         % (enc.shape, anc.shape))
    if order == "xywh":
        enc = enc[..., [1, 0, 3, 2]]
    elif order != "yxhw":
        raise InputError("decode_boxes: order must be 'yxhw' or 'xywh', got %r" % (order,))
    ya, xa, ha, wa = anc[:, 0], anc[:, 1], anc[:, 2], anc[:, 3]
    yc = enc[..., 0] / float(box_coder.y_scale) * ha + ya
    xc = enc[..., 1] / float(box_coder.x_scale) * wa + xa
    hh = (0.5 * np.exp(enc[..., 2] / float(box_coder.h_scale)) * ha).astype(f32)
    hw = (0.5 * np.exp(enc[..., 3] / float(box_coder.w_scale)) * wa).astype(f32)
    yc = yc.astype(f32)
    xc = xc.astype(f32)
    return np.stack([yc - hh, xc - hw, yc + hh, xc + hw], axis=-1)


def corner_boxes(boxes, box_format):
    """Decoded boxes [..., 4] in ``box_format`` ('yxyx', 'xyxy', 'cxcywh') -> (ymin, xmin, ymax,
    xmax) float32."""
    b = np.asarray(boxes, dtype=f32)
    if box_format == "yxyx":
        return b.copy()
    if box_format == "xyxy":
        return b[..., [1, 0, 3, 2]].copy()
    if box_format == "cxcywh":
        hw = b[..., 2] * f32(0.5)
        hh = b[..., 3] * f32(0.5)
        return np.stack([b[..., 1] - hh, b[..., 0] - hw, b[..., 1] + hh, b[..., 0] + hw], axis=-1)
    raise InputError("box format %r is not yxyx, xyxy or cxcywh" % (box_format,))


def frame_boxes(box_output, spec, rows=None):
    """The (ymin, xmin, ymax, xmax) boxes, model units, of one frame's ``box_encodings`` [A, 4]
    (only ``rows`` when given: anchor indices)."""
    out = spec.outputs
    b = np.asarray(box_output, dtype=f32)
    if rows is not None:
        b = b[rows]
    if out.box_format == "encoded":
        anchors = spec.anchors if rows is None else spec.anchors[rows]
        return decode_boxes(b, anchors, spec.box_coder, out.encoding_order)
    return corner_boxes(b, out.box_format)


def to_frame(boxes, geometry, spec):
    """(ymin, xmin, ymax, xmax) [K, 4] in the model's units -> frame pixels (x1, y1, x2, y2),
    clipped (trtssd.core.geometry.boxes_to_frame, the one mapping). ``geometry``: the
    preprocessing's FrameGeometry, or None for network-input pixels (clipped to the input)."""
    w, h = spec.input_width, spec.input_height
    if not spec.outputs.normalized:      # network-input pixels: to 0..1 first (float64)
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return boxes_to_frame(b / np.array([h, w, h, w], np.float64), geometry, w, h)
    return boxes_to_frame(boxes, geometry, w, h)


# ----------------------------------------------------------------------------- scores

def activate(scores, activation):
    """``activation`` ('none', 'sigmoid', 'softmax' over the last axis) of raw scores, float32
    (computed in float64, rounded once)."""
    s = np.asarray(scores)
    if activation == "none":
        return s.astype(f32)
    x = s.astype(np.float64)
    if activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-x))).astype(f32)
    if activation == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(f32)
    raise InputError("score activation %r is not none, sigmoid or softmax" % (activation,))


# ----------------------------------------------------------------------------- NMS

def iou_one_to_many(box, boxes, eps=0.0):
    """IoU of one (ymin, xmin, ymax, xmax) box with [M, 4] boxes, float32, TFLite's formula
    (plus ``eps`` in the denominator, pytorch-ssd's)."""
    box = np.asarray(box, dtype=f32)
    boxes = np.asarray(boxes, dtype=f32).reshape(-1, 4)
    area_a = (box[2] - box[0]) * (box[3] - box[1])
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iy0 = np.maximum(box[0], boxes[:, 0])
    ix0 = np.maximum(box[1], boxes[:, 1])
    iy1 = np.minimum(box[2], boxes[:, 2])
    ix1 = np.minimum(box[3], boxes[:, 3])
    zero = f32(0)
    inter = np.maximum(iy1 - iy0, zero) * np.maximum(ix1 - ix0, zero)
    union = (area_a + area_b) - inter
    if eps:
        union = union + f32(eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    iou[(area_b <= 0) | (area_a <= 0)] = 0
    return iou.astype(f32)


def greedy_nms(boxes, iou_threshold, max_detections, classes=None, eps=0.0):
    """Greedy NMS over boxes [M, 4] already in visiting order: the kept positions, in order.
    A kept box suppresses later boxes with IoU > iou_threshold (of its own class when
    ``classes`` is given)."""
    boxes = np.asarray(boxes, dtype=f32).reshape(-1, 4)
    n = len(boxes)
    alive = np.ones(n, dtype=bool)
    keep = []
    i = 0
    while i < n and len(keep) < max_detections:
        if not alive[i]:
            nxt = np.flatnonzero(alive[i:])
            if nxt.size == 0:
                break
            i += int(nxt[0])
        keep.append(i)
        if i + 1 < n:
            hit = iou_one_to_many(boxes[i], boxes[i + 1:], eps) > iou_threshold
            if classes is not None:
                hit &= classes[i + 1:] == classes[i]
            alive[i + 1:] &= ~hit
        i += 1
    return np.asarray(keep, dtype=np.intp)


def nms_fast(boxes, scores, iou_threshold, max_detections):
    """Greedy class-agnostic NMS; returns the kept indices into ``boxes``, best first.

    Sorting is stable (equal scores keep their input order); a later box is suppressed by a
    kept one when their IoU is > iou_threshold.
    """
    boxes = np.asarray(boxes, dtype=f32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=f32).reshape(-1)
    if boxes.shape[0] != scores.shape[0]:
        raise InputError("nms_fast: %d boxes but %d scores" % (boxes.shape[0], scores.shape[0]))
    order = np.argsort(-scores, kind="stable")
    return order[greedy_nms(boxes[order], iou_threshold, max_detections)]


# ----------------------------------------------------------------------------- a frame

def resolve_thresholds(spec, score_threshold, max_detections, cap=None):
    """(score threshold, max detections, IoU threshold) from the caller's values and the
    model's, checked."""
    thr = spec.nms.score_threshold if score_threshold is None else score_threshold
    try:
        thr = float(thr)
    except (TypeError, ValueError):
        raise InputError("score_threshold must be a number in [0, 1], got %r" % (thr,))
    if not (0.0 <= thr <= 1.0):
        raise InputError("score_threshold must be in [0, 1] (scores are probabilities), "
                         "got %r" % thr)
    md = spec.nms.max_detections if max_detections is None else max_detections
    if int(md) != md or int(md) < 1:
        raise InputError("max_detections must be a positive integer, got %r" % (md,))
    md = int(md)
    if cap is not None and md > cap:
        raise InputError("max_detections=%d exceeds the GPU postprocessor's limit of %d; ask "
                         "for at most %d" % (md, cap, cap))
    iou = float(spec.nms.iou_threshold)
    if not (0.0 < iou <= 1.0):
        raise ModelError("the model's NMS IoU threshold %r is outside (0, 1]; fix the spec's "
                         "iou_threshold (or re-convert the model)" % iou)
    if int(spec.nms.max_classes_per_detection) != 1 or bool(spec.nms.use_regular_nms):
        raise ModelError("model %r asks for max_classes_per_detection=%s, use_regular_nms=%s; "
                         "trtssd implements TFLite's fast NMS with one class per box only"
                         % (spec.name, spec.nms.max_classes_per_detection,
                            spec.nms.use_regular_nms))
    return thr, md, iou


def _fg_columns(spec):
    return np.asarray(spec.foreground_columns, dtype=np.intp)


def select_frame(box_encodings, class_scores, spec, score_threshold, max_detections,
                 iou_threshold=None):
    """One frame ([A, 4], [A, C]) -> (anchor indices, class ids, scores, boxes (ymin, xmin,
    ymax, xmax) in the model's units) of the kept detections, best first. The reference the
    GPU kernels are tested against (they report the anchor index too)."""
    nms = spec.nms
    iou = nms.iou_threshold if iou_threshold is None else iou_threshold
    raw = np.asarray(class_scores, dtype=f32)
    cols = _fg_columns(spec)
    act = spec.outputs.activation
    empty = (np.zeros(0, np.intp), np.zeros(0, np.int32), np.zeros(0, f32),
             np.zeros((0, 4), f32))
    thr = f32(score_threshold)
    if nms.method in ("fast", "none"):
        best_pos = np.argmax(raw[:, cols], axis=1)               # first maximum
        best_col = cols[best_pos]
        rows = np.arange(raw.shape[0])
        if act == "softmax":
            best = activate(raw, act)[rows, best_col]
        else:
            best = activate(raw[rows, best_col], act)
        ok = best >= thr if nms.score_inclusive else best > thr
        cand = np.flatnonzero(ok)                                # ascending anchor order
        if cand.size == 0:
            return empty
        order = cand[np.argsort(-best[cand], kind="stable")]
        boxes = frame_boxes(box_encodings, spec, order)
        if nms.method == "none":
            keep = np.arange(min(len(order), max_detections))
        else:
            keep = greedy_nms(boxes, iou, max_detections, eps=nms.iou_eps)
        idx = order[keep]
        return idx, best_col[idx].astype(np.int32), best[idx], boxes[keep]
    # per_class: every (anchor, foreground column) pair
    probs = activate(raw, act)[:, cols]
    ok = probs >= thr if nms.score_inclusive else probs > thr
    pa, pc = np.nonzero(ok)                      # anchor-major: (anchor, column) ascending
    if pa.size == 0:
        return empty
    ps = probs[pa, pc]
    order = np.argsort(-ps, kind="stable")       # ties: anchor, then column
    pa, pc, ps = pa[order], cols[pc[order]], ps[order]
    k = nms.candidates_per_class
    if k > 0:
        rank = np.zeros(len(pa), np.intp)
        seen = {}
        for i, c in enumerate(pc.tolist()):
            rank[i] = seen.get(c, 0)
            seen[c] = rank[i] + 1
        sel = rank < k
        pa, pc, ps = pa[sel], pc[sel], ps[sel]
    boxes = frame_boxes(box_encodings, spec, pa)
    keep = greedy_nms(boxes, iou, max_detections, classes=pc, eps=nms.iou_eps)
    return pa[keep], pc[keep].astype(np.int32), ps[keep], boxes[keep]


def _geometries(geometries, n):
    if geometries is None:
        return [None] * n
    if not isinstance(geometries, (list, tuple)):
        geometries = [geometries]
    if len(geometries) < n:
        raise InputError("%d frames of outputs but %d FrameGeometry; pass the geometries "
                         "that the preprocessing returned, one per frame" % (n, len(geometries)))
    return list(geometries[:n])


def postprocess_cpu(box_encodings, class_scores, spec, geometries, score_threshold,
                    max_detections=None, labels=None):
    """NumPy decode + threshold + NMS of a batch -> one Detections per frame.

    ``box_encodings`` [N, A, 4] and ``class_scores`` [N, A, C] (or without the batch axis),
    float; ``geometries`` one FrameGeometry per frame (None: network-input pixels);
    ``labels`` a LabelMap or list of names indexed by class id (or None).
    """
    enc = np.asarray(box_encodings, dtype=f32)
    sc = np.asarray(class_scores, dtype=f32)
    if enc.ndim == 2:
        enc = enc[None]
    if sc.ndim == 2:
        sc = sc[None]
    a, c = spec.num_anchors, int(spec.num_classes)
    if enc.ndim != 3 or enc.shape[1:] != (a, 4):
        raise InputError("box_encodings must be [N, %d, 4] for model %r, got %s; pass the "
                         "backend's box_encodings output" % (a, spec.name, enc.shape))
    if sc.ndim != 3 or sc.shape[1:] != (a, c) or sc.shape[0] != enc.shape[0]:
        raise InputError("class_scores must be [%d, %d, %d] for model %r, got %s; pass the "
                         "backend's class_scores output" % (enc.shape[0], a, c, spec.name,
                                                           sc.shape))
    thr, md, iou = resolve_thresholds(spec, score_threshold, max_detections)
    check_labels(labels, spec.num_classes)
    geos = _geometries(geometries, enc.shape[0])
    out = []
    for f in range(enc.shape[0]):
        anchors, cls, scores, boxes = select_frame(enc[f], sc[f], spec, thr, md, iou)
        out.append(Detections(to_frame(boxes, geos[f], spec), scores, cls,
                              label_names(labels, cls)))
    return out
