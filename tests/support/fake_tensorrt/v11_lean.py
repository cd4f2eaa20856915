"""Fake tensorrt_lean 11.x: NVIDIA's lean runtime (PyPI ``tensorrt-lean-cu13``).

The runtime classes only (``Runtime``, ``ICudaEngine``, ``IExecutionContext``, ``ILogger``,
``TensorIOMode``, ``nptype``): no builder, no ONNX parser, no plugin initialisation. It
deserialises version-compatible plans built with the lean runtime excluded
(``BuilderFlag.VERSION_COMPATIBLE`` + ``EXCLUDE_LEAN_RUNTIME``) by the same TensorRT version and
refuses others. Checked against the real ``tensorrt_lean`` 11.4 bindings' surface.
"""
from ._base import make_module

VERSION = "11.4.0.106"
FEATURES = ("tensors", "memory_pool", "progress_monitor", "strongly_typed",
            "strongly_typed_only", "version_compatible", "lean")
DOCS = __doc__.splitlines()


def make():
    return make_module(VERSION, FEATURES, DOCS)
