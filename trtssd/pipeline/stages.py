"""The pieces every mode is built from.

Scheduling (threads, queues, drops, shutdown) is kept apart from the device work, which sits
behind a small interface so the scheduling can be tested on the CPU with a fake:

- ``DeviceLayer``: ``activate()`` (a context manager making the device usable in the calling
  thread), ``make_slot()``, ``frame_buffer(shape)`` / ``free_frame_buffer(buf)`` (pinned host
  memory on CUDA), ``max_batch``, ``gpu``, ``close()``.
- ``Slot``: one batch of frames in flight: ``submit(frames)`` enqueues (on CUDA it returns at
  once), ``ready()`` asks without blocking, ``wait()`` blocks until done, ``result()`` returns
  ``(detections per frame, [(stage, ms, clock), ...])``, ``close()``. A slot is reused only
  after its ``result()`` was taken.

Real layers: ``HostPrepLayer`` (CPU preprocessing with OpenCV; the backend on the CPU, or on
CUDA with pinned copies, one stream and events per slot) and ``GpuLayer`` (GPU preprocessing
from host frames, inference and GPU postprocessing, only the kept boxes come back).

The threading helpers: ``Channel`` (a bounded queue that can drop its oldest item, be closed at
the end of a stream or aborted on a stop), ``FramePool`` (reused frame buffers), ``Crew``
(threads whose first exception stops everything and is re-raised in the caller).
"""
import collections
import functools
import threading
import time

import numpy as np

from ..core.errors import EnvironmentProblem, InputError
from ..core.nullcontext import NullContext


# ---------------------------------------------------------------------------------------------
# threads and queues
# ---------------------------------------------------------------------------------------------

class Closed(Exception):
    """The channel was closed (end of stream) and is empty, or aborted."""


class Timeout(Exception):
    """Nothing arrived in time."""


def discard(item):
    """Give back the frame buffers an item holds (a Frame, a list of them, or an object with a
    ``frames`` attribute)."""
    if item is None:
        return
    frames = getattr(item, "frames", None)
    if frames is None:
        frames = item if isinstance(item, (list, tuple)) else [item]
    for f in frames:
        done = getattr(f, "done", None)
        if done is not None:
            done()


class Channel(object):
    """A bounded FIFO between two threads.

    ``put`` blocks while full, or with ``drop_oldest`` removes and returns the oldest item
    (the caller counts it and discards it). ``close()`` marks the end of the stream: the
    consumer drains what is left, then ``get`` raises Closed. ``abort()`` empties it,
    discarding the items, and wakes everyone; later calls raise Closed.
    """

    def __init__(self, capacity, drop_oldest=False):
        if capacity < 1:
            raise InputError("a channel needs capacity >= 1, got %d" % capacity)
        self.capacity = int(capacity)
        self.drop_oldest = bool(drop_oldest)
        self._items = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._aborted = False

    def put(self, item, timeout=None):
        """Append ``item``; returns the dropped oldest item or None."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        with self._cond:
            while True:
                if self._closed or self._aborted:
                    raise Closed()
                if len(self._items) < self.capacity:
                    self._items.append(item)
                    self._cond.notify_all()
                    return None
                if self.drop_oldest:
                    dropped = self._items.popleft()
                    self._items.append(item)
                    self._cond.notify_all()
                    return dropped
                wait = 0.25 if deadline is None else min(0.25, deadline - time.perf_counter())
                if wait <= 0:
                    raise Timeout()
                self._cond.wait(wait)

    def get(self, timeout=None):
        deadline = None if timeout is None else time.perf_counter() + timeout
        with self._cond:
            while True:
                if self._aborted:
                    raise Closed()
                if self._items:
                    item = self._items.popleft()
                    self._cond.notify_all()
                    return item
                if self._closed:
                    raise Closed()
                wait = 0.25 if deadline is None else min(0.25, deadline - time.perf_counter())
                if wait <= 0:
                    raise Timeout()
                self._cond.wait(wait)

    def wait_empty(self, stop, timeout=None):
        """Block until the consumer took everything (or ``stop`` is set / aborted)."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        with self._cond:
            while self._items and not self._aborted and not stop.is_set():
                wait = 0.25 if deadline is None else min(0.25, deadline - time.perf_counter())
                if wait <= 0:
                    raise Timeout()
                self._cond.wait(wait)
            if self._aborted:
                raise Closed()

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def abort(self):
        with self._cond:
            self._aborted = True
            items = list(self._items)
            self._items.clear()
            self._cond.notify_all()
        for it in items:
            discard(it)

    def __len__(self):
        with self._cond:
            return len(self._items)


