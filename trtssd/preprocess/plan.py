"""GpuPreprocessor's plans: what kind each frame is (host, staging view, pinned, mapped, device),
validated, and what a call with those frames does (host copies into staging slots, uploads, the
kernel's uniform descriptor or its table). A plan is made once per set of frames and cached:
host arrays by identity (weak references checked), device arrays by pointer and shape.
"""
import ctypes
import weakref

import numpy as np

from ..core.errors import InputError
from ..core.geometry import FrameGeometry
from ..gpu.cuda import (DeviceArray, PinnedArray, cuda_array_info, foreign_key_function,
                        is_device_array)
from .frames import YuvFrame, check_dtype, frame_list, frame_size
from .options import YUV_FORMATS

# The kernel's FrameDesc (preprocess.cu), 64 bytes.
FRAME_DESC_DTYPE = np.dtype({
    "names": ["src", "pitch", "nn_x", "nn_y", "in_w", "in_h", "sx", "sy",
              "off_x", "off_y", "inner_w", "inner_h"],
    "formats": [np.uint64, np.int64, np.float64, np.float64, np.int32, np.int32, np.float32,
                np.float32, np.int32, np.int32, np.int32, np.int32],
    "offsets": [0, 8, 16, 24, 32, 36, 40, 44, 48, 52, 56, 60],
    "itemsize": 64,
})

# The same followed by the chroma planes (YUV input; preprocess.cu with YUV set), 96 bytes.
YUV_FRAME_DESC_DTYPE = np.dtype({
    "names": list(FRAME_DESC_DTYPE.names) + ["c0", "c0_pitch", "c1", "c1_pitch"],
    "formats": [FRAME_DESC_DTYPE.fields[n][0] for n in FRAME_DESC_DTYPE.names]
    + [np.uint64, np.int64, np.uint64, np.int64],
    "offsets": [FRAME_DESC_DTYPE.fields[n][1] for n in FRAME_DESC_DTYPE.names] + [64, 72, 80, 88],
    "itemsize": 96,
})


# gather_rows' RowCopy (preprocess.cu), 56 bytes; the kernel takes GATHER_MAX of them by value.
ROW_COPY_DTYPE = np.dtype({
    "names": ["from", "to", "from_pitch", "to_pitch", "nn_y", "sy", "in_h", "inner_h",
              "row_vecs"],
    "formats": [np.uint64, np.uint64, np.int64, np.int64, np.float64, np.float32, np.int32,
                np.int32, np.int32],
    "offsets": [0, 8, 16, 24, 32, 40, 44, 48, 52],
    "itemsize": 56,
})
GATHER_MAX = 16
GATHER_BLOCK = (128, 2, 1)
GATHER_BLOCKS = 8            # about this many blocks a call, whatever the batch (preprocess.cu)
# gathered only where it saves a quarter of the bytes or more: a bilinear output row reads two
# source rows, a nearest one one. Above these steps no two output rows read the same source
# row (bilinear: consecutive first rows are 2 or more apart), as gather_rows assumes.
GATHER_MIN_STEP = {"linear": 8.0 / 3.0, "nearest": 4.0 / 3.0}


def frame_desc_dtype(options):
    """The kernel's frame descriptor for ``options``: FRAME_DESC_DTYPE, or with chroma planes."""
    return YUV_FRAME_DESC_DTYPE if options.is_yuv else FRAME_DESC_DTYPE


