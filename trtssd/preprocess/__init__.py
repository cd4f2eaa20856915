"""Frames to network input: the options, the CPU reference and the fused GPU kernel, side by side.

options.py (PreprocessOptions, INPUT_FORMATS), cpu.py (cpu_preprocess, the reference), and the
GPU path: frames.py (what a frame is), plan.py (what a call does with it), staging.py (the
buffers), gpu.py (GpuPreprocessor: the call and the launch), preprocess.cu (the kernel).
"""
from ..core.geometry import FrameGeometry  # noqa: F401
from .cpu import cpu_preprocess  # noqa: F401
from .gpu import GpuPreprocessor  # noqa: F401
from .options import INPUT_FORMATS, PreprocessOptions  # noqa: F401

__all__ = ["FrameGeometry", "GpuPreprocessor", "INPUT_FORMATS", "PreprocessOptions", "cpu_preprocess"]
