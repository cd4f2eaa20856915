"""GpuPreprocessor on a real GPU against cpu_preprocess (skipped, with the reason, without one).

Every variant on fresh random inputs of odd sizes; the output is poisoned with 0xFF bytes (NaN in
float32 and float16) before each call and must come back fully written. Tolerances, as in the
shim tests: OpenCV's uint8 bilinear rounds a fixed-point result to an integer while the kernel
blends in float, so up to one grey level before normalisation (times |scale| after); nvcc's
--use_fast_math and FMA contraction change the float blend by a few ulps, far below that;
float16 adds half an ulp (relative 2^-11); nearest is exact up to the fp16 rounding.
Bad input must raise InputError before anything is launched: the poisoned output stays NaN.

Run under compute-sanitizer:  compute-sanitizer --tool memcheck --error-exitcode 1 \
    python -m pytest -q tests/preprocess/test_preprocess_gpu.py
"""
import itertools
import zlib

import numpy as np
import pytest

from trtssd.core.errors import InputError
from support.frames import frame as rand_frame, pack_yuv, pitched, rand_yuv, tolerance, yuv_planes
from trtssd.preprocess import INPUT_FORMATS, GpuPreprocessor, PreprocessOptions, cpu_preprocess
from trtssd.preprocess.options import YUV_FORMATS

pytest.importorskip("cv2")
pytestmark = pytest.mark.gpu


class DevFrame(object):
    """A device frame with explicit strides (a crop of a bigger device array)."""

    def __init__(self, owner, ptr, shape, strides):
        self.owner, self.ptr, self.shape, self.strides = owner, ptr, shape, strides

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": "|u1", "data": (self.ptr, False),
                "strides": self.strides, "version": 3}


def to_device(arr):
    from trtssd.gpu.cuda import DeviceArray
    d = DeviceArray(arr.shape, np.uint8)
    d.copy_from_host(np.ascontiguousarray(arr))
    return d


def run_and_check(pre, frames, o, out=None, stream=None, ref_frames=None):
    """Poison, preprocess, synchronise, compare with the CPU path; returns the host result."""
    from trtssd.gpu.cuda import driver
    target = out if out is not None else pre._out
    target.fill_bytes(0xFF)
    driver().Context.synchronize()
    res, geoms = pre.preprocess(frames, out=out, stream=stream)
    driver().Context.synchronize()
    got = res.get() if hasattr(res, "get") else res
    assert not np.isnan(got).any(), "output elements left unwritten (still poisoned)"
    ref, rgeoms = cpu_preprocess(ref_frames if ref_frames is not None else frames, o)
    assert geoms == rgeoms
    atol, rtol = tolerance(o)
    np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), atol=atol,
                               rtol=rtol, err_msg=str(o))
    return got


ALL = list(itertools.product(sorted(INPUT_FORMATS), ["float32", "float16"], ["NCHW", "NHWC"],
                             ["linear", "nearest"], ["RGB", "BGR"]))


@pytest.mark.parametrize("fmt,dtype,layout,interp,order", ALL)
def test_every_variant(cuda_context, fmt, dtype, layout, interp, order):
    rng = np.random.default_rng(zlib.crc32(("%s%s%s%s%s" % (fmt, dtype, layout, interp, order)).encode()))
    o = PreprocessOptions(width=int(rng.integers(50, 400)), height=int(rng.integers(50, 400)),
                          dtype=dtype, layout=layout, interpolation=interp, input_format=fmt,
                          channel_order=order, mean=tuple(rng.uniform(0, 255, 3)),
                          scale=tuple(rng.uniform(-0.03, 0.03, 3)))
    c = INPUT_FORMATS[fmt][0]
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(800, 900, c)) as pre:
        for _ in range(2):   # twice: a second call on the same buffers must be as right
            f = rand_frame(rng, int(rng.integers(1, 800)), int(rng.integers(1, 900)), fmt,
                           gray2d=rng.random() < 0.5)
            run_and_check(pre, f, o)


