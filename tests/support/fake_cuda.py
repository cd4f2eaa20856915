"""A fake pycuda driver for driving GpuPreprocessor's and GpuPostprocessor's host side on the CPU.

Its "device memory" is host memory (benchmarks/_overhead.py's HostAlloc and host_pinned_empty:
a device pointer is a host address; mapped pinned memory's device pointer is its host
address), copies and memsets are memmove/memset, events and streams count what is done to
them, and its prepared functions run the real kernel (kernels/*.cu on the CPU shim,
tests/kernel_shim.py) with the bytes the GPU would receive. Not a GPU: it catches argument-order,
format and host-logic mistakes before the GPU run.

``install(monkeypatch, how, formats, ...)`` puts it in place of ``trtssd.gpu.cuda._driver``,
``trtssd.gpu.kernels.get_function`` and ``trtssd.gpu.cuda.pinned_empty`` and returns the driver:
``drv.copies`` (every host-to-device copy: (dst, bytes, src address); its stream in
``drv.copy_streams``), ``drv.calls`` (every
launch: (how, kernel); its stream in ``drv.call_streams``), ``drv.fns`` (every function
get_function made; ``drv.function(kernel)``: the last of one kernel), ``drv.how``.
"""
import ctypes
import re
import struct

import numpy as np

from benchmarks._overhead import HostAlloc, host_pinned_empty
from support.kernel_shim import compile_cpu_module


class FakeEvent(object):
    def __init__(self, flags=0):
        self.recorded = 0
        self.flags = flags

    def record(self, stream=None):
        self.recorded += 1

    def synchronize(self):
        pass

    def query(self):
        return True

    def time_since(self, other):
        return 0.001


class FakeStream(object):
    def __init__(self, *a):
        self.waits = 0
        self.waited = []            # the events waited for, in order
        self.handle = id(self)

    def wait_for_event(self, ev):
        self.waits += 1
        self.waited.append(ev)

    def synchronize(self):
        pass


class FakeDriver(object):
    """pycuda.driver's calls that trtssd makes, with pycuda's signatures, on host memory."""
    Event = FakeEvent
    Stream = FakeStream

    class event_flags(object):          # pycuda's values
        BLOCKING_SYNC = 1
        DISABLE_TIMING = 2

    class device_attribute(object):     # pycuda's names
        UNIFIED_ADDRESSING = "UNIFIED_ADDRESSING"
        INTEGRATED = "INTEGRATED"

    class Device(object):
        """A discrete GPU with unified addressing (host memory read at its host address, as
        the fake's kernels read it)."""
        attributes = {"UNIFIED_ADDRESSING": 1, "INTEGRATED": 0}

        def get_attribute(self, attr):
            return self.attributes[attr]

    class Context(object):
        device = None

        @staticmethod
        def synchronize():
            pass

        @classmethod
        def get_device(cls):
            return cls.device

    def __init__(self):
        self.Context = type("Context", (FakeDriver.Context,), {"device": FakeDriver.Device()})
        self.copies = []
        self.copy_streams = []      # the stream of each entry of copies
        self.calls = []
        self.call_streams = []      # the stream of each entry of calls
        self.fns = []
        self.how = None

    def function(self, kernel):
        """The last function get_function made for ``kernel``."""
        return [f for f in self.fns if f.kernel == kernel][-1]

    def launches(self, kernel):
        """How many times ``kernel`` was launched."""
        return sum(1 for _, k in self.calls if k == kernel)

    def mem_alloc(self, n):
        return HostAlloc(n)

    def memcpy_htod_async(self, dst, src, stream=None):
        # src: any contiguous buffer, as pycuda takes it (numpy views, ctypes arrays)
        buf = np.frombuffer(src, np.uint8)
        self.copies.append((int(dst), buf.nbytes, buf.ctypes.data))
        self.copy_streams.append(stream)
        ctypes.memmove(int(dst), buf.ctypes.data, buf.nbytes)

    def memcpy_htod(self, dst, src):
        self.memcpy_htod_async(dst, src)

    def memcpy_dtoh_async(self, dst, src, stream=None):
        assert dst.flags.c_contiguous
        ctypes.memmove(dst.ctypes.data, int(src), dst.nbytes)

    def memcpy_dtoh(self, dst, src):
        self.memcpy_dtoh_async(dst, src)

    def memcpy_dtod_async(self, dst, src, n, stream=None):
        ctypes.memmove(int(dst), int(src), int(n))

    def memset_d8_async(self, ptr, value, n, stream=None):
        ctypes.memset(int(ptr), value, n)

    def memset_d8(self, ptr, value, n):
        self.memset_d8_async(ptr, value, n)


def _codes(fmt):
    """One struct code per value of a prepared-call format ("64s" is one value)."""
    out = []
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", fmt):
        out += [code] if code == "s" else [code] * int(count or 1)
    return out


