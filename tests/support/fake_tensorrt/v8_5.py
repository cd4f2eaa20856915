"""Fake tensorrt 8.5 (JetPack 5.1, Xavier): tensor-name API added, bindings API deprecated.

Follows NVIDIA's TensorRT 8.5 Python API documentation:
https://docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-853/api/python_api/
(infer/Core/Engine.html: ``num_io_tensors``, ``get_tensor_name/shape/dtype/mode``,
``get_tensor_profile_shape``; infer/Core/ExecutionContext.html: ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3(stream_handle)``; the ``*binding*`` calls and
``execute_async_v2`` marked deprecated). Calls to deprecated names are recorded in
``module.deprecated`` so tests can prove trtssd never makes them here.
"""
from ._base import make_module

VERSION = "8.5.2.2"
FEATURES = ("bindings", "tensors", "max_workspace_size", "memory_pool")
DOCS = __doc__.splitlines()


def make():
    return make_module(VERSION, FEATURES, DOCS)
