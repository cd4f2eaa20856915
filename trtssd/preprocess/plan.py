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
from ..gpu.cuda import DeviceArray, PinnedArray, cuda_array_info
from .frames import check_dtype, frame_hwc, frame_list

# The kernel's FrameDesc (kernels/preprocess.cu), 64 bytes.
FRAME_DESC_DTYPE = np.dtype({
    "names": ["src", "pitch", "nn_x", "nn_y", "in_w", "in_h", "sx", "sy",
              "off_x", "off_y", "inner_w", "inner_h"],
    "formats": [np.uint64, np.int64, np.float64, np.float64, np.int32, np.int32, np.float32,
                np.float32, np.int32, np.int32, np.int32, np.int32],
    "offsets": [0, 8, 16, 24, 32, 36, 40, 44, 48, 52, 56, 60],
    "itemsize": 64,
})

_ZERO_DESC = bytes(FRAME_DESC_DTYPE.itemsize)


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


class Planner(object):
    """Makes and caches the plans of one GpuPreprocessor: its options, Staging (``staging``),
    output buffer (``out``, [max_batch, ...]) and launch grid of one frame (``grid``, x and y)."""

    MAX_PLANS = 256

    def __init__(self, options, staging, out, grid, max_frame_shape):
        self.options, self.staging, self.out, self.grid = options, staging, out, grid
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
    def same_objects(refs, frames):
        if isinstance(frames, np.ndarray):
            return refs[0]() is frames
        for r, f in zip(refs, frames):
            if r is not None and r() is not f:
                return False
        return True

    def _host_frame(self, i, f, h, w, what):
        """How host frame ``i`` reaches the device: ('staging', off, pitch, end) for a view of
        the staging, ('pinned', addr, pitch, span) for a pinned frame uploaded from its own
        memory, ('mapped', device address, pitch) for a mapped one read in place, or
        ('copy',) for a copy through staging slot i."""
        st = self.staging
        ch = self.options.in_channels
        slot_bytes = st.slot_bytes
        addr = f.__array_interface__["data"][0]
        rs = f.strides[0]
        if f.ndim == 3:
            packed = rs > 0 and f.strides[1] == ch and f.strides[2] == 1
        else:
            packed = rs > 0 and f.strides[1] == 1
        span = (h - 1) * rs + w * ch
        off = addr - st.host_base
        if 0 <= off < st.host.nbytes:
            if off // slot_bytes != i:
                raise InputError("%s is a view of staging slot %d: pass staging(i) views "
                                 "at position i of the batch" % (what, off // slot_bytes))
            if not packed or off + span > (i + 1) * slot_bytes:
                raise InputError("%s is a view of the staging buffers that the kernel "
                                 "cannot read (strides %s): use staging(i)[:h, :w] crops"
                                 % (what, f.strides))
            return ("staging", off, rs, off + span)
        root = pinned_root(f) if packed and isinstance(f, PinnedArray) else None
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

    def make(self, frames):
        """Validate ``frames`` and work out the call: which frames to copy into which staging
        slot, which byte ranges to upload, and the kernel's uniform or table arguments."""
        st = self.staging
        o = self.options
        frames_in = frames
        frames = frame_list(frames)
        n = len(frames)
        if not 1 <= n <= self.max_batch:
            raise InputError("%d frames given but this GpuPreprocessor holds 1..%d: create it with "
                             "max_batch=%d or split the batch" % (n, self.max_batch, max(n, 1)))
        slot_bytes = st.slot_bytes
        ch = o.in_channels
        dev_base = st.device_base
        descs = []          # (device ptr, pitch, w, h); None for pinned uploads, placed below
        ranges = []         # (start, end) byte ranges of the staging to copy to the device
        copies = []         # (slot, staging view to copy frame k into)
        pinned = []         # (slot, host address, pitch, span, w, h)
        host_slots = []
        geoms = []
        for i, f in enumerate(frames):
            what = "frame %d" % i
            if isinstance(f, np.ndarray):
                check_dtype(f.dtype, what)
                h, w, _ = frame_hwc(f.shape, o, what)
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
                    dst = st.host[i, :h * w * ch].reshape((h, w) if f.ndim == 2 else (h, w, ch))
                    copies.append((i, dst))
                    host_slots.append(i)
                    descs.append((dev_base + off, w * ch, w, h))
                    ranges.append((off, off + h * w * ch))
            elif isinstance(f, DeviceArray):            # C-contiguous by design
                check_dtype(f.dtype, what)
                h, w, _ = frame_hwc(f.shape, o, what)
                if f.ptr == 0:
                    raise InputError("%s is a closed DeviceArray" % what)
                descs.append((f.ptr, w * ch, w, h))
            elif hasattr(f, "__cuda_array_interface__"):
                ptr, shape, strides, dtype = cuda_array_info(f)
                check_dtype(dtype, what)
                h, w, _ = frame_hwc(shape, o, what)
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
                uploads.append((dev_base + start, st.flat(start, end)))
                start, end = s, e
        uploads.extend(self._pinned_uploads(pinned, descs, n))

        ptr0, pitch0, w0, h0 = descs[0]
        uniform = all(d[1:] == (pitch0, w0, h0) for d in descs)
        stride = descs[1][0] - ptr0 if n > 1 else 0
        if uniform and n > 1:
            uniform = all(descs[k][0] == ptr0 + k * stride for k in range(n))
        plan = Plan()
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
                        descs[k] = (dev_base + k * step, rs, w, h)
                    # a raw view of the pinned memory: no reference that keeps the frame alive
                    return [(dev_base, (ctypes.c_ubyte * total).from_address(a0))]
        uploads = []
        for i, addr, rs, span, w, h in pinned:
            dst = dev_base + i * st.slot_bytes
            descs[i] = (dst, rs, w, h)
            uploads.append((dst, (ctypes.c_ubyte * span).from_address(addr)))
        return uploads

    def clear(self):
        self.plans.clear()
        self.out_views.clear()


class Plan(object):
    """What a call with the same frames does again (GpuPreprocessor's plan cache)."""
    __slots__ = ("n", "copies", "uploads", "geoms", "host_slots", "grid", "out_shape", "out_view",
                 "uniform", "stride", "table", "args", "args_out", "refs")


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
