"""CUDA context, device buffers, pinned host buffers and event timing, over PyCUDA.

PyCUDA is imported when one of these objects is first made, never at import, so
``import trtssd.gpu.cuda`` works on a machine with only numpy.

Context rule: trtssd never creates a context of its own and never uses ``pycuda.autoinit``.
``CudaContext`` retains the device's *primary* context, the one the CUDA runtime, PyTorch and
CuPy use, so buffers made here are valid there and vice versa. ``with ctx.active():`` makes it
current in the calling thread (push on entry, pop in ``finally``); any thread may do so, and
doing so where PyTorch already made the primary context current is harmless (it is pushed
twice and popped once).

Every object that allocates or computes (``DeviceArray``, ``pinned_empty``, ``EventTimer``,
``GpuPreprocessor``) expects the context to be current in the calling thread.
"""
import threading
from contextlib import contextmanager

import numpy as np

from ..core.closeable import Closeable
from ..core.errors import EnvironmentProblem, InputError

_driver = None
_driver_lock = threading.Lock()


def driver():
    """``pycuda.driver``, initialised; EnvironmentProblem naming the fix if it is missing."""
    global _driver
    if _driver is not None:
        return _driver
    with _driver_lock:
        if _driver is None:
            try:
                import pycuda.driver as drv
            except ImportError as e:
                raise EnvironmentProblem(
                    "pycuda is not importable (%s). Install it into this environment: "
                    "`pip install pycuda` (it needs nvcc and the CUDA headers; on Jetson use the "
                    "JetPack CUDA: `export PATH=/usr/local/cuda/bin:$PATH` first)" % e)
            try:
                drv.init()
            except Exception as e:  # pycuda.driver.Error, RuntimeError
                raise EnvironmentProblem(
                    "the CUDA driver did not initialise (%s): check that an NVIDIA GPU and driver "
                    "are present (`nvidia-smi`), or use a CPU mode" % e)
            _driver = drv
    return _driver


class CudaContext(Closeable):
    """The primary context of one device, retained for as long as this object lives.

    >>> ctx = CudaContext(0)
    >>> with ctx.active():
    ...     buf = DeviceArray((3, 300, 300), np.float32)
    """

    def __init__(self, device=0):
        drv = driver()
        count = drv.Device.count()
        if not 0 <= int(device) < count:
            raise EnvironmentProblem(
                "CUDA device %d does not exist: this machine has %d device(s); pass device=0..%d "
                "or check CUDA_VISIBLE_DEVICES" % (device, count, max(count - 1, 0)))
        self.device_index = int(device)
        self.device = drv.Device(self.device_index)
        self._ctx = self.device.retain_primary_context()
        self._closed = False

    @property
    def name(self):
        return self.device.name()

    @property
    def compute_capability(self):
        return self.device.compute_capability()

    @contextmanager
    def active(self):
        """Make this context current in the calling thread for the ``with`` block."""
        if self._closed:
            raise InputError("this CudaContext was closed; make a new CudaContext(device)")
        self._ctx.push()
        try:
            yield self
        finally:
            driver().Context.pop()

    def synchronize(self):
        with self.active():
            driver().Context.synchronize()

    def close(self):
        """Release the retained primary context (it stays alive while others retain it)."""
        if not self._closed:
            self._closed = True
            ctx, self._ctx = self._ctx, None
            try:
                ctx.detach()
            except Exception:  # already released at interpreter exit
                pass

    def __repr__(self):
        return "CudaContext(%d)" % self.device_index


def host_wait_event(drv=None):
    """A CUDA event that the host waits on (``synchronize``): no timing, and no blocking
    synchronisation: a waiting thread spins in the driver (one core while it waits) and sees
    the event at once; a sleeping wait's wake-up costs more frame rate than the CPU it saves
    (benchmarks/NOTES_pipeline.md, round 5)."""
    drv = drv or driver()
    return drv.Event(drv.event_flags.DISABLE_TIMING)


def _typestr(dtype):
    dtype = np.dtype(dtype)
    return dtype.str if dtype.itemsize > 1 else "|" + dtype.str[1:]


