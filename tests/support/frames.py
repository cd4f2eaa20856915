"""Random frames and the tolerance of a kernel against the OpenCV reference (cpu_preprocess).

Tolerance: OpenCV's uint8 bilinear rounds its fixed-point result to an integer while the
kernel blends in float, so they may differ by up to one grey level before normalisation (times
|scale| after); nvcc's --use_fast_math and FMA contraction move the float blend by a few ulps,
far below that; float16 adds half an ulp (relative 2^-11); nearest must match exactly up to
that fp16 rounding.
"""
import numpy as np

from trtssd.preprocess import INPUT_FORMATS


def tolerance(o):
    """(atol, rtol) of a GPU or shim result against cpu_preprocess for options ``o``."""
    grey = 1.0 if o.interpolation == "linear" else 0.0
    atol = grey * float(np.max(np.abs(o.scale))) + 1e-5
    rtol = 2.0 ** -11 if o.dtype == "float16" else 1e-6
    if o.dtype == "float16":
        atol += 2.0 ** -24
    return atol, rtol


def frame(rng, h, w, fmt, gray2d=False):
    """A random uint8 frame of ``fmt`` (one of INPUT_FORMATS), (h, w, c) or (h, w) for GRAY."""
    c = INPUT_FORMATS[fmt][0]
    shape = (h, w) if (c == 1 and gray2d) else (h, w, c)
    return rng.integers(0, 256, shape, dtype=np.uint8)
