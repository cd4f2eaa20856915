"""Packaging that works from Python 3.6 (setuptools 59.6 on a Jetson Nano) to current Python.

Metadata lives here rather than in a [project] table, which setuptools on Python 3.6 cannot
read. The CUDA sources live inside the package beside the Python that loads them, so the wheel
carries them as package data. OpenCV, PyCUDA, TensorRT and PyTorch are optional: on a Jetson they come from
JetPack and must not be replaced by pip wheels.
"""
from setuptools import find_packages, setup

setup(
    name="trtssd",
    version="0.1.0",
    description="Real-time SSD object detection on NVIDIA GPUs: GPU preprocessing, "
                "pipelined TensorRT/PyTorch/ONNX Runtime inference, benchmarks",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.6",
    packages=find_packages(include=["trtssd", "trtssd.*"]),
    package_data={"": ["*.cu", "*.cuh"]},
    install_requires=["numpy>=1.19", "dataclasses; python_version < '3.7'"],
    extras_require={
        "opencv": ["opencv-python-headless"],   # not on Jetson: JetPack's OpenCV has GStreamer
        "cuda": ["pycuda"],
        "convert": ["tflite", "onnx"],
        "onnxruntime": ["onnxruntime"],
        "torch": ["torch"],
        "bench": ["matplotlib"],
        "ray": ["ray; python_version >= '3.9'", "pyarrow; python_version >= '3.9'"],
        "mqtt": ["paho-mqtt"],       # 2.x, or 1.6 on Python 3.6 (both are handled)
    },
    entry_points={"console_scripts": ["trtssd = trtssd.commands.cli:main"]},
)