def stream_handle(stream):
    """The integer handle of a pycuda Stream (0 for None, the legacy default stream)."""
    if stream is None:
        return 0
    handle = getattr(stream, "handle", None)
    if handle is None:
        handle = getattr(stream, "handle_int", 0)
    return int(handle)


_graph_launch = None
_graph_launch_lock = threading.Lock()


def graph_launcher():
    """``launch(graph_exec, stream)``: the driver's cuGraphLaunch through ctypes (two integer
    handles; raises RuntimeError on a CUDA error), or None where the driver library cannot be
    loaded. What launches a CUDA graph another library instantiated (PyTorch's
    ``CUDAGraph.raw_cuda_graph_exec()``) on a stream of ours in one driver call."""
    global _graph_launch
    with _graph_launch_lock:
        if _graph_launch is None:
            _graph_launch = _load_graph_launch() or False
    return _graph_launch or None


def _load_graph_launch():
    import ctypes
    import sys
    try:
        lib = ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
        fn = lib.cuGraphLaunch
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = ctypes.c_int

    def launch(graph_exec, stream):
        rc = fn(graph_exec, stream)
        if rc:
            raise RuntimeError("cuGraphLaunch failed with CUDA error %d" % rc)
    return launch


def _count(shape):
    n = 1
    for s in shape:
        n *= s
    return n


class DeviceArray(Closeable):
    """A C-contiguous array in device memory: owning, or a borrowed view of someone's memory.

    ``DeviceArray(shape, dtype)`` allocates (needs a current context). ``DeviceArray.view(ptr,
    shape, dtype, owner)`` borrows ``ptr`` and keeps ``owner`` alive; closing a view never frees.
    ``__cuda_array_interface__`` (version 3) lets ``torch.as_tensor(a, device='cuda')`` and CuPy
    use the memory without a copy. ``stream`` (a pycuda Stream or None) is the stream the last
    writer enqueued on, when known; it is reported in the interface so consumers synchronise.
    """

    def __init__(self, shape, dtype):
        self.shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        if any(s < 0 for s in self.shape):
            raise InputError("DeviceArray shape %s has a negative dimension" % (self.shape,))
        self.dtype = np.dtype(dtype)
        self.nbytes = _count(self.shape) * self.dtype.itemsize
        self._alloc = driver().mem_alloc(max(self.nbytes, 1))
        self.ptr = int(self._alloc)
        self.owner = None
        self.stream = None
        self._views = None

    @classmethod
    def view(cls, ptr, shape, dtype, owner=None):
        """Borrow device memory at ``ptr``; ``owner`` is kept alive as long as the view."""
        self = cls.__new__(cls)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = _count(self.shape) * self.dtype.itemsize
        self._alloc = None
        self.ptr = int(ptr)
        self.owner = owner
        self.stream = None
        self._views = None
        return self

    @property
    def owning(self):
        return self._alloc is not None

    @property
    def size(self):
        return _count(self.shape)

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return self.shape[0]

    @property
    def __cuda_array_interface__(self):
        self._check_open()
        iface = {"shape": self.shape, "typestr": _typestr(self.dtype),
                 "data": (self.ptr, False), "strides": None, "version": 3}
        if self.stream is not None:
            # v3: an integer stream the consumer must order itself after; 1 is the legacy
            # default stream (0 is not allowed by the protocol).
            iface["stream"] = stream_handle(self.stream) or 1
        return iface

    def _check_open(self):
        if self.ptr == 0 and self.nbytes:
            raise InputError("this DeviceArray was closed; allocate a new one")

    def _host_check(self, arr, what):
        if not isinstance(arr, np.ndarray):
            raise InputError("%s needs a numpy array, got %s" % (what, type(arr).__name__))
        if arr.dtype != self.dtype or arr.nbytes != self.nbytes:
            raise InputError("%s: host array %s %s does not match the device array %s %s; "
                             "allocate the host array with the same shape and dtype"
                             % (what, arr.shape, arr.dtype, self.shape, self.dtype))
        if not arr.flags.c_contiguous:
            raise InputError("%s: the host array must be C-contiguous; pass "
                             "np.ascontiguousarray(a)" % what)

    def copy_from_host(self, arr, stream=None):
        """Host -> device. Asynchronous (with ``stream``) only when ``arr`` is page-locked."""
        self._check_open()
        self._host_check(arr, "copy_from_host")
        if self.nbytes == 0:
            return self
        drv = driver()
        if stream is None:
            drv.memcpy_htod(self.ptr, arr)
        else:
            drv.memcpy_htod_async(self.ptr, arr, stream)
        return self

    def copy_to_host(self, out=None, stream=None):
        """Device -> host into ``out`` (allocated if None). With a stream, synchronise before
        reading ``out`` (and ``out`` should be pinned for the copy to be asynchronous)."""
        self._check_open()
        if out is None:
            out = np.empty(self.shape, self.dtype)
        self._host_check(out, "copy_to_host")
        if self.nbytes == 0:
            return out
        drv = driver()
        if stream is None:
            drv.memcpy_dtoh(out, self.ptr)
        else:
            drv.memcpy_dtoh_async(out, self.ptr, stream)
        return out

    def get(self):
        """Synchronous copy to a new numpy array (tests, debugging)."""
        return self.copy_to_host()

    def fill_bytes(self, value, stream=None):
        """Set every byte to ``value`` (0-255): 0xFF poisons float arrays with NaN."""
        self._check_open()
        if self.nbytes:
            drv = driver()
            if stream is None:
                drv.memset_d8(self.ptr, int(value), self.nbytes)
            else:
                drv.memset_d8_async(self.ptr, int(value), self.nbytes, stream)
        return self

    def close(self):
        """Free owned memory now (a view only forgets its pointer)."""
        alloc, self._alloc = self._alloc, None
        self.ptr = 0
        self.owner = None
        if alloc is not None:
            try:
                alloc.free()
            except Exception:  # context already gone at interpreter exit
                pass

    def __repr__(self):
        return "DeviceArray(shape=%s, dtype=%s, %s, ptr=0x%x)" % (
            self.shape, self.dtype, "owning" if self.owning else "view", self.ptr)


