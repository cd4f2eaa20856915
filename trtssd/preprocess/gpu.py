"""``GpuPreprocessor``: frames -> network input on the GPU in one fused kernel launch
(preprocess.cu beside this file; semantics: trtssd.preprocess.options).

The GPU kernel computes the bilinear blend in float; OpenCV's uint8 path blends with 11-bit
fixed-point weights and rounds to uint8, so the two differ by less than one grey level before
normalisation; nearest is identical.

Split by concern: what the frames are and what a call does with them (plan.py, cached per set
of frames), the buffers (staging.py), and here the call itself: host copies, uploads, the
descriptor table and the launch, ordered on the caller's stream.
"""
import threading

import numpy as np

from ..core.closeable import Closeable
from ..core.errors import InputError
from ..core.nullcontext import NULL_CONTEXT
from ..gpu.cuda import DeviceArray, device_buffer, foreign_key, host_wait_event
from ..gpu.launch import ScalarArg, Signature, StructArg, VectorArg, load_kernel
from .frames import frame_list
from .options import PreprocessOptions
from .plan import GATHER_BLOCK, GATHER_MAX, ROW_COPY_DTYPE, Planner, frame_desc_dtype
from .staging import DescriptorTables, Staging

BLOCK = (32, 8, 1)


def kernel_signature(options):
    """preprocess_u8's parameter list (preprocess.cu) for ``options``: the frame descriptor
    by value is 64 bytes, 96 with YUV chroma planes. Packed once per plan (132 or 164 bytes)."""
    return Signature(
        VectorArg("table"), StructArg("frame", frame_desc_dtype(options).itemsize),
        ScalarArg("q", "frame_stride"), VectorArg("out"), ScalarArg("i", "out_w"),
        ScalarArg("i", "out_h"),
        *[ScalarArg("f", "%s%d" % (what, c)) for what in ("mean", "scale", "pad") for c in range(3)])


GATHER_SIGNATURE = Signature(StructArg("jobs", GATHER_MAX * ROW_COPY_DTYPE.itemsize))


def launch_grid(options, n):
    """The kernel's grid for ``n`` frames: one thread per output pixel, blocks of BLOCK."""
    return ((options.width + BLOCK[0] - 1) // BLOCK[0], (options.height + BLOCK[1] - 1) // BLOCK[1],
            int(n))


def kernel_norm_args(options):
    """The kernel's mean[3], scale[3] and normalised pad[3] as float32 values."""
    m = np.asarray(options.mean, np.float32)
    k = np.asarray(options.scale, np.float32)
    return tuple(m) + tuple(k) + tuple(options.normalised_pad())