@pytest.mark.parametrize("interp", ["linear", "nearest"])
@pytest.mark.parametrize("size", [(1, 1), (781, 1823), (1823, 781), (1080, 1920), (2160, 3840)])
def test_sizes(cuda_context, size, interp):
    rng = np.random.default_rng(size[0] + 3 * size[1])
    o = PreprocessOptions(interpolation=interp)
    f = rand_frame(rng, size[0], size[1], "BGR")
    with GpuPreprocessor(o, max_frame_shape=(2160, 3840, 3)) as pre:
        run_and_check(pre, f, o)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("shape", [(1080, 1920), (1920, 1080), (5, 2999), (1, 1)])
def test_letterbox(cuda_context, shape, dtype):
    rng = np.random.default_rng(shape[0])
    for interp in ("linear", "nearest"):
        o = PreprocessOptions(width=320, height=256, letterbox=True, pad_value=114, dtype=dtype,
                              interpolation=interp)
        with GpuPreprocessor(o, max_frame_shape=(1920, 2999, 3)) as pre:
            run_and_check(pre, rand_frame(rng, shape[0], shape[1], "BGR"), o)


def test_uniform_batch_host_frames(cuda_context):
    rng = np.random.default_rng(21)
    o = PreprocessOptions(dtype="float16")
    batch = rng.integers(0, 256, (8, 719, 1283, 3), dtype=np.uint8)
    with GpuPreprocessor(o, max_batch=8, max_frame_shape=(720, 1284, 3)) as pre:
        run_and_check(pre, batch, o)             # an [N, H, W, C] array
        run_and_check(pre, list(batch[:3]), o)   # a list, fewer than max_batch


def test_mixed_sizes_one_launch(cuda_context):
    rng = np.random.default_rng(22)
    o = PreprocessOptions(input_format="BGRA", letterbox=True, mean=(123.675, 116.28, 103.53),
                          scale=(1 / 58.395, 1 / 57.12, 1 / 57.375))
    frames = [rand_frame(rng, 480, 640, "BGRA"), rand_frame(rng, 1, 1, "BGRA"),
              rand_frame(rng, 1080, 1920, "BGRA")[11:1000, 7:1801], rand_frame(rng, 300, 300, "BGRA")]
    with GpuPreprocessor(o, max_batch=4, max_frame_shape=(1080, 1920, 4), table_ring=2) as pre:
        for _ in range(3):    # more calls than table slots: the ring must not corrupt tables
            run_and_check(pre, frames, o)


def test_many_calls_in_flight(cuda_context):
    # Mixed-size and uniform calls enqueued back to back on two streams, each into its own
    # output, synchronised only at the end: buffers shared between calls must not race.
    from trtssd.gpu.cuda import DeviceArray, driver
    drv = driver()
    rng = np.random.default_rng(23)
    o = PreprocessOptions(width=64, height=48)
    streams = [drv.Stream(), drv.Stream()]
    calls = []
    with GpuPreprocessor(o, max_batch=3, max_frame_shape=(200, 300, 3), table_ring=2) as pre:
        for k in range(12):
            if k % 3 == 0:
                fr = [rand_frame(rng, 100, 150, "BGR") for _ in range(3)]
            else:
                fr = [rand_frame(rng, int(rng.integers(1, 200)), int(rng.integers(1, 300)), "BGR")
                      for _ in range(int(rng.integers(1, 4)))]
            out = DeviceArray(o.output_shape(len(fr)), np.float32).fill_bytes(0xFF)
            drv.Context.synchronize()
            pre.preprocess(fr, out=out, stream=streams[k % 2])
            calls.append((fr, out))
        drv.Context.synchronize()
        for fr, out in calls:
            got = out.get()
            ref, _ = cpu_preprocess(fr, o)
            np.testing.assert_allclose(got, ref, atol=tolerance(o)[0], rtol=1e-6)
            out.close()


