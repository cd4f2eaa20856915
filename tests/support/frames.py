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


def yuv_planes(rng, fmt, h, w):
    """Random Y [h, w] and chroma planes for ``fmt``: U, V [h/2, w/2] (4:2:0) or [h, w/2]
    (4:2:2)."""
    from trtssd.preprocess.options import YUV_FORMATS
    ch = h if YUV_FORMATS[fmt][0] == "422" else h // 2
    y = rng.integers(0, 256, (h, w), dtype=np.uint8)
    u = rng.integers(0, 256, (ch, w // 2), dtype=np.uint8)
    v = rng.integers(0, 256, (ch, w // 2), dtype=np.uint8)
    return y, u, v


def pack_yuv(fmt, y, u, v):
    """The frame array of ``fmt`` holding planes y, u, v, written from the formats' definitions
    (not from trtssd's code): NV12 Y then U,V pairs; NV21 V,U pairs; I420 Y, U, V planes; YV12
    Y, V, U; YUYV Y0 U Y1 V; UYVY U Y0 V Y1."""
    h, w = y.shape
    if fmt in ("NV12", "NV21"):
        pairs = np.stack([u, v] if fmt == "NV12" else [v, u], -1).reshape(h // 2, w)
        return np.ascontiguousarray(np.vstack([y, pairs]))
    if fmt in ("I420", "YV12"):
        a, b = (u, v) if fmt == "I420" else (v, u)
        return np.concatenate([y.ravel(), a.ravel(), b.ravel()]).reshape(h * 3 // 2, w)
    m = np.empty((h, w // 2, 4), np.uint8)
    order = (y[:, 0::2], u, y[:, 1::2], v) if fmt == "YUYV" else (u, y[:, 0::2], v, y[:, 1::2])
    for k, plane in enumerate(order):
        m[..., k] = plane
    return m.reshape(h, w, 2)


def upsample_chroma(c, h, w):
    """Chroma plane -> one value per pixel (each sample covers 2x2 or 2x1 pixels)."""
    return np.repeat(np.repeat(c, h // c.shape[0], 0), 2, 1)[:h, :w]


def rand_yuv(rng, fmt, h, w):
    """(frame array of ``fmt``, (Y, U, V) at every pixel as int64)."""
    y, u, v = yuv_planes(rng, fmt, h, w)
    full = tuple(p.astype(np.int64) for p in (y, upsample_chroma(u, h, w), upsample_chroma(v, h, w)))
    return pack_yuv(fmt, y, u, v), full


def pitched(a, pad, rng):
    """A view of ``a`` whose rows are ``pad`` bytes further apart (random padding between);
    ``.base`` is the whole padded buffer."""
    rows = a.shape[0]
    row = int(np.prod(a.shape[1:]))
    big = rng.integers(0, 256, (rows, row + pad), dtype=np.uint8)
    big[:, :row] = a.reshape(rows, row)
    view = big[:, :row].reshape(a.shape)      # a view: splitting the contiguous last axis
    assert view.base is big
    return view
