"""The CPU path (cpu_preprocess, OpenCV) against an independent NumPy model of the same maths.

The NumPy model implements OpenCV's INTER_LINEAR mapping (src = (dst + 0.5) * in / out - 0.5,
neighbour weight 0 outside the first/last pixel centres) in float32, and INTER_NEAREST as
OpenCV does it (floor(dst * (1 / (out / in))) in double, clamped). OpenCV's uint8 bilinear uses
11-bit fixed-point weights and rounds to uint8, so linear results may differ by up to one grey
level before normalisation (worst seen 0.82); nearest must be identical.
"""
import numpy as np
import pytest

from trtssd.core.errors import InputError
from trtssd.preprocess import (FrameGeometry, INPUT_FORMATS, PreprocessOptions, cpu_preprocess)

cv2 = pytest.importorskip("cv2")


def _linear_coords(n_out, n_in):
    s = np.float32(n_in / n_out)
    f = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * s - np.float32(0.5)
    i = np.floor(f).astype(np.int64)
    a = (f - i).astype(np.float32)
    a[i < 0] = 0
    i[i < 0] = 0
    hi = i >= n_in - 1
    a[hi] = 0
    i[hi] = n_in - 1
    return i, np.minimum(i + 1, n_in - 1), a


def numpy_resize(img, nw, nh, interpolation):
    """img [h, w, c] uint8 -> [nh, nw, c] float32."""
    h, w = img.shape[:2]
    f = img.astype(np.float32)
    if interpolation == "nearest":
        xs = np.minimum(np.floor(np.arange(nw) * (1.0 / (nw / w))).astype(np.int64), w - 1)
        ys = np.minimum(np.floor(np.arange(nh) * (1.0 / (nh / h))).astype(np.int64), h - 1)
        return f[ys][:, xs]
    x0, x1, ax = _linear_coords(nw, w)
    y0, y1, ay = _linear_coords(nh, h)
    ax = ax[None, :, None]
    top = f[y0][:, x0] + ax * (f[y0][:, x1] - f[y0][:, x0])
    bot = f[y1][:, x0] + ax * (f[y1][:, x1] - f[y1][:, x0])
    return top + ay[:, None, None] * (bot - top)


def numpy_reference(frame, o):
    """One frame -> float32 [H, W, 3] (before layout and dtype), by the rules above."""
    img = frame if frame.ndim == 3 else frame[:, :, None]
    h, w = img.shape[:2]
    g = FrameGeometry.compute(w, h, o)
    nw, nh = g.inner_size
    chans = list(o.source_channels())
    v = (numpy_resize(img, nw, nh, o.interpolation)[:, :, chans]
         - np.float32(o.mean)) * np.asarray(o.scale, np.float32)
    canvas = np.empty((o.height, o.width, 3), np.float32)
    canvas[...] = o.normalised_pad()
    canvas[g.pad_y:g.pad_y + nh, g.pad_x:g.pad_x + nw] = v
    return canvas


def random_frame(rng, h, w, fmt):
    c = INPUT_FORMATS[fmt][0]
    shape = (h, w) if c == 1 and rng.random() < 0.5 else (h, w, c)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def random_options(rng):
    mean = tuple(rng.uniform(0, 255, 3)) if rng.random() < 0.5 else (127.5,) * 3
    scale = tuple(rng.uniform(-0.05, 0.05, 3)) if rng.random() < 0.5 else (1 / 127.5,) * 3
    return PreprocessOptions(
        width=int(rng.integers(1, 420)), height=int(rng.integers(1, 420)),
        dtype=str(rng.choice(["float32", "float16"])), layout=str(rng.choice(["NCHW", "NHWC"])),
        interpolation=str(rng.choice(["linear", "nearest"])),
        input_format=str(rng.choice(list(INPUT_FORMATS))),
        channel_order=str(rng.choice(["RGB", "BGR"])), mean=mean, scale=scale,
        letterbox=bool(rng.random() < 0.4), pad_value=float(rng.integers(0, 256)))


def tolerance(o):
    """atol, rtol of the output against the float32 NumPy model."""
    grey = 1.0 if o.interpolation == "linear" else 0.0      # OpenCV fixed point, see docstring
    atol = grey * float(np.max(np.abs(o.scale))) + 1e-5
    rtol = 2.0 ** -11 if o.dtype == "float16" else 1e-6     # fp16 rounding: half an ulp, 2^-11
    if o.dtype == "float16":
        atol += 2.0 ** -24                                   # fp16 subnormal step
    return atol, rtol


def to_hwc(tensor, o):
    t = tensor.astype(np.float32)
    return t.transpose(0, 2, 3, 1) if o.layout == "NCHW" else t


@pytest.mark.parametrize("seed", range(40))
def test_random_sizes_against_numpy(seed):
    rng = np.random.default_rng(1000 + seed)
    o = random_options(rng)
    n = int(rng.integers(1, 4))
    frames = [random_frame(rng, int(rng.integers(1, 700)), int(rng.integers(1, 700)), o.input_format)
              for _ in range(n)]
    out = np.full(o.output_shape(n), np.nan, o.np_dtype)      # poisoned: must be fully written
    t, geoms = cpu_preprocess(frames, o, out=out)
    assert t is out and t.shape == o.output_shape(n) and t.dtype == o.np_dtype
    assert np.isfinite(t).all()
    atol, rtol = tolerance(o)
    for i, f in enumerate(frames):
        ref = numpy_reference(f, o)
        np.testing.assert_allclose(to_hwc(t, o)[i], ref, atol=atol, rtol=rtol,
                                   err_msg="frame %d %s options %s" % (i, f.shape, o))
        assert geoms[i].frame_width == f.shape[1] and geoms[i].frame_height == f.shape[0]


