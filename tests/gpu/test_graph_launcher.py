"""trtssd.gpu.cuda's direct driver calls on the CPU, with the driver library faked: the graph
launch and the pinned uploader, both through ``ctypes.PyDLL`` (whose calls keep the GIL; a
CDLL call releases it), the library loaded once, a return code turned into an error, None or
pycuda's copy where there is no driver library, and the test fakes' driver always used as it
is."""
import ctypes
import types

import numpy as np
import pytest

from trtssd.gpu import cuda


class FakeLib(object):
    def __init__(self, rc):
        self.calls = []
        rc_ = rc

        def launch(graph_exec, stream):
            self.calls.append(("launch", graph_exec, stream))
            return rc_

        def copy(dst, addr, nbytes, stream):
            self.calls.append(("copy", dst, addr, nbytes, stream))
            return rc_
        self.cuGraphLaunch = _Fn(launch)
        self.cuMemcpyHtoDAsync_v2 = _Fn(copy)


class _Fn(object):
    """A ctypes function's surface: argtypes, restype, call."""

    def __init__(self, fn):
        self.fn, self.argtypes, self.restype = fn, None, None

    def __call__(self, *args):
        return self.fn(*args)


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(cuda, "_graph_launch", None)
    monkeypatch.setattr(cuda, "_libcuda", None)

    def no_cdll(name):
        raise AssertionError("the driver library is loaded through PyDLL (keeps the GIL)")
    monkeypatch.setattr(ctypes, "CDLL", no_cdll)
    return monkeypatch


def test_launches_with_both_handles_and_loads_the_library_once(fresh):
    lib, loads = FakeLib(0), []
    fresh.setattr(ctypes, "PyDLL", lambda name: loads.append(name) or lib)
    launch = cuda.graph_launcher()
    launch(0x1234, 0x5678)
    assert lib.calls == [("launch", 0x1234, 0x5678)]
    assert lib.cuGraphLaunch.argtypes == [ctypes.c_void_p, ctypes.c_void_p]
    assert lib.cuGraphLaunch.restype is ctypes.c_int
    assert cuda.graph_launcher() is launch and len(loads) == 1


def test_a_cuda_error_is_raised(fresh):
    fresh.setattr(ctypes, "PyDLL", lambda name: FakeLib(700))
    with pytest.raises(RuntimeError) as e:
        cuda.graph_launcher()(1, 2)
    assert "cuGraphLaunch" in str(e.value) and "700" in str(e.value)


def test_none_without_a_driver_library(fresh):
    tried = []

    def missing(name):
        tried.append(name)
        raise OSError("libcuda.so.1: cannot open shared object file")
    fresh.setattr(ctypes, "PyDLL", missing)
    assert cuda.graph_launcher() is None
    assert cuda.graph_launcher() is None
    assert cuda._driver_function("cuMemcpyHtoDAsync_v2", []) is None
    assert len(tried) == 1                        # remembered, not retried each call


def pycuda_like():
    """A stand-in with pycuda.driver's module name and its memcpy_htod_async."""
    drv = types.SimpleNamespace(__name__="pycuda.driver", copies=[])
    drv.memcpy_htod_async = lambda dst, src, stream=None: drv.copies.append((dst, src, stream))
    return drv


def test_uploads_go_through_the_driver_library_with_the_stream_handle(fresh):
    lib = FakeLib(0)
    fresh.setattr(ctypes, "PyDLL", lambda name: lib)
    drv = pycuda_like()
    upload = cuda.pinned_uploader(drv)
    src = np.zeros(10, np.uint8)
    addr, nbytes = cuda.host_span(src)
    assert (addr, nbytes) == (src.ctypes.data, 10)
    upload(0xD000, src, addr, nbytes, types.SimpleNamespace(handle=0x77))
    upload(0xE000, src, addr + 4, 6, None)        # None: the legacy default stream
    assert lib.calls == [("copy", 0xD000, addr, 10, 0x77), ("copy", 0xE000, addr + 4, 6, 0)]
    assert lib.cuMemcpyHtoDAsync_v2.argtypes == [ctypes.c_uint64, ctypes.c_void_p,
                                                 ctypes.c_size_t, ctypes.c_void_p]
    assert drv.copies == []                       # not pycuda's copy, which releases the GIL
    fresh.setattr(cuda, "_libcuda", FakeLib(1))
    with pytest.raises(RuntimeError) as e:
        cuda.pinned_uploader(drv)(0xD000, src, addr, nbytes, None)
    assert "cuMemcpyHtoDAsync" in str(e.value) and "error 1" in str(e.value)


def test_without_the_library_or_with_a_fake_driver_pycudas_copy_is_used(fresh):
    fresh.setattr(ctypes, "PyDLL", lambda name: (_ for _ in ()).throw(OSError("none")))
    drv = pycuda_like()
    src = np.zeros(4, np.uint8)
    cuda.pinned_uploader(drv)(0xD000, src, 0, 4, "s")
    assert drv.copies == [(0xD000, src, "s")]
    fresh.setattr(cuda, "_libcuda", FakeLib(0))   # a library, but a driver that is a fake
    fake = types.SimpleNamespace(copies=[])
    fake.memcpy_htod_async = lambda dst, src, stream=None: fake.copies.append(dst)
    cuda.pinned_uploader(fake)(0xF000, src, 0, 4, None)
    assert fake.copies == [0xF000] and cuda._libcuda.calls == []


def test_host_span_of_a_ctypes_array():
    buf = (ctypes.c_ubyte * 24)()
    assert cuda.host_span(buf) == (ctypes.addressof(buf), 24)
    view = np.zeros((4, 6), np.uint8)[1:3]
    assert cuda.host_span(view) == (view.ctypes.data, 12)
