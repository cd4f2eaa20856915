"""Fake tensorrt 11.x: strongly typed networks only.

Follows NVIDIA's TensorRT 11 Python API documentation
(https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/) and the real 11.4
bindings' surface (tests/backends/test_tensorrt_real.py checks this fake against it): no
``BuilderFlag.FP16``/``INT8`` and no INT8 calibrators (weak typing and implicit quantisation
were removed: a network runs in the types its ONNX declares, INT8 comes from Q/DQ nodes), no
``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` (``STRONGLY_TYPED`` remains), no
``Builder.platform_has_fast_fp16``; the tensor-name API, memory pools and the progress monitor as
in 10.x; ``BuilderFlag.VERSION_COMPATIBLE``/``EXCLUDE_LEAN_RUNTIME`` and
``Runtime.engine_host_code_allowed`` for engines the lean runtime runs.
"""
from ._base import make_module

VERSION = "11.4.0.106"
FEATURES = ("tensors", "memory_pool", "progress_monitor", "parser_node_operator",
            "strongly_typed", "strongly_typed_only", "version_compatible")
DOCS = __doc__.splitlines()


def make():
    return make_module(VERSION, FEATURES, DOCS)
