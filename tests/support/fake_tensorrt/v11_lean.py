"""Fake tensorrt_lean 11.x: NVIDIA's lean runtime (PyPI ``tensorrt-lean-cu13``).

The runtime classes only (``Runtime``, ``ICudaEngine``, ``IExecutionContext``, ``ILogger``,
``TensorIOMode``, ``nptype``): no builder, no ONNX parser, no plugin initialisation. It
deserialises version-compatible plans built with the lean runtime excluded
(``BuilderFlag.VERSION_COMPATIBLE`` + ``EXCLUDE_LEAN_RUNTIME``) by the same TensorRT version and
refuses others. Checked against the real ``tensorrt_lean`` 11.4 bindings' surface.
"""
from . import v11
from ._base import make_module

# the same release as the full 11.x fake: its features less the ONNX parser's, and "lean"
VERSION = v11.VERSION
FEATURES = tuple(f for f in v11.FEATURES if f != "parser_node_operator") + ("lean",)


def make():
    return make_module(VERSION, FEATURES, __doc__.splitlines())
