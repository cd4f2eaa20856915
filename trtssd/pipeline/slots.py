"""The device side of the modes: slots (one batch in flight each) and the layers that make them.

Scheduling (trtssd.pipeline.threads and the modes) only sees two small interfaces, so it can
be tested on the CPU with a fake:

- ``DeviceLayer``: ``activate()`` (a context manager making the device usable in the calling
  thread), ``make_slot()``, ``frame_buffer(shape)`` / ``free_frame_buffer(buf)`` (pinned host
  memory on CUDA), ``max_batch``, ``gpu``, ``pixel_format``, ``close()``.
- ``Slot``: one batch of frames in flight: ``submit(frames)`` enqueues (on CUDA it returns at
  once), ``stage(frames)`` starts moving the next batch to the device while the slot is
  busy (optional), ``ready()`` asks without blocking, ``wait()`` blocks until done,
  ``result()`` returns ``(detections per frame, [(stage, ms, clock), ...])``, ``close()``.
  A slot is reused only after its ``result()`` was taken.

Real layers: ``HostPrepLayer`` (CPU preprocessing with OpenCV; the backend on the CPU, or on
CUDA with pinned copies, one stream and events per slot) and ``GpuLayer`` (GPU preprocessing
from host or device frames, inference and GPU postprocessing, only the kept boxes come back).
Every slot shares one base (``_Contexts``): the execution context per batch size, the batch
check, and one ``close()`` that waits for the work in flight and frees what the slot owns.
"""
import time

import numpy as np

from ..core.errors import EnvironmentProblem, InputError
from ..core.nullcontext import NullContext
from ..io.sources import YUV420_FORMATS, YUV422_FORMATS, yuv_buffer_shape


def frame_shape(pixel_format, height, width):
    """The host array shape of one ``height`` x ``width`` picture in ``pixel_format``:
    (H, W, 3) for BGR, (H*3/2, W) for the 4:2:0 formats, (H, W, 2) for the packed 4:2:2 ones."""
    fmt = str(pixel_format or "BGR").upper()
    h, w = int(height), int(width)
    if fmt in YUV420_FORMATS + YUV422_FORMATS:
        return yuv_buffer_shape(fmt, h, w)
    return (h, w, 3)


_NoContext = NullContext


class Slot(object):
    """One batch of frames in flight (see the module docstring)."""

    def submit(self, frames):
        raise NotImplementedError

    def ready(self):
        return True

    def wait(self):
        pass

    def result(self):
        raise NotImplementedError

    def stage(self, frames):
        """Start moving ``frames``, this slot's next batch, to the device while its current
        batch still runs; its next ``submit`` is then of these frames. Nothing by default."""

    def collect(self):
        """Take the result now and leave the slot free for its next ``submit``; returns a
        function giving ``result()``'s value, which may do the host work (the conversion to
        Detections) later, after that submit."""
        got = self.result()
        return lambda: got

    def prepare(self, sizes):
        """Create now (in the calling thread) what batches of these sizes need, e.g. execution
        contexts whose creation captures a CUDA graph, which must not overlap other threads'
        CUDA calls."""

    def frame_buffer(self, shape):
        """A buffer of this slot that frames of ``shape`` can be decoded into so that the slot
        reads them without a copy, or None. Only for a schedule that reads one frame, runs
        it and delivers it before reading the next (``sync``/``gpu``)."""
        return None

    def close(self):
        pass


class DeviceLayer(object):
    """Makes slots and frame buffers for one backend (see the module docstring)."""
    gpu = False
    max_batch = 1
    pixel_format = "BGR"
    reads_device_frames = False     # True: frames already on the GPU are read in place
    notes = ()

    def activate(self):
        return _NoContext()

    def make_slot(self):
        raise NotImplementedError

    def frame_buffer(self, shape):
        return np.empty(shape, np.uint8)

    def free_frame_buffer(self, buf):
        pass

    def close(self):
        pass

    def _prepared(self, slot):
        """``slot`` with its full-batch context made, or closed and the error raised."""
        try:
            slot.prepare([self.max_batch])
        except BaseException:
            slot.close()
            raise
        return slot


