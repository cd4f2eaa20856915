"""Camera frames -> network input: on the CPU with OpenCV (``cpu_preprocess``, the reference)
and on the GPU in one fused kernel (``GpuPreprocessor``, kernels/preprocess.cu).

Both produce, per frame, ``(pixel - mean[c]) * scale[c]`` with the channels in
``channel_order``, resized to ``width`` x ``height`` with OpenCV's INTER_LINEAR (half-pixel
centres) or INTER_NEAREST semantics, optionally letterboxed (aspect kept, the rest filled with
``pad_value``), as float32 or float16, NCHW or NHWC, with a batch dimension.

``pad_value`` is in *pixel* units (0-255, before normalisation), like the border value of
``cv2.copyMakeBorder``: padding with 114 gives what a 114-grey border would give.

The GPU kernel computes the bilinear blend in float; OpenCV's uint8 path blends with 11-bit
fixed-point weights and rounds to uint8, so the two differ by less than one grey level before
normalisation (measured worst 0.82 over random sizes); nearest is identical.
"""
import threading
import weakref

import numpy as np
from dataclasses import dataclass

from ..gpu.cuda import DeviceArray, PinnedArray, cuda_array_info, device_buffer
from ..gpu.launch import ScalarArg, Signature, StructArg, VectorArg, load_kernel
from ..core.env import import_cv2
from ..core.errors import InputError
from ..core.nullcontext import NULL_CONTEXT

INPUT_FORMATS = {
    # format: (channels, index of R, G, B in a pixel)
    "BGR": (3, (2, 1, 0)),
    "RGB": (3, (0, 1, 2)),
    "BGRA": (4, (2, 1, 0)),
    "RGBA": (4, (0, 1, 2)),
    "GRAY": (1, (0, 0, 0)),
}

# The kernel's FrameDesc (kernels/preprocess.cu), 64 bytes.
FRAME_DESC_DTYPE = np.dtype({
    "names": ["src", "pitch", "nn_x", "nn_y", "in_w", "in_h", "sx", "sy",
              "off_x", "off_y", "inner_w", "inner_h"],
    "formats": [np.uint64, np.int64, np.float64, np.float64, np.int32, np.int32, np.float32,
                np.float32, np.int32, np.int32, np.int32, np.int32],
    "offsets": [0, 8, 16, 24, 32, 36, 40, 44, 48, 52, 56, 60],
    "itemsize": 64,
})

# preprocess_u8's parameter list (kernels/preprocess.cu); packed once per plan (132 bytes).
KERNEL_SIGNATURE = Signature(
    VectorArg("table"), StructArg("frame", FRAME_DESC_DTYPE.itemsize), ScalarArg("q", "frame_stride"),
    VectorArg("out"), ScalarArg("i", "out_w"), ScalarArg("i", "out_h"),
    *[ScalarArg("f", "%s%d" % (what, c)) for what in ("mean", "scale", "pad") for c in range(3)])
KERNEL_ARG_FORMAT = KERNEL_SIGNATURE.format
BLOCK = (32, 8, 1)


def launch_grid(options, n):
    """The kernel's grid for ``n`` frames: one thread per output pixel, blocks of BLOCK."""
    return ((options.width + BLOCK[0] - 1) // BLOCK[0], (options.height + BLOCK[1] - 1) // BLOCK[1],
            int(n))

_ZERO_DESC = bytes(FRAME_DESC_DTYPE.itemsize)


def _three(name, value):
    if np.isscalar(value):
        value = (value,) * 3
    try:
        value = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError("%s must be a number or 3 numbers, got %r" % (name, value))
    if len(value) != 3 or not all(np.isfinite(value)):
        raise InputError("%s must be 3 finite numbers (one per output channel), got %r"
                         % (name, value))
    return value