class Crew(object):
    """The threads of one run. The first exception in any of them (or ``halt()``) sets
    ``stop`` and aborts the registered channels, so every thread wakes and ends;
    ``join()`` waits for all, and ``reraise()`` raises that exception in the caller with its
    original traceback."""

    def __init__(self):
        self.stop = threading.Event()
        self.errors = []
        self.threads = []
        self.channels = []
        self._lock = threading.Lock()

    def channel(self, capacity, drop_oldest=False):
        ch = Channel(capacity, drop_oldest)
        self.channels.append(ch)
        return ch

    def spawn(self, name, fn, *args):
        t = threading.Thread(target=self._main, args=(fn, args), name="trtssd-" + name)
        t.daemon = True
        self.threads.append(t)
        t.start()
        return t

    def _main(self, fn, args):
        try:
            fn(*args)
        except Closed:
            pass                          # woken by a stop: not an error of its own
        except BaseException as e:        # noqa: B902 - everything must reach the caller
            self.fail(e)

    def fail(self, exc):
        with self._lock:
            if not self.errors:
                self.errors.append(exc)
        self.halt()

    def halt(self):
        self.stop.set()
        for ch in self.channels:
            ch.abort()

    def join(self, timeout=30.0):
        """Wait for every thread (at most ``timeout`` s in all); the names of those still
        running (e.g. blocked inside a camera driver's read), which the caller must not pull
        the device buffers from under."""
        deadline = time.perf_counter() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.perf_counter()))
        return [t.name for t in self.threads if t.is_alive()]

    def reraise(self):
        if self.errors:
            e = self.errors[0]
            raise e.with_traceback(e.__traceback__)


class FramePool(object):
    """``count`` frame buffers of one shape from the device layer (pinned on CUDA), handed out
    and given back; allocated up front in the caller's thread. ``releaser(buf)`` is the
    callable that gives ``buf`` back (made once per buffer, not per frame)."""

    def __init__(self, layer, shape, count, buffers=None):
        self.layer = layer
        self.shape = tuple(int(v) for v in shape)
        self._borrowed = buffers is not None
        self._all = (list(buffers) if buffers is not None
                     else [layer.frame_buffer(self.shape) for _ in range(int(count))])
        self._free = collections.deque(self._all)
        self._cond = threading.Condition()
        self._releasers = dict((id(b), functools.partial(self.put, b)) for b in self._all)

    def get(self, stop):
        with self._cond:
            while not self._free:
                if stop.is_set():
                    raise Closed()
                self._cond.wait(0.25)
            return self._free.popleft()

    def put(self, buf):
        with self._cond:
            self._free.append(buf)
            self._cond.notify()

    def releaser(self, buf):
        return self._releasers[id(buf)]

    @property
    def free(self):
        with self._cond:
            return len(self._free)

    def close(self):
        bufs, self._all = self._all, []
        self._free.clear()
        self._releasers = {}
        if self._borrowed:
            return
        for b in bufs:
            self.layer.free_frame_buffer(b)


class Capture(object):
    """Reads one source for a run: into pooled buffers when the size is known (or the
    source's own buffers, when ``pool`` says it keeps them), timing the read, stopping at
    ``max_frames`` reads or the deadline. Only this capture's thread appends to the stats'
    'capture' list (no lock: one writer per list)."""

    def __init__(self, source, stats, pool=None, max_frames=None, deadline=None, lock=None):
        self.source = source
        self.stats = stats
        own = getattr(pool, "owned_by_source", False)
        self.pool = None if own else pool
        self.max_frames = max_frames
        self.deadline = deadline
        self.count = 0
        self.ended = False

    def read(self, stop):
        if self.ended or stop.is_set():
            return None
        if self.max_frames is not None and self.count >= self.max_frames:
            self.ended = True
            return None
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.ended = True
            return None
        pool = self.pool
        if pool is None:
            t0 = time.perf_counter()
            frame = self.source.read()
            ms = (time.perf_counter() - t0) * 1e3
            if frame is None:
                self.ended = True
                return None
        else:
            buf = pool.get(stop)
            t0 = time.perf_counter()
            try:
                frame = self.source.read(out=buf)
            except BaseException:
                pool.put(buf)
                raise
            ms = (time.perf_counter() - t0) * 1e3
            if frame is None:
                pool.put(buf)
                self.ended = True
                return None
            if frame.image is buf:
                frame.release = pool.releaser(buf)
            else:
                pool.put(buf)
        self.count += 1
        self.stats.add("capture", ms)
        return frame


def record(stats, stage, ms, clock="host", lock=None):
    if lock is None:
        stats.add(stage, ms, clock)
    else:
        with lock:
            stats.add(stage, ms, clock)


# ---------------------------------------------------------------------------------------------
# the device layer
# ---------------------------------------------------------------------------------------------

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


