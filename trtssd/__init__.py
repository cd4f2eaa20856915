"""trtssd: real-time SSD detection on NVIDIA GPUs, fast outside the network too.

Importing trtssd does no work: no CUDA context, no compilation, no model loading.
GPU and backend libraries are imported by the functions that need them.
"""
__version__ = "0.1.0"

from .core.errors import TrtssdError, InputError, ModelError, EngineError, EnvironmentProblem  # noqa: F401