@dataclass
class PreprocessOptions:
    """What the network wants. Validates itself; see the module docstring for the semantics.

    TF SSD ``x*2/255-1``: mean=127.5, scale=1/127.5. Quantised SSD ``(x-128)/128``: mean=128,
    scale=1/128. ImageNet: mean=(123.675, 116.28, 103.53), scale=(1/58.395, 1/57.12, 1/57.375)
    with channel_order='RGB'.
    """
    width: int = 300
    height: int = 300
    dtype: str = "float32"
    layout: str = "NCHW"
    interpolation: str = "linear"
    input_format: str = "BGR"
    channel_order: str = "RGB"
    mean: tuple = (127.5, 127.5, 127.5)
    scale: tuple = (1 / 127.5, 1 / 127.5, 1 / 127.5)
    letterbox: bool = False
    pad_value: float = 0.0

    def __post_init__(self):
        try:
            self.width, self.height = int(self.width), int(self.height)
        except (TypeError, ValueError):
            raise InputError("width and height must be integers, got %r x %r"
                             % (self.width, self.height))
        if not (1 <= self.width <= 16384 and 1 <= self.height <= 16384):
            raise InputError("output size %dx%d is out of range: width and height must be 1..16384"
                             % (self.width, self.height))
        self.dtype = str(np.dtype(self.dtype)) if self.dtype in (np.float32, np.float16) else self.dtype
        checks = (("dtype", ("float32", "float16")), ("layout", ("NCHW", "NHWC")),
                  ("interpolation", ("linear", "nearest")),
                  ("input_format", tuple(INPUT_FORMATS)), ("channel_order", ("RGB", "BGR")))
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise InputError("%s=%r is not supported: use one of %s"
                                 % (name, getattr(self, name), ", ".join(allowed)))
        self.mean = _three("mean", self.mean)
        self.scale = _three("scale", self.scale)
        self.letterbox = bool(self.letterbox)
        self.pad_value = float(self.pad_value)
        if not np.isfinite(self.pad_value):
            raise InputError("pad_value must be finite (a pixel value, 0-255), got %r"
                             % self.pad_value)

    @classmethod
    def from_spec(cls, spec, input_format="BGR", **overrides):
        """Options for a ModelSpec's network input; ``overrides`` replace any field."""
        kw = dict(width=spec.input_width, height=spec.input_height, mean=spec.mean,
                  scale=spec.scale, channel_order=spec.channel_order, input_format=input_format)
        kw.update(overrides)
        return cls(**kw)

    @property
    def in_channels(self):
        return INPUT_FORMATS[self.input_format][0]

    @property
    def np_dtype(self):
        return np.dtype(self.dtype)

    def source_channels(self):
        """Index in the input pixel of each output channel."""
        r, g, b = INPUT_FORMATS[self.input_format][1]
        return (r, g, b) if self.channel_order == "RGB" else (b, g, r)

    def frame_shape(self):
        """(H, W, 3) or (3, H, W): one frame of the output."""
        if self.layout == "NCHW":
            return (3, self.height, self.width)
        return (self.height, self.width, 3)

    def output_shape(self, n):
        return (int(n),) + self.frame_shape()

    def normalised_pad(self):
        """pad_value after normalisation, per output channel, as float32 (what both paths write)."""
        m = np.asarray(self.mean, np.float32)
        k = np.asarray(self.scale, np.float32)
        return (np.float32(self.pad_value) - m) * k

    def kernel_defines(self):
        c0, c1, c2 = self.source_channels()
        return {"IN_CH": self.in_channels, "OUT_C0_SRC": c0, "OUT_C1_SRC": c1, "OUT_C2_SRC": c2,
                "OUT_HALF": int(self.dtype == "float16"), "OUT_NHWC": int(self.layout == "NHWC"),
                "NEAREST": int(self.interpolation == "nearest")}


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
        """Geometry of a frame under ``options`` (letterbox: centred, aspect kept)."""
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
        b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        b[:, 0::2] = (b[:, 0::2] - self.pad_x) / self.scale_x
        b[:, 1::2] = (b[:, 1::2] - self.pad_y) / self.scale_y
        np.clip(b[:, 0::2], 0, self.frame_width, out=b[:, 0::2])
        np.clip(b[:, 1::2], 0, self.frame_height, out=b[:, 1::2])
        return b

    def to_net(self, boxes):
        """Boxes [K, 4] (x1, y1, x2, y2) in frame pixels -> network-input pixels."""
        b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        b[:, 0::2] = b[:, 0::2] * self.scale_x + self.pad_x
        b[:, 1::2] = b[:, 1::2] * self.scale_y + self.pad_y
        return b