def _preprocess_options(backend, **overrides):
    from ..preprocess import PreprocessOptions
    dtype = np.dtype(getattr(backend, "input_dtype", np.float32)).name
    return PreprocessOptions.from_spec(backend.spec, input_format="BGR", dtype=dtype,
                                       **overrides)


def _same_memory(a, b):
    try:
        return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    except (AttributeError, KeyError):
        return a is b


class _Contexts(object):
    """One execution context per batch size, bound to the first ``n`` rows of the slot's
    buffers (``_bindings(n)``; by default its device arrays ``d_images``, ``d_boxes``,
    ``d_scores``), made on first use or up front by ``prepare``."""

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

    def _init_post(self, backend, score_threshold, max_detections, labels):
        self.backend = backend
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
        self._init_post(backend, score_threshold, max_detections, labels)
        self.prep = prep
        self.max_batch = max_batch
        self.images = np.zeros(backend.input_shape(max_batch), backend.input_dtype)
        bshape, sshape = backend.output_shapes(max_batch)
        self.boxes = np.zeros(bshape, np.float32)
        self.scores = np.zeros(sshape, np.float32)
        self._ctx = {}
        self._pending = None

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

    def close(self):
        for ctx in self._ctx.values():
            ctx.close()
        self._ctx = {}


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


class CudaHostSlot(_Postprocessing, Slot):
    """Backend on CUDA with CPU preprocessing (the seed's trt_ssd.py): OpenCV into a pinned
    input, upload, enqueue, download of the raw outputs into pinned memory, all on the slot's
    stream, then NumPy postprocessing once the slot's event completed."""

    def __init__(self, backend, prep, max_batch, score_threshold, max_detections, labels):
        import pycuda.driver as drv
        from ..gpu.cuda import DeviceArray, EventTimer, pinned_empty
        self._init_post(backend, score_threshold, max_detections, labels)
        self.prep = prep
        self.max_batch = max_batch
        self._owned = []
        ishape = backend.input_shape(max_batch)
        bshape, sshape = backend.output_shapes(max_batch)
        self.h_images = pinned_empty(ishape, backend.input_dtype)
        self.h_boxes = pinned_empty(bshape, np.float32)
        self.h_scores = pinned_empty(sshape, np.float32)
        self.d_images = DeviceArray(ishape, backend.input_dtype)
        self.d_boxes = DeviceArray(bshape, np.float32)
        self.d_scores = DeviceArray(sshape, np.float32)
        self.stream = drv.Stream()
        self.t_up, self.t_inf, self.t_down = (EventTimer(self.stream) for _ in range(3))
        self.done = drv.Event(drv.event_flags.DISABLE_TIMING)
        self._views = {}
        self._ctx = {}
        self._pending = None

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

    def ready(self):
        return self._pending is None or bool(self.done.query())

    def wait(self):
        if self._pending is not None:
            self.done.synchronize()

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

    def close(self):
        try:
            if self._pending is not None:
                self.done.synchronize()
        finally:
            for ctx in self._ctx.values():
                ctx.close()
            self._ctx = {}
            for a in (self.d_images, self.d_boxes, self.d_scores):
                a.close()
            for h in (self.h_images, self.h_boxes, self.h_scores):
                free_pinned(h)
            self._views.clear()
            # pycuda frees a stream or event when its last reference goes; drop them here,
            # where the caller holds the context current, not in whichever thread the slot
            # object happens to be collected ("... in out-of-thread context could not be
            # cleaned up")
            self.stream = self.done = self.t_up = self.t_inf = self.t_down = None
            self._pending = None


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


