"""The ``--python-overhead`` machinery of bench_preprocess and bench_postprocess (CPU only).

A no-op pycuda driver (every launch, copy, memset and event record does nothing), a context
manager that swaps it in for ``trtssd.gpu.cuda._driver`` with a no-op ``kernel_loader.get_function``
and a host-memory ``trtssd.gpu.cuda.pinned_empty``, and the timing loop. What is left of a call is
its Python code (plus CPython's call overhead); the GPU driver's own calls come on top.

``HostAlloc`` and ``host_pinned_empty`` (device and pinned memory that is ordinary host memory)
are also what the tests' fake driver (tests/fake_cuda.py) allocates with. Python 3.6 code.
"""
import time
from contextlib import contextmanager

import numpy as np


class HostAlloc(object):
    """A "device allocation" in host memory: int() is its host address; free() drops it."""

    def __init__(self, n):
        self.buf = np.zeros(max(n, 1), np.uint8)

    def __int__(self):
        return self.buf.ctypes.data

    def free(self):
        self.buf = None


def host_pinned_empty(shape, dtype, mapped=False):
    """trtssd.gpu.cuda.pinned_empty in ordinary memory, laid out as pinned_empty's: an array over an
    allocation object (here a ctypes buffer) that the owner keeps; mapped: the "device pointer"
    is the host address."""
    import ctypes
    import trtssd.gpu.cuda as tcuda
    alloc = (ctypes.c_ubyte * max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize))()
    base = np.ndarray(shape, dtype, buffer=alloc)
    arr = base.view(tcuda.PinnedArray)
    arr.owner = tcuda._PinnedOwner(alloc, base.ctypes.data if mapped else None)
    return arr


class NoopFn(object):
    """A kernel whose launch does nothing (Python-overhead measurement)."""
    def prepared_async_call(self, *a):
        pass

    def _launch_kernel(self, grid, block, buf, shared, stream):
        pass


class ForeignArray(object):
    """A device array of another library as trtssd sees it: ``__cuda_array_interface__`` is a
    property building a fresh dict on each access, after a few checks, as PyTorch's and CuPy's
    do (their own checks cost more: this is a lower bound of a foreign array's cost)."""

    def __init__(self, ptr, shape, typestr="|u1"):
        self.ptr, self.shape, self.typestr = int(ptr), tuple(shape), typestr
        self.is_cuda, self.requires_grad = True, False

    @property
    def __cuda_array_interface__(self):
        if not self.is_cuda or self.requires_grad:
            raise AttributeError("not a CUDA array")
        return dict(typestr=self.typestr, shape=tuple(self.shape), strides=None,
                    data=(self.ptr, False), version=2)


class NoopDriver(object):
    """Just enough of pycuda.driver for GpuPreprocessor and GpuPostprocessor, every call a
    no-op."""

    class event_flags(object):          # pycuda's values
        BLOCKING_SYNC = 1
        DISABLE_TIMING = 2

    class Event(object):
        def __init__(self, flags=0):
            self.flags = flags

        def record(self, stream=None):
            pass

        def synchronize(self):
            pass

        def query(self):
            return True

        def time_since(self, other):
            return 0.0

    class Stream(object):
        handle = 1

        def wait_for_event(self, ev):
            pass

    class device_attribute(object):
        UNIFIED_ADDRESSING, INTEGRATED = "UNIFIED_ADDRESSING", "INTEGRATED"

    class Device(object):       # a discrete GPU with unified addressing
        @staticmethod
        def get_attribute(attr):
            return int(attr == "UNIFIED_ADDRESSING")

    class Context(object):
        @staticmethod
        def get_current():
            return None

        @staticmethod
        def get_device():
            return NoopDriver.Device()

    def mem_alloc(self, n):
        return HostAlloc(n)

    def memcpy_htod(self, *a):
        pass

    def memcpy_htod_async(self, *a):
        pass

    def memcpy_dtoh_async(self, *a):
        pass

    def memset_d8(self, *a):
        pass

    def memset_d8_async(self, *a):
        pass


@contextmanager
def noop_driver():
    """Swap in NoopDriver, NoopFn kernels and host_pinned_empty; put trtssd's own back after.
    Yields the driver."""
    import trtssd.gpu.cuda as tcuda
    import trtssd.gpu.kernels as loader
    saved = (tcuda._driver, loader.get_function, tcuda.pinned_empty)
    drv = NoopDriver()
    tcuda._driver = drv
    loader.get_function = lambda *a, **k: NoopFn()
    tcuda.pinned_empty = host_pinned_empty
    try:
        yield drv
    finally:
        tcuda._driver, loader.get_function, tcuda.pinned_empty = saved


def median_us_per_call(call, samples, warmup):
    """``warmup`` calls, then ``samples`` samples of 100 calls each: the median us per call."""
    for _ in range(warmup):
        call()
    t = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(100):
            call()
        t.append((time.perf_counter() - t0) * 1e4)
    return float(np.median(t))


def time_cases(res, cases, n, calls_of):
    """``res["<case>_b<n>_us"]``: the median us per call of each ``(case, call)`` in ``cases``,
    ``calls_of(case)`` calls each (``calls // 100`` samples, at least 5, after ``min(calls,
    200)`` warm-up calls)."""
    for name, call in cases:
        calls = calls_of(name)
        res["%s_b%d_us" % (name, n)] = median_us_per_call(call, max(calls // 100, 5),
                                                          min(calls, 200))


def print_us(res, per):
    """One line a figure of ``res``, sorted by name: "<name> <us> us per <per>"."""
    width = max([len(k) for k in res] + [1])
    for k in sorted(res):
        print("%-*s %8.2f us per %s" % (width, k, res[k], per))
