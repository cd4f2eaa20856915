"""SSD postprocessing: box decoding, score threshold and NMS, in NumPy and on the GPU.

Semantics: TFLite's ``TFLite_Detection_PostProcess`` op with ``use_regular_nms=false`` and
``max_classes_per_detection=1`` (the settings of the COCO SSD-MobileNet models), per frame:

1. Decode every anchor's centre-size encoding (ty, tx, th, tw) against its anchor
   (ya, xa, ha, wa), with the box coder's scales (y_scale, x_scale, h_scale, w_scale)::

       yc = ty / y_scale * ha + ya        xc = tx / x_scale * wa + xa
       h  = exp(th / h_scale) * ha        w  = exp(tw / w_scale) * wa
       box = (yc - h/2, xc - w/2, yc + h/2, xc + w/2)   # ymin, xmin, ymax, xmax, normalised

   The NumPy path computes in float64 and rounds to float32, as TFLite does; the CUDA kernel
   computes in float32 (a few ulp apart, far below a pixel).
2. Per anchor, the best class among the non-background columns 1..C-1; a tie goes to the
   lowest column (TFLite's ArgMax keeps the first maximum). Its score is the anchor's score.
3. Candidates: anchors whose score is ``>= score_threshold`` (TFLite's comparison).
4. Sort candidates by score, descending; equal scores keep anchor order (TFLite sorts with
   ``std::stable_sort``, so ties go to the lower anchor index).
5. Greedy class-agnostic NMS: walk the sorted list; keep the next unsuppressed candidate and
   suppress every later candidate whose IoU with it is ``> iou_threshold``. IoU is
   ``inter / (area_a + area_b - inter)`` in float32, and 0 when either box has zero (or
   negative) area. Stop after ``max_detections`` kept boxes.
6. Class ids are score columns (1..90 are the COCO ids, the lines of the label file);
   boxes go to frame pixels: normalised * (input_width, input_height) gives network-input
   pixels, then ``x_frame = (x_net - pad_x) / scale_x`` (likewise y) inverts the
   preprocessing's resize and letterbox (trtssd.preprocess.gpu.FrameGeometry), and boxes are
   clipped to [0, frame_width] x [0, frame_height].

``max_detections=None`` means the model's own (``spec.nms.max_detections``, 10 for
detect.tflite), so results equal the TFLite interpreter's; the GPU path caps it at
``MAX_DETECTIONS_GPU`` (100).
"""
import struct

import numpy as np

from ..core.detections import Detections, LabelMap
from ..core.errors import EnvironmentProblem, InputError, ModelError

MAX_DETECTIONS_GPU = 100
MAX_CANDIDATES_GPU = 4096   # anchors the GPU NMS takes (all may pass the threshold, as in TFLite)
_ROW = 8                    # floats per output row of the kernel
_HEADER = 8                 # floats before the rows: kept count, candidate count, padding
_SORT_THREADS = 1024        # ssd_sort: one block per frame
_BITS = 64                  # candidates per suppression-mask word = threads of mask/scan blocks
_BEST_THREADS = 256
_TILE_FLOATS = 8192         # 32 KB of score rows staged per block of ssd_best_class
FUSED_MAX = 512             # ssd_sort can do the whole NMS of a frame with at most this many
                            # candidates in shared memory (kernels/postprocess.cu)
GPU_FUSED_DEFAULT = 0       # ... but GpuPostprocessor does not by default: on the H100
                            # (2026-11-27) the fused kernel took 63.7 us for the 243-candidate
                            # worst case against 58.2 us for sort + mask + scan, and 37.9 vs
                            # 38.8 us for 23 candidates (benchmarks/NOTES_postprocess.md);
                            # GpuPostprocessor(fused_max=512) turns it on

# The kernels' parameter lists as pycuda's prepared-call formats, and the same layouts packed
# once per plan by Python's struct (native alignment, as pycuda's _pvt_struct packs them) for
# Function._launch_kernel.
_FMT_BEST = "PiPP"
_FMT_SORT = "PPPPiffffffiPPPPP"
_FMT_MASK = "PPfP"
_FMT_SCAN = "PPPPPPiiP"
_ARGS_BEST = struct.Struct("@" + _FMT_BEST)
_ARGS_SORT = struct.Struct("@" + _FMT_SORT)
_ARGS_MASK = struct.Struct("@" + _FMT_MASK)
_ARGS_SCAN = struct.Struct("@" + _FMT_SCAN)


