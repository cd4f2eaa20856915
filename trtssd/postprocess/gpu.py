"""SSD postprocessing on the GPU: decode, threshold and NMS in up to three kernels
(postprocess.cu beside this file), only the kept boxes copied to the host.

The semantics are trtssd.postprocess.cpu's (the NumPy reference, see its docstring) for every
output kind and NMS method the spec can say; the GPU path caps ``max_detections`` at
``MAX_DETECTIONS_GPU`` (100) and the candidates at ``MAX_CANDIDATES_GPU`` (4096: all anchors
of a model with at most that many, or the (anchor, class) pairs above the threshold of the
per-class method, which the results refuse to exceed).
"""
import numpy as np

from ..core.closeable import Closeable
from ..core.detections import Detections, check_labels, label_names
from ..core.errors import EnvironmentProblem, InputError, ModelError
from .cpu import _geometries, resolve_thresholds, to_frame

MAX_DETECTIONS_GPU = 100
MAX_CANDIDATES_GPU = 4096   # candidates the GPU NMS sorts in shared memory
_ROW = 8                    # floats per output row of the kernel
_HEADER = 8                 # floats before the rows: kept count, candidate count, padding
ROW_FLOATS, HEADER_FLOATS = _ROW, _HEADER
_SORT_THREADS = 1024        # ssd_sort: one block per frame
_BITS = 64                  # candidates per suppression-mask word = threads of mask/scan blocks
_BEST_THREADS = 256
_TILE_FLOATS = 8192         # 32 KB of score rows staged per block of ssd_best_class
_BOX_FORMS = {("encoded", "yxhw"): 0, ("encoded", "xywh"): 1, "yxyx": 2, "xyxy": 3, "cxcywh": 4}
_ACTIVATIONS = {"none": 0, "sigmoid": 1, "softmax": 2}
_METHODS = {"fast": 0, "per_class": 1, "none": 2}

# The kernels' parameter lists, in the order of postprocess.cu's (trtssd.gpu.launch).
def _signatures():
    from ..gpu.launch import ScalarArg, Signature, VectorArg
    V = VectorArg
    return {
        "ssd_best_class": Signature(V("scores"), ScalarArg("i", "num_anchors"), V("best_score"),
                                    V("best_class")),
        "ssd_sort": Signature(V("box_encodings"), V("anchors"), V("scores"), V("best_score"),
                              V("best_class"), ScalarArg("i", "num_anchors"),
                              ScalarArg("f", "score_threshold"), ScalarArg("f", "y_scale"),
                              ScalarArg("f", "x_scale"), ScalarArg("f", "h_scale"),
                              ScalarArg("f", "w_scale"), ScalarArg("i", "max_det"),
                              V("cand_box"), V("cand_score"), V("cand_key"), V("cand_count"),
                              V("cand_rank"), V("out")),
        "ssd_nms": Signature(V("cand_box"), V("cand_score"), V("cand_key"), V("cand_count"),
                             ScalarArg("f", "iou_threshold"), V("mask"), V("cand_rank"),
                             V("best_class"), ScalarArg("i", "num_anchors"),
                             ScalarArg("i", "max_det"), V("tiles_done"), V("out")),
    }


STEPS = ("ssd_best_class", "ssd_sort", "ssd_nms")   # every kernel, in launch order


def _pow2_at_least(n):
    p = 1
    while p < n:
        p <<= 1
    return p