class GpuPreprocessor(Closeable):
    """Frames -> network input on the GPU, one kernel launch per call, nothing allocated per call.

    Owns page-locked staging buffers (one slot per batch entry, ``max_frame_shape`` each), the
    device frame buffers they are copied to (none when ``mapped``), the output buffer
    [max_batch, ...], the descriptor tables of mixed-size batches and the compiled kernel.
    Construct it, call it and close it with the CUDA context current (or pass ``context``, a
    trtssd.gpu.cuda.CudaContext, which it then makes current itself around each call).

    ``mapped=True`` (Jetson): the staging buffers are mapped into the device and the kernel
    reads them in place, no copy (CUDA's documentation for integrated GPUs; README.md, "Jetson").

    Host frames on a discrete GPU: where the filter reads at most 3/4 of a frame's rows (1080p
    -> 300: 600 of 1,080), only those rows cross the link, moved by a second kernel
    (``gather_rows``, preprocess.cu) from the page-locked frame to the device staging; the
    device copy of such a frame then holds only those rows. ``whole_uploads=True`` uploads every
    row (for a caller that reads the device copy itself, through ``device_frames``).
    """

    def __init__(self, options, max_batch=1, max_frame_shape=(1080, 1920, 3), mapped=False,
                 context=None, table_ring=4, whole_uploads=False):
        if not isinstance(options, PreprocessOptions):
            raise InputError("options must be a PreprocessOptions, got %s" % type(options).__name__)
        self.options = options
        self.max_batch = int(max_batch)
        if not 1 <= self.max_batch <= 65535:
            raise InputError("max_batch must be 1..65535, got %r" % (max_batch,))
        mfs = tuple(int(v) for v in max_frame_shape)
        if options.is_yuv:
            # the largest picture in pixels, (H, W); a third entry (the RGB default's) is ignored
            if len(mfs) not in (2, 3) or min(mfs[:2]) < 1:
                raise InputError("max_frame_shape must be (H, W) in pixels for input_format=%r, "
                                 "got %r" % (options.input_format, max_frame_shape))
            mfs = mfs[:2]
        else:
            if len(mfs) == 2:
                mfs = mfs + (options.in_channels,)
            if len(mfs) != 3 or mfs[2] != options.in_channels or min(mfs) < 1:
                raise InputError("max_frame_shape must be (H, W, %d) for input_format=%r, got %r"
                                 % (options.in_channels, options.input_format, max_frame_shape))
        self.max_frame_shape = mfs
        self.mapped = bool(mapped)
        self.whole_uploads = bool(whole_uploads)
        self.context = context
        self._slot_bytes = options.frame_bytes(mfs[0], mfs[1])
        self._closed = True
        self._lock = threading.Lock()
        # the pycuda Context the CudaContext retained (its _ctx), to skip pushing it when it is
        # current already
        self._ctx_handle = getattr(getattr(context, "_ctx", None), "handle", None)
        self._drv = None
        with self._activated():
            self._setup(max(2, int(table_ring)))
        self._closed = False

    # ------------------------------------------------------------------ setup / teardown
    def _activated(self):
        """The context made current for a call: nothing when it already is (a push and a pop
        through CudaContext.active cost a few microseconds of Python)."""
        ctx = self.context
        if ctx is None:
            return NULL_CONTEXT
        handle = self._ctx_handle
        if handle is not None:
            try:
                cur = self._drv.Context.get_current() if self._drv is not None else None
            except Exception:
                cur = None
            if cur is not None and getattr(cur, "handle", None) == handle:
                return NULL_CONTEXT
        return ctx.active()

    def _setup(self, ring):
        from ..gpu import cuda
        drv = cuda.driver()
        self._drv = drv
        o = self.options
        self._signature = kernel_signature(o)
        self._kernel = load_kernel("preprocess/preprocess.cu", "preprocess_u8", self._signature,
                                   o.kernel_defines())
        self._launch = self._kernel.launch      # plans pack the parameters once (trtssd.gpu.launch)
        gather = not (self.mapped or self.whole_uploads or o.is_yuv) and cuda.pulls_host_memory()
        self._gather = None
        if gather:
            self._gather = load_kernel("preprocess/preprocess.cu", "gather_rows",
                                       GATHER_SIGNATURE, o.kernel_defines()).launch
        self._buffers = []
        try:
            self._stage = Staging(self.max_batch, self._slot_bytes, self.mapped)
            self._buffers.append(self._stage)
            self._out = cuda.DeviceArray(o.output_shape(self.max_batch), o.np_dtype)
            self._buffers.append(self._out)
            self._tables = DescriptorTables(ring, self.max_batch, frame_desc_dtype(o))
            self._buffers.append(self._tables)
        except Exception:
            for b in reversed(self._buffers):
                b.close()
            raise
        # the staging's arrays under the names the tests and benchmarks poke at
        self._staging = self._stage.host
        self._frames_dev_base = self._stage.device_base
        self._slot_event = self._stage.slot_event
        self._ring = ring
        self._events = [host_wait_event(drv) for _ in range(ring)]
        self._event_used = [False] * ring
        self._table_of = [None] * ring     # (plan table, stream) of each device table slot
        self._calls = 0
        self._last_stream = None
        self._last_event = None
        self._planner = Planner(o, self._stage, self._out, launch_grid(o, 1)[:2],
                                self.max_frame_shape, gather=gather)
        self._plan = self._planner.plan
        self.geometry = self._planner.geometry
        self._zero_desc = bytes(frame_desc_dtype(o).itemsize)
        self._tail_args = (o.width, o.height) + tuple(float(v) for v in kernel_norm_args(o))
        self._out_dtype = o.np_dtype
        self._out_ptrs = {}            # (foreign_key(out), n) -> its checked device pointer
        self._staged = None            # (plan, event, stream) of an upload() not yet launched
        self._upload_event = None

    def close(self):
        """Free every buffer now (waits for work this object enqueued)."""
        if self._closed:
            return
        self._closed = True
        with self._activated():
            for ev in (self._last_event, self._upload_event):
                if ev is not None:
                    try:
                        ev.synchronize()
                    except Exception:
                        pass
            for b in reversed(self._buffers):
                b.close()
            self._buffers = []
            self._planner.clear()
            # drop every event reference here, inside the context: pycuda frees an event
            # when its last reference goes, and that must not happen in another thread
            self._events = []
            self._last_event = None
            self._staged = self._upload_event = None
            self._table_of = []
            self._slot_event[:] = [None] * len(self._slot_event)


    # ------------------------------------------------------------------ helpers
    def staging(self, i):
        """The pinned buffer of batch slot ``i`` as a uint8 frame array of max_frame_shape (for
        YUV: (H*3/2, W) or (H, W, 2), ``options.buffer_shape``).

        Decode straight into it (or into a top-left crop ``staging(i)[:h, :w]``) and pass it to
        ``preprocess``: no host copy. Waits until the previous call that used the slot is done.
        """
        self._check_open()
        if not 0 <= i < self.max_batch:
            raise InputError("staging slot %r does not exist: slots are 0..%d" % (i, self.max_batch - 1))
        o = self.options
        return self._stage.slot(i, o.buffer_shape(*self.max_frame_shape[:2]) if o.is_yuv
                                else self.max_frame_shape)

    def _check_open(self):
        if self._closed:
            raise InputError("this GpuPreprocessor was closed; create a new one")

    def _check_out(self, out, n):
        o = self.options
        shape = o.output_shape(n)
        ptr, oshape, odtype = device_buffer(out, "out")
        if oshape != shape or odtype != o.np_dtype:
            raise InputError("out has shape %s and dtype %s, but %d frame(s) with these options "
                             "need shape %s and dtype %s: allocate it as such (layout=%s)"
                             % (oshape, odtype, n, shape, o.dtype, o.layout))
        return out, ptr

    # ------------------------------------------------------------------ the call
    def preprocess(self, frames, out=None, stream=None):
        """Enqueue the preprocessing of ``frames`` on ``stream`` (None: the legacy default stream).

        ``frames``: one frame or a list (up to ``max_batch``, any mix of sizes and kinds) of
        - uint8 HWC (or HW for GRAY) numpy arrays, any row pitch: copied through the pinned
          staging into the device, unless they *are* a staging buffer (``staging(i)``);
        - ``trtssd.gpu.cuda.PinnedArray`` frames (``pinned_empty``) or views of them with packed
          pixels: uploaded straight from their own memory by an asynchronous copy on
          ``stream`` (a crop: the rows it spans), no host copy; with ``mapped=True`` and a
          mapped PinnedArray, the kernel reads it in place (zero copy);
        - device arrays (``__cuda_array_interface__`` or DLPack: DeviceArray, torch, CuPy):
          read in place; another library's arrays are cached by their memory description
          (trtssd.gpu.cuda.foreign_key), so calling again with them costs no new plan;
        - YUV formats: OpenCV-layout buffers of any of the kinds above, or a ``YuvFrame`` of
          planes (device planes read in place, host planes copied through the staging).
        Contract for pinned and device frames: the caller keeps them alive and unchanged until
        ``stream`` has run this call's kernel (record an event after the call, or synchronise).
        Plain host frames are copied before ``preprocess`` returns and may be reused at once.
        Returns ``(output, [FrameGeometry])``: ``out`` if given, else a DeviceArray view of the
        internal output buffer (valid until the next call). Nothing is synchronised.
        """
        if self._closed:
            raise InputError("this GpuPreprocessor was closed; create a new one")
        if self.context is None:
            with self._lock:
                return self._preprocess(frames, out, stream)
        with self._lock, self._activated():
            return self._preprocess(frames, out, stream)

    __call__ = preprocess

    def upload(self, frames, stream=None):
        """Enqueue on ``stream`` now what ``preprocess(frames)`` would move to the device (host
        copies into the pinned staging, uploads into the device staging), ordered after this
        preprocessor's last kernel, which read that staging. The next ``preprocess`` call with
        these same frames, on any stream, then only waits for this upload and launches the
        kernel: the next batch comes over the link while the network of the one before runs
        on another stream. A ``preprocess`` call with other frames waits for it and uploads
        its own. Frames with nothing to copy (device frames, mapped ones) enqueue nothing. The
        frames' contract is ``preprocess``'s, from this call on: plain host frames are copied
        before it returns."""
        if self._closed:
            raise InputError("this GpuPreprocessor was closed; create a new one")
        if self.context is None:
            with self._lock:
                return self._upload(frames, stream)
        with self._lock, self._activated():
            return self._upload(frames, stream)

    def _upload(self, frames, stream):
        plan = self._plan(frames)
        if not plan.copies and not plan.uploads and plan.gather is None:
            return
        self._after_staged(stream)
        self._transfer(plan, frames, stream)
        ev = self._upload_event
        if ev is None:
            ev = self._upload_event = host_wait_event(self._drv)
        ev.record(stream)
        for k in plan.host_slots:
            self._slot_event[k] = ev       # staging slot k was read by this upload
        self._staged = (plan, ev, stream)

    def _after_staged(self, stream):
        """Order ``stream`` after a staged upload not yet consumed; returns its plan."""
        staged = self._staged
        if staged is None:
            return None
        self._staged = None
        plan, ev, on = staged
        if stream is not on:
            if stream is None:
                ev.synchronize()
            else:
                stream.wait_for_event(ev)
        return plan

    def _transfer(self, plan, frames, stream):
        """The plan's host copies (each after the last call that read its staging slot) and
        its uploads on ``stream``, after the last kernel when that ran on another stream."""
        if plan.copies:
            flist = frames if isinstance(frames, (list, tuple)) else frame_list(frames, self.options)
            for k, dst, src in plan.copies:
                ev = self._slot_event[k]
                if ev is not None:
                    ev.synchronize()     # the previous call's copy/kernel of this slot ended
                np.copyto(dst, flist[k] if src is None else src)
        self._after_last_kernel(stream)
        if plan.gather is not None:
            grid, jobs = plan.gather
            self._gather(grid, GATHER_BLOCK, jobs, 0, stream)
            return
        drv = self._drv
        for dev_ptr, src in plan.uploads:
            drv.memcpy_htod_async(dev_ptr, src, stream)

    def _after_last_kernel(self, stream):
        # Device buffers (frames, table, output) may still be read by the previous call's
        # kernel on another stream: order this stream after it, without blocking the host.
        last = self._last_event
        if last is not None and stream is not self._last_stream and stream is not None:
            stream.wait_for_event(last)

    def _output(self, out, plan):
        if out is None:
            return plan.out_view, plan.out_view.ptr
        if isinstance(out, DeviceArray):      # always C-contiguous: check shape and dtype only
            if out.shape == plan.out_shape and out.dtype == self._out_dtype and out.ptr:
                return out, out.ptr
        # another library's array: checked once per memory description (foreign_key), not per
        # call (its interface property costs microseconds)
        try:
            key = (foreign_key(out), plan.n)
        except Exception:
            key = (None, 0)
        ptr = self._out_ptrs.get(key) if key[0] is not None else None
        if ptr is not None:
            return out, ptr
        out, ptr = self._check_out(out, plan.n)
        if key[0] is not None:
            if len(self._out_ptrs) >= 64:
                self._out_ptrs.clear()
            self._out_ptrs[key] = ptr
        return out, ptr

    def _preprocess(self, frames, out, stream):
        plan = self._plan(frames)      # cached, or made: validates, InputError before any launch
        out_obj, out_ptr = self._output(out, plan)
        drv = self._drv
        if self._staged is not None and self._after_staged(stream) is plan:
            self._after_last_kernel(stream)     # uploaded already: the kernel's ordering only
        else:
            self._transfer(plan, frames, stream)

        call = self._calls % self._ring
        ev = self._events[call]
        if plan.table is None:
            args = plan.args
            if args is None or plan.args_out != out_ptr:
                args = plan.args = self._pack(0, plan.uniform, plan.stride, out_ptr)
                plan.args_out = out_ptr
        else:
            # a table is never changed once made: when ring slot ``call`` already holds this
            # plan's table, uploaded on this same stream (so before this launch, in stream
            # order), nothing is written or uploaded
            held = self._table_of[call]
            if held is None or held[0] is not plan.table or held[1] is not stream:
                if self._event_used[call]:
                    ev.synchronize()     # the call that last used this table slot has finished
                self._tables.put(call, plan.table, stream, drv)
                self._table_of[call] = (plan.table, stream)
            args = plan.table_args.get((call, out_ptr))
            if args is None:
                if len(plan.table_args) >= 4 * self._ring:
                    plan.table_args.clear()
                args = plan.table_args[(call, out_ptr)] = self._pack(
                    self._tables.device_base + call * self._tables.table_bytes,
                    self._zero_desc, 0, out_ptr)
        self._launch(plan.grid, BLOCK, args, 0, stream)
        ev.record(stream)
        self._event_used[call] = True
        self._calls += 1
        self._last_event = ev
        self._last_stream = stream
        for k in plan.host_slots:
            self._slot_event[k] = ev       # staging slot k held frame k (copied or in place)
        if isinstance(out_obj, DeviceArray):
            out_obj.stream = stream
        return out_obj, list(plan.geoms)

    def device_frames(self, frames):
        """Where ``preprocess(frames)`` reads each frame's pixels on the device: a list of
        (device address, row pitch in bytes, width, height, staged) per frame. ``staged``: the
        pixels are this preprocessor's own device copy of a host frame (valid until its next
        call; every row of it only with ``whole_uploads``); otherwise they are the caller's
        memory (device frames; mapped host frames).
        The plan is cached, so after the call this costs a lookup."""
        self._check_open()
        plan = self._plan(frames)
        dt = frame_desc_dtype(self.options)
        if plan.table is None:
            rec = np.frombuffer(plan.uniform, dt)[0]
            recs = [(int(rec["src"]) + k * plan.stride, rec) for k in range(plan.n)]
        else:
            recs = [(int(r["src"]), r) for r in plan.table]
        base, end = self._frames_dev_base, self._frames_dev_base + self._stage.host.nbytes
        return [(ptr, int(r["pitch"]), int(r["in_w"]), int(r["in_h"]),
                 not self.mapped and base <= ptr < end) for ptr, r in recs]

    def _pack(self, table_ptr, frame_bytes, stride, out_ptr):
        """The kernel's parameter buffer, laid out as the C parameter list (native alignment)."""
        return self._signature.pack(table_ptr, frame_bytes, stride, out_ptr, *self._tail_args)