def _preprocess_options(backend, pixel_format="BGR", **overrides):
    """The preprocessing the backend's model wants, reading frames in ``pixel_format``."""
    from ..preprocess import PreprocessOptions
    dtype = np.dtype(getattr(backend, "input_dtype", np.float32)).name
    return PreprocessOptions.from_spec(backend.spec, input_format=pixel_format or "BGR",
                                       dtype=dtype, **overrides)


def _same_memory(a, b):
    try:
        return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    except (AttributeError, KeyError):
        return a is b


def _rows(dev, n, cache):
    """The first ``n`` rows of a DeviceArray (a borrowed view, cached)."""
    if n == dev.shape[0]:
        return dev
    v = cache.get((id(dev), n))
    if v is None:
        from ..gpu.cuda import DeviceArray
        v = DeviceArray.view(dev.ptr, (n,) + tuple(dev.shape[1:]), dev.dtype, dev)
        cache[(id(dev), n)] = v
    return v


def free_pinned(arr):
    """Free a pinned array from trtssd.gpu.cuda.pinned_empty now (its ``close()``), or, for another
    page-locked array, the pycuda host allocation at the end of its ``base`` chain."""
    close = getattr(arr, "close", None)
    if close is not None:
        close()
        return
    obj = getattr(arr, "base", None)
    for _ in range(4):
        if obj is None:
            return
        free = getattr(obj, "free", None)
        if free is not None and not isinstance(obj, np.ndarray):
            free()
            return
        obj = getattr(obj, "base", None)


class _Contexts(object):
    """What every slot shares: one execution context per batch size, bound to the first ``n``
    rows of the slot's buffers (``_bindings(n)``; by default its device arrays ``d_images``,
    ``d_boxes``, ``d_scores``), made on first use or up front by ``prepare``; the batch check;
    and ``close()``: wait for the batch in flight (``done``), close the contexts, the device
    arrays (``_arrays``), pinned host arrays (``_pinned``) and helpers (``_owned``), and drop
    every pycuda object here, with the context current in the thread that made the slot, not
    wherever the slot object happens to be collected ("... in out-of-thread context could not
    be cleaned up")."""
    _pending = None
    done = None
    # pycuda objects a slot may hold; dropped by close()
    _cuda_attrs = ("stream", "done", "t_pre", "t_inf", "t_post", "t_up", "t_down")

    def _init_slot(self, backend, max_batch):
        self.backend = backend
        self.max_batch = max_batch
        self._ctx = {}
        self._views = {}
        self._arrays = []
        self._pinned = []
        self._owned = []
        self._pending = None

    def _device_buffers(self, backend, max_batch):
        """The slot's bound device input and raw outputs (freed by close)."""
        from ..gpu.cuda import DeviceArray
        bshape, sshape = backend.output_shapes(max_batch)
        self.d_images = self._keep(DeviceArray(backend.input_shape(max_batch),
                                               backend.input_dtype))
        self.d_boxes = self._keep(DeviceArray(bshape, np.float32))
        self.d_scores = self._keep(DeviceArray(sshape, np.float32))

    def _stream_setup(self, backend, max_batch, allocate):
        """``allocate()`` (the slot's own buffers), the bound device arrays, then the slot's
        stream, the event that marks a batch done and three event timers on the stream
        (returned); a failure while allocating closes what was made so far."""
        from ..gpu.cuda import EventTimer, driver, host_wait_event
        drv = driver()
        try:
            allocate()
            self._device_buffers(backend, max_batch)
        except BaseException:
            self.close()
            raise
        self.stream = drv.Stream()
        timers = tuple(EventTimer(self.stream) for _ in range(3))
        self.done = host_wait_event(drv)
        return timers

    def _keep(self, array):
        self._arrays.append(array)
        return array

    def _bindings(self, n):
        return (_rows(self.d_images, n, self._views), _rows(self.d_boxes, n, self._views),
                _rows(self.d_scores, n, self._views))

    def _context(self, n):
        ctx = self._ctx.get(n)
        if ctx is None:
            ctx = self.backend.create_context(*self._bindings(n))
            self._ctx[n] = ctx
        return ctx

    def prepare(self, sizes):
        for n in sizes:
            self._context(int(n))

    def _check_batch(self, n):
        if not 1 <= n <= self.max_batch:
            raise InputError("a batch of %d frames for a slot of %d" % (n, self.max_batch))

    def ready(self):
        return self._pending is None or self.done is None or bool(self.done.query())

    def wait(self):
        if self._pending is not None and self.done is not None:
            self.done.synchronize()

    def close(self):
        try:
            self.wait()
        finally:
            for ctx in getattr(self, "_ctx", {}).values():
                ctx.close()
            self._ctx = {}
            for a in getattr(self, "_arrays", ()):
                a.close()
            for h in getattr(self, "_pinned", ()):
                free_pinned(h)
            for o in getattr(self, "_owned", ()):
                o.close()
            self._arrays, self._pinned, self._owned = [], [], []
            getattr(self, "_views", {}).clear()
            for name in self._cuda_attrs:
                if name in self.__dict__:
                    setattr(self, name, None)
            self._pending = None