def test_uploads_ahead_on_another_stream(cuda_context):
    # Each batch uploaded on an upload stream (upload()) while the batch before it may still
    # be preprocessed on the run stream, then preprocessed there into its own output, nothing
    # synchronised until the end: the upload must wait for the kernel that read the staging
    # before it, and the kernel for its upload. Pinned batches (a block of their own each,
    # so no source is reused) and plain host frames in turn.
    from trtssd.gpu.cuda import DeviceArray, driver
    drv = driver()
    rng = np.random.default_rng(29)
    o = PreprocessOptions(width=96, height=80)
    run, up = drv.Stream(), drv.Stream()
    calls, blocks = [], []
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(541, 963, 3)) as pre:
        for k in range(10):
            if k % 2:
                fr = [rand_frame(rng, 541, 963, "BGR"), rand_frame(rng, 333, 777, "BGR")]
                ref = [f.copy() for f in fr]
            else:
                block = _pinned_frame(rng, (2, 541, 963, 3))
                blocks.append(block)
                fr, ref = [block[0], block[1]], list(np.array(block))
            out = DeviceArray(o.output_shape(2), np.float32).fill_bytes(0xFF)
            drv.Context.synchronize()
            pre.upload(fr, stream=up)
            if k % 2:
                for f in fr:
                    f[...] = 0              # copied by upload(): what the kernel reads stays
            pre.preprocess(fr, out=out, stream=run)
            calls.append((ref, out))
        drv.Context.synchronize()
        for ref_frames, out in calls:
            got = out.get()
            assert not np.isnan(got).any()
            ref, _ = cpu_preprocess(ref_frames, o)
            np.testing.assert_allclose(got, ref, atol=tolerance(o)[0], rtol=1e-6)
            out.close()
    for b in blocks:
        b.close()


def test_strided_host_crop(cuda_context):
    rng = np.random.default_rng(24)
    big = rand_frame(rng, 1000, 1500, "RGB")
    crop = big[101:900:1, 33:1400]
    o = PreprocessOptions(input_format="RGB", layout="NHWC")
    with GpuPreprocessor(o, max_frame_shape=(1000, 1500, 3)) as pre:
        run_and_check(pre, crop, o)


def test_device_resident_frames(cuda_context):
    rng = np.random.default_rng(25)
    big = rand_frame(rng, 777, 1311, "BGR")
    d = to_device(big)
    y0, x0, h, w = 17, 29, 700, 1201
    crop = DevFrame(d, d.ptr + y0 * big.strides[0] + x0 * 3, (h, w, 3), (big.strides[0], 3, 1))
    o = PreprocessOptions(interpolation="linear", dtype="float16")
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(8, 8, 3)) as pre:   # no staging needed
        run_and_check(pre, [d, crop], o, ref_frames=[big, big[y0:y0 + h, x0:x0 + w]])
    d.close()


@pytest.mark.parametrize("fmt", ["BGR", "BGRA"])
def test_frames_at_allocation_ends(cuda_context, fmt):
    # Frames are device allocations of exactly their size (under compute-sanitizer memcheck
    # any read past the last pixel fails), 1 to 3 pixels wide, and crops whose first byte is
    # at every alignment with the parent's pitch.
    from trtssd.gpu.cuda import driver
    c = INPUT_FORMATS[fmt][0]
    rng = np.random.default_rng(31 + c)
    o = PreprocessOptions(width=97, height=61, input_format=fmt, dtype="float32")
    frames, refs, keep = [], [], []
    for h, w in ((1, 1), (2, 1), (1, 2), (3, 2), (5, 3), (77, 131), (333, 501)):
        f = rand_frame(rng, h, w, fmt)
        d = to_device(f)
        keep.append(d)
        frames.append(d)
        refs.append(f)
    big = rand_frame(rng, 123, 211, fmt)
    d = to_device(big)
    keep.append(d)
    for y0, x0 in ((0, 1), (1, 2), (2, 3), (3, 0)):
        h, w = big.shape[0] - y0, big.shape[1] - x0
        frames.append(DevFrame(d, d.ptr + y0 * big.strides[0] + x0 * c, (h, w, c),
                               (big.strides[0], c, 1)))
        refs.append(big[y0:, x0:])
    with GpuPreprocessor(o, max_batch=1, max_frame_shape=(8, 8, c)) as pre:
        for fr, ref in zip(frames, refs):
            run_and_check(pre, fr, o, ref_frames=ref)
    driver().Context.synchronize()
    for k in keep:
        k.close()


