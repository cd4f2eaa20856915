"""Network outputs to kept boxes: the NumPy reference and the GPU decode + NMS, side by side."""

from .gpu import GpuPostprocessor, postprocess_cpu  # noqa: F401
