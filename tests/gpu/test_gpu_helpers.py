"""The shared GPU helpers on the CPU: kernel parameter lists and the launch path
(trtssd.gpu.launch), the device-buffer checks and DLPack reading (trtssd.gpu.cuda), and the
environment probes (trtssd.core.env)."""
import os

import numpy as np
import pytest

from trtssd.core.errors import EnvironmentProblem, InputError
from trtssd.gpu import cuda
from trtssd.gpu.launch import Kernel, ScalarArg, Signature, StructArg, VectorArg


def test_signature_derives_format_and_bytes():
    from trtssd.preprocess import PreprocessOptions
    from trtssd.preprocess.gpu import kernel_signature
    sig = kernel_signature(PreprocessOptions())
    assert sig.format == "P64sqPii" + "f" * 9 and sig.size == 132 and len(sig) == 15
    assert kernel_signature(PreprocessOptions(input_format="NV12")).format.startswith("P96sqP")
    s = Signature(VectorArg("p"), ScalarArg("i", "n"), StructArg("s", 3), ScalarArg("q", "k"))
    buf = s.pack(0x1234, 7, b"abc", -5)
    assert len(buf) == s.size == 8 + 4 + 3 + 1 + 8     # native alignment: k at offset 16
    assert s.unpack(buf) == (0x1234, 7, b"abc", -5)
    with pytest.raises(InputError, match="struct code"):
        ScalarArg("x", "bad")


def test_kernel_launch_fast_path_and_fallback():
    calls = []

    class Prepared(object):
        def prepared_async_call(self, grid, block, stream, *args, **kw):
            calls.append(("prepared", grid, block, stream, args, kw))

    class Direct(Prepared):
        def _launch_kernel(self, grid, block, buf, shared, stream):
            calls.append(("direct", grid, block, buf, shared, stream))

    sig = Signature(VectorArg("p"), ScalarArg("f", "x"))
    buf = sig.pack(99, 0.5)
    d = Kernel(Direct(), sig)
    assert d.direct and d.launch.__func__ is Direct._launch_kernel
    d.launch((1, 2, 3), (32, 8, 1), buf, 0, "s")
    p = Kernel(Prepared(), sig)
    assert not p.direct
    p.launch((1, 2, 3), (32, 8, 1), buf, 0, "s")
    p.launch((1,), (1, 1, 1), buf, 64, None)
    p((4,), (1, 1, 1), None, 7, 1.5)
    assert calls == [("direct", (1, 2, 3), (32, 8, 1), buf, 0, "s"),
                     ("prepared", (1, 2, 3), (32, 8, 1), "s", (99, 0.5), {}),
                     ("prepared", (1,), (1, 1, 1), None, (99, 0.5), {"shared_size": 64}),
                     ("prepared", (4,), (1, 1, 1), None, (7, 1.5), {})]


def test_c_contiguity_is_numpys_rule():
    rng = np.random.default_rng(5)
    base = np.zeros((6, 5, 4, 3), np.float32)
    for _ in range(300):
        idx = tuple(slice(int(rng.integers(0, 2)), int(rng.integers(1, n + 1)),
                          int(rng.integers(1, 3))) for n in base.shape)
        a = base[idx]
        if rng.random() < 0.3:
            a = a.transpose(tuple(rng.permutation(4)))
        assert cuda.is_c_contiguous(a.shape, a.strides, 4) == a.flags.c_contiguous, \
            (a.shape, a.strides)
    assert cuda.c_strides((2, 3, 4), 2) == (24, 8, 2)


class _Iface(object):
    def __init__(self, ptr, shape, strides=None, typestr="<f4"):
        self.__cuda_array_interface__ = {"data": (ptr, False), "shape": shape,
                                         "strides": strides, "typestr": typestr, "version": 3}


def test_device_buffer_checks():
    assert cuda.device_buffer(_Iface(64, (2, 3)), "x") == (64, (2, 3), np.dtype(np.float32))
    assert cuda.device_buffer(_Iface(64, (1, 3), (999, 4)), "x")[0] == 64   # length-1 axis
    with pytest.raises(InputError, match="out is not C-contiguous"):
        cuda.device_buffer(_Iface(64, (2, 3), (4, 8)), "out")
    with pytest.raises(InputError, match="null device pointer"):
        cuda.device_buffer(_Iface(0, (2, 3)), "out")
    cuda.device_buffer(_Iface(0, (0, 3)), "empty")                           # nothing to read
    with pytest.raises(InputError, match="not a device array"):
        cuda.device_buffer(np.zeros(3), "images")


def test_dlpack_tensors_are_read_as_described():
    # trtssd.gpu.cuda reads a DLPack tensor's pointer, shape, strides and dtype through ctypes;
    # checked on host tensors (the device type check set aside) against their own attributes
    host = {1: "CPU"}
    a = np.arange(2 * 5 * 6, dtype=np.uint8).reshape(2, 5, 6)[:, 1:, ::1]
    ptr, shape, strides, dtype = cuda._dlpack_info(a, devices=host)
    assert (ptr, shape, strides, dtype) == (a.ctypes.data, a.shape, a.strides, a.dtype)
    f = np.zeros((3, 4), np.float32)[:, ::2]
    assert cuda._dlpack_info(f, devices=host) == (f.ctypes.data, f.shape, f.strides, f.dtype)
    with pytest.raises(InputError, match="not in CUDA memory"):
        cuda._dlpack_info(a)
    torch = pytest.importorskip("torch")
    t = torch.arange(48, dtype=torch.uint8).reshape(4, 4, 3)[1:, :, :]
    ptr, shape, strides, dtype = cuda._dlpack_info(t, devices=host)
    assert ptr == t.data_ptr() and shape == tuple(t.shape) and strides == tuple(t.stride())
    assert dtype == np.uint8
    assert cuda.is_device_array(t) and not cuda.is_device_array(a)
    with pytest.raises(InputError, match="not in CUDA memory"):
        cuda.device_buffer(t, "out")


def test_environment_probes(monkeypatch, tmp_path):
    from trtssd.core import env
    monkeypatch.setenv("TRTSSD_CACHE", str(tmp_path))
    assert env.cache_dir() == str(tmp_path)
    monkeypatch.delenv("TRTSSD_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert env.cache_dir("engines", env="TRTSSD_ENGINE_CACHE") == os.path.join(
        str(tmp_path), ".cache", "trtssd", "engines")
    fake = tmp_path / "cuda" / "bin"
    fake.mkdir(parents=True)
    (fake / "nvcc").write_text("#!/bin/sh\n")
    (fake / "nvcc").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "cuda"))
    assert env.which_nvcc() == str(fake / "nvcc")
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "none"))
    monkeypatch.delenv("CUDA_PATH", raising=False)
    if not os.path.exists("/usr/local/cuda/bin/nvcc"):
        assert env.which_nvcc() is None
        from trtssd.gpu import kernels
        with pytest.raises(EnvironmentProblem, match="nvcc"):
            kernels.find_nvcc()


def test_null_context():
    from trtssd.core.nullcontext import NULL_CONTEXT
    with NULL_CONTEXT as c:
        assert c is NULL_CONTEXT
    with pytest.raises(KeyError):          # exceptions pass through
        with NULL_CONTEXT:
            raise KeyError("x")