class _PinnedOwner(object):
    """Keeps the page-locked allocation of a pinned array; ``close()`` frees it now."""

    def __init__(self, base, device_ptr):
        self.base = base
        self.device_ptr = device_ptr

    def close(self):
        base, self.base = self.base, None
        if base is not None:
            try:
                base.free()
            except Exception:
                pass


class PinnedArray(np.ndarray):
    """A numpy array in page-locked host memory (from ``pinned_empty``).

    ``.owner.close()`` (or ``.close()``) frees it deterministically; use no view of it after.
    ``.device_ptr`` is the device address of mapped memory, else None.
    """

    def close(self):
        owner = getattr(self, "owner", None)
        if owner is not None:
            owner.close()

    @property
    def device_ptr(self):
        owner = getattr(self, "owner", None)
        return None if owner is None else owner.device_ptr

    def __array_finalize__(self, obj):
        self.owner = getattr(obj, "owner", None)


def copy_2d(src_ptr, src_pitch, dst, dst_pitch, width_bytes, rows, stream=None):
    """Copy ``rows`` rows of ``width_bytes`` from device memory at ``src_ptr`` (rows
    ``src_pitch`` bytes apart) into ``dst``: a C-contiguous host array (pinned, for a copy on a
    stream) or a device address; its rows ``dst_pitch`` bytes apart. On ``stream``, or at once
    with ``stream`` None."""
    m = driver().Memcpy2D()
    m.set_src_device(int(src_ptr))
    m.src_pitch = int(src_pitch)
    if isinstance(dst, np.ndarray):
        m.set_dst_host(dst)
    else:
        m.set_dst_device(int(dst))
    m.dst_pitch = int(dst_pitch)
    m.width_in_bytes = int(width_bytes)
    m.height = int(rows)
    if stream is None:
        m(aligned=False)
    else:
        m(stream)