class _Postprocessing(_Contexts):
    """The CPU preprocessing and postprocessing both host slots share."""

    def _preprocess_host(self, frames, images):
        """OpenCV into the first rows of ``images``: (rows, geometries, host ms)."""
        from ..preprocess import cpu_preprocess
        n = len(frames)
        self._check_batch(n)
        t0 = time.perf_counter()
        view = images[:n]
        tensor, geoms = cpu_preprocess([f.image for f in frames], self.prep, out=view)
        if not _same_memory(tensor, view):
            np.copyto(view, tensor)
        return view, geoms, (time.perf_counter() - t0) * 1e3

    def _init_post(self, backend, prep, max_batch, score_threshold, max_detections, labels):
        self._init_slot(backend, max_batch)
        self.prep = prep
        self.spec = backend.spec
        self.score_threshold = score_threshold
        self.max_detections = max_detections
        self.labels = labels

    def _post(self, boxes, scores, geoms):
        from ..postprocess import postprocess_cpu
        return postprocess_cpu(boxes, scores, self.spec, geoms, self.score_threshold,
                               max_detections=self.max_detections, labels=self.labels)


class CpuSlot(_Postprocessing, Slot):
    """Backend on the CPU: preprocess with OpenCV into the bound input, run the network and
    postprocess with NumPy; ``submit`` does the first two at once, ``result`` the last."""

    def __init__(self, backend, prep, max_batch, score_threshold, max_detections, labels):
        self._init_post(backend, prep, max_batch, score_threshold, max_detections, labels)
        self.images = np.zeros(backend.input_shape(max_batch), backend.input_dtype)
        bshape, sshape = backend.output_shapes(max_batch)
        self.boxes = np.zeros(bshape, np.float32)
        self.scores = np.zeros(sshape, np.float32)

    def _bindings(self, n):
        return self.images[:n], self.boxes[:n], self.scores[:n]

    def submit(self, frames):
        n = len(frames)
        _, geoms, prep_ms = self._preprocess_host(frames, self.images)
        t1 = time.perf_counter()
        self._context(n).enqueue()
        t2 = time.perf_counter()
        self._pending = (n, geoms, [("preprocess", prep_ms, "host"),
                                    ("inference", (t2 - t1) * 1e3, "host")])

    def result(self):
        n, geoms, timings = self._pending
        self._pending = None
        t0 = time.perf_counter()
        dets = self._post(self.boxes[:n], self.scores[:n], geoms)
        timings.append(("postprocess", (time.perf_counter() - t0) * 1e3, "host"))
        return list(dets), timings