def kernel_defines(spec, max_candidates=None):
    """The #defines of postprocess.cu for ``spec`` (also used by the CPU-shim tests). Keys
    whose value is the kernel's default (TFLite's semantics) are left out."""
    c = int(spec.num_classes)
    a = spec.num_anchors
    out, nms = spec.outputs, spec.nms
    if c > _TILE_FLOATS:
        raise ModelError("model %r has %d classes; the GPU postprocessing handles at most %d "
                         "(use postprocess_cpu)" % (spec.name, c, _TILE_FLOATS))
    if nms.method == "per_class":
        # (anchor, class) pairs: as many as fit; the results refuse an overflow.
        cap = max_candidates or MAX_CANDIDATES_GPU
    else:
        # Every anchor may pass the score threshold (TFLite does not cap the candidates
        # either), so the list is sized for all anchors: a power of two (bitonic sort), at
        # least one mask word, at most 64 words (one scan thread each).
        cap = max_candidates or max(_BITS, _pow2_at_least(a))
    if (nms.method != "per_class" and a > cap) or cap > MAX_CANDIDATES_GPU or cap & (cap - 1) \
            or cap < _BITS:
        raise ModelError("model %r has %d anchors; the GPU NMS sorts at most %d candidates in "
                         "shared memory (a power of two, %d at most). Use postprocess_cpu for "
                         "this model" % (spec.name, a, min(cap, MAX_CANDIDATES_GPU),
                                         MAX_CANDIDATES_GPU))
    tile = 1
    while tile * 2 <= min(_BEST_THREADS, _TILE_FLOATS // c):
        tile *= 2
    d = {"NUM_CLASSES": c, "TILE_A": tile, "PARTS": _BEST_THREADS // tile,
         "SORT_THREADS": _SORT_THREADS, "MAX_CAND": cap, "MAX_DET": MAX_DETECTIONS_GPU}
    form = out.box_format if out.box_format != "encoded" else (out.box_format,
                                                                out.encoding_order)
    extra = (("BOX_FORM", _BOX_FORMS[form], 0),
             ("ACTIVATION", _ACTIVATIONS[out.activation], 0),
             ("BACKGROUND", -1 if out.background is None else int(out.background), 0),
             ("METHOD", _METHODS[nms.method], 0),
             ("SCORE_INCLUSIVE", int(nms.score_inclusive), 1),
             ("IOU_EPS", float(np.float32(nms.iou_eps)), 0.0),
             ("CAND_PER_CLASS", int(nms.candidates_per_class) if nms.method == "per_class"
              else 0, 0))
    for key, value, default in extra:
        if value != default:
            d[key] = value
    return d


def kernel_steps(spec):
    """Which kernels one enqueue launches for ``spec``, in order."""
    method, act = spec.nms.method, spec.outputs.activation
    steps = []
    if method != "per_class" or act == "softmax":
        steps.append("ssd_best_class")
    steps.append("ssd_sort")
    if method != "none":
        steps.append("ssd_nms")
    return tuple(steps)


def _device_pointer(obj, shape, what):
    """Device address of ``obj`` (a device array: DeviceArray, torch, CuPy, DLPack; a pycuda
    allocation or an integer), checking C order and a non-null pointer
    (trtssd.gpu.cuda.device_buffer), dtype float32 and shape [>= shape[0], *shape[1:]] when the
    object describes itself."""
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    from ..gpu.cuda import device_buffer, is_device_array
    if is_device_array(obj):     # __cuda_array_interface__ or DLPack: checked in one place
        ptr, shp, dtype = device_buffer(obj, what)
        if dtype != np.float32:
            raise InputError("%s must be float32 on the device, got %s; the backends' outputs "
                             "are float32" % (what, dtype))
        if len(shp) != len(shape) or shp[0] < shape[0] or tuple(shp[1:]) != tuple(shape[1:]):
            raise InputError("%s has shape %s; need [%d or more, %s]; pass the backend's output "
                             "buffer for this model" % (what, shp, shape[0],
                                                        ", ".join(str(s) for s in shape[1:])))
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


class GpuPostprocessor(Closeable):
    """Decode + threshold + NMS on the GPU; only the kept boxes come back to the host.

    Construct and call with the CUDA context current (``with ctx.active():``). Anchors are
    uploaded once; device scratch and the result buffer are allocated here, so ``enqueue``
    allocates nothing. The result buffer is mapped pinned host memory: the last kernel writes
    the kept rows straight into it, so no copy is enqueued (one launch and its latency fewer;
    on a Jetson mapped memory is the GPU's own DRAM)::

        post = GpuPostprocessor(spec, max_batch=8, score_threshold=0.3)
        post.enqueue(box_dev, score_dev, batch, stream)     # <= 3 launches
        ...                                                 # overlap other work
        dets = post.results(geometries, labels)             # waits for the kernels' event

    ``max_detections`` None means the model's own (``spec.nms.max_detections``), at most
    ``MAX_DETECTIONS_GPU``. Semantics: the module docstring (the same as ``postprocess_cpu``).
    One postprocessor holds one batch in flight: make one per frame in flight.
    """

    def __init__(self, spec, max_batch=1, score_threshold=None, max_detections=None):
        self.spec = spec
        self.score_threshold, self.max_detections, self.iou_threshold = resolve_thresholds(
            spec, score_threshold, max_detections, cap=MAX_DETECTIONS_GPU)
        if int(max_batch) < 1:
            raise InputError("max_batch must be >= 1, got %r" % (max_batch,))
        self.max_batch = int(max_batch)
        self.defines = kernel_defines(spec)
        self.steps = kernel_steps(spec)
        self._stride = _HEADER + MAX_DETECTIONS_GPU * _ROW
        self._closed = False
        self._pending = 0
        self._bufs = []
        self._plans = {}
        self._last = None
        self._labels_checked = None
        from ..gpu.cuda import DeviceArray, driver, host_wait_event, pinned_empty
        from ..gpu.launch import load_kernel
        drv = driver()
        self._DeviceArray = DeviceArray
        opts = ["-O3"]   # no --use_fast_math: decode and IoU must match the NumPy reference
        sigs = _signatures()
        # each kernel launches from bytes packed once per plan (trtssd.gpu.launch.Kernel)
        self._kernels = dict(
            (name, load_kernel("postprocess/postprocess.cu", name, sigs[name], self.defines,
                               options=opts)) for name in self.steps)
        a = spec.num_anchors
        mc = self.defines["MAX_CAND"]
        words = mc // _BITS
        try:
            # decoded kinds have no anchors: a one-row placeholder keeps the pointer valid
            anchors = spec.anchors if len(spec.anchors) else np.zeros((1, 4), np.float32)
            self._anchors = DeviceArray(anchors.shape, np.float32)
            self._bufs.append(self._anchors)
            self._anchors.copy_from_host(np.ascontiguousarray(anchors, np.float32))
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
            self._cand_rank = DeviceArray((self.max_batch, mc), np.int32)
            self._bufs.append(self._cand_rank)
            # ssd_nms's finished-tile counter per frame: zero here, reset by its last tile
            self._tiles_done = DeviceArray((self.max_batch,), np.uint32)
            self._bufs.append(self._tiles_done)
            self._tiles_done.copy_from_host(np.zeros(self.max_batch, np.uint32))
            self._cand_count = DeviceArray((self.max_batch,), np.int32)
            self._bufs.append(self._cand_count)
            self._mask = DeviceArray((self.max_batch, mc, words), np.uint64)
            self._bufs.append(self._mask)
            # the kernels write the result here through its device address (no copy)
            self._out_host = pinned_empty((self.max_batch, self._stride), np.float32,
                                          mapped=True)
            self._out_host.fill(np.nan)
            self._event = host_wait_event(drv)
        except Exception:
            self.close()
            raise
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
        """The launches of one enqueue for these buffers: (launch, grid, block, packed
        parameters) per kernel."""
        key = (batch, bptr, sptr)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        if len(self._plans) >= 64:   # callers cycling through many buffers: start over
            self._plans.clear()
        a = self.spec.num_anchors
        cb, cs, ca, cc, cr = (self._cand_box.ptr, self._cand_score.ptr, self._cand_anchor.ptr,
                              self._cand_count.ptr, self._cand_rank.ptr)
        bs, bcl, out = self._best_score.ptr, self._best_class.ptr, self._out_host.device_ptr
        every = {
            "ssd_best_class": ((self._grid_best_x, batch), self._block_best,
                               (sptr, a, bs, bcl)),
            "ssd_sort": ((batch, 1), (_SORT_THREADS, 1, 1),
                         (bptr, self._anchors.ptr, sptr, bs, bcl, a, self.score_threshold)
                         + self._coder + (self.max_detections, cb, cs, ca, cc, cr, out)),
            "ssd_nms": ((self._mask_tiles, batch), (_BITS, 1, 1),
                        (cb, cs, ca, cc, self.iou_threshold, self._mask.ptr, cr, bcl, a,
                         self.max_detections, self._tiles_done.ptr, out)),
        }
        launches = []
        for name in self.steps:
            k = self._kernels[name]
            grid, block, args = every[name]
            launches.append((k.launch, grid, block, k.signature.pack(*args)))
        plan = tuple(launches)
        self._plans[key] = plan
        return plan

    def enqueue(self, box_dev, score_dev, batch, stream=None, events=None):
        """Enqueue decode + NMS of ``batch`` frames on ``stream`` (a pycuda Stream or None);
        the kept rows land in mapped pinned host memory. Returns at once.

        Allocates nothing after the first call with the same buffers and batch size: the
        kernels' parameters are packed once per (batch, buffers) and launched directly.
        ``events`` (for benchmarks): None, or 4 pycuda Events recorded on ``stream`` before
        ssd_best_class, ssd_sort, ssd_nms and after ssd_nms (the events of kernels this spec
        does not launch are recorded back to back)."""
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
            if events is not None and len(events) != len(STEPS) + 1:
                raise InputError("events must be None or %d pycuda Events, got %d"
                                 % (len(STEPS) + 1, len(events)))
            plan = self._plan(batch, bptr, sptr)
            self._last = (box_dev, score_dev, batch, bptr, sptr, plan)
        if events is not None:
            return self._enqueue_timed(plan, batch, stream, events)
        for launch, grid, block, args in plan:
            launch(grid, block, args, 0, stream)
        self._event.record(stream)
        self._pending = batch
        return self

    def _enqueue_timed(self, plan, batch, stream, events):
        """enqueue with the benchmark's events recorded between the steps."""
        by_name = dict(zip(self.steps, plan))
        for ev, name in zip(events, STEPS):
            ev.record(stream)
            if name not in by_name:
                continue
            launch, grid, block, args = by_name[name]
            launch(grid, block, args, 0, stream)
        events[len(STEPS)].record(stream)
        self._event.record(stream)
        self._pending = batch
        return self

    def wait(self):
        """Block until the last ``enqueue``'s kernels are complete (their rows readable)."""
        if self._pending:
            self._event.synchronize()
        return self

    def device_rows(self, frame):
        """The device address of frame ``frame``'s kept rows as the last kernel writes them
        (mapped pinned memory): ``HEADER_FLOATS`` floats, the first the count, then
        ``ROW_FLOATS`` per box as ``raw_results`` has them. For kernels enqueued after this
        postprocessor's on the same stream (trtssd.io.draw_device)."""
        if not 0 <= int(frame) < self.max_batch:
            raise InputError("frame %r is outside 0..%d" % (frame, self.max_batch - 1))
        return self._out_host.device_ptr + int(frame) * self._stride * 4

    def raw_results(self, wait=True):
        """Per frame, the kept rows [K, 8]: ymin, xmin, ymax, xmax (model units), score, class,
        anchor index, 0 (views of one copy of the batch's rows)."""
        if not self._pending:
            raise InputError("no batch was enqueued; call enqueue() first")
        if wait:
            self.wait()
        out = self._out_host[:self._pending]
        heads = out[:, :2].tolist()              # per frame: kept count, candidate count
        for f, (k, candidates) in enumerate(heads):
            if not (0 <= k <= self.max_detections) or k != int(k):      # NaN fails the first
                raise EnvironmentProblem(
                    "GPU postprocessing returned %r boxes for frame %d: the kernel did not run "
                    "or its result was read before the stream finished; synchronise the stream "
                    "(or call wait()) before results()" % (k, f))
            if candidates > self.defines["MAX_CAND"]:
                raise InputError(
                    "frame %d has %d (anchor, class) pairs above the score threshold %g, more "
                    "than the GPU NMS sorts (%d); raise --threshold, or cap the candidates per "
                    "class (spec key candidates_per_class)" % (f, int(candidates),
                                                               self.score_threshold,
                                                               self.defines["MAX_CAND"]))
        kept = [int(h[0]) for h in heads]
        block = np.array(out[:, _HEADER:_HEADER + max(kept) * _ROW])     # one copy
        return [block[f, :k * _ROW].reshape(k, _ROW) for f, k in enumerate(kept)]

    def results(self, geometries, labels=None, wait=True):
        """One Detections per frame of the last ``enqueue`` (boxes in frame pixels)."""
        return self.detections(self.raw_results(wait=wait), geometries, labels)

    def detections(self, rows, geometries, labels=None):
        """``raw_results``'s rows (taken earlier) as one Detections per frame, as ``results``
        makes them: the batch's boxes mapped to frame pixels in one go where its frames share
        a geometry, and checked once (Detections.split)."""
        if labels is not self._labels_checked:     # a pipeline passes the same map each time
            check_labels(labels, self.spec.num_classes)
            self._labels_checked = labels
        n = len(rows)
        if not n:
            return []
        geos = _geometries(geometries, n)
        every = rows[0] if n == 1 else np.concatenate(rows)
        g0 = geos[0]
        if n == 1 or all(g is g0 or g == g0 for g in geos):
            boxes = to_frame(every[:, :4], g0, self.spec)
        else:
            boxes = np.concatenate([to_frame(r[:, :4], g, self.spec) for r, g in zip(rows, geos)])
        cls = every[:, 5].astype(np.int32)
        names = label_names(labels, cls)
        if n == 1:
            return [Detections(boxes, every[:, 4], cls, names)]
        return Detections.split(boxes, every[:, 4], cls, names, [len(r) for r in rows])

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