def pinned_empty(shape, dtype, mapped=False):
    """A page-locked host array (fast, asynchronous copies). Needs a current context.

    ``mapped=True`` allocates it with ``CU_MEMHOSTALLOC_DEVICEMAP`` so kernels read it directly
    through ``.device_ptr`` without a copy. That is the zero-copy path CUDA's documentation for
    Jetson (integrated GPU, shared DRAM) recommends; on a discrete GPU every access crosses
    PCIe. A Jetson path: README.md, "Jetson", says what was and was not run.
    """
    drv = driver()
    if mapped:
        base = drv.pagelocked_empty(shape, dtype, mem_flags=drv.host_alloc_flags.DEVICEMAP)
        hb = base.base
        device_ptr = int(hb.get_device_pointer())
    else:
        base = drv.pagelocked_empty(shape, dtype)
        hb = base.base
        device_ptr = None
    arr = base.view(PinnedArray)
    arr.owner = _PinnedOwner(hb, device_ptr)
    return arr


def pulls_host_memory():
    """Whether kernels on the current context's device read page-locked host memory at its host
    address over a bus (unified addressing on a discrete GPU). On an integrated GPU (Jetson)
    host and device share DRAM and trtssd maps buffers instead (``pinned_empty(mapped=True)``)."""
    drv = driver()
    dev = drv.Context.get_device()
    attr = drv.device_attribute
    return bool(dev.get_attribute(attr.UNIFIED_ADDRESSING)) and \
        not dev.get_attribute(attr.INTEGRATED)


class EventTimer(object):
    """GPU time between ``start()`` and ``stop()`` on a stream, from CUDA events."""

    def __init__(self, stream=None):
        drv = driver()
        self.stream = stream
        self._start = drv.Event()
        self._stop = drv.Event()

    def start(self):
        self._start.record(self.stream)
        return self

    def stop(self):
        self._stop.record(self.stream)
        return self

    def elapsed_ms(self):
        """Milliseconds between the two events (waits for the stop event)."""
        self._stop.synchronize()
        return float(self._stop.time_since(self._start))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def c_strides(shape, itemsize):
    """Strides in bytes of a C-contiguous array of ``shape``."""
    strides = [0] * len(shape)
    step = int(itemsize)
    for k in range(len(shape) - 1, -1, -1):
        strides[k] = step
        step *= int(shape[k])
    return tuple(strides)


def is_c_contiguous(shape, strides, itemsize):
    """numpy's rule: the strides of C order, except that an axis of length 1 may have any
    stride and an empty array is contiguous."""
    if any(int(s) == 0 for s in shape):
        return True
    step = int(itemsize)
    for n, st in zip(reversed(shape), reversed(strides)):
        if n != 1 and int(st) != step:
            return False
        step *= int(n)
    return True


_DLPACK_DEVICE = {2: "CUDA", 13: "CUDA managed"}       # DLPack device types a kernel can read
_DLPACK_KIND = {0: "i", 1: "u", 2: "f"}


