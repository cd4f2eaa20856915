"""Frames to network input: the options, the CPU reference and the fused GPU kernel, side by side.

options.py (PreprocessOptions, INPUT_FORMATS, YUV_FORMATS), cpu.py (cpu_preprocess, the
reference), and the GPU path: frames.py (what a frame is; YuvFrame, planes as decoders give
them), plan.py (what a call does with them), staging.py (the buffers), gpu.py
(GpuPreprocessor: the call and the launch), preprocess.cu and yuv.cuh (the kernel).
"""
from ..core.geometry import FrameGeometry
from .cpu import cpu_preprocess
from .frames import YuvFrame
from .gpu import GpuPreprocessor
from .options import INPUT_FORMATS, YUV_FORMATS, PreprocessOptions

__all__ = ["FrameGeometry", "GpuPreprocessor", "INPUT_FORMATS", "PreprocessOptions",
           "YUV_FORMATS", "YuvFrame", "cpu_preprocess"]