def test_staging_in_place_and_mapped(cuda_context):
    rng = np.random.default_rng(26)
    o = PreprocessOptions()
    for mapped in (False, True):
        with GpuPreprocessor(o, max_batch=2, max_frame_shape=(480, 640, 3), mapped=mapped) as pre:
            s0, s1 = pre.staging(0), pre.staging(1)
            s0[...] = rand_frame(rng, 480, 640, "BGR")
            s1[:301, :457] = rand_frame(rng, 301, 457, "BGR")
            frames = [s0, s1[:301, :457]]
            run_and_check(pre, frames, o, ref_frames=[f.copy() for f in frames])
            # A host frame that is not staging is copied in (mapped: read through the mapping).
            run_and_check(pre, rand_frame(rng, 99, 101, "BGR"), o)


def test_out_to_torch_without_copy(torch_cuda):
    torch = torch_cuda
    rng = np.random.default_rng(27)
    o = PreprocessOptions(dtype="float16")
    f = rand_frame(rng, 333, 555, "BGR")
    with GpuPreprocessor(o) as pre:
        res, _ = pre.preprocess(f)
        t = torch.as_tensor(res, device="cuda")
        assert t.data_ptr() == res.ptr and t.dtype == torch.float16 and tuple(t.shape) == (1, 3, 300, 300)
        out = torch.full((1, 3, 300, 300), float("nan"), dtype=torch.float16, device="cuda")
        torch.cuda.synchronize()
        got, _ = pre.preprocess(f, out=out)
        assert got is out
        torch.cuda.synchronize()
        ref, _ = cpu_preprocess(f, o)
        np.testing.assert_allclose(out.float().cpu().numpy(), ref.astype(np.float32),
                                   atol=tolerance(o)[0], rtol=2.0 ** -11)


def test_bad_input_raises_before_launch(cuda_context):
    from trtssd.gpu.cuda import DeviceArray, driver
    o = PreprocessOptions()
    good = np.zeros((100, 100, 3), np.uint8)
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(200, 200, 3)) as pre:
        pre._out.fill_bytes(0xFF)
        driver().Context.synchronize()
        cases = [
            (np.zeros((100, 100, 3), np.float32), "uint8"),
            (np.zeros((100, 100, 4), np.uint8), "channels"),
            (np.zeros((0, 100, 3), np.uint8), "empty"),
            (np.zeros((201, 300, 3), np.uint8), "max_frame_shape"),
            ([good, good, good], "max_batch"),
            ("not a frame", "numpy array"),
        ]
        for frames, match in cases:
            with pytest.raises(InputError, match=match):
                pre.preprocess(frames)
        d = DeviceArray((10, 12, 3), np.uint8)
        bad = DevFrame(d, d.ptr, (10, 6, 3), (36, 6, 1))        # every second pixel: unreadable
        with pytest.raises(InputError, match="strides"):
            pre.preprocess(bad)
        for out, match in [(DeviceArray((1, 3, 300, 300), np.float16), "dtype"),
                           (DeviceArray((2, 3, 300, 300), np.float32), "shape"),
                           (np.zeros((1, 3, 300, 300), np.float32), "device array")]:
            with pytest.raises(InputError, match=match):
                pre.preprocess(good, out=out)
        driver().Context.synchronize()
        assert np.isnan(pre._out.get()).all(), "something was launched despite the error"
        d.close()
    with pytest.raises(InputError, match="closed"):
        pre.preprocess(good)


def _pinned_frame(rng, shape, mapped=False):
    from trtssd.gpu.cuda import pinned_empty
    p = pinned_empty(shape, np.uint8, mapped=mapped)
    p[...] = rng.integers(0, 256, shape, dtype=np.uint8)
    return p