class ShimFunction(object):
    """A prepared pycuda Function of a pycuda without ``_launch_kernel``: prepared_async_call
    (pycuda packs the values with the format). The values are checked against the format's
    codes, packed and unpacked (the bytes the GPU would receive), and the kernel runs on the
    shim. ``nullable``: positions of pointers that may be 0 (passed on as NULL)."""

    def __init__(self, mod, kernel, fmt, drv, nullable=(), grid_len=None, label=None):
        self.mod, self.kernel, self.fmt, self.drv = mod, kernel, fmt, drv
        self.codes = _codes(fmt)
        self.nullable = frozenset(nullable)
        self.grid_len = grid_len
        self.label = label
        self.launches = []          # label(args) per launch (default: the kernel's name)
        self.kinds = []             # "direct" or "prepared" per launch

    def prepared_async_call(self, grid, block, stream, *args):
        assert len(args) == len(self.codes), (self.kernel, len(args), self.fmt)
        for k, (code, v) in enumerate(zip(self.codes, args)):
            if code == "P":
                assert isinstance(v, (int, np.integer)), (self.kernel, k, v)
                assert v != 0 or k in self.nullable, (self.kernel, k, "null pointer")
            elif code in "iq":
                assert isinstance(v, (int, np.integer)), (self.kernel, code, type(v))
            elif code in "fd":
                assert isinstance(v, (float, np.floating)), (self.kernel, code, type(v))
            else:
                assert isinstance(v, bytes), (self.kernel, code, type(v))
        self._record("prepared", stream)
        self._run(grid, block, struct.pack("@" + self.fmt, *args))

    def _record(self, how, stream):
        self.kinds.append(how)
        self.drv.calls.append((how, self.kernel))
        self.drv.call_streams.append(stream)

    def _run(self, grid, block, buf):
        vals = struct.unpack("@" + self.fmt, buf)   # the bytes the GPU would receive
        conv = []
        for k, (code, v) in enumerate(zip(self.codes, vals)):
            if code == "P":
                assert v != 0 or k in self.nullable, (self.kernel, k, "null pointer")
                conv.append(int(v) if v else None)
            elif code == "s":
                conv.append(v)
            else:
                conv.append({"i": np.int32, "q": np.int64, "f": np.float32,
                             "d": np.float64}[code](v))
        if self.grid_len is not None:
            assert len(grid) == self.grid_len, (self.kernel, grid)
        assert len(block) == 3
        self.launches.append(self.label(conv) if self.label else self.kernel)
        self.mod.launch(self.kernel, tuple(grid) + (1,) * (3 - len(grid)), block, *conv)


class ShimFunctionDirect(ShimFunction):
    """The same with pycuda's ``Function._launch_kernel``: a buffer packed by the caller, as the
    C parameter list lays it out."""

    def _launch_kernel(self, grid, block, buf, shared, stream):
        assert isinstance(buf, bytes) and shared == 0
        assert len(buf) == struct.calcsize("@" + self.fmt), (self.kernel, len(buf))
        self._record("direct", stream)
        self._run(grid, block, buf)


def install(monkeypatch, how, formats, nullable=None, grid_len=None, label=None):
    """The fake driver in place of trtssd's (undone by monkeypatch). ``how``: "direct" (a
    pycuda with _launch_kernel) or "prepared" (without). ``formats``: {kernel: the
    prepared-call format its caller must ask for, or a tuple of the formats it may ask for}; ``nullable``: {kernel: positions of
    pointers that may be 0}; ``grid_len``: the grid tuple's length every launch must have;
    ``label``: f(kernel arguments) recorded per launch in the function's ``launches``."""
    import trtssd.gpu.cuda as tcuda
    import trtssd.gpu.kernels as loader
    drv = FakeDriver()
    drv.how = how
    if "preprocess_u8" in formats and "gather_rows" not in formats:
        # its companion (GpuPreprocessor loads both): 16 RowCopy records of 56 bytes by value
        formats = dict(formats, gather_rows="896s")
    cls = ShimFunctionDirect if how == "direct" else ShimFunction
    nullable = nullable or {}

    def get_function(name, kernel, defines=None, arg_types=None, options=None):
        want = formats[kernel]
        assert arg_types in want if isinstance(want, tuple) else arg_types == want, \
            (kernel, arg_types, want)
        drv.fns.append(cls(compile_cpu_module(name, defines), kernel, arg_types, drv,
                           nullable.get(kernel, ()), grid_len, label))
        return drv.fns[-1]

    monkeypatch.setattr(tcuda, "_driver", drv)
    monkeypatch.setattr(loader, "get_function", get_function)
    monkeypatch.setattr(tcuda, "pinned_empty", host_pinned_empty)
    return drv