def buffer_chroma(options, ptr, pitch, w, h):
    """(c0, c0_pitch, c1, c1_pitch) of a single-buffer YUV frame at ``ptr`` with row ``pitch``:
    4:2:0 semi-planar: the chroma rows after the Y rows, same pitch; planar (rows contiguous,
    pitch == w): the two quarter planes after Y, U in c0 and V in c1; 4:2:2: none."""
    layout, offs = YUV_FORMATS[options.input_format]
    if layout == "420sp":
        return (ptr + h * pitch, pitch, 0, 0)
    if layout == "420p":
        first = ptr + h * w
        second = first + (h // 2) * (w // 2)
        u, v = (first, second) if offs == (0, 1) else (second, first)
        return (u, w // 2, v, w // 2)
    return (0, 0, 0, 0)


def fill_frame_desc(rec, options, geometry, ptr, pitch, chroma=None):
    """Write the kernel's descriptor of one frame into ``rec`` (a frame_desc_dtype record);
    ``chroma`` (c0, c0_pitch, c1, c1_pitch) for YUV frames (default: buffer_chroma)."""
    if options.is_yuv:
        if chroma is None:
            chroma = buffer_chroma(options, ptr, pitch, geometry.frame_width,
                                   geometry.frame_height)
        rec["c0"], rec["c0_pitch"], rec["c1"], rec["c1_pitch"] = chroma
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


class Planner(object):
    """Makes and caches the plans of one GpuPreprocessor: its options, Staging (``staging``),
    output buffer (``out``, [max_batch, ...]) and launch grid of one frame (``grid``, x and y).
    ``gather``: host frames may be moved by gather_rows (GpuPreprocessor decides where it can
    run: not mapped, not YUV, a discrete GPU)."""

    MAX_PLANS = 256

    def __init__(self, options, staging, out, grid, max_frame_shape, gather=False):
        self.options, self.staging, self.out, self.grid = options, staging, out, grid
        self.gather = bool(gather)
        self.max_batch = staging.max_batch
        self.max_frame_shape = max_frame_shape
        self.mapped = staging.mapped
        self.plans = {}
        self.out_views = {}
        self._geom_cache = {}

    def geometry(self, width, height):
        key = (width, height)
        g = self._geom_cache.get(key)
        if g is None:
            g = self._geom_cache[key] = FrameGeometry.compute(width, height, self.options)
        return g

    def plan(self, frames):
        """The cached plan of ``frames``, or a new one (validated: InputError before any launch)."""
        key = self.key(frames)
        plan = self.plans.get(key) if key is not None else None
        if plan is None or (plan.refs is not None and not self.same_objects(plan.refs, frames)):
            plan = self.make(frames)
            if key is not None:
                if len(self.plans) > self.MAX_PLANS:
                    self.plans.clear()
                self.plans[key] = plan
        return plan

    @staticmethod
    def key(frames):
        """A cheap key of what the frames are, or None. Host arrays are keyed by identity (the
        plan keeps weak references and checks them), device arrays by pointer and shape, other
        libraries' device arrays by trtssd.gpu.cuda.foreign_key, YuvFrames of device planes by
        their planes."""
        t = type(frames)
        if t is list or t is tuple:
            key = tuple(map(_frame_key, frames))
            return None if None in key else key
        return _frame_key(frames)

    @staticmethod
    def same_objects(refs, frames):
        if isinstance(frames, np.ndarray):
            return refs[0]() is frames
        for r, f in zip(refs, frames):
            if r is not None and r() is not f:
                return False
        return True

    def _host_frame(self, i, f, rows, row_bytes, what):
        """How host frame ``i`` (an array of ``rows`` rows of ``row_bytes`` bytes) reaches the
        device: ('staging', off, pitch, end) for a view of the staging, ('pinned', addr, pitch,
        span) for a pinned frame uploaded from its own memory, ('mapped', device address,
        pitch) for a mapped one read in place, or ('copy',) for a copy through staging slot i."""
        st = self.staging
        slot_bytes = st.slot_bytes
        addr = f.__array_interface__["data"][0]
        rs = f.strides[0]
        packed = rs > 0 and f.strides[-1] == 1 and (f.ndim == 2 or f.strides[1] == f.shape[2])
        if self.options.yuv_layout == "420p":
            packed = packed and rs == row_bytes      # the quarter planes follow Y unpitched
        span = (rows - 1) * rs + row_bytes
        slot, off = st.slot_of(addr)
        if slot is not None:
            if slot != i:
                raise InputError("%s is a view of staging slot %d: pass staging(i) views "
                                 "at position i of the batch" % (what, slot))
            if not packed or off + span > (i + 1) * slot_bytes:
                hint = ("staging(i).reshape(-1)[:H * 3 // 2 * W].reshape(H * 3 // 2, W): I420 "
                        "and YV12 rows are unpitched" if self.options.yuv_layout == "420p"
                        else "staging(i)[:h, :w] crops")
                raise InputError("%s is a view of the staging buffers that the kernel "
                                 "cannot read (strides %s): use %s" % (what, f.strides, hint))
            return ("staging", off, rs, off + span)
        root = pinned_root(f) if packed and isinstance(f, PinnedArray) else None
        if root is not None:
            dptr = f.owner.device_ptr
            if self.mapped:
                if dptr is not None:
                    return ("mapped", dptr + (addr - root.__array_interface__["data"][0]), rs)
            elif span <= slot_bytes:
                return ("pinned", addr, rs, span)
        if rows * row_bytes > slot_bytes:
            self._too_big(f.shape, what)
        return ("copy",)

    def _too_big(self, shape, what):
        mfs = self.max_frame_shape
        o = self.options
        h, w = frame_size(shape, o, what)
        want = (max(h, mfs[0]), max(w, mfs[1])) + tuple(mfs[2:])
        raise InputError("%s is %dx%d pixels (%s), bigger than the buffers sized for "
                         "max_frame_shape=%s: create the GpuPreprocessor with "
                         "max_frame_shape=%s or larger" % (what, w, h, o.input_format, mfs, want))

    def _yuv_planes(self, i, f, what, copies, host_slots, ranges):
        """The descriptor of YuvFrame ``f`` at batch position ``i``: device planes read in place;
        host planes copied into staging slot i as one contiguous buffer."""
        o = self.options
        need = {"420sp": "uv", "420p": "u,v"}.get(o.yuv_layout)
        if need is None or f.chroma != need:
            raise InputError("%s is a YuvFrame with %s planes, but input_format=%r %s"
                             % (what, f.chroma, o.input_format,
                                "is packed 4:2:2: pass its (H, W, 2) array" if need is None
                                else "has %s planes" % need))
        h, w = f.height, f.width
        if f.on_device:
            y, c = (f.planes[0], f.pitches[0]), list(zip(f.planes[1:], f.pitches[1:]))
            chroma = c[0] + ((0, 0) if len(c) == 1 else c[1])
            return (y[0], y[1], w, h, chroma)
        st = self.staging
        if o.frame_bytes(h, w) > st.slot_bytes:
            self._too_big(o.buffer_shape(h, w), what)
        off = i * st.slot_bytes
        buf = st.host[i, :o.frame_bytes(h, w)]
        y, c = f.planes[0], f.planes[1:]
        if f.chroma == "u,v" and YUV_FORMATS[o.input_format][1] != (0, 1):
            c = c[::-1]                 # YV12's buffer: V first
        pos = 0
        for plane in (y,) + tuple(c):
            n = plane.shape[0] * plane.shape[1]
            copies.append((i, buf[pos:pos + n].reshape(plane.shape), plane))
            pos += n
        host_slots.append(i)
        ranges.append((off, off + pos))
        ptr = st.device_base + off
        return (ptr, w, w, h, buffer_chroma(o, ptr, w, w, h))

    def make(self, frames):
        """Validate ``frames`` and work out the call: which frames to copy into which staging
        slot, which byte ranges to upload, and the kernel's uniform or table arguments."""
        st = self.staging
        o = self.options
        frames_in = frames
        frames = frame_list(frames, o)
        n = len(frames)
        if not 1 <= n <= self.max_batch:
            raise InputError("%d frames given but this GpuPreprocessor holds 1..%d: create it with "
                             "max_batch=%d or split the batch" % (n, self.max_batch, max(n, 1)))
        slot_bytes = st.slot_bytes
        dev_base = st.device_base
        yuv = o.is_yuv
        # (device ptr, pitch, w, h, chroma); chroma (c0, c0_pitch, c1, c1_pitch) or None: from
        # the single buffer (buffer_chroma). None for pinned uploads, placed below.
        descs = []
        ranges = []         # (start, end) byte ranges of the staging to copy to the device
        copies = []         # (slot, staging view, source: None for the frame itself, or a plane)
        pinned = []         # (slot, host address, pitch, span, w, h)
        host_slots = []
        geoms = []
        uploaded = []       # (frame, host address, host pitch, row bytes) of packed host frames
        for i, f in enumerate(frames):
            what = "frame %d" % i
            if isinstance(f, np.ndarray):
                check_dtype(f.dtype, what)
                h, w = frame_size(f.shape, o, what)
                rows, row_bytes = f.shape[0], f.shape[1] * (f.shape[2] if f.ndim == 3 else 1)
                how = self._host_frame(i, f, rows, row_bytes, what)
                if how[0] == "staging":
                    _, off, rs, end = how
                    host_slots.append(i)
                    descs.append((dev_base + off, rs, w, h, None))
                    ranges.append((off, end))
                    uploaded.append((i, st.host_base + off, rs, row_bytes))
                elif how[0] == "pinned":
                    pinned.append((i,) + how[1:] + (w, h))
                    descs.append(None)
                    uploaded.append((i, how[1], how[2], row_bytes))
                elif how[0] == "mapped":
                    descs.append((how[1], how[2], w, h, None))
                else:
                    off = i * slot_bytes
                    dst = st.host[i, :rows * row_bytes].reshape(f.shape)
                    copies.append((i, dst, None))
                    host_slots.append(i)
                    descs.append((dev_base + off, row_bytes, w, h, None))
                    ranges.append((off, off + rows * row_bytes))
                    uploaded.append((i, st.host_base + off, row_bytes, row_bytes))
            elif isinstance(f, DeviceArray):            # C-contiguous by design
                check_dtype(f.dtype, what)
                h, w = frame_size(f.shape, o, what)
                if f.ptr == 0:
                    raise InputError("%s is a closed DeviceArray" % what)
                descs.append((f.ptr, f.nbytes // f.shape[0], w, h, None))
            elif yuv and isinstance(f, YuvFrame):
                d = self._yuv_planes(i, f, what, copies, host_slots, ranges)
                h, w = d[3], d[2]
                descs.append(d)
            elif is_device_array(f):
                ptr, shape, strides, dtype = cuda_array_info(f)
                check_dtype(dtype, what)
                h, w = frame_size(shape, o, what)
                if strides[-1] != 1 or (len(shape) == 3 and strides[1] != shape[2]) or \
                        (o.yuv_layout == "420p" and strides[0] != shape[1]):
                    raise InputError("%s has strides %s that the kernel cannot read: pixels must "
                                     "be packed bytes (any row pitch is fine%s); make it "
                                     "contiguous first" % (what, strides, "" if o.yuv_layout !=
                                                           "420p" else " but for I420/YV12"))
                if ptr == 0:
                    raise InputError("%s has a null device pointer" % what)
                descs.append((ptr, strides[0], w, h, None))
            else:
                raise InputError("%s is a %s: pass a uint8 numpy array or a device array with "
                                 "__cuda_array_interface__%s" % (
                                     what, type(f).__name__,
                                     ", or a YuvFrame of its planes" if yuv else ""))
            geoms.append(self.geometry(w, h))

        uploads = []
        if ranges and not self.mapped:          # one copy per run of adjacent ranges
            ranges.sort()
            start, end = ranges[0]
            for s, e in ranges[1:] + [(None, None)]:
                if s is not None and s == end:
                    end = e
                    continue
                uploads.append((dev_base + start, st.flat(start, end)))
                start, end = s, e
        uploads.extend(self._pinned_uploads(pinned, descs, n))
        if yuv:
            descs = [d if d[4] is not None else d[:4] + (buffer_chroma(o, *d[:4]),)
                     for d in descs]

        ptr0, pitch0, w0, h0, c0 = descs[0]
        stride = descs[1][0] - ptr0 if n > 1 else 0
        uniform = all(d[1:4] == (pitch0, w0, h0) for d in descs) and \
            all(d[0] == ptr0 + k * stride for k, d in enumerate(descs))
        if uniform and yuv:                     # chroma planes at the same offsets and pitches
            rel0 = _relative(c0, ptr0)
            uniform = all(_relative(d[4], d[0]) == rel0 for d in descs)
        plan = Plan()
        plan.gather = self._gather(uploaded, descs, geoms) if self.gather and uploaded else None
        if plan.gather is not None:
            uploads = []        # the kernel moves what the filter reads of them instead
        plan.n = n
        plan.copies = copies
        plan.uploads = uploads
        plan.geoms = geoms
        plan.host_slots = host_slots
        plan.grid = self.grid + (n,)
        plan.out_shape = o.output_shape(n)
        view = self.out_views.get(n)
        if view is None:
            view = self.out_views[n] = DeviceArray.view(self.out.ptr, plan.out_shape,
                                                         o.np_dtype, owner=self.out)
        plan.out_view = view
        dt = frame_desc_dtype(o)
        if uniform:
            rec = np.zeros((), dt)
            fill_frame_desc(rec, o, geoms[0], ptr0, pitch0, c0)
            plan.uniform, plan.stride, plan.table = rec.tobytes(), stride, None
        else:
            table = np.zeros(n, dt)
            for k, (p, pitch, w, h, c) in enumerate(descs):
                fill_frame_desc(table[k], o, geoms[k], p, pitch, c)
            plan.uniform, plan.stride, plan.table = None, 0, table
            plan.table_args = {}               # (table slot, out pointer) -> packed arguments
        plan.args = plan.args_out = None
        if isinstance(frames_in, np.ndarray):
            plan.refs = [weakref.ref(frames_in)]
        elif isinstance(frames_in, (list, tuple)):
            plan.refs = [weakref.ref(f) if isinstance(f, np.ndarray) else None for f in frames_in]
        else:
            plan.refs = None
        return plan

    def _gather(self, uploaded, descs, geoms):
        """gather_rows' launch for the host frames ``uploaded`` (to their places ``descs``):
        (grid, packed RowCopies), or None where it would not save a quarter of the bytes or
        cannot run (more than GATHER_MAX frames, an address, pitch or row not 16-byte
        aligned; see preprocess.cu); then the frames go up whole."""
        if len(uploaded) > GATHER_MAX:
            return None
        o = self.options
        step = GATHER_MIN_STEP[o.interpolation]
        jobs = np.zeros(GATHER_MAX, ROW_COPY_DTYPE)
        rec = np.zeros((), FRAME_DESC_DTYPE)
        tallest = 1
        for j, (k, host, host_pitch, row_bytes) in enumerate(uploaded):
            dev, dev_pitch, w, h, _ = descs[k]
            if (host | host_pitch | dev | dev_pitch | row_bytes) % 16:
                return None
            fill_frame_desc(rec, o, geoms[k], dev, dev_pitch)
            inner_h = int(rec["inner_h"])
            if h < step * inner_h:
                return None
            job = jobs[j]
            job["from"], job["to"] = host, dev
            job["from_pitch"], job["to_pitch"] = host_pitch, dev_pitch
            job["nn_y"], job["sy"] = rec["nn_y"], rec["sy"]
            job["in_h"], job["inner_h"], job["row_vecs"] = h, inner_h, row_bytes // 16
            tallest = max(tallest, inner_h)
        m = len(uploaded)
        per_frame = max(1, -(-GATHER_BLOCKS // m))
        gx = min(per_frame, -(-tallest // GATHER_BLOCK[1]))
        return (gx, 1, m), jobs.tobytes()

    def _pinned_uploads(self, pinned, descs, n):
        """Uploads of pinned frames from their own memory, and their device addresses (filled
        into ``descs``). A whole batch laid out at a constant stride in one pinned block (an
        [N, H, W, C] PinnedArray) is one copy; otherwise frame i goes to device slot i."""
        st = self.staging
        if not pinned:
            return []
        dev_base = st.device_base
        if n > 1 and len(pinned) == n:
            a0 = pinned[0][1]
            step = pinned[1][1] - a0
            first = pinned[0][2:]
            if step >= 0 and all(p[1] == a0 + k * step and p[2:] == first
                                 for k, p in enumerate(pinned)):
                total = (n - 1) * step + first[1]
                if total <= self.max_batch * st.slot_bytes:
                    for k, (_, _, rs, _, w, h) in enumerate(pinned):
                        descs[k] = (dev_base + k * step, rs, w, h, None)
                    # a raw view of the pinned memory: no reference that keeps the frame alive
                    return [(dev_base, (ctypes.c_ubyte * total).from_address(a0))]
        uploads = []
        for i, addr, rs, span, w, h in pinned:
            dst = dev_base + i * st.slot_bytes
            descs[i] = (dst, rs, w, h, None)
            uploads.append((dst, (ctypes.c_ubyte * span).from_address(addr)))
        return uploads

    def clear(self):
        self.plans.clear()
        self.out_views.clear()


def _host_key(f):
    return (id(f), f.shape, f.strides, f.dtype)


def _device_array_key(f):
    return (f.ptr, f.shape, f.dtype)


def _yuv_key(f):
    return ("yuv", f.width, f.height, f.planes, f.pitches) if f.on_device else None


_FRAME_KEY_OF_TYPE = {}


def _frame_key(f):
    """Planner.key's key of one frame, by a function chosen once per type (a batch of eight
    foreign tensors is eight keys a call: one dict lookup each, no chain of isinstance)."""
    t = type(f)
    fn = _FRAME_KEY_OF_TYPE.get(t)
    if fn is None:
        if issubclass(t, np.ndarray):
            fn = _host_key
        elif issubclass(t, DeviceArray):
            fn = _device_array_key
        elif issubclass(t, YuvFrame):
            fn = _yuv_key
        else:
            fn = foreign_key_function(t)
        _FRAME_KEY_OF_TYPE[t] = fn
    try:
        return fn(f)
    except Exception:           # a broken interface: make() reports it
        return None


def _relative(chroma, ptr):
    """Chroma planes relative to the Y plane (0 stays 0: no plane)."""
    c0, p0, c1, p1 = chroma
    return (c0 - ptr if c0 else None, p0, c1 - ptr if c1 else None, p1)


class Plan(object):
    """What a call with the same frames does again (GpuPreprocessor's plan cache)."""
    __slots__ = ("n", "copies", "uploads", "gather", "geoms", "host_slots", "grid", "out_shape",
                 "out_view", "uniform", "stride", "table", "table_args", "args", "args_out",
                 "refs")


def pinned_root(f):
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