def test_pinned_frames_and_crops(cuda_context):
    # PinnedArray frames are uploaded from their own memory (no staging copy), crops with the
    # parent's pitch, an [N, H, W, C] pinned block in one copy; on a stream, twice (cached plan).
    from trtssd.gpu.cuda import driver
    rng = np.random.default_rng(28)
    o = PreprocessOptions(dtype="float16")
    stream = driver().Stream()
    with GpuPreprocessor(o, max_batch=4, max_frame_shape=(720, 1280, 3)) as pre:
        pre._staging.fill(0)
        p = _pinned_frame(rng, (720, 1280, 3))
        for _ in range(2):
            run_and_check(pre, p, o, stream=stream, ref_frames=np.array(p))
        crop = p[13:701, 31:1211]
        run_and_check(pre, crop, o, stream=stream, ref_frames=crop.copy())
        block = _pinned_frame(rng, (4, 301, 457, 3))
        run_and_check(pre, block, o, ref_frames=list(np.array(block)))
        run_and_check(pre, [block[k, 3:290, 5:450] for k in range(4)], o,
                      ref_frames=[block[k, 3:290, 5:450].copy() for k in range(4)])
        assert not pre._staging.any(), "a pinned frame went through the staging"
        for a in (p, block):
            a.close()


def test_pinned_plain_device_staging_mixed(cuda_context):
    rng = np.random.default_rng(29)
    o = PreprocessOptions(letterbox=True, pad_value=114, layout="NHWC",
                          mean=(123.675, 116.28, 103.53), scale=(1 / 58.395, 1 / 57.12, 1 / 57.375))
    with GpuPreprocessor(o, max_batch=5, max_frame_shape=(480, 640, 3)) as pre:
        plain = rand_frame(rng, 333, 444, "BGR")
        p = _pinned_frame(rng, (480, 640, 3))
        big = _pinned_frame(rng, (1080, 1920, 3))       # its crop's span exceeds a slot
        dev_host = rand_frame(rng, 201, 301, "BGR")
        d = to_device(dev_host)
        s3 = pre.staging(3)[:100, :200]
        s3[...] = rand_frame(rng, 100, 200, "BGR")
        frames = [plain, p[7:, 9:600], d, s3, big[100:400, 200:700]]
        refs = [plain, p[7:, 9:600].copy(), dev_host, s3.copy(), big[100:400, 200:700].copy()]
        for _ in range(3):
            run_and_check(pre, frames, o, ref_frames=refs)
        d.close()
        p.close()
        big.close()


def test_pinned_mapped_zero_copy(cuda_context):
    # mapped=True and a mapped PinnedArray: the kernel reads it through the mapping (over PCIe
    # on a discrete GPU: slow, but it must be right).
    rng = np.random.default_rng(30)
    o = PreprocessOptions(interpolation="nearest")
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(240, 320, 3), mapped=True) as pre:
        m = _pinned_frame(rng, (240, 320, 3), mapped=True)
        run_and_check(pre, [m, m[3:200, 5:300]], o, ref_frames=[np.array(m), m[3:200, 5:300].copy()])
        u = _pinned_frame(rng, (240, 320, 3))            # not mapped: through the staging
        run_and_check(pre, u, o, ref_frames=np.array(u))
        m.close()
        u.close()


# --------------------------------------------------------------------------------------------
# YUV input (tolerances as above: each tap is converted exactly as the CPU path converts it)

YUV_ALL = list(itertools.product(sorted(YUV_FORMATS), [("BT601", "limited"), ("BT601", "full"),
                                                       ("BT709", "limited"), ("BT709", "full")]))


def _yuv_options(rng, fmt, matrix, yuv_range, **kw):
    args = dict(width=int(rng.integers(50, 400)), height=int(rng.integers(50, 400)),
                dtype=("float32", "float16")[int(rng.integers(2))],
                layout=("NCHW", "NHWC")[int(rng.integers(2))],
                interpolation=("linear", "nearest")[int(rng.integers(2))], input_format=fmt,
                channel_order=("RGB", "BGR")[int(rng.integers(2))],
                mean=tuple(rng.uniform(0, 255, 3)), scale=tuple(rng.uniform(-0.03, 0.03, 3)),
                letterbox=bool(rng.integers(2)), pad_value=3, yuv_matrix=matrix,
                yuv_range=yuv_range)
    args.update(kw)
    return PreprocessOptions(**args)