# ----------------------------------------------------------------------------- NumPy path

def decode_boxes(encodings, anchors, box_coder):
    """Centre-size encodings [..., A, 4] (ty, tx, th, tw) -> boxes [..., A, 4] (ymin, xmin,
    ymax, xmax), normalised, float32. Computed in float64 and rounded, as TFLite does."""
    enc = np.asarray(encodings, dtype=np.float64)
    anc = np.asarray(anchors, dtype=np.float64)
    if enc.shape[-1] != 4 or anc.ndim != 2 or anc.shape[1] != 4 or enc.shape[-2] != anc.shape[0]:
        raise InputError("decode_boxes: encodings [..., A, 4] and anchors [A, 4] needed, got %s "
                         "and %s; pass the model's box_encodings output and spec.anchors"
                         % (enc.shape, anc.shape))
    ya, xa, ha, wa = anc[:, 0], anc[:, 1], anc[:, 2], anc[:, 3]
    yc = enc[..., 0] / float(box_coder.y_scale) * ha + ya
    xc = enc[..., 1] / float(box_coder.x_scale) * wa + xa
    hh = (0.5 * np.exp(enc[..., 2] / float(box_coder.h_scale)) * ha).astype(np.float32)
    hw = (0.5 * np.exp(enc[..., 3] / float(box_coder.w_scale)) * wa).astype(np.float32)
    yc = yc.astype(np.float32)
    xc = xc.astype(np.float32)
    return np.stack([yc - hh, xc - hw, yc + hh, xc + hw], axis=-1)