class CudaHostSlot(_Postprocessing, Slot):
    """Backend on CUDA with CPU preprocessing (the seed's trt_ssd.py): OpenCV into a pinned
    input, upload, enqueue, download of the raw outputs into pinned memory, all on the slot's
    stream, then NumPy postprocessing once the slot's event completed."""

    def __init__(self, backend, prep, max_batch, score_threshold, max_detections, labels):
        from ..gpu.cuda import pinned_empty
        self._init_post(backend, prep, max_batch, score_threshold, max_detections, labels)

        def allocate():
            bshape, sshape = backend.output_shapes(max_batch)
            self.h_images = pinned_empty(backend.input_shape(max_batch), backend.input_dtype)
            self._pinned.append(self.h_images)
            self.h_boxes = pinned_empty(bshape, np.float32)
            self._pinned.append(self.h_boxes)
            self.h_scores = pinned_empty(sshape, np.float32)
            self._pinned.append(self.h_scores)
        self.t_up, self.t_inf, self.t_down = self._stream_setup(backend, max_batch, allocate)

    def submit(self, frames):
        n = len(frames)
        view, geoms, prep_ms = self._preprocess_host(frames, self.h_images)
        ctx = self._context(n)
        self.t_up.start()
        _rows(self.d_images, n, self._views).copy_from_host(view, stream=self.stream)
        self.t_up.stop()
        self.t_inf.start()
        ctx.enqueue(stream=self.stream)
        self.t_inf.stop()
        self.t_down.start()
        _rows(self.d_boxes, n, self._views).copy_to_host(out=self.h_boxes[:n], stream=self.stream)
        _rows(self.d_scores, n, self._views).copy_to_host(out=self.h_scores[:n],
                                                          stream=self.stream)
        self.t_down.stop()
        self.done.record(self.stream)
        self._pending = (n, geoms, [("preprocess", prep_ms, "host")])

    def result(self):
        self.wait()
        n, geoms, timings = self._pending
        self._pending = None
        timings += [("upload", self.t_up.elapsed_ms(), "cuda-event"),
                    ("inference", self.t_inf.elapsed_ms(), "cuda-event"),
                    ("download", self.t_down.elapsed_ms(), "cuda-event")]
        t0 = time.perf_counter()
        dets = self._post(self.h_boxes[:n], self.h_scores[:n], geoms)
        timings.append(("postprocess", (time.perf_counter() - t0) * 1e3, "host"))
        return list(dets), timings


class DrawStyle(object):
    """How the annotated picture is drawn (trtssd.io.sinks.annotate's ``labels`` and
    ``overlay``) and, optionally, which class ids a ``--classes`` filter keeps before drawing."""
    __slots__ = ("labels", "overlay", "class_ids")

    def __init__(self, labels=None, overlay=None, class_ids=None):
        self.labels, self.overlay, self.class_ids = labels, overlay, class_ids


