"""Fake tensorrt 8.4: the bindings API, with memory pools.

Follows NVIDIA's TensorRT 8.4 Python API documentation:
https://docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-841/api/python_api/
(infer/Core/BuilderConfig.html: ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, size)``, with
``max_workspace_size`` still present but deprecated; infer/Core/Engine.html and
ExecutionContext.html: bindings API). No tensor-name API (that came in 8.5), no progress monitor.
"""
from ._base import make_module

VERSION = "8.4.3.1"
FEATURES = ("bindings", "max_workspace_size", "memory_pool")
DOCS = __doc__.splitlines()


def make():
    return make_module(VERSION, FEATURES, DOCS)
