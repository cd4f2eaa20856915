#!/usr/bin/env python3
"""Build (or find in the cache) a TensorRT engine for an SSD model converted by trtssd.

    python engines/build_engine.py models/detect.onnx --precision fp16 --max-batch 8
    make engines ENGINE_ARGS="models/detect.onnx --precision int8 --calib-images pics/"

Prints the engine's path. See docs/TENSORRT.md for versions, caching and INT8.
"""
import os
import sys


def _main():
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(here))     # run from a checkout without installing
    from trtssd.backends.tensorrt.build import main
    return main()


if __name__ == "__main__":
    sys.exit(_main())
