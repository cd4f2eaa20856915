"""YUV input: the conversion against OpenCV and a float model of the standards, the kernel (its
real source on the CPU shim) against cpu_preprocess, and GpuPreprocessor's host side for YUV
frames (single buffers, pitches, planes, batches) through the fake driver.

Tolerances. The conversion: BT.601 limited range is OpenCV's cvtColor itself (exact); the other
matrices and ranges use 20-bit integer coefficients, so against the float model of the
standard's equations (rounded to the nearest level) they differ by at most one level, and only
where the float value is within ~3e-4 of a rounding tie. The kernel converts each filter tap
exactly as the CPU path does (integers, bit for bit) and then blends in float while OpenCV's
resize blends the converted uint8 picture in fixed point: within one grey level before
normalisation, exact for nearest (tolerance() of the RGB formats).
"""
import itertools
import zlib

import numpy as np
import pytest

from support import fake_cuda
from support.frames import pitched, rand_yuv, tolerance, yuv_planes
from support.preprocess_kernel import check, run_kernel
from trtssd.core.errors import InputError
from trtssd.preprocess import PreprocessOptions, cpu_preprocess
from trtssd.preprocess.cpu import yuv_to_rgb
from trtssd.preprocess.frames import YuvFrame
from trtssd.preprocess.options import YUV_FORMATS, yuv_coefficients

cv2 = pytest.importorskip("cv2")

FORMATS = sorted(YUV_FORMATS)
MATRICES = [("BT601", "limited"), ("BT601", "full"), ("BT709", "limited"), ("BT709", "full")]


def _even(rng, lo, hi):
    return 2 * int(rng.integers(lo // 2, hi // 2 + 1))


def float_model(full, matrix, yuv_range):
    """R, G, B uint8 from Y, U, V by the equations of ITU-R BT.601 / BT.709 (Kr, Kb) in float:
    E'y = Kr R + Kg G + Kb B, Cb = (B - E'y) / (2 (1 - Kb)), Cr = (R - E'y) / (2 (1 - Kr)),
    inverted; limited range: Y in 16..235 (below 16 taken as 16), C in 16..240 about 128."""
    kr, kb = {"BT601": (0.299, 0.114), "BT709": (0.2126, 0.0722)}[matrix]
    Y, U, V = (p.astype(np.float64) for p in full)
    if yuv_range == "limited":
        y = (np.maximum(Y, 16) - 16) * 255.0 / 219.0
        cb, cr = (U - 128) * 255.0 / 224.0, (V - 128) * 255.0 / 224.0
    else:
        y, cb, cr = Y, U - 128, V - 128
    r = y + 2 * (1 - kr) * cr
    b = y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.floor(np.stack([r, g, b], -1) + 0.5), 0, 255)


@pytest.mark.parametrize("fmt", FORMATS)
def test_opencv_conversion_is_the_kernels_integer_formula(fmt):
    # cvtColor(COLOR_YUV2RGB_<fmt>) of frames packed from known planes equals the kernel's
    # arithmetic with BT.601 limited coefficients: the packing follows OpenCV's layouts and
    # the coefficients are OpenCV's
    rng = np.random.default_rng(zlib.crc32(fmt.encode()))
    buf, (Y, U, V) = rand_yuv(rng, fmt, 46, 78)
    cy, cub, cug, cvg, cvr, off = yuv_coefficients("BT601", "limited")
    yy = np.maximum(Y - off, 0) * cy + (1 << 19)
    rgb = np.stack([yy + cvr * (V - 128), yy + cug * (U - 128) + cvg * (V - 128),
                    yy + cub * (U - 128)], -1)
    want = np.clip(rgb >> 20, 0, 255)
    got = cv2.cvtColor(buf, getattr(cv2, "COLOR_YUV2RGB_" + fmt))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(yuv_to_rgb(buf, PreprocessOptions(input_format=fmt)), got)


@pytest.mark.parametrize("matrix,yuv_range", MATRICES[1:])
@pytest.mark.parametrize("fmt", FORMATS)
def test_other_matrices_against_the_float_model(fmt, matrix, yuv_range):
    rng = np.random.default_rng(zlib.crc32((fmt + matrix + yuv_range).encode()))
    buf, full = rand_yuv(rng, fmt, 64, 96)
    o = PreprocessOptions(input_format=fmt, yuv_matrix=matrix, yuv_range=yuv_range)
    got = yuv_to_rgb(buf, o).astype(np.float64)
    want = float_model(full, matrix, yuv_range)
    diff = np.abs(got - want)
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())
    # and at the extremes of the range (saturation)
    for y, u, v in itertools.product((0, 16, 235, 255), (0, 16, 128, 240, 255), (0, 128, 255)):
        full1 = tuple(np.full((2, 2), c, np.int64) for c in (y, u, v))
        buf1 = _pack1(fmt, y, u, v)
        assert np.abs(yuv_to_rgb(buf1, o)[0, 0].astype(float)
                      - float_model(full1, matrix, yuv_range)[0, 0]).max() <= 1


