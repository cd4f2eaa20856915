"""Fake tensorrt 8.6 (JetPack 6 on Orin ships 8.6): as 8.5, plus version-compatible engines.

Follows NVIDIA's TensorRT 8.6 Python API documentation:
https://docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-861/api/python_api/
(infer/Core/Engine.html, ExecutionContext.html as in 8.5; BuilderFlag.VERSION_COMPATIBLE and
EXCLUDE_LEAN_RUNTIME, Runtime.engine_host_code_allowed). The bindings API is still present and
deprecated. Checked against the real 8.6.1 bindings (tests/backends/test_tensorrt_real.py),
which showed that ``ParserError.node_operator()`` is not in 8.6 (it is in 10.x).
"""
from ._base import make_module

VERSION = "8.6.1.6"
FEATURES = ("bindings", "tensors", "max_workspace_size", "memory_pool", "version_compatible")
DOCS = __doc__.splitlines()


def make():
    return make_module(VERSION, FEATURES, DOCS)
