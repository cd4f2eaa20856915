"""trtssd.gpu.cuda.graph_launcher on the CPU: the driver's cuGraphLaunch through ctypes, with
the library faked (loaded once, its return code turned into an error, None without a driver)."""
import ctypes

import pytest

from trtssd.gpu import cuda


class FakeLib(object):
    def __init__(self, rc):
        self.calls = []
        rc_ = rc

        def launch(graph_exec, stream):
            self.calls.append((graph_exec, stream))
            return rc_
        self.cuGraphLaunch = _Fn(launch)


class _Fn(object):
    """A ctypes function's surface: argtypes, restype, call."""

    def __init__(self, fn):
        self.fn, self.argtypes, self.restype = fn, None, None

    def __call__(self, *args):
        return self.fn(*args)


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(cuda, "_graph_launch", None)
    return monkeypatch


def test_launches_with_both_handles_and_loads_the_library_once(fresh):
    lib, loads = FakeLib(0), []
    fresh.setattr(ctypes, "CDLL", lambda name: loads.append(name) or lib)
    launch = cuda.graph_launcher()
    launch(0x1234, 0x5678)
    assert lib.calls == [(0x1234, 0x5678)]
    assert lib.cuGraphLaunch.argtypes == [ctypes.c_void_p, ctypes.c_void_p]
    assert lib.cuGraphLaunch.restype is ctypes.c_int
    assert cuda.graph_launcher() is launch and len(loads) == 1


def test_a_cuda_error_is_raised(fresh):
    fresh.setattr(ctypes, "CDLL", lambda name: FakeLib(700))
    with pytest.raises(RuntimeError) as e:
        cuda.graph_launcher()(1, 2)
    assert "cuGraphLaunch" in str(e.value) and "700" in str(e.value)


def test_none_without_a_driver_library(fresh):
    tried = []

    def missing(name):
        tried.append(name)
        raise OSError("libcuda.so.1: cannot open shared object file")
    fresh.setattr(ctypes, "CDLL", missing)
    assert cuda.graph_launcher() is None
    assert cuda.graph_launcher() is None
    assert len(tried) == 1                        # remembered, not retried each call