class GpuSlot(_Contexts, Slot):
    """Everything on the GPU on the slot's own stream: GPU preprocessing from the frames (host
    frames uploaded, device frames such as NVDEC's read in place), inference, decode + NMS,
    whose last kernel writes the kept boxes into mapped pinned memory; ``result`` reads them
    once the slot's event completed.

    ``draw`` (a DrawStyle, BGR frames only): ``submit`` also enqueues, after the
    postprocessing and on the same stream, a device copy of each frame's pixels on the
    device (the preprocessor's own copy of a read-only host frame, a shared ring's, or a
    device frame given by the caller, which stays as it is) and the drawing of the frame's
    kept boxes into it, laid out on the device (trtssd.io.draw_device: no host work on the
    boxes); the picture then comes down on the slot's copy stream into a pinned buffer of the
    slot, beside the slot's next batch, and ``collect``'s second half waits for it and makes
    it ``frame.annotated`` (valid until this slot's next ``result``: pictures alternate
    between two buffer sets). Every sink here takes host pictures, so the picture comes down
    once. Writable host frames are left to the CPU, drawn in place (trtssd.pipeline.base
    Delivery).
    """
    _cuda_attrs = _Contexts._cuda_attrs + ("t_draw", "copy_stream", "painted", "downloaded",
                                           "upload_stream", "staging_free")

    def __init__(self, backend, prep, max_batch, max_frame_shape, score_threshold,
                 max_detections, labels, time_every=1, draw=None):
        from ..postprocess.gpu import GpuPostprocessor
        self._init_slot(backend, max_batch)
        self.labels = labels
        self.pre = self.post = self.drawer = self.dets_drawer = None
        draw = draw if prep.input_format == "BGR" else None     # YUV frames: the CPU's
        self.draw_style = draw

        def allocate():
            self.pre = slot_preprocessor(prep, max_batch, max_frame_shape, draw is not None)
            self._owned.append(self.pre)
            self.post = GpuPostprocessor(backend.spec, max_batch, score_threshold,
                                         max_detections)
            self._owned.append(self.post)
            if draw is not None:
                from ..gpu.cuda import DeviceArray, pinned_empty
                from ..io.draw_device import DetectionDrawer
                from ..io.draw_gpu import GpuDrawer
                self.drawer = GpuDrawer(ring=2)                 # the atlases' owner
                self._owned.append(self.drawer)
                self.dets_drawer = DetectionDrawer(self.drawer, backend.spec, labels, draw,
                                                   max_batch, self.post.max_detections)
                self._owned.append(self.dets_drawer)
                self.dets_drawer.prepare(max_frame_shape[0], max_frame_shape[1])
                shape = (2, max_batch) + tuple(max_frame_shape[:2]) + (3,)
                self.h_drawn = pinned_empty(shape, np.uint8)
                self._pinned.append(self.h_drawn)
                self.d_drawn = self._keep(DeviceArray(shape, np.uint8))
                self._picture_bytes = int(np.prod(shape[2:]))
        self.t_pre, self.t_inf, self.t_post = self._stream_setup(backend, max_batch, allocate)
        from ..gpu.cuda import EventTimer, driver, host_wait_event
        drv = driver()
        self.upload_stream = drv.Stream()
        self.staging_free = None
        if draw is not None:
            self.staging_free = host_wait_event(drv)
            self.t_draw = EventTimer(self.stream)
            self.copy_stream = drv.Stream()
            self.painted = host_wait_event(drv)
            self.downloaded = [host_wait_event(drv), host_wait_event(drv)]
        self.time_every = max(1, int(time_every))
        self._submits = 0

    def submit(self, frames):
        n = len(frames)
        self._check_batch(n)
        ctx = self._context(n)
        views = self._views
        stream = self.stream
        images = _rows(self.d_images, n, views)
        timed = self._submits % self.time_every == 0
        self._submits += 1
        t0 = time.perf_counter()
        if timed:
            self.t_pre.start()
        inputs = [f.image for f in frames]
        batch = inputs if n > 1 else inputs[0]
        _, geoms = self.pre.preprocess(batch, out=images, stream=stream)
        if timed:
            self.t_pre.stop()
        copies = None
        if self.dets_drawer is not None:
            copies = self._copy_pictures(frames, batch, self._submits % 2)
        if timed:
            self.t_inf.start()
        ctx.enqueue(stream=stream)
        if timed:
            self.t_inf.stop()
            self.t_post.start()
        self.post.enqueue(_rows(self.d_boxes, n, views), _rows(self.d_scores, n, views), n,
                          stream)
        if timed:
            self.t_post.stop()
        drawn = None
        if copies:
            if timed:
                self.t_draw.start()
            drawn = self._enqueue_draw(copies, geoms, self._submits % 2)
            if timed:
                self.t_draw.stop()
        self.done.record(stream)
        self._pending = (n, geoms, (time.perf_counter() - t0) * 1e3, timed, frames, drawn)

    def stage(self, frames):
        # the uploads on the slot's upload stream, after the picture copies of the batch in
        # flight (which read the device staging); the next submit's kernel waits for them
        inputs = [f.image for f in frames]
        if self.staging_free is not None:
            self.upload_stream.wait_for_event(self.staging_free)
        self.pre.upload(inputs if len(inputs) > 1 else inputs[0], stream=self.upload_stream)

    def frame_buffer(self, shape):
        # the preprocessor's pinned staging of batch slot 0: a frame decoded there is uploaded
        # from it directly (no host copy); only when it has exactly the frame's shape, so the
        # decoder can write it in place
        buf = self.pre.staging(0)
        return buf if tuple(buf.shape) == tuple(shape) else None

    def result(self):
        return self.collect()()

    def collect(self):
        self.wait()
        n, geoms, enqueue_ms, timed, frames, drawn = self._pending
        self._pending = None
        post, labels = self.post, self.labels
        rows = post.raw_results(wait=False)         # copies: the next submit may overwrite
        if not timed:
            timings = [("enqueue", enqueue_ms, "host")]
        else:
            timings = [("preprocess", self.t_pre.elapsed_ms(), "cuda-event"),
                       ("inference", self.t_inf.elapsed_ms(), "cuda-event"),
                       ("postprocess", self.t_post.elapsed_ms(), "cuda-event"),
                       ("enqueue", enqueue_ms, "host")]
        if not drawn:
            return lambda: (post.detections(rows, geoms, labels), timings)
        if timed:
            timings.append(("draw-gpu", self.t_draw.elapsed_ms(), "cuda-event"))
        pictures, half = drawn
        downloaded = self.downloaded[half]

        def finish():
            downloaded.synchronize()
            for frame, out in pictures:
                frame.annotated = out
            return post.detections(rows, geoms, labels), timings
        return finish

    def _copy_pictures(self, frames, batch, half):
        """Enqueue, right after the preprocessing kernel, the copy of the frames' device pixels
        into buffer set ``half`` of the slot's device pictures, and mark the staging free for
        the next batch's upload (``stage``); [(batch index, frame, picture address, row bytes,
        width, height)] of the frames drawn here, or None: writable host frames (the CPU
        draws them in place) and mapped ones (no device copy) are left out."""
        from ..gpu.cuda import copy_2d, driver
        where = self.pre.device_frames(batch)
        stream = self.stream
        size = self._picture_bytes
        base = self.d_drawn.ptr + half * self.max_batch * size
        drv = driver()
        copies = []
        for k, (frame, (ptr, pitch, w, h, staged)) in enumerate(zip(frames, where)):
            img = frame.image
            if frame.annotated is not None:
                continue
            if isinstance(img, np.ndarray) and (img.flags.writeable or not staged):
                continue        # writable: drawn in place on the CPU; mapped: no device copy
            row = w * 3
            pic = base + k * size
            if pitch == row:
                drv.memcpy_dtod_async(pic, ptr, h * row, stream)
            else:
                copy_2d(ptr, pitch, pic, row, row, h, stream)
            copies.append((k, frame, pic, row, w, h))
        self.staging_free.record(stream)
        return copies or None

    def _enqueue_draw(self, copies, geoms, half):
        """Enqueue the drawing of the kept boxes into the pictures ``_copy_pictures`` made
        and, on the copy stream, their download into set ``half`` of the pinned pictures (see
        the class docstring); (the (frame, picture) pairs, ``half``) for ``collect``."""
        from ..gpu.cuda import driver
        from ..postprocess.cpu import _geometries
        stream = self.stream
        host = self.h_drawn[half]
        post, dd = self.post, self.dets_drawer
        gs = _geometries(geoms, len(geoms))
        drawn = []
        for k, frame, pic, row, w, h in copies:
            dd.enqueue(k, post.device_rows(k), gs[k], pic, row, w, h, stream)
            drawn.append((frame, host[k].reshape(-1)[:h * row].reshape(h, w, 3), pic))
        self.painted.record(stream)
        cs = self.copy_stream
        cs.wait_for_event(self.painted)
        drv = driver()
        for _, out, pic in drawn:
            drv.memcpy_dtoh_async(out, pic, cs)
        self.downloaded[half].record(cs)
        return [(frame, out) for frame, out, _ in drawn], half

    def close(self):
        try:
            cs = getattr(self, "copy_stream", None)
            if cs is not None:
                cs.synchronize()        # pictures still coming down
        finally:
            _Contexts.close(self)
            self.pre = self.post = self.drawer = self.dets_drawer = None


