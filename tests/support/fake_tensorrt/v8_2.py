"""Fake tensorrt 8.2 (JetPack 4.6, Jetson Nano): the bindings API only.

Follows NVIDIA's TensorRT 8.2 Python API documentation:
https://docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-822/api/python_api/
(infer/Core/Builder.html, BuilderConfig.html, Engine.html, ExecutionContext.html, Runtime.html,
Int8/EntropyCalibrator2.html, parsers/Onnx/pyOnnx.html) and the 8.2 C++ reference for
IExecutionContext (archives/tensorrt-822/api/c_api/classnvinfer1_1_1_i_execution_context.html).
In 8.2: ``IBuilderConfig.max_workspace_size`` (no ``set_memory_pool_limit``, which arrived in
8.3), ``ICudaEngine.num_bindings/get_binding_*``, ``IExecutionContext.set_binding_shape`` and
``execute_async_v2(bindings, stream_handle)``; no tensor-name API, no IProgressMonitor.
Networks for the ONNX parser must be created with EXPLICIT_BATCH.
"""
from ._base import make_module

VERSION = "8.2.5.1"
FEATURES = ("bindings", "max_workspace_size")
DOCS = __doc__.splitlines()


def make():
    return make_module(VERSION, FEATURES, DOCS)
