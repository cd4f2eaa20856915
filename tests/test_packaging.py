"""The wheel carries the kernel sources, and importing trtssd does no work."""
import os
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HEAVY = ("pycuda", "torch", "tensorrt", "onnxruntime", "cv2", "onnx", "tflite", "matplotlib")


def test_import_of_every_module_loads_no_gpu_or_backend_library():
    # A fresh interpreter: importing every module of the package must not import pycuda
    # (which would be one step from a CUDA context), a backend or OpenCV.
    code = r"""
import importlib, pkgutil, sys
import trtssd
names = [m.name for m in pkgutil.walk_packages(trtssd.__path__, 'trtssd.')]
for n in names:
    if n == 'trtssd.__main__':
        continue
    importlib.import_module(n)
heavy = %r
print(len(names))
print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))
""" % (HEAVY,)
    out = subprocess.check_output([sys.executable, "-c", code], cwd=REPO,
                                  universal_newlines=True).splitlines()
    assert int(out[0]) >= 3
    assert out[1] == "", "imported at module level: %s" % out[1]


def test_wheel_contains_kernel_sources(tmp_path):
    pytest.importorskip("wheel", reason="the 'wheel' package is needed to build a wheel")
    from trtssd.gpu.kernels import kernel_sources
    kernels = kernel_sources()
    assert kernels
    subprocess.check_call([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "-w", str(tmp_path), REPO],
                          stdout=subprocess.DEVNULL)
    wheels = [f for f in os.listdir(str(tmp_path)) if f.endswith(".whl")]
    assert len(wheels) == 1
    names = zipfile.ZipFile(os.path.join(str(tmp_path), wheels[0])).namelist()
    for k in kernels:
        assert "trtssd/" + k in names, "wheel lacks trtssd/%s" % k
    assert "trtssd/core/spec.py" in names
