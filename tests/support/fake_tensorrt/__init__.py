"""Fake ``tensorrt`` modules, one per API generation, written from NVIDIA's documentation.

``make(generation)`` returns a fresh fake module; ``installed(generation)`` puts one in
``sys.modules['tensorrt']`` for the duration of a ``with`` block. See ``_base.py`` for what
the fakes check and ``devmem.py`` for host-backed stand-ins of device buffers. The fixtures
the TensorRT tests share (``trt``: each generation; ``onnx_path``) are in tests/backends/conftest.py.
"""
import contextlib
import importlib
import sys

GENERATIONS = ("8.2", "8.4", "8.5", "8.6", "10", "11")      # full TensorRT: builds and runs
LEAN = "11-lean"                                              # tensorrt_lean: runs only
GPU = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}   # what the fakes report
_MODULES = {"8.2": "v8_2", "8.4": "v8_4", "8.5": "v8_5", "8.6": "v8_6", "10": "v10", "11": "v11",
            LEAN: "v11_lean"}


def make(generation):
    mod = importlib.import_module("%s.%s" % (__name__, _MODULES[generation]))
    return mod.make()


@contextlib.contextmanager
def installed(generation):
    """The fake as ``tensorrt`` (``tensorrt_lean`` for the lean one, with ``tensorrt`` absent)."""
    fake = make(generation)
    names = ("tensorrt", "tensorrt_lean")
    saved = dict((n, sys.modules.get(n)) for n in names)
    if fake.__name__ == "tensorrt_lean":
        sys.modules["tensorrt_lean"] = fake
        sys.modules["tensorrt"] = None          # `import tensorrt` raises ImportError
    else:
        sys.modules["tensorrt"] = fake
    try:
        yield fake
    finally:
        for n in names:
            if saved[n] is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = saved[n]