def _dlpack_info(obj, devices=_DLPACK_DEVICE):
    """(ptr, shape, strides_in_bytes, dtype) of an object with ``__dlpack__`` (DLPack's legacy
    "dltensor" capsule, read through ctypes and left unconsumed, so the producer's deleter runs
    when the capsule goes; the memory lives as long as ``obj``). InputError unless the tensor is
    in CUDA memory."""
    import ctypes

    class Device(ctypes.Structure):
        _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]

    class DType(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]

    class Tensor(ctypes.Structure):
        _fields_ = [("data", ctypes.c_void_p), ("device", Device), ("ndim", ctypes.c_int32),
                    ("dtype", DType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                    ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]

    capsule = obj.__dlpack__()
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    addr = get(capsule, b"dltensor")
    t = Tensor.from_address(addr)
    if t.device.device_type not in devices:
        raise InputError("%s is not in CUDA memory (DLPack device type %d): pass host frames as "
                         "numpy arrays, device frames as CUDA arrays"
                         % (type(obj).__name__, t.device.device_type))
    if t.dtype.lanes != 1 or t.dtype.code not in _DLPACK_KIND:
        raise InputError("%s has a DLPack dtype (code %d, %d bits, %d lanes) trtssd does not read"
                         % (type(obj).__name__, t.dtype.code, t.dtype.bits, t.dtype.lanes))
    dtype = np.dtype("%s%d" % (_DLPACK_KIND[t.dtype.code], t.dtype.bits // 8))
    shape = tuple(int(t.shape[k]) for k in range(t.ndim))
    if t.strides:
        strides = tuple(int(t.strides[k]) * dtype.itemsize for k in range(t.ndim))
    else:
        strides = c_strides(shape, dtype.itemsize)
    ptr = (t.data or 0) + int(t.byte_offset)
    del capsule
    return ptr, shape, strides, dtype


def is_device_array(obj):
    """Whether ``obj`` describes device memory: ``__cuda_array_interface__``, or ``__dlpack__``
    (numpy arrays aside: those are host frames)."""
    return hasattr(obj, "__cuda_array_interface__") or (
        hasattr(obj, "__dlpack__") and not isinstance(obj, np.ndarray))


def cuda_array_info(obj):
    """(ptr, shape, strides_in_bytes, dtype) of a device array: an object with
    ``__cuda_array_interface__``, else one with ``__dlpack__`` (in CUDA memory)."""
    iface = getattr(obj, "__cuda_array_interface__", None)
    if iface is None:
        return _dlpack_info(obj)
    shape = tuple(int(s) for s in iface["shape"])
    dtype = np.dtype(iface["typestr"])
    ptr = int(iface["data"][0])
    strides = iface.get("strides")
    if strides is None:
        strides = c_strides(shape, dtype.itemsize)
    else:
        strides = tuple(int(s) for s in strides)
    return ptr, shape, strides, dtype


def device_buffer(obj, what):
    """(ptr, shape, dtype) of a C-contiguous device buffer: anything with
    ``__cuda_array_interface__`` (DeviceArray, CUDA torch tensors, CuPy arrays). InputError
    naming ``what`` when it is not one, is not C-contiguous or has a null pointer."""
    if not is_device_array(obj):
        raise InputError("%s is a %s, not a device array (a device buffer with "
                         "__cuda_array_interface__ or __dlpack__): pass a "
                         "trtssd.gpu.cuda.DeviceArray, a CUDA torch tensor or a CuPy array"
                         % (what, type(obj).__name__))
    ptr, shape, strides, dtype = cuda_array_info(obj)
    if not is_c_contiguous(shape, strides, dtype.itemsize):
        raise InputError("%s is not C-contiguous (strides %s, C order is %s): pass a contiguous "
                         "buffer (tensor.contiguous())"
                         % (what, strides, c_strides(shape, dtype.itemsize)))
    if ptr == 0 and _count(shape) > 0:
        raise InputError("%s has a null device pointer (closed or freed)" % what)
    return ptr, shape, dtype


def _torch_key(t):
    # no device in the key: host and device addresses are distinct in CUDA's unified space
    return ("torch", t.data_ptr(), t.shape, t.stride(), t.dtype)


def _cupy_key(a):
    return ("cupy", a.data.ptr, a.shape, a.strides, a.dtype)


def _interface_key(obj):
    iface = getattr(obj, "__cuda_array_interface__", None)
    if iface is None:
        if hasattr(obj, "__dlpack__") and not isinstance(obj, np.ndarray):
            ptr, shape, strides, dtype = _dlpack_info(obj)
            return ("dlpack", ptr, shape, strides, dtype)
        return None
    strides = iface.get("strides")
    return ("cai", iface["data"][0], tuple(iface["shape"]),
            None if strides is None else tuple(strides), iface["typestr"])


_KEY_OF_TYPE = {}


def foreign_key_function(t):
    """The function foreign_key uses for objects of type ``t`` (memoised per type): PyTorch
    tensors and CuPy arrays by their own cheap attributes (torch's interface property alone
    costs microseconds), anything else by its interface (DLPack: its tensor)."""
    fn = _KEY_OF_TYPE.get(t)
    if fn is None:
        mod = getattr(t, "__module__", "") or ""
        if t.__name__ == "Tensor" and mod == "torch":
            fn = _torch_key
        elif t.__name__ == "ndarray" and mod.split(".")[0] == "cupy":
            fn = _cupy_key
        else:
            fn = _interface_key
        _KEY_OF_TYPE[t] = fn
    return fn


def foreign_key(obj):
    """A hashable key of a device array's memory (pointer, shape, strides, dtype) that changes
    whenever its ``__cuda_array_interface__`` (or DLPack tensor) would, or None when ``obj``
    has neither: what caches of plans and checked buffers key foreign arrays by
    (foreign_key_function says how, per type)."""
    return foreign_key_function(type(obj))(obj)

