"""Frames to network input: the CPU reference and the fused GPU kernel, side by side."""

from .gpu import (INPUT_FORMATS, FrameGeometry, GpuPreprocessor, PreprocessOptions,  # noqa: F401
                  cpu_preprocess)