def fill_frame_desc(rec, options, geometry, ptr, pitch):
    """Write the kernel's FrameDesc for one frame into ``rec`` (a FRAME_DESC_DTYPE record)."""
    g = geometry
    w, h = g.frame_width, g.frame_height
    iw, ih = g.inner_size if options.letterbox else (options.width, options.height)
    rec["src"] = ptr
    rec["pitch"] = pitch
    # OpenCV INTER_NEAREST computes 1 / (out / in) in double; the kernel uses exactly that.
    rec["nn_x"] = 1.0 / (float(iw) / float(w))
    rec["nn_y"] = 1.0 / (float(ih) / float(h))
    rec["in_w"], rec["in_h"] = w, h
    rec["sx"] = np.float32(float(w) / float(iw))
    rec["sy"] = np.float32(float(h) / float(ih))
    rec["off_x"], rec["off_y"] = g.pad_x, g.pad_y
    rec["inner_w"], rec["inner_h"] = iw, ih
    return rec


def kernel_norm_args(options):
    """The kernel's mean[3], scale[3] and normalised pad[3] as float32 values."""
    m = np.asarray(options.mean, np.float32)
    k = np.asarray(options.scale, np.float32)
    return tuple(m) + tuple(k) + tuple(options.normalised_pad())


def _frame_list(frames):
    if isinstance(frames, (list, tuple)):
        return list(frames)
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        return [frames[i] for i in range(frames.shape[0])]
    if isinstance(frames, DeviceArray) and frames.ndim == 4:
        n, step = frames.shape[0], int(np.prod(frames.shape[1:])) * frames.dtype.itemsize
        return [DeviceArray.view(frames.ptr + k * step, frames.shape[1:], frames.dtype, frames)
                for k in range(n)]
    return [frames]


def _frame_hwc(shape, options, what):
    """(h, w, c) of a frame's shape, or InputError naming the problem and the fix."""
    want = options.in_channels
    if len(shape) == 2 and want == 1:
        h, w, c = shape[0], shape[1], 1
    elif len(shape) == 3:
        h, w, c = shape
    else:
        raise InputError("%s has shape %s: expected (H, W, %d) for input_format=%r%s"
                         % (what, tuple(shape), want, options.input_format,
                            " or (H, W)" if want == 1 else ""))
    if c != want:
        raise InputError("%s has %d channels but input_format=%r needs %d: convert it "
                         "(cv2.cvtColor) or set input_format to match the frame"
                         % (what, c, options.input_format, want))
    if h < 1 or w < 1:
        raise InputError("%s is empty (%dx%d): the source returned no image; skip it"
                         % (what, w, h))
    return int(h), int(w), int(c)


def _check_dtype(dtype, what):
    if np.dtype(dtype) != np.uint8:
        raise InputError("%s has dtype %s: frames must be uint8 (as cameras and cv2.imread "
                         "give them); convert with np.clip(x, 0, 255).astype(np.uint8)"
                         % (what, np.dtype(dtype)))