@pytest.mark.parametrize("fmt,mr", YUV_ALL)
def test_yuv_every_variant(cuda_context, fmt, mr):
    rng = np.random.default_rng(zlib.crc32(("%s%s%s" % ((fmt,) + mr)).encode()))
    for interp in ("linear", "nearest"):
        o = _yuv_options(rng, fmt, mr[0], mr[1], interpolation=interp)
        with GpuPreprocessor(o, max_batch=3, max_frame_shape=(800, 900)) as pre:
            for _ in range(2):
                h, w = 2 * int(rng.integers(1, 400)), 2 * int(rng.integers(1, 450))
                run_and_check(pre, rand_yuv(rng, fmt, h, w)[0], o)
            # a uniform device batch [N, rows, ...] and a mixed host/device/pinned batch
            batch = np.stack([rand_yuv(rng, fmt, 240, 320)[0] for _ in range(3)])
            d = to_device(batch)
            run_and_check(pre, d, o, ref_frames=list(batch))
            p = _pinned_frame(rng, o.buffer_shape(100, 160))
            small = rand_yuv(rng, fmt, 2, 2)[0]
            run_and_check(pre, [batch[0], p, small], o, ref_frames=[batch[0], np.array(p), small])
            d.close()
            p.close()


@pytest.mark.parametrize("fmt", ["NV12", "NV21", "YUYV", "UYVY"])
def test_yuv_pitched_device_buffers(cuda_context, fmt):
    # device buffers whose rows are further apart than the picture (decoders' pitched
    # surfaces), read in place; allocations of exactly their size (memcheck catches overreads)
    rng = np.random.default_rng(zlib.crc32(("pitched" + fmt).encode()))
    o = PreprocessOptions(input_format=fmt, letterbox=True, dtype="float16")
    with GpuPreprocessor(o, max_frame_shape=(8, 8)) as pre:
        for h, w, pad in ((2, 2, 0), (2, 2, 1), (1080, 1920, 128), (718, 1278, 2), (300, 302, 63)):
            buf = rand_yuv(rng, fmt, h, w)[0]
            big = pitched(buf, pad, rng).base
            d = to_device(big)
            shape = buf.shape
            strides = (big.strides[0],) + ((2, 1) if buf.ndim == 3 else (1,))
            run_and_check(pre, DevFrame(d, d.ptr, shape, strides), o, ref_frames=buf)
            d.close()