def slot_preprocessor(prep, max_batch, max_frame_shape, drawn):
    """A GPU slot's GpuPreprocessor. ``drawn``: the slot copies the device frames to draw on
    them (GpuSlot._copy_pictures), so every row of a host frame is uploaded, not only the rows
    the filter reads."""
    from ..preprocess import GpuPreprocessor
    return GpuPreprocessor(prep, max_batch=max_batch, max_frame_shape=max_frame_shape,
                           whole_uploads=drawn)


class _CudaLayer(DeviceLayer):
    """What the layers share: the backend, batch and pixel format checks, the preprocessing
    options, and on CUDA the primary context and pinned frame buffers."""

    def _init_layer(self, backend, score_threshold, max_detections, labels, max_batch,
                    pixel_format):
        self.backend = backend
        self.max_batch = int(max_batch)
        backend.check_batch(self.max_batch)
        self.pixel_format = str(pixel_format or "BGR").upper()
        self.prep = _preprocess_options(backend, self.pixel_format)
        self.args = (score_threshold, max_detections, labels)
        self.context = None

    def _init_cuda(self):
        from ..gpu.cuda import CudaContext
        self.context = CudaContext(0)

    def activate(self):
        return self.context.active()

    def frame_buffer(self, shape):
        from ..gpu.cuda import pinned_empty
        return pinned_empty(shape, np.uint8)

    def free_frame_buffer(self, buf):
        free_pinned(buf)

    def close(self):
        ctx, self.context = getattr(self, "context", None), None
        if ctx is not None:
            ctx.close()