def cpu_preprocess(frames, options, out=None):
    """The network input from OpenCV/NumPy. The reference of every kernel test.

    ``frames``: one uint8 HWC (or HW for GRAY) array, a list of them (any sizes), or an
    [N, H, W, C] array. Returns ``(tensor [N, ...], [FrameGeometry])``; ``out`` (a numpy array
    of the output shape and dtype) is filled if given.
    """
    cv2 = import_cv2()
    frames = _frame_list(frames)
    if not frames:
        raise InputError("no frames given: pass one frame or a list of frames")
    n = len(frames)
    shape = options.output_shape(n)
    if out is None:
        out = np.empty(shape, options.np_dtype)
    elif not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != options.np_dtype:
        raise InputError("out must be a numpy array of shape %s and dtype %s for %d frame(s), got "
                         "%s %s" % (shape, options.dtype, n, getattr(out, "shape", type(out)),
                                    getattr(out, "dtype", "")))
    interp = cv2.INTER_NEAREST if options.interpolation == "nearest" else cv2.INTER_LINEAR
    mean = np.asarray(options.mean, np.float32)
    scale = np.asarray(options.scale, np.float32)
    pad = options.normalised_pad()
    chans = list(options.source_channels())
    geoms = []
    for i, frame in enumerate(frames):
        what = "frame %d" % i
        if not isinstance(frame, np.ndarray):
            raise InputError("%s is a %s: the CPU path needs numpy arrays (copy device frames to "
                             "the host first)" % (what, type(frame).__name__))
        _check_dtype(frame.dtype, what)
        h, w, c = _frame_hwc(frame.shape, options, what)
        g = FrameGeometry.compute(w, h, options)
        nw, nh = g.inner_size
        src = frame if frame.ndim == 2 else (frame[:, :, 0] if c == 1 else frame)
        if not (src.strides[-1] == 1 and src.strides[0] > 0
                and (src.ndim == 2 or src.strides[1] == c)):
            src = np.ascontiguousarray(src)      # OpenCV reads packed pixels with a row step
        resized = cv2.resize(src, (nw, nh), interpolation=interp)
        if resized.ndim == 2:
            resized = resized[:, :, None]
        vals = (resized[:, :, chans].astype(np.float32) - mean) * scale
        if options.letterbox:
            canvas = np.empty((options.height, options.width, 3), np.float32)
            canvas[...] = pad
            canvas[g.pad_y:g.pad_y + nh, g.pad_x:g.pad_x + nw] = vals
            vals = canvas
        if options.layout == "NCHW":
            vals = vals.transpose(2, 0, 1)
        out[i] = vals            # float16 output: numpy casts float32 -> float16 to nearest even
        geoms.append(g)
    return out, geoms