class GpuSlot(_Contexts, Slot):
    """Everything on the GPU on the slot's own stream: GPU preprocessing from the host frames
    (upload included), inference, decode + NMS, and a copy of only the kept boxes into pinned
    memory; ``result`` reads them once the slot's event completed."""

    def __init__(self, backend, prep, max_batch, max_frame_shape, score_threshold,
                 max_detections, labels, time_every=1):
        import pycuda.driver as drv
        from ..gpu.cuda import DeviceArray, EventTimer
        from ..postprocess import GpuPostprocessor
        from ..preprocess import GpuPreprocessor
        self.backend = backend
        self.max_batch = max_batch
        self.labels = labels
        self.pre = self.post = None
        self._arrays = []
        try:
            self.pre = GpuPreprocessor(prep, max_batch=max_batch, max_frame_shape=max_frame_shape)
            self.post = GpuPostprocessor(backend.spec, max_batch, score_threshold,
                                         max_detections)
            bshape, sshape = backend.output_shapes(max_batch)
            self.d_images = DeviceArray(backend.input_shape(max_batch), backend.input_dtype)
            self._arrays.append(self.d_images)
            self.d_boxes = DeviceArray(bshape, np.float32)
            self._arrays.append(self.d_boxes)
            self.d_scores = DeviceArray(sshape, np.float32)
            self._arrays.append(self.d_scores)
        except BaseException:
            self.close()
            raise
        self.stream = drv.Stream()
        self.t_pre, self.t_inf, self.t_post = (EventTimer(self.stream) for _ in range(3))
        self.done = drv.Event(drv.event_flags.DISABLE_TIMING)
        self._views = {}
        self._ctx = {}
        self._pending = None
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
        _, geoms = self.pre.preprocess([f.image for f in frames] if n > 1 else frames[0].image,
                                       out=images, stream=stream)
        if timed:
            self.t_pre.stop()
            self.t_inf.start()
        ctx.enqueue(stream=stream)
        if timed:
            self.t_inf.stop()
            self.t_post.start()
        self.post.enqueue(_rows(self.d_boxes, n, views), _rows(self.d_scores, n, views), n,
                          stream)
        if timed:
            self.t_post.stop()
        self.done.record(stream)
        self._pending = (n, geoms, (time.perf_counter() - t0) * 1e3, timed)

    def ready(self):
        return self._pending is None or bool(self.done.query())

    def wait(self):
        if self._pending is not None:
            self.done.synchronize()

    def frame_buffer(self, shape):
        # the preprocessor's pinned staging of batch slot 0: a frame decoded there is uploaded
        # from it directly (no host copy); only when it has exactly the frame's shape, so the
        # decoder can write it in place
        if tuple(shape) != tuple(self.pre.max_frame_shape):
            return None
        return self.pre.staging(0)

    def result(self):
        self.wait()
        n, geoms, enqueue_ms, timed = self._pending
        self._pending = None
        dets = self.post.results(geoms, labels=self.labels)
        if not timed:
            return dets, [("enqueue", enqueue_ms, "host")]
        timings = [("preprocess", self.t_pre.elapsed_ms(), "cuda-event"),
                   ("inference", self.t_inf.elapsed_ms(), "cuda-event"),
                   ("postprocess", self.t_post.elapsed_ms(), "cuda-event"),
                   ("enqueue", enqueue_ms, "host")]
        return dets, timings

    def close(self):
        try:
            if getattr(self, "_pending", None) is not None:
                self.done.synchronize()
        finally:
            for ctx in getattr(self, "_ctx", {}).values():
                ctx.close()
            self._ctx = {}
            for a in self._arrays:
                a.close()
            self._arrays = []
            for p in (self.pre, self.post):
                if p is not None:
                    p.close()
            self.pre = self.post = None
            getattr(self, "_views", {}).clear()
            # drop every pycuda object here, with the context current in the thread that
            # made the slot, not wherever the slot object is collected (see CudaHostSlot)
            self.stream = self.done = self.t_pre = self.t_inf = self.t_post = None
            self._pending = None


class _CudaLayer(DeviceLayer):
    """What the CUDA layers share: the primary context, pinned frame buffers."""

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
                 max_batch=1):
        self.backend = backend
        self.gpu = backend.device == "cuda"
        self.max_batch = int(max_batch)
        backend.check_batch(self.max_batch)
        self.prep = _preprocess_options(backend)
        self.args = (score_threshold, max_detections, labels)
        self.context = None
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
        slot = cls(self.backend, self.prep, self.max_batch, *self.args)
        try:
            slot.prepare([self.max_batch])
        except BaseException:
            slot.close()
            raise
        return slot


class GpuLayer(_CudaLayer):
    """GPU preprocessing, inference and GPU postprocessing; needs a CUDA backend."""
    gpu = True
    time_every = 4
    notes = ("preprocess (host-to-device copy of the frame included), inference and "
             "postprocess (download of the kept boxes included) timed with CUDA events on one "
             "submit in %d (the others are not timed, to keep the host's work per frame "
             "small); enqueue = host time to enqueue a batch" % time_every,)

    def __init__(self, backend, score_threshold=0.3, max_detections=None, labels=None,
                 max_batch=1, max_frame_shape=(1080, 1920, 3)):
        if backend.device != "cuda":
            raise EnvironmentProblem(
                "this mode runs preprocessing and postprocessing on the GPU, but the backend "
                "%r runs on the CPU; use --device cuda with a GPU, or --mode sync/async on the "
                "CPU" % getattr(backend, "name", backend))
        self.backend = backend
        self.max_batch = int(max_batch)
        backend.check_batch(self.max_batch)
        self.max_frame_shape = tuple(max_frame_shape)
        self.prep = _preprocess_options(backend)
        self.args = (score_threshold, max_detections, labels)
        self.context = None
        self._init_cuda()

    def make_slot(self):
        slot = GpuSlot(self.backend, self.prep, self.max_batch, self.max_frame_shape, *self.args,
                       time_every=self.time_every)
        try:
            slot.prepare([self.max_batch])
        except BaseException:
            slot.close()
            raise
        return slot