def iou_one_to_many(box, boxes):
    """IoU of one (ymin, xmin, ymax, xmax) box with [M, 4] boxes, float32, TFLite's formula."""
    box = np.asarray(box, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    area_a = (box[2] - box[0]) * (box[3] - box[1])
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iy0 = np.maximum(box[0], boxes[:, 0])
    ix0 = np.maximum(box[1], boxes[:, 1])
    iy1 = np.minimum(box[2], boxes[:, 2])
    ix1 = np.minimum(box[3], boxes[:, 3])
    zero = np.float32(0)
    inter = np.maximum(iy1 - iy0, zero) * np.maximum(ix1 - ix0, zero)
    union = (area_a + area_b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    iou[(area_b <= 0) | (area_a <= 0)] = 0
    return iou.astype(np.float32)


def nms_fast(boxes, scores, iou_threshold, max_detections):
    """Greedy class-agnostic NMS; returns the kept indices into ``boxes``, best first.

    Sorting is stable (equal scores keep their input order); a later box is suppressed by a
    kept one when their IoU is > iou_threshold.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if boxes.shape[0] != scores.shape[0]:
        raise InputError("nms_fast: %d boxes but %d scores" % (boxes.shape[0], scores.shape[0]))
    order = np.argsort(-scores, kind="stable")
    sboxes = boxes[order]
    alive = np.ones(len(order), dtype=bool)
    keep = []
    i = 0
    n = len(order)
    while i < n and len(keep) < max_detections:
        if not alive[i]:
            nxt = np.flatnonzero(alive[i:])
            if nxt.size == 0:
                break
            i += int(nxt[0])
        keep.append(int(order[i]))
        if i + 1 < n:
            alive[i + 1:] &= ~(iou_one_to_many(sboxes[i], sboxes[i + 1:]) > iou_threshold)
        i += 1
    return np.asarray(keep, dtype=np.intp)


def boxes_to_frame(boxes_norm, geometry, input_width, input_height):
    """Normalised (ymin, xmin, ymax, xmax) [K, 4] -> frame pixels (x1, y1, x2, y2), clipped.

    ``geometry`` is a trtssd.preprocess.gpu.FrameGeometry (x_net = x_frame * scale_x + pad_x), or
    None to report network-input pixels.
    """
    b = np.asarray(boxes_norm, dtype=np.float64).reshape(-1, 4)
    x_net = b[:, [1, 3]] * float(input_width)
    y_net = b[:, [0, 2]] * float(input_height)
    if geometry is None:
        fw, fh = float(input_width), float(input_height)
        xs, ys = x_net, y_net
    else:
        fw, fh = float(geometry.frame_width), float(geometry.frame_height)
        xs = (x_net - float(geometry.pad_x)) / float(geometry.scale_x)
        ys = (y_net - float(geometry.pad_y)) / float(geometry.scale_y)
    xs = np.clip(xs, 0.0, fw)
    ys = np.clip(ys, 0.0, fh)
    return np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1).astype(np.float32)


def _names(labels, class_ids):
    if labels is None:
        return None
    if isinstance(labels, LabelMap):
        return [labels.name(c) for c in class_ids]
    return [str(labels[c]) if 0 <= c < len(labels) else "class %d" % c for c in class_ids]


def _check_labels(labels, spec):
    if isinstance(labels, LabelMap):
        labels.check(spec.num_classes)
    elif labels is not None and len(labels) != spec.num_classes:
        raise ModelError("%d label names but the model has %d classes (background included); "
                         "use the label file that came with this model" % (len(labels),
                                                                           spec.num_classes))


def _resolve(spec, score_threshold, max_detections, cap=None):
    thr = spec.nms.score_threshold if score_threshold is None else score_threshold
    try:
        thr = float(thr)
    except (TypeError, ValueError):
        raise InputError("score_threshold must be a number in [0, 1], got %r" % (thr,))
    if not (0.0 <= thr <= 1.0):
        raise InputError("score_threshold must be in [0, 1] (scores are sigmoid outputs), "
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
        raise ModelError("the model's NMS IoU threshold %r is outside (0, 1]; re-convert the "
                         "model" % iou)
    if int(spec.nms.max_classes_per_detection) != 1 or bool(spec.nms.use_regular_nms):
        raise ModelError("model %r asks for max_classes_per_detection=%s, use_regular_nms=%s; "
                         "trtssd implements TFLite's fast NMS with one class per box only"
                         % (spec.name, spec.nms.max_classes_per_detection,
                            spec.nms.use_regular_nms))
    return thr, md, iou


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
    enc = np.asarray(box_encodings, dtype=np.float32)
    sc = np.asarray(class_scores, dtype=np.float32)
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
    thr, md, iou = _resolve(spec, score_threshold, max_detections)
    _check_labels(labels, spec)
    geos = _geometries(geometries, enc.shape[0])
    # Thresholding first with the caller's threshold (say 0.3) instead of TFLite's 1e-8 and
    # filtering afterwards gives the same detections above it: the greedy walk visits boxes
    # in descending score order, so a box below the threshold is visited after every box
    # above it and can never suppress one of them, and the max_detections cut keeps a prefix
    # of that order; the kept boxes above the threshold are therefore exactly the same.
    out = []
    for f in range(enc.shape[0]):
        anchors, cls, scores, boxes = select_frame(enc[f], sc[f], spec, thr, md, iou)
        out.append(Detections(boxes_to_frame(boxes, geos[f], spec.input_width,
                                             spec.input_height),
                              scores, cls, _names(labels, cls)))
    return out


def select_frame(box_encodings, class_scores, spec, score_threshold, max_detections,
                 iou_threshold=None):
    """One frame ([A, 4], [A, C]) -> (anchor indices, class ids, scores, normalised boxes
    (ymin, xmin, ymax, xmax)) of the kept detections, best first. The reference the GPU
    kernels are tested against (they report the anchor index too)."""
    iou = spec.nms.iou_threshold if iou_threshold is None else iou_threshold
    a = spec.num_anchors
    fg = np.asarray(class_scores, dtype=np.float32)[:, 1:]
    best_col = np.argmax(fg, axis=1)                   # first maximum, as TFLite's ArgMax
    best = fg[np.arange(a), best_col]
    cand = np.flatnonzero(best >= score_threshold)     # ascending anchor order
    if cand.size == 0:
        return (np.zeros(0, np.intp), np.zeros(0, np.int32), np.zeros(0, np.float32),
                np.zeros((0, 4), np.float32))
    boxes = decode_boxes(np.asarray(box_encodings, np.float32)[cand], spec.anchors[cand],
                         spec.box_coder)
    keep = nms_fast(boxes, best[cand], iou, max_detections)
    idx = cand[keep]
    return idx, (best_col[idx] + 1).astype(np.int32), best[idx], boxes[keep]


# ----------------------------------------------------------------------------- GPU path

def _pow2_at_least(n):
    p = 1
    while p < n:
        p <<= 1
    return p


def kernel_defines(spec, max_candidates=None, fused_max=None):
    """The #defines of kernels/postprocess.cu for ``spec`` (also used by the CPU-shim tests).

    ``fused_max``: frames with at most this many candidates are done by ssd_sort alone (a
    multiple of 64; 0 turns the fused path off; None: ``FUSED_MAX``, at most MAX_CAND)."""
    c = int(spec.num_classes)
    a = spec.num_anchors
    if c > _TILE_FLOATS:
        raise ModelError("model %r has %d classes; the GPU postprocessing handles at most %d "
                         "(use postprocess_cpu)" % (spec.name, c, _TILE_FLOATS))
    # Every anchor may pass the score threshold (TFLite does not cap the candidates either),
    # so the candidate list is sized for all anchors: a power of two (bitonic sort), at least
    # one mask word, at most 64 words (one scan thread each).
    cap = max_candidates or max(_BITS, _pow2_at_least(a))
    if a > cap or cap > MAX_CANDIDATES_GPU or cap & (cap - 1) or cap < _BITS:
        raise ModelError("model %r has %d anchors; the GPU NMS sorts at most %d candidates in "
                         "shared memory (a power of two, %d at most). Use postprocess_cpu for "
                         "this model" % (spec.name, a, min(cap, MAX_CANDIDATES_GPU),
                                         MAX_CANDIDATES_GPU))
    fused = min(FUSED_MAX, cap) if fused_max is None else fused_max
    if (isinstance(fused, bool) or int(fused) != fused or fused < 0 or fused % _BITS
            or fused > min(cap, _SORT_THREADS)):
        raise InputError("fused_max must be a multiple of %d in [0, %d] (0: no fused NMS), "
                         "got %r" % (_BITS, min(cap, _SORT_THREADS), fused))
    tile = 1
    while tile * 2 <= min(_BEST_THREADS, _TILE_FLOATS // c):
        tile *= 2
    return {"NUM_CLASSES": c, "TILE_A": tile, "PARTS": _BEST_THREADS // tile,
            "SORT_THREADS": _SORT_THREADS, "MAX_CAND": cap, "MAX_DET": MAX_DETECTIONS_GPU,
            "FUSED_MAX": int(fused)}


def _device_pointer(obj, shape, what):
    """Device address of ``obj`` (cuda-array-interface object, DeviceArray, pycuda allocation
    or integer), checking dtype float32, C order and shape [>= shape[0], *shape[1:]] when the
    object describes itself."""
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if hasattr(obj, "__cuda_array_interface__"):
        from ..gpu.cuda import cuda_array_info
        ptr, shp, strides, dtype = cuda_array_info(obj)
        if dtype != np.float32:
            raise InputError("%s must be float32 on the device, got %s; the backends' outputs "
                             "are float32" % (what, dtype))
        if len(shp) != len(shape) or shp[0] < shape[0] or tuple(shp[1:]) != tuple(shape[1:]):
            raise InputError("%s has shape %s; need [%d or more, %s]; pass the backend's output "
                             "buffer for this model" % (what, shp, shape[0],
                                                        ", ".join(str(s) for s in shape[1:])))
        want = []
        step = 4
        for s in reversed(shp):
            want.append(step)
            step *= s
        if tuple(strides) != tuple(reversed(want)) and np.prod(shp) > 1:
            raise InputError("%s must be C-contiguous on the device (strides %s); pass a "
                             "contiguous buffer (tensor.contiguous())" % (what, strides))
        if ptr == 0:
            raise InputError("%s is a null device pointer (closed buffer?)" % what)
        return int(ptr)
    ptr = getattr(obj, "ptr", None)
    if ptr is not None:
        return int(ptr)
    try:
        return int(obj)   # pycuda DeviceAllocation
    except (TypeError, ValueError):
        raise InputError("%s must be a device buffer (__cuda_array_interface__, "
                         "trtssd.gpu.cuda.DeviceArray, pycuda allocation or int pointer), got %s"
                         % (what, type(obj).__name__))


class GpuPostprocessor(object):
    """Decode + threshold + NMS on the GPU; only the kept boxes come back to the host.

    Construct and call with the CUDA context current (``with ctx.active():``). Anchors are
    uploaded once; device scratch, the result buffer and its pinned host copy are allocated
    here, so ``enqueue`` allocates nothing::

        post = GpuPostprocessor(spec, max_batch=8, score_threshold=0.3)
        post.enqueue(box_dev, score_dev, batch, stream)     # 4 launches + one async copy
        ...                                                 # overlap other work
        dets = post.results(geometries, labels)             # waits for the copy's event

    ``max_detections`` None means the model's own (``spec.nms.max_detections``), at most
    ``MAX_DETECTIONS_GPU``. Semantics: the module docstring (the same as ``postprocess_cpu``).
    One postprocessor holds one batch in flight: make one per frame in flight.
    """

    def __init__(self, spec, max_batch=1, score_threshold=None, max_detections=None,
                 fused_max=None):
        self.spec = spec
        self.score_threshold, self.max_detections, self.iou_threshold = _resolve(
            spec, score_threshold, max_detections, cap=MAX_DETECTIONS_GPU)
        if int(max_batch) < 1:
            raise InputError("max_batch must be >= 1, got %r" % (max_batch,))
        self.max_batch = int(max_batch)
        self.defines = kernel_defines(
            spec, fused_max=GPU_FUSED_DEFAULT if fused_max is None else fused_max)
        self._stride = _HEADER + MAX_DETECTIONS_GPU * _ROW
        self._closed = False
        self._pending = 0
        self._bufs = []
        self._plans = {}
        self._last = None
        from ..gpu import kernels as kernel_loader
        from ..gpu.cuda import DeviceArray, driver, pinned_empty
        drv = driver()
        self._DeviceArray = DeviceArray
        opts = ["-O3"]   # no --use_fast_math: decode and IoU must match the NumPy reference
        self._k_best = kernel_loader.get_function("postprocess/postprocess.cu", "ssd_best_class",
                                                  self.defines, _FMT_BEST, options=opts)
        self._k_sort = kernel_loader.get_function("postprocess/postprocess.cu", "ssd_sort", self.defines,
                                                  _FMT_SORT, options=opts)
        self._k_mask = kernel_loader.get_function("postprocess/postprocess.cu", "ssd_nms_mask",
                                                  self.defines, _FMT_MASK, options=opts)
        self._k_scan = kernel_loader.get_function("postprocess/postprocess.cu", "ssd_nms_scan",
                                                  self.defines, _FMT_SCAN, options=opts)
        # pycuda's prepared_async_call packs the arguments and calls _launch_kernel on every
        # call; the plans pack them once and launch directly (older pycuda: prepared call)
        self._direct = all(hasattr(k, "_launch_kernel") for k in (
            self._k_best, self._k_sort, self._k_mask, self._k_scan))
        a = spec.num_anchors
        mc = self.defines["MAX_CAND"]
        words = mc // _BITS
        try:
            self._anchors = DeviceArray((a, 4), np.float32)
            self._bufs.append(self._anchors)
            self._anchors.copy_from_host(np.ascontiguousarray(spec.anchors, np.float32))
            self._best_score = DeviceArray((self.max_batch, a), np.float32)
            self._bufs.append(self._best_score)
            self._best_class = DeviceArray((self.max_batch, a), np.int32)
            self._bufs.append(self._best_class)
            # Scratch of the NMS: sorted candidates, their count, the suppression matrix
            # (bit j of mask[f, i, w]: candidate 64 w + j is suppressed by candidate i).
            self._cand_box = DeviceArray((self.max_batch, mc, 4), np.float32)
            self._bufs.append(self._cand_box)
            self._cand_score = DeviceArray((self.max_batch, mc), np.float32)
            self._bufs.append(self._cand_score)
            self._cand_anchor = DeviceArray((self.max_batch, mc), np.int32)
            self._bufs.append(self._cand_anchor)
            self._cand_count = DeviceArray((self.max_batch,), np.int32)
            self._bufs.append(self._cand_count)
            self._mask = DeviceArray((self.max_batch, mc, words), np.uint64)
            self._bufs.append(self._mask)
            self._out_dev = DeviceArray((self.max_batch, self._stride), np.float32)
            self._bufs.append(self._out_dev)
            self._out_host = pinned_empty((self.max_batch, self._stride), np.float32)
            self._out_host.fill(np.nan)
            self._event = drv.Event()
        except Exception:
            self.close()
            raise
        self._drv = drv
        self._grid_best_x = (a + self.defines["TILE_A"] - 1) // self.defines["TILE_A"]
        self._block_best = (self.defines["TILE_A"] * self.defines["PARTS"], 1, 1)
        self._mask_tiles = words * (words + 1) // 2
        self._box_tail = (a, 4)
        self._score_tail = (a, int(spec.num_classes))
        self._f32 = np.dtype(np.float32)
        bc = spec.box_coder
        self._coder = tuple(float(np.float32(v)) for v in (bc.y_scale, bc.x_scale, bc.h_scale,
                                                            bc.w_scale))

    def _pointer(self, obj, batch, tail, what):
        """Device address of a buffer of at least [batch, *tail] float32: DeviceArrays from
        their attributes (no interface dict), anything else through _device_pointer."""
        if type(obj) is self._DeviceArray and obj.dtype is self._f32 and obj.ptr:
            shp = obj.shape
            if len(shp) == 3 and shp[0] >= batch and shp[1] == tail[0] and shp[2] == tail[1]:
                return obj.ptr
        return _device_pointer(obj, (batch,) + tail, what)

    def _plan(self, batch, bptr, sptr):
        """The launches of one enqueue for these buffers: (launch or function, grid, block,
        packed parameters, struct) per kernel, and the pinned rows the copy fills."""
        key = (batch, bptr, sptr)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        if len(self._plans) >= 64:   # callers cycling through many buffers: start over
            self._plans.clear()
        a = self.spec.num_anchors
        cb, cs, ca, cc = (self._cand_box.ptr, self._cand_score.ptr, self._cand_anchor.ptr,
                          self._cand_count.ptr)
        specs = (
            (self._k_best, (self._grid_best_x, batch), self._block_best, _ARGS_BEST,
             (sptr, a, self._best_score.ptr, self._best_class.ptr)),
            (self._k_sort, (batch, 1), (_SORT_THREADS, 1, 1), _ARGS_SORT,
             (bptr, self._anchors.ptr, self._best_score.ptr, self._best_class.ptr, a,
              self.score_threshold) + self._coder + (self.iou_threshold, self.max_detections,
                                                     cb, cs, ca, cc, self._out_dev.ptr)),
            (self._k_mask, (self._mask_tiles, batch), (_BITS, 1, 1), _ARGS_MASK,
             (cb, cc, self.iou_threshold, self._mask.ptr)),
            (self._k_scan, (batch, 1), (_BITS, 1, 1), _ARGS_SCAN,
             (cb, cs, ca, cc, self._mask.ptr, self._best_class.ptr, a, self.max_detections,
              self._out_dev.ptr)),
        )
        launches = []
        for fn, grid, block, fmt, args in specs:
            launch = fn._launch_kernel if self._direct else fn
            launches.append((launch, grid, block, fmt.pack(*args), fmt))
        plan = (tuple(launches), self._out_host[:batch], self._out_dev.ptr)
        self._plans[key] = plan
        return plan

    def enqueue(self, box_dev, score_dev, batch, stream=None, events=None):
        """Enqueue decode + NMS of ``batch`` frames on ``stream`` (a pycuda Stream or None) and
        the copy of the kept rows to pinned host memory. Returns at once.

        Allocates nothing after the first call with the same buffers and batch size: the
        kernels' parameters are packed once per (batch, buffers) and launched directly.
        ``events`` (for benchmarks): None, or 6 pycuda Events recorded on ``stream`` before
        ssd_best_class, ssd_sort, ssd_nms_mask, ssd_nms_scan, the copy, and after the copy."""
        if self._closed:
            raise InputError("this GpuPostprocessor was closed; make a new one")
        last = self._last
        if (last is not None and box_dev is last[0] and score_dev is last[1]
                and batch is last[2] and type(box_dev) is self._DeviceArray
                and type(score_dev) is self._DeviceArray and box_dev.ptr == last[3]
                and score_dev.ptr == last[4] and events is None):
            batch = last[2]
            plan = last[5]       # the same DeviceArrays as last time (the pipelines' case)
        else:
            batch = int(batch)
            if not 1 <= batch <= self.max_batch:
                raise InputError("batch %d is outside 1..max_batch=%d; make the postprocessor "
                                 "with a larger max_batch" % (batch, self.max_batch))
            bptr = self._pointer(box_dev, batch, self._box_tail, "box_encodings")
            sptr = self._pointer(score_dev, batch, self._score_tail, "class_scores")
            if events is not None and len(events) != 6:
                raise InputError("events must be None or 6 pycuda Events, got %d" % len(events))
            plan = self._plan(batch, bptr, sptr)
            self._last = (box_dev, score_dev, batch, bptr, sptr, plan)
        launches, out_host, out_dev = plan
        if events is not None:
            return self._enqueue_timed(plan, batch, stream, events)
        if self._direct:
            for launch, grid, block, args, _ in launches:
                launch(grid, block, args, 0, stream)
        else:                                    # a pycuda without _launch_kernel
            for fn, grid, block, args, fmt in launches:
                fn.prepared_async_call(grid, block, stream, *fmt.unpack(args))
        self._drv.memcpy_dtoh_async(out_host, out_dev, stream)
        self._event.record(stream)
        self._pending = batch
        return self

    def _enqueue_timed(self, plan, batch, stream, events):
        """enqueue with the benchmark's events recorded between the steps."""
        launches, out_host, out_dev = plan
        for ev, (launch, grid, block, args, fmt) in zip(events, launches):
            ev.record(stream)
            if self._direct:
                launch(grid, block, args, 0, stream)
            else:
                launch.prepared_async_call(grid, block, stream, *fmt.unpack(args))
        events[4].record(stream)
        self._drv.memcpy_dtoh_async(out_host, out_dev, stream)
        events[5].record(stream)
        self._event.record(stream)
        self._pending = batch
        return self

    def wait(self):
        """Block until the last ``enqueue``'s copy to the host is complete."""
        if self._pending:
            self._event.synchronize()
        return self

    def raw_results(self, wait=True):
        """Per frame, the kept rows [K, 8]: ymin, xmin, ymax, xmax (normalised), score, class,
        anchor index, 0 (a copy). For tests and debugging."""
        if not self._pending:
            raise InputError("no batch was enqueued; call enqueue() first")
        if wait:
            self.wait()
        rows = []
        for f in range(self._pending):
            o = self._out_host[f]
            k = o[0]
            if not (0 <= k <= self.max_detections) or k != int(k):
                raise EnvironmentProblem(
                    "GPU postprocessing returned %r boxes for frame %d: the kernel did not run "
                    "or its result was read before the stream finished; synchronise the stream "
                    "(or call wait()) before results()" % (k, f))
            rows.append(np.array(o[_HEADER:_HEADER + int(k) * _ROW]).reshape(int(k), _ROW))
        return rows

    def results(self, geometries, labels=None, wait=True):
        """One Detections per frame of the last ``enqueue`` (boxes in frame pixels)."""
        if labels is not None:
            _check_labels(labels, self.spec)
        rows = self.raw_results(wait=wait)
        geos = _geometries(geometries, len(rows))
        out = []
        for r, g in zip(rows, geos):
            cls = r[:, 5].astype(np.int32)
            out.append(Detections(boxes_to_frame(r[:, :4], g, self.spec.input_width,
                                                 self.spec.input_height),
                                  r[:, 4], cls, _names(labels, cls)))
        return out

    def close(self):
        """Free the device and pinned buffers (context current). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for b in self._bufs:
            b.close()
        self._bufs = []
        self._plans = {}
        self._last = None
        host = getattr(self, "_out_host", None)
        if host is not None:
            host.close()
            self._out_host = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