class GpuPreprocessor(object):
    """Frames -> network input on the GPU, one kernel launch per call, nothing allocated per call.

    Owns page-locked staging buffers (one slot per batch entry, ``max_frame_shape`` each), the
    device frame buffers they are copied to (none when ``mapped``), the output buffer
    [max_batch, ...], the descriptor tables of mixed-size batches and the compiled kernel.
    Construct it, call it and close it with the CUDA context current (or pass ``context``, a
    trtssd.gpu.cuda.CudaContext, which it then makes current itself around each call).

    ``mapped=True`` (Jetson): the staging buffers are mapped into the device and the kernel
    reads them in place, no copy; from CUDA's documentation for integrated GPUs, unmeasured here.
    """

    def __init__(self, options, max_batch=1, max_frame_shape=(1080, 1920, 3), mapped=False,
                 context=None, table_ring=4):
        if not isinstance(options, PreprocessOptions):
            raise InputError("options must be a PreprocessOptions, got %s" % type(options).__name__)
        self.options = options
        self.max_batch = int(max_batch)
        if not 1 <= self.max_batch <= 65535:
            raise InputError("max_batch must be 1..65535, got %r" % (max_batch,))
        mfs = tuple(int(v) for v in max_frame_shape)
        if len(mfs) == 2:
            mfs = mfs + (options.in_channels,)
        if len(mfs) != 3 or mfs[2] != options.in_channels or min(mfs) < 1:
            raise InputError("max_frame_shape must be (H, W, %d) for input_format=%r, got %r"
                             % (options.in_channels, options.input_format, max_frame_shape))
        self.max_frame_shape = mfs
        self.mapped = bool(mapped)
        self.context = context
        self._slot_bytes = mfs[0] * mfs[1] * mfs[2]
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
        self._kernel = load_kernel("preprocess/preprocess.cu", "preprocess_u8", KERNEL_SIGNATURE,
                                   o.kernel_defines())
        self._launch = self._kernel.launch      # plans pack the parameters once (trtssd.gpu.launch)
        self._staging = cuda.pinned_empty((self.max_batch, self._slot_bytes), np.uint8,
                                          mapped=self.mapped)
        self._staging_base = self._staging.ctypes.data
        if self.mapped:
            self._frames_dev = None
            self._frames_dev_base = self._staging.device_ptr
        else:
            self._frames_dev = cuda.DeviceArray((self.max_batch, self._slot_bytes), np.uint8)
            self._frames_dev_base = self._frames_dev.ptr
        self._out = cuda.DeviceArray(o.output_shape(self.max_batch), o.np_dtype)
        self._out_views = {}
        self._ring = ring
        self._table_host = cuda.pinned_empty((ring, self.max_batch), FRAME_DESC_DTYPE)
        self._table_bytes = self.max_batch * FRAME_DESC_DTYPE.itemsize
        self._table_dev = cuda.DeviceArray((ring, self._table_bytes), np.uint8)
        self._table_dev_base = self._table_dev.ptr
        self._events = [drv.Event(drv.event_flags.DISABLE_TIMING) for _ in range(ring)]
        self._event_used = [False] * ring
        self._slot_event = [None] * self.max_batch     # event of the last call that used slot i
        self._calls = 0
        self._last_stream = None
        self._last_event = None
        self._geom_cache = {}
        self._plans = {}
        self._grid = launch_grid(o, 1)[:2]
        self._norm_args = tuple(float(v) for v in kernel_norm_args(o))
        self._tail_args = (o.width, o.height) + self._norm_args
        self._out_dtype = o.np_dtype

    def close(self):
        """Free every buffer now (waits for work this object enqueued)."""
        if self._closed:
            return
        self._closed = True
        with self._activated():
            if self._last_event is not None:
                try:
                    self._last_event.synchronize()
                except Exception:
                    pass
            for arr in (self._frames_dev, self._out, self._table_dev):
                if arr is not None:
                    arr.close()
            for arr in (self._staging, self._table_host):
                arr.close()
            self._out_views.clear()
            # drop every event reference here, inside the context: pycuda frees an event
            # when its last reference goes, and that must not happen in another thread
            self._events = []
            self._last_event = None
            self._slot_event = [None] * len(self._slot_event)
            self._plans.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ helpers
    def staging(self, i):
        """The pinned buffer of batch slot ``i`` as an (H, W, C) uint8 array (max_frame_shape).

        Decode straight into it (or into a top-left crop ``staging(i)[:h, :w]``) and pass it to
        ``preprocess``: no host copy. Waits until the previous call that used the slot is done.
        """
        self._check_open()
        if not 0 <= i < self.max_batch:
            raise InputError("staging slot %r does not exist: slots are 0..%d" % (i, self.max_batch - 1))
        ev = self._slot_event[i]
        if ev is not None:
            ev.synchronize()
        h, w, c = self.max_frame_shape
        return self._staging[i].reshape(h, w, c)

    def geometry(self, width, height):
        key = (width, height)
        g = self._geom_cache.get(key)
        if g is None:
            g = self._geom_cache[key] = FrameGeometry.compute(width, height, self.options)
        return g

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
        - device arrays with ``__cuda_array_interface__``: read in place.
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

    def _frame_key(self, frames):
        """A cheap key of what the frames are, or None. Host arrays are keyed by identity (the
        plan keeps weak references and checks them), device arrays by pointer and shape."""
        t = type(frames)
        if t is list or t is tuple:
            key = []
            for f in frames:
                if isinstance(f, np.ndarray):
                    key.append((id(f), f.shape, f.strides, f.dtype))
                elif isinstance(f, DeviceArray):
                    key.append((f.ptr, f.shape, f.dtype))
                else:
                    return None
            return tuple(key)
        if isinstance(frames, np.ndarray):
            return (id(frames), frames.shape, frames.strides, frames.dtype)
        if isinstance(frames, DeviceArray):
            return (frames.ptr, frames.shape, frames.dtype, 0)
        return None

    @staticmethod
    def _same_objects(refs, frames):
        if isinstance(frames, np.ndarray):
            return refs[0]() is frames
        for r, f in zip(refs, frames):
            if r is not None and r() is not f:
                return False
        return True

    def _output(self, out, plan):
        if out is None:
            return plan.out_view, plan.out_view.ptr
        if isinstance(out, DeviceArray):      # always C-contiguous: check shape and dtype only
            if out.shape == plan.out_shape and out.dtype == self._out_dtype and out.ptr:
                return out, out.ptr
        return self._check_out(out, plan.n)

    def _preprocess(self, frames, out, stream):
        key = self._frame_key(frames)
        plan = self._plans.get(key) if key is not None else None
        if plan is None or (plan.refs is not None and not self._same_objects(plan.refs, frames)):
            plan = self._make_plan(frames)      # validates; raises InputError before any launch
            if key is not None:
                if len(self._plans) > 256:
                    self._plans.clear()
                self._plans[key] = plan
        out_obj, out_ptr = self._output(out, plan)
        drv = self._drv
        if plan.copies:
            flist = frames if isinstance(frames, (list, tuple)) else _frame_list(frames)
            for k, dst in plan.copies:
                ev = self._slot_event[k]
                if ev is not None:
                    ev.synchronize()     # the previous call's copy/kernel of this slot ended
                np.copyto(dst, flist[k])

        # Device buffers (frames, table, output) may still be read by the previous call's
        # kernel on another stream: order this stream after it, without blocking the host.
        last = self._last_event
        if last is not None and stream is not self._last_stream and stream is not None:
            stream.wait_for_event(last)
        for dev_ptr, src in plan.uploads:
            drv.memcpy_htod_async(dev_ptr, src, stream)

        call = self._calls % self._ring
        ev = self._events[call]
        if plan.table is None:
            args = plan.args
            if args is None or plan.args_out != out_ptr:
                args = plan.args = self._pack(0, plan.uniform, plan.stride, out_ptr)
                plan.args_out = out_ptr
        else:
            if self._event_used[call]:
                ev.synchronize()     # the call that last used this table slot has finished
            n = plan.n
            tab = self._table_host[call][:n]
            tab[...] = plan.table
            table_ptr = self._table_dev_base + call * self._table_bytes
            drv.memcpy_htod_async(table_ptr, tab, stream)
            args = self._pack(table_ptr, _ZERO_DESC, 0, out_ptr)
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

    def _pack(self, table_ptr, frame_bytes, stride, out_ptr):
        """The kernel's parameter buffer, laid out as the C parameter list (native alignment)."""
        return KERNEL_SIGNATURE.pack(table_ptr, frame_bytes, stride, out_ptr, *self._tail_args)

    def _host_frame(self, i, f, h, w, what):
        """How host frame ``i`` reaches the device: ('staging', off, pitch, end) for a view of
        the staging, ('pinned', addr, pitch, span) for a pinned frame uploaded from its own
        memory, ('mapped', device address, pitch) for a mapped one read in place, or
        ('copy',) for a copy through staging slot i."""
        ch = self.options.in_channels
        slot_bytes = self._slot_bytes
        addr = f.__array_interface__["data"][0]
        rs = f.strides[0]
        if f.ndim == 3:
            packed = rs > 0 and f.strides[1] == ch and f.strides[2] == 1
        else:
            packed = rs > 0 and f.strides[1] == 1
        span = (h - 1) * rs + w * ch
        off = addr - self._staging_base
        if 0 <= off < self._staging.nbytes:
            if off // slot_bytes != i:
                raise InputError("%s is a view of staging slot %d: pass staging(i) views "
                                 "at position i of the batch" % (what, off // slot_bytes))
            if not packed or off + span > (i + 1) * slot_bytes:
                raise InputError("%s is a view of the staging buffers that the kernel "
                                 "cannot read (strides %s): use staging(i)[:h, :w] crops"
                                 % (what, f.strides))
            return ("staging", off, rs, off + span)
        root = _pinned_root(f) if packed and isinstance(f, PinnedArray) else None
        if root is not None:
            dptr = f.owner.device_ptr
            if self.mapped:
                if dptr is not None:
                    return ("mapped", dptr + (addr - root.__array_interface__["data"][0]), rs)
            elif span <= slot_bytes:
                return ("pinned", addr, rs, span)
        if h * w * ch > slot_bytes:
            raise InputError("%s is %dx%dx%d, bigger than the buffers sized for "
                             "max_frame_shape=%s: create the GpuPreprocessor with "
                             "max_frame_shape=(%d, %d, %d) or larger"
                             % (what, h, w, ch, self.max_frame_shape,
                                max(h, self.max_frame_shape[0]),
                                max(w, self.max_frame_shape[1]), ch))
        return ("copy",)

    def _make_plan(self, frames):
        """Validate ``frames`` and work out the call: which frames to copy into which staging
        slot, which byte ranges to upload, and the kernel's uniform or table arguments."""
        o = self.options
        frames_in = frames
        frames = _frame_list(frames)
        n = len(frames)
        if not 1 <= n <= self.max_batch:
            raise InputError("%d frames given but this GpuPreprocessor holds 1..%d: create it with "
                             "max_batch=%d or split the batch" % (n, self.max_batch, max(n, 1)))
        slot_bytes = self._slot_bytes
        ch = o.in_channels
        dev_base = self._frames_dev_base
        descs = []          # (device ptr, pitch, w, h); None for pinned uploads, placed below
        ranges = []         # (start, end) byte ranges of the staging to copy to the device
        copies = []         # (slot, staging view to copy frame k into)
        pinned = []         # (slot, host address, pitch, span, w, h)
        host_slots = []
        geoms = []
        for i, f in enumerate(frames):
            what = "frame %d" % i
            if isinstance(f, np.ndarray):
                _check_dtype(f.dtype, what)
                h, w, _ = _frame_hwc(f.shape, o, what)
                how = self._host_frame(i, f, h, w, what)
                if how[0] == "staging":
                    _, off, rs, end = how
                    host_slots.append(i)
                    descs.append((dev_base + off, rs, w, h))
                    ranges.append((off, end))
                elif how[0] == "pinned":
                    pinned.append((i,) + how[1:] + (w, h))
                    descs.append(None)
                elif how[0] == "mapped":
                    descs.append((how[1], how[2], w, h))
                else:
                    off = i * slot_bytes
                    dst = self._staging[i, :h * w * ch].reshape((h, w) if f.ndim == 2 else (h, w, ch))
                    copies.append((i, dst))
                    host_slots.append(i)
                    descs.append((dev_base + off, w * ch, w, h))
                    ranges.append((off, off + h * w * ch))
            elif isinstance(f, DeviceArray):            # C-contiguous by design
                _check_dtype(f.dtype, what)
                h, w, _ = _frame_hwc(f.shape, o, what)
                if f.ptr == 0:
                    raise InputError("%s is a closed DeviceArray" % what)
                descs.append((f.ptr, w * ch, w, h))
            elif hasattr(f, "__cuda_array_interface__"):
                ptr, shape, strides, dtype = cuda_array_info(f)
                _check_dtype(dtype, what)
                h, w, _ = _frame_hwc(shape, o, what)
                if (len(shape) == 3 and (strides[1] != ch or strides[2] != 1)) or \
                        (len(shape) == 2 and strides[1] != 1):
                    raise InputError("%s has strides %s that the kernel cannot read: pixels must "
                                     "be %d packed bytes (any row pitch is fine); make it "
                                     "contiguous first" % (what, strides, ch))
                if ptr == 0:
                    raise InputError("%s has a null device pointer" % what)
                descs.append((ptr, strides[0], w, h))
            else:
                raise InputError("%s is a %s: pass a uint8 numpy array or a device array with "
                                 "__cuda_array_interface__" % (what, type(f).__name__))
            geoms.append(self.geometry(w, h))

        uploads = []
        if ranges and not self.mapped:          # one copy per run of adjacent ranges
            start, end = ranges[0]
            for s, e in ranges[1:] + [(None, None)]:
                if s is not None and s == end:
                    end = e
                    continue
                uploads.append((dev_base + start, self._staging_flat(start, end)))
                start, end = s, e
        uploads.extend(self._pinned_uploads(pinned, descs, n))

        ptr0, pitch0, w0, h0 = descs[0]
        uniform = all(d[1:] == (pitch0, w0, h0) for d in descs)
        stride = descs[1][0] - ptr0 if n > 1 else 0
        if uniform and n > 1:
            uniform = all(descs[k][0] == ptr0 + k * stride for k in range(n))
        plan = _Plan()
        plan.n = n
        plan.copies = copies
        plan.uploads = uploads
        plan.geoms = geoms
        plan.host_slots = host_slots
        plan.grid = self._grid + (n,)
        plan.out_shape = o.output_shape(n)
        view = self._out_views.get(n)
        if view is None:
            view = self._out_views[n] = DeviceArray.view(self._out.ptr, plan.out_shape,
                                                         o.np_dtype, owner=self._out)
        plan.out_view = view
        if uniform:
            rec = np.zeros((), FRAME_DESC_DTYPE)
            fill_frame_desc(rec, o, geoms[0], ptr0, pitch0)
            plan.uniform, plan.stride, plan.table = rec.tobytes(), stride, None
        else:
            table = np.zeros(n, FRAME_DESC_DTYPE)
            for k, (p, pitch, w, h) in enumerate(descs):
                fill_frame_desc(table[k], o, geoms[k], p, pitch)
            plan.uniform, plan.stride, plan.table = None, 0, table
        plan.args = plan.args_out = None
        if isinstance(frames_in, np.ndarray):
            plan.refs = [weakref.ref(frames_in)]
        elif isinstance(frames_in, (list, tuple)):
            plan.refs = [weakref.ref(f) if isinstance(f, np.ndarray) else None for f in frames_in]
        else:
            plan.refs = None
        return plan

    def _pinned_uploads(self, pinned, descs, n):
        """Uploads of pinned frames from their own memory, and their device addresses (filled
        into ``descs``). A whole batch laid out at a constant stride in one pinned block (an
        [N, H, W, C] PinnedArray) is one copy; otherwise frame i goes to device slot i."""
        import ctypes
        if not pinned:
            return []
        dev_base = self._frames_dev_base
        if n > 1 and len(pinned) == n:
            a0 = pinned[0][1]
            step = pinned[1][1] - a0
            first = pinned[0][2:]
            if step >= 0 and all(p[1] == a0 + k * step and p[2:] == first
                                 for k, p in enumerate(pinned)):
                total = (n - 1) * step + first[1]
                if total <= self.max_batch * self._slot_bytes:
                    for k, (_, _, rs, _, w, h) in enumerate(pinned):
                        descs[k] = (dev_base + k * step, rs, w, h)
                    # a raw view of the pinned memory: no reference that keeps the frame alive
                    return [(dev_base, (ctypes.c_ubyte * total).from_address(a0))]
        uploads = []
        for i, addr, rs, span, w, h in pinned:
            dst = dev_base + i * self._slot_bytes
            descs[i] = (dst, rs, w, h)
            uploads.append((dst, (ctypes.c_ubyte * span).from_address(addr)))
        return uploads

    def _staging_flat(self, start, end):
        return self._staging.reshape(-1)[start:end]


class _Plan(object):
    """What a call with the same frames does again (GpuPreprocessor's plan cache)."""
    __slots__ = ("n", "copies", "uploads", "geoms", "host_slots", "grid", "out_shape", "out_view",
                 "uniform", "stride", "table", "args", "args_out", "refs")


def _pinned_root(f):
    """The array pinned_empty made over the whole page-locked allocation that PinnedArray ``f``
    (or a view of it) lives in, or None when ``f`` does not live there: ``f.copy()``, ``f + 1``
    are PinnedArrays too (numpy keeps the subclass and __array_finalize__ the owner) but in
    ordinary memory, and a closed owner's memory is gone."""
    owner = getattr(f, "owner", None)
    alloc = getattr(owner, "base", None)
    if alloc is None:
        return None
    obj = f
    while isinstance(obj.base, np.ndarray):
        obj = obj.base
    return obj if obj.base is alloc else None