def _pack1(fmt, y, u, v):
    from support.frames import pack_yuv
    h = 2
    ch = 2 if YUV_FORMATS[fmt][0] == "422" else 1
    return pack_yuv(fmt, np.full((h, 2), y, np.uint8), np.full((ch, 1), u, np.uint8),
                    np.full((ch, 1), v, np.uint8))


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("matrix,yuv_range", MATRICES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_kernel_every_yuv_variant(fmt, matrix, yuv_range, seed):
    rng = np.random.default_rng(zlib.crc32(("%s%s%s%d" % (fmt, matrix, yuv_range, seed)).encode()))
    for interp in ("linear", "nearest"):
        o = PreprocessOptions(width=int(rng.integers(20, 110)), height=int(rng.integers(20, 110)),
                              dtype=("float32", "float16")[int(rng.integers(2))],
                              layout=("NCHW", "NHWC")[int(rng.integers(2))], interpolation=interp,
                              input_format=fmt, channel_order=("RGB", "BGR")[int(rng.integers(2))],
                              mean=tuple(rng.uniform(0, 255, 3)), scale=tuple(rng.uniform(-0.03, 0.03, 3)),
                              letterbox=bool(rng.integers(2)), pad_value=17,
                              yuv_matrix=matrix, yuv_range=yuv_range)
        h, w = _even(rng, 2, 260), _even(rng, 2, 260)
        buf, _ = rand_yuv(rng, fmt, h, w)
        check([buf], o)


@pytest.mark.parametrize("fmt", ["NV12", "NV21", "YUYV", "UYVY"])
def test_kernel_pitched_buffers(fmt):
    # the rows of a single buffer (Y and chroma alike) further apart than the picture is wide,
    # as decoders' pitched surfaces are
    rng = np.random.default_rng(zlib.crc32(("pitch" + fmt).encode()))
    for h, w, pad in ((2, 2, 1), (6, 10, 3), (70, 132, 64), (130, 58, 7)):
        buf, _ = rand_yuv(rng, fmt, h, w)
        pv = pitched(buf, pad, rng)
        o = PreprocessOptions(width=47, height=31, input_format=fmt, letterbox=pad % 2 == 1)
        got = check([pv], o, ref_frames=[buf])
        np.testing.assert_array_equal(got, run_kernel([buf], o)[0])


@pytest.mark.parametrize("fmt", ["NV12", "NV21", "I420", "YV12"])
def test_kernel_planes_with_their_own_pitches(fmt):
    # YuvFrame planes in separate buffers, each with its own pitch and offset: the same result
    # as the single buffer, bit for bit
    rng = np.random.default_rng(zlib.crc32(("planes" + fmt).encode()))
    for h, w in ((2, 2), (58, 94), (120, 34)):
        y, u, v = yuv_planes(rng, fmt, h, w)
        from support.frames import pack_yuv
        buf = pack_yuv(fmt, y, u, v)
        if fmt in ("NV12", "NV21"):
            uv = np.stack([u, v] if fmt == "NV12" else [v, u], -1).reshape(h // 2, w)
            f = YuvFrame(w, h, y=pitched(y, 5, rng), uv=pitched(uv, 12, rng))
        else:
            f = YuvFrame(w, h, y=pitched(y, 3, rng), u=pitched(u, 1, rng), v=pitched(v, 9, rng))
        o = PreprocessOptions(width=39, height=27, input_format=fmt, dtype="float16")
        got = check([f], o, ref_frames=[buf])
        np.testing.assert_array_equal(got, run_kernel([buf], o)[0])
        np.testing.assert_array_equal(cpu_preprocess(f, o)[0], cpu_preprocess(buf, o)[0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_kernel_crops(fmt):
    # crops of a bigger picture at even offsets: 4:2:0 as YuvFrame planes (any rows and
    # columns), the single buffers that allow it (NV12/NV21 and 4:2:2) as column crops with the
    # parent's pitch; against the crop packed on its own
    from support.frames import pack_yuv
    rng = np.random.default_rng(zlib.crc32(("crop" + fmt).encode()))
    H, W = 90, 140
    y, u, v = yuv_planes(rng, fmt, H, W)
    o = PreprocessOptions(width=45, height=35, input_format=fmt, letterbox=True)
    sub = 2 if YUV_FORMATS[fmt][0] != "422" else 1      # chroma rows per picture row pair
    for y0, x0, h, w in ((0, 2, 40, 60), (10, 0, 80, 138), (34, 70, 2, 2), (2, 4, 88, 136),
                         (0, 6, 90, 100)):
        cy = slice(y0 // sub, (y0 + h) // sub)
        cx = slice(x0 // 2, (x0 + w) // 2)
        ref = pack_yuv(fmt, y[y0:y0 + h, x0:x0 + w], u[cy, cx], v[cy, cx])
        crops = []
        if YUV_FORMATS[fmt][0] == "420sp":
            uv = np.stack([u, v] if fmt == "NV12" else [v, u], -1).reshape(H // 2, W)
            crops.append(YuvFrame(w, h, y=y[y0:y0 + h, x0:x0 + w], uv=uv[cy, x0:x0 + w]))
            if (y0, h) == (0, H):                       # a full-height column crop of a buffer
                crops.append(pack_yuv(fmt, y, u, v)[:, x0:x0 + w])
        elif YUV_FORMATS[fmt][0] == "420p":
            crops.append(YuvFrame(w, h, y=y[y0:y0 + h, x0:x0 + w], u=u[cy, cx], v=v[cy, cx]))
        else:
            crops.append(pack_yuv(fmt, y, u, v)[y0:y0 + h, x0:x0 + w])
        for c in crops:
            np.testing.assert_array_equal(check([c], o, ref_frames=[ref]), run_kernel([ref], o)[0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_kernel_batches(fmt):
    rng = np.random.default_rng(zlib.crc32(("batch" + fmt).encode()))
    o = PreprocessOptions(width=53, height=41, input_format=fmt, letterbox=True, pad_value=5,
                          yuv_matrix="BT709", yuv_range="full")
    # uniform: [N, rows, ...] at a constant stride (every plane moves with the frame)
    batch = np.stack([rand_yuv(rng, fmt, 38, 62)[0] for _ in range(3)])
    check(list(batch), o, uniform_stride=batch.strides[0])
    # mixed sizes through the table, 2x2 and letterboxed portrait frames among them
    mixed = [rand_yuv(rng, fmt, h, w)[0] for h, w in ((38, 62), (2, 2), (120, 40), (64, 64))]
    check(mixed, o, force_table=True)


# --------------------------------------------------------------------------------------------
# GpuPreprocessor's host side with YUV frames, on the fake driver (the kernel on the shim)

@pytest.fixture(params=["direct", "prepared"])
def fake_gpu(monkeypatch, request):
    # YUV frames: the frame descriptor by value is 96 bytes
    return fake_cuda.install(monkeypatch, request.param, {"preprocess_u8": "P96sqPii" + "f" * 9},
                             nullable={"preprocess_u8": (0,)}, grid_len=3,
                             label=lambda args: "table" if args[0] else "uniform")


@pytest.fixture
def fake_gpu_any(monkeypatch):
    return fake_cuda.install(monkeypatch, "direct", {"preprocess_u8": "P96sqPii" + "f" * 9},
                             nullable={"preprocess_u8": (0,)}, grid_len=3)


def _check_host(pre, frames, o, ref_frames):
    pre._out.fill_bytes(0xFF)
    res, geoms = pre.preprocess(frames)
    got = res.get()
    assert not np.isnan(got).any()
    ref, rgeoms = cpu_preprocess(ref_frames, o)
    assert geoms == rgeoms
    atol, rtol = tolerance(o)
    np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), atol=atol, rtol=rtol)


def _device(a):
    from trtssd.gpu.cuda import DeviceArray
    return DeviceArray(a.shape, np.uint8).copy_from_host(np.ascontiguousarray(a))


def test_host_side_nv12(fake_gpu):
    from trtssd.gpu.cuda import pinned_empty
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(51)
    o = PreprocessOptions(width=45, height=37, input_format="NV12")
    with GpuPreprocessor(o, max_batch=4, max_frame_shape=(64, 96)) as pre:
        fn = fake_gpu.function("preprocess_u8")
        # YUV frames go up whole: no gather_rows kernel (it moves packed pixels only)
        assert [f.kernel for f in fake_gpu.fns] == ["preprocess_u8"]
        assert pre.staging(0).shape == (96, 96)
        frames = [rand_yuv(rng, "NV12", 64, 96)[0] for _ in range(3)]
        _check_host(pre, frames, o, frames)               # host buffers copied: uniform
        assert fn.launches[-1] == "uniform"
        batch = np.stack([rand_yuv(rng, "NV12", 30, 40)[0] for _ in range(3)])   # [N, H*3/2, W]
        np.testing.assert_array_equal(cpu_preprocess(batch, o)[0], cpu_preprocess(list(batch), o)[0])
        _check_host(pre, batch, o, list(batch))
        db = _device(batch)                               # a device batch: read in place
        n0 = len(fake_gpu.copies)
        _check_host(pre, db, o, list(batch))
        assert fn.launches[-1] == "uniform" and len(fake_gpu.copies) == n0
        pb = pinned_empty(batch.shape, np.uint8)          # a pinned batch: one upload
        pb[...] = batch
        n0 = len(fake_gpu.copies)
        _check_host(pre, pb, o, list(batch))
        assert fn.launches[-1] == "uniform" and len(fake_gpu.copies) == n0 + 1
        s = pre.staging(1)[:48, :40]                      # a 32x40 picture decoded into slot 1
        s[...] = rand_yuv(rng, "NV12", 32, 40)[0]
        p = pinned_empty((60, 50), np.uint8)
        p[...] = rand_yuv(rng, "NV12", 40, 50)[0]
        d = _device(rand_yuv(rng, "NV12", 20, 30)[0])
        frames = [frames[0], s, p, d]
        _check_host(pre, frames, o, [frames[0], s.copy(), np.array(p), d.get()])
        assert fn.launches[-1] == "table"
        # device planes: a YuvFrame of two device arrays, and an NVDEC-like pitched surface
        y, u, v = yuv_planes(rng, "NV12", 50, 70)
        uv = np.stack([u, v], -1).reshape(25, 70)
        yd, uvd = _device(pitched(y, 10, rng).base), _device(pitched(uv, 2, rng).base)
        f = YuvFrame(70, 50, y=yd.ptr, uv=uvd.ptr, y_pitch=80, uv_pitch=72, owner=(yd, uvd))
        from support.frames import pack_yuv
        ref = pack_yuv("NV12", y, u, v)
        surface = _device(pitched(ref, 26, rng).base)     # 75 rows of 96 bytes
        g = YuvFrame.from_surface(surface.ptr, 70, 50, 96)
        n0 = len(fake_gpu.copies)
        _check_host(pre, [f, g], o, [ref, ref])
        assert [c[1] for c in fake_gpu.copies[n0:]] == [2 * 96]   # only the table
        # host planes: copied into the slot as one buffer
        hf = YuvFrame(70, 50, y=pitched(y, 3, rng), uv=pitched(uv, 5, rng))
        _check_host(pre, hf, o, ref)
        with pytest.raises(InputError, match="bigger than"):
            pre.preprocess(rand_yuv(rng, "NV12", 66, 96)[0])
        with pytest.raises(InputError, match="even"):
            pre.preprocess(np.zeros((15, 9), np.uint8))
        with pytest.raises(InputError, match="u,v planes"):
            pre.preprocess(YuvFrame(4, 4, y=np.zeros((4, 4), np.uint8), u=np.zeros((2, 2), np.uint8),
                                    v=np.zeros((2, 2), np.uint8)))


@pytest.mark.parametrize("fmt", ["I420", "YV12", "YUYV", "UYVY"])
def test_host_side_other_formats(monkeypatch, fmt):
    fmt_bytes = 96
    drv = fake_cuda.install(monkeypatch, "direct", {"preprocess_u8": "P%dsqPii" % fmt_bytes + "f" * 9},
                            nullable={"preprocess_u8": (0,)}, grid_len=3,
                            label=lambda args: "table" if args[0] else "uniform")
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(zlib.crc32(fmt.encode()))
    o = PreprocessOptions(width=33, height=29, input_format=fmt, layout="NHWC",
                          yuv_matrix="BT709", yuv_range="limited")
    with GpuPreprocessor(o, max_batch=3, max_frame_shape=(40, 60, 3)) as pre:
        fn = drv.function("preprocess_u8")
        a = [rand_yuv(rng, fmt, 40, 60)[0] for _ in range(2)] + [rand_yuv(rng, fmt, 8, 6)[0]]
        _check_host(pre, a[:2], o, a[:2])
        _check_host(pre, a, o, a)
        assert fn.launches[-1] == "table"
        d = _device(a[0])
        _check_host(pre, d, o, a[0])
        if fmt in ("YUYV", "UYVY"):
            pv = pitched(a[1], 6, rng)                    # pitched host frame: staged
            _check_host(pre, pv, o, a[1])
            with pytest.raises(InputError, match="even width"):
                pre.preprocess(np.zeros((4, 5, 2), np.uint8))
        else:
            y, u, v = yuv_planes(rng, fmt, 40, 60)
            from support.frames import pack_yuv
            ref = pack_yuv(fmt, y, u, v)
            dy, du, dv = _device(y), _device(u), _device(v)
            f = YuvFrame(60, 40, y=dy, u=du, v=dv)       # device arrays: pitches from them
            _check_host(pre, [f, ref], o, [ref, ref])
            assert fn.launches[-1] == "table"
            with pytest.raises(InputError, match="I420/YV12"):
                pre.preprocess(_Strided(d, (60, 40), (80, 1)))


class _Strided(object):
    """A device array view with explicit strides (a pitched 4:2:0 buffer)."""

    def __init__(self, owner, shape, strides):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "|u1",
                                         "data": (owner.ptr, False), "strides": strides,
                                         "version": 3}


def test_yuv_options_and_frames_refused():
    with pytest.raises(InputError, match="yuv_matrix"):
        PreprocessOptions(input_format="NV12", yuv_matrix="BT2020")
    with pytest.raises(InputError, match="yuv_range"):
        PreprocessOptions(input_format="NV12", yuv_range="tv")
    o = PreprocessOptions(input_format="NV12")
    with pytest.raises(InputError, match=r"\(H\*3/2, W\)"):
        cpu_preprocess(np.zeros((10, 10, 3), np.uint8), o)
    with pytest.raises(InputError, match="even"):
        cpu_preprocess(np.zeros((12, 9), np.uint8), o)        # W odd
    with pytest.raises(InputError, match="even width"):
        cpu_preprocess(np.zeros((4, 3, 2), np.uint8), PreprocessOptions(input_format="YUYV"))
    with pytest.raises(InputError, match="even width and height"):
        YuvFrame(5, 4, y=np.zeros((4, 5), np.uint8), uv=np.zeros((2, 5), np.uint8))
    with pytest.raises(InputError, match="at least"):
        YuvFrame(8, 4, y=np.zeros((4, 8), np.uint8), uv=np.zeros((1, 8), np.uint8))
    with pytest.raises(InputError, match="pitch"):
        YuvFrame(8, 4, y=1234, uv=5678)
    with pytest.raises(InputError, match="all on the host or all on the device"):
        YuvFrame(8, 4, y=np.zeros((4, 8), np.uint8), uv=5678, uv_pitch=8)
    with pytest.raises(InputError, match="not both"):
        YuvFrame(8, 4, y=1, uv=2, u=3, v=4, y_pitch=8, uv_pitch=8)
    with pytest.raises(InputError, match="packed 4:2:2"):
        cpu_preprocess(YuvFrame(4, 2, y=np.zeros((2, 4), np.uint8), uv=np.zeros((1, 4), np.uint8)),
                       PreprocessOptions(input_format="UYVY"))


def test_i420_decoded_into_the_staging(fake_gpu_any):
    # I420 rows are unpitched: a picture smaller than max_frame_shape is decoded into the start
    # of its slot as one contiguous buffer; a pitched crop of the slot is refused with the fix
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(52)
    o = PreprocessOptions(width=21, height=17, input_format="I420")
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(40, 60)) as pre:
        buf = rand_yuv(rng, "I420", 20, 30)[0]
        s = pre.staging(1).reshape(-1)[:buf.size].reshape(buf.shape)
        s[...] = buf
        n0 = len(fake_gpu_any.copies)
        _check_host(pre, [buf, s], o, [buf, buf])
        assert len(fake_gpu_any.copies) - n0 == 2       # slots 0 and 1 (uniform: no table)
        with pytest.raises(InputError, match="unpitched"):
            pre.preprocess([buf, pre.staging(1)[:30, :30]])