class HostPrepLayer(_CudaLayer):
    """CPU preprocessing (OpenCV), the backend on its device, CPU postprocessing."""

    def __init__(self, backend, score_threshold=0.3, max_detections=None, labels=None,
                 max_batch=1, pixel_format="BGR"):
        self._init_layer(backend, score_threshold, max_detections, labels, max_batch,
                         pixel_format)
        self.gpu = backend.device == "cuda"
        if self.gpu:
            self._init_cuda()
            self.notes = ("preprocess and postprocess timed on the host; upload, inference "
                          "and download with CUDA events",)
        else:
            self.notes = ("every stage timed on the host (CPU backend)",)

    def activate(self):
        return _CudaLayer.activate(self) if self.gpu else _NoContext()

    def frame_buffer(self, shape):
        return _CudaLayer.frame_buffer(self, shape) if self.gpu else np.empty(shape, np.uint8)

    def free_frame_buffer(self, buf):
        if self.gpu:
            free_pinned(buf)

    def make_slot(self):
        cls = CudaHostSlot if self.gpu else CpuSlot
        return self._prepared(cls(self.backend, self.prep, self.max_batch, *self.args))


class GpuLayer(_CudaLayer):
    """GPU preprocessing, inference and GPU postprocessing; needs a CUDA backend."""
    gpu = True
    reads_device_frames = True
    time_every = 4
    notes = ("preprocess (the kernel, after the frame's move to the device: whole, or "
             "only the rows the filter reads, gathered by a kernel; enqueued before it on the "
             "slot's stream, or staged ahead on the slot's upload stream while the slot was "
             "busy, then only what of it was left), inference and "
             "postprocess (the kept boxes written to mapped pinned memory) timed with CUDA "
             "events on one submit in %d (the others are not timed, to keep the host's work "
             "per frame small); enqueue = host time to enqueue a batch" % time_every,)

    def __init__(self, backend, score_threshold=0.3, max_detections=None, labels=None,
                 max_batch=1, max_frame_shape=(1080, 1920, 3), pixel_format="BGR"):
        if backend.device != "cuda":
            raise EnvironmentProblem(
                "this mode runs preprocessing and postprocessing on the GPU, but the backend "
                "%r runs on the CPU; use --device cuda with a GPU, or --mode sync/async on the "
                "CPU" % getattr(backend, "name", backend))
        self._init_layer(backend, score_threshold, max_detections, labels, max_batch,
                         pixel_format)
        self.max_frame_shape = tuple(max_frame_shape)
        self.draw_style = None
        self._init_cuda()

    def draw_on_device(self, style):
        """Slots made from now on draw the annotated picture on the GPU with ``style`` (a
        DrawStyle; None: they do not draw), for BGR frames (see GpuSlot)."""
        self.draw_style = style if self.pixel_format == "BGR" else None
        note = ("drawing: on the GPU into a device copy of each read-only host frame or "
                "device BGR frame, laid out on the device from the kept boxes and drawn by two "
                "kernels per frame after the postprocessing on the slot's stream (stage "
                "draw-gpu: GPU time per batch), then one download into pinned memory on the "
                "slot's copy stream; writable host frames in place on the CPU")
        if style is not None and self.pixel_format != "BGR":
            note = ("drawing: %s frames are not drawn on the GPU; host frames are drawn on the "
                    "CPU" % self.pixel_format)
        self.notes = tuple(n for n in self.notes if not n.startswith("drawing:")) + (
            (note,) if style is not None else ())

    def make_slot(self):
        return self._prepared(GpuSlot(self.backend, self.prep, self.max_batch,
                                      self.max_frame_shape, *self.args,
                                      time_every=self.time_every, draw=self.draw_style))