def test_known_values_tf_ssd():
    # A flat frame maps to a flat tensor: x*2/255-1 of (B, G, R) = (0, 127.5?, 255) is exact.
    frame = np.zeros((37, 53, 3), np.uint8)
    frame[..., 0] = 0      # B
    frame[..., 1] = 51     # G
    frame[..., 2] = 255    # R
    o = PreprocessOptions(width=11, height=7, mean=127.5, scale=1 / 127.5)
    t, (g,) = cpu_preprocess(frame, o)
    assert t.shape == (1, 3, 7, 11)
    np.testing.assert_allclose(t[0, 0], 1.0, atol=1e-6)            # R first (channel_order RGB)
    np.testing.assert_allclose(t[0, 1], 51 / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(t[0, 2], -1.0, atol=1e-6)
    assert (g.scale_x, g.scale_y, g.pad_x, g.pad_y) == (11 / 53, 7 / 37, 0, 0)


def test_strided_crop_equals_copy():
    rng = np.random.default_rng(5)
    big = rng.integers(0, 256, (400, 500, 3), dtype=np.uint8)
    crop = big[13:300, 27:461]
    assert not crop.flags.c_contiguous
    o = PreprocessOptions(width=97, height=61)
    a, _ = cpu_preprocess(crop, o)
    b, _ = cpu_preprocess(np.ascontiguousarray(crop), o)
    np.testing.assert_array_equal(a, b)


def test_batch_array_and_list_agree():
    rng = np.random.default_rng(6)
    batch = rng.integers(0, 256, (3, 50, 70, 4), dtype=np.uint8)
    o = PreprocessOptions(width=33, height=21, input_format="BGRA", layout="NHWC")
    a, ga = cpu_preprocess(batch, o)
    b, gb = cpu_preprocess(list(batch), o)
    np.testing.assert_array_equal(a, b)
    assert ga == gb and len(ga) == 3


def test_letterbox_geometry_and_padding():
    o = PreprocessOptions(width=300, height=300, letterbox=True, pad_value=114,
                          mean=(0, 0, 0), scale=(1, 1, 1))
    frame = np.full((1080, 1920, 3), 200, np.uint8)
    t, (g,) = cpu_preprocess(frame, o)
    assert g.inner_size == (300, 169) and g.pad_x == 0 and g.pad_y == 65
    assert (t[0, :, :65] == 114).all() and (t[0, :, 65 + 169:] == 114).all()
    assert (t[0, :, 65:65 + 169] == 200).all()
    boxes_frame = np.array([[0, 0, 1920, 1080], [100, 200, 300, 400]], np.float32)
    back = g.to_frame(g.to_net(boxes_frame))
    np.testing.assert_allclose(back, boxes_frame, rtol=1e-5, atol=1e-3)
    net = g.to_net(boxes_frame)
    np.testing.assert_allclose(net[0], [0, 65, 300, 65 + 169], atol=1e-3)


def test_to_frame_clips():
    g = FrameGeometry.compute(640, 480, PreprocessOptions())
    b = g.to_frame([[-10, -10, 400, 400]])
    np.testing.assert_allclose(b, [[0, 0, 640, 480]])


def test_from_spec():
    from trtssd.core.spec import ModelSpec
    spec = ModelSpec(name="t", input_height=320, input_width=256, mean=(128, 128, 128),
                     scale=(1 / 128,) * 3, channel_order="RGB", num_classes=91,
                     anchors=np.zeros((4, 4), np.float32))
    o = PreprocessOptions.from_spec(spec, input_format="RGBA", dtype="float16")
    assert (o.width, o.height, o.mean, o.scale, o.input_format, o.dtype) == \
        (256, 320, (128.0,) * 3, (1 / 128,) * 3, "RGBA", "float16")
    assert o.source_channels() == (0, 1, 2)
    assert PreprocessOptions(input_format="BGR", channel_order="BGR").source_channels() == (0, 1, 2)
    assert PreprocessOptions(input_format="BGR").source_channels() == (2, 1, 0)


@pytest.mark.parametrize("kw,match", [
    (dict(dtype="int8"), "dtype"), (dict(layout="CHW"), "layout"),
    (dict(interpolation="cubic"), "interpolation"), (dict(input_format="YUV"), "input_format"),
    (dict(channel_order="RBG"), "channel_order"), (dict(mean=(1, 2)), "mean"),
    (dict(scale=(1, 2, float("nan"))), "scale"), (dict(width=0), "output size"),
])
def test_bad_options(kw, match):
    with pytest.raises(InputError, match=match):
        PreprocessOptions(**kw)


def test_bad_frames():
    o = PreprocessOptions(width=10, height=10)
    with pytest.raises(InputError, match="uint8"):
        cpu_preprocess(np.zeros((5, 5, 3), np.float32), o)
    with pytest.raises(InputError, match="channels"):
        cpu_preprocess(np.zeros((5, 5, 4), np.uint8), o)
    with pytest.raises(InputError, match="empty"):
        cpu_preprocess(np.zeros((0, 5, 3), np.uint8), o)
    with pytest.raises(InputError, match="shape"):
        cpu_preprocess(np.zeros((5, 5), np.uint8), o)
    with pytest.raises(InputError, match="out must be"):
        cpu_preprocess(np.zeros((5, 5, 3), np.uint8), o, out=np.zeros((1, 3, 10, 10), np.float16))
    with pytest.raises(InputError, match="no frames"):
        cpu_preprocess([], o)
