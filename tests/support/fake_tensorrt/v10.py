"""Fake tensorrt 10.x: the bindings API removed, IProgressMonitor added.

Follows NVIDIA's TensorRT 10 Python API documentation:
https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/ (infer/Core/Engine.html
and ExecutionContext.html: tensor-name API only, ``active_optimization_profile`` read-only,
``set_optimization_profile_async``; infer/Core/BuilderConfig.html: ``set_memory_pool_limit``,
``progress_monitor``; infer/Core/ProgressMonitor.html: ``phase_start(phase_name, parent_phase,
num_steps)``, ``step_complete(phase_name, step) -> bool``, ``phase_finish(phase_name)``;
infer/Graph/Network.html: ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` deprecated and
ignored) and the TensorRT 10.0 migration guide (removed: ``num_bindings``, ``get_binding_*``,
``execute_async_v2``, ``max_workspace_size``, implicit batch).
"""
from ._base import make_module

VERSION = "10.3.0.26"
FEATURES = ("tensors", "memory_pool", "progress_monitor", "parser_node_operator", "strongly_typed",
            "version_compatible")
DOCS = __doc__.splitlines()


def make():
    return make_module(VERSION, FEATURES, DOCS)