@pytest.mark.parametrize("fmt", ["NV12", "NV21", "I420", "YV12"])
def test_yuv_device_planes(cuda_context, fmt):
    # YuvFrame of device planes with their own pitches (what NVDEC and GStreamer hand out), an
    # NVDEC-like single pitched surface, and mixed with host buffers in one batch (the table)
    from trtssd.preprocess import YuvFrame
    rng = np.random.default_rng(zlib.crc32(("planes" + fmt).encode()))
    o = PreprocessOptions(input_format=fmt, width=320, height=320)
    with GpuPreprocessor(o, max_batch=3, max_frame_shape=(720, 1280)) as pre:
        for h, w in ((2, 2), (720, 1280), (1080, 1920), (482, 642)):
            y, u, v = yuv_planes(rng, fmt, h, w)
            ref = pack_yuv(fmt, y, u, v)
            owners = []

            def dev(a, pad):
                big = pitched(a, pad, rng).base
                owners.append(to_device(big))
                return owners[-1].ptr, big.strides[0]
            yp = dev(y, 64)
            if fmt in ("NV12", "NV21"):
                uv = np.stack([u, v] if fmt == "NV12" else [v, u], -1).reshape(h // 2, w)
                cp = dev(uv, 32)
                f = YuvFrame(w, h, y=yp[0], uv=cp[0], y_pitch=yp[1], uv_pitch=cp[1])
                surf = dev(ref, 256)
                g = YuvFrame.from_surface(surf[0], w, h, surf[1])
            else:
                up, vp = dev(u, 16), dev(v, 48)
                f = YuvFrame(w, h, y=yp[0], u=up[0], v=vp[0], y_pitch=yp[1], u_pitch=up[1],
                             v_pitch=vp[1])
                g = f
            small = rand_yuv(rng, fmt, 4, 6)[0]
            run_and_check(pre, [f, g, small], o, ref_frames=[ref, ref, small])
            for d in owners:
                d.close()


def test_yuv_torch_planes(torch_cuda):
    torch = torch_cuda
    from trtssd.preprocess import YuvFrame
    rng = np.random.default_rng(61)
    o = PreprocessOptions(input_format="NV12")
    y, u, v = yuv_planes(rng, "NV12", 1080, 1920)
    uv = np.stack([u, v], -1).reshape(540, 1920)
    ty, tuv = torch.from_numpy(y).cuda(), torch.from_numpy(uv).cuda()
    surface = torch.from_numpy(pack_yuv("NV12", y, u, v)).cuda()
    with GpuPreprocessor(o, max_frame_shape=(8, 8)) as pre:
        ref = pack_yuv("NV12", y, u, v)
        run_and_check(pre, YuvFrame(1920, 1080, y=ty, uv=tuv), o, ref_frames=ref)
        run_and_check(pre, YuvFrame.from_surface(surface, 1920, 1080, None), o, ref_frames=ref)
        run_and_check(pre, surface, o, ref_frames=ref)


def test_yuv_bad_input_raises_before_launch(cuda_context):
    from trtssd.gpu.cuda import driver
    from trtssd.preprocess import YuvFrame
    o = PreprocessOptions(input_format="I420")
    with GpuPreprocessor(o, max_frame_shape=(64, 64)) as pre:
        pre._out.fill_bytes(0xFF)
        driver().Context.synchronize()
        d = to_device(np.zeros((96, 80), np.uint8))
        for frames, match in [(np.zeros((96, 63), np.uint8), "even"),
                              (np.zeros((98, 64), np.uint8), "even"),
                              (np.zeros((66 * 3 // 2, 64), np.uint8), "max_frame_shape"),
                              (DevFrame(d, d.ptr, (96, 64), (80, 1)), "I420/YV12"),
                              (YuvFrame(4, 4, y=d.ptr, uv=d.ptr, y_pitch=4, uv_pitch=4), "u,v")]:
            with pytest.raises(InputError, match=match):
                pre.preprocess(frames)
        driver().Context.synchronize()
        assert np.isnan(pre._out.get()).all(), "something was launched despite the error"
        d.close()


class _DLPackOnly(object):
    """A device array that speaks only DLPack (no __cuda_array_interface__)."""

    def __init__(self, t):
        self.t = t

    def __dlpack__(self, stream=None):
        return self.t.__dlpack__()

    def __dlpack_device__(self):
        return self.t.__dlpack_device__()


def test_torch_and_dlpack_frames_and_out(torch_cuda):
    # torch tensors as frames and out=, called again and again (cached by their memory), as new
    # views of a batch each call, with the memory behind a tensor replaced in place; then the
    # same memory through objects that speak only DLPack (a crop among them); a CPU tensor is
    # refused
    torch = torch_cuda
    rng = np.random.default_rng(62)
    o = PreprocessOptions(width=160, height=120)
    host = rng.integers(0, 256, (3, 240, 320, 3), dtype=np.uint8)
    batch = torch.from_numpy(host).cuda()
    out = torch.empty(o.output_shape(2), dtype=torch.float32, device="cuda")
    atol = tolerance(o)[0]
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(8, 8, 3)) as pre:
        frames = [batch[0], batch[1]]
        ref = cpu_preprocess(list(host[:2]), o)[0]
        for k in range(3):
            out.fill_(float("nan"))
            views = frames if k < 2 else [batch[0], batch[1]]      # new view objects
            pre.preprocess(views, out=out)
            torch.cuda.synchronize()
            np.testing.assert_allclose(out.cpu().numpy(), ref, atol=atol, rtol=1e-6)
        frames[0].set_(batch[2].clone())                # new memory behind the same tensor
        out2 = torch.empty_like(out)
        pre.preprocess(frames, out=out2)
        torch.cuda.synchronize()
        np.testing.assert_allclose(out2.cpu().numpy(), cpu_preprocess([host[2], host[1]], o)[0],
                                   atol=atol, rtol=1e-6)
        ref = cpu_preprocess([host[0], host[1][10:, 20:]], o)[0]
        for _ in range(2):
            out.fill_(float("nan"))
            pre.preprocess([_DLPackOnly(batch[0]), _DLPackOnly(batch[1][10:, 20:])],
                           out=_DLPackOnly(out))
            torch.cuda.synchronize()
            np.testing.assert_allclose(out.cpu().numpy(), ref, atol=atol, rtol=1e-6)
        with pytest.raises(InputError, match="not in CUDA memory"):
            pre.preprocess(torch.zeros((10, 10, 3), dtype=torch.uint8))     # a CPU tensor


@pytest.mark.parametrize("interp,letterbox,dtype", [("linear", False, "float32"),
                                                    ("nearest", False, "float16"),
                                                    ("linear", True, "float16")])
def test_gathered_rows_give_what_whole_uploads_give(cuda_context, interp, letterbox, dtype):
    # 1080p host frames (a pinned [3, H, W, C] block, a pinned frame, a crop of it with
    # 16-byte aligned offsets, a plain array copied through the staging) preprocessed by a
    # GpuPreprocessor that gathers the rows the filter reads and by one that uploads whole
    # frames: the outputs must be bit for bit the same (the same kernel over the same rows),
    # directly and after a staged upload on another stream; the gathered device copies,
    # poisoned before, must hold at most 3/4 of the rows (the saving is real) and at least one
    # per output row. The CPU path checks the first call.
    from trtssd.gpu.cuda import DeviceArray, driver
    drv = driver()
    rng = np.random.default_rng(61)
    o = PreprocessOptions(interpolation=interp, letterbox=letterbox, dtype=dtype)
    block = _pinned_frame(rng, (3, 1080, 1920, 3))
    p = _pinned_frame(rng, (1080, 1920, 3))
    plain = rand_frame(rng, 1080, 1920, "BGR")
    crop = p[16:1060, 64:1856]
    batches = [[block[0], block[1], block[2]], [p, crop, plain]]
    refs = [list(np.array(block)), [np.array(p), np.array(crop), plain.copy()]]
    run, up = drv.Stream(), drv.Stream()
    outs = [DeviceArray(o.output_shape(3), o.np_dtype) for _ in range(2)]
    try:
        with GpuPreprocessor(o, max_batch=3, max_frame_shape=(1080, 1920, 3)) as pre, \
                GpuPreprocessor(o, max_batch=3, max_frame_shape=(1080, 1920, 3),
                                whole_uploads=True) as whole:
            for frames, ref in zip(batches, refs):
                run_and_check(pre, frames, o, ref_frames=ref)
                for staged in (False, True):
                    pre._stage.device.fill_bytes(0xA5)
                    for out in outs:
                        out.fill_bytes(0xFF)
                    drv.Context.synchronize()
                    if staged:
                        pre.upload(frames, stream=up)
                    pre.preprocess(frames, out=outs[0], stream=run)
                    whole.preprocess(frames, out=outs[1], stream=run)
                    drv.Context.synchronize()
                    got, want = outs[0].get(), outs[1].get()
                    assert not np.isnan(want).any()
                    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
                    for ptr, pitch, w, h, _ in pre.device_frames(frames):
                        host = np.empty(h * pitch, np.uint8)
                        drv.memcpy_dtoh(host[:(h - 1) * pitch + w * 3], ptr)
                        rows = np.lib.stride_tricks.as_strided(host, (h, w * 3), (pitch, 1))
                        moved = int((rows != 0xA5).any(axis=1).sum())
                        inner_h = pre.geometry(w, h).inner_size[1] if letterbox else o.height
                        assert inner_h <= moved <= 0.75 * h, (moved, h)
    finally:
        for a in outs:
            a.close()
        block.close()
        p.close()
