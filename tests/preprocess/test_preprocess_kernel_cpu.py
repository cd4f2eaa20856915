"""kernels/preprocess.cu, its real source, run on the CPU through the shim, against cpu_preprocess.

The kernel gets exactly the arguments GpuPreprocessor gives it (the same FrameDesc records from
trtssd.preprocess.gpu.fill_frame_desc and the same normalisation constants); only the pointers are
host addresses. Outputs are poisoned with NaN and surrounded by guard bands that must stay
untouched. Tolerances: OpenCV's uint8 bilinear rounds its fixed-point result to an integer while
the kernel blends in float, so they may differ by up to one grey level before normalisation
(times |scale| after); float16 adds half an ulp (relative 2^-11); nearest must match exactly
up to that fp16 rounding.
"""
import itertools
import zlib

import numpy as np
import pytest

from support import fake_cuda
from support.kernel_shim import compile_cpu_module
from trtssd.core.errors import InputError
from trtssd.preprocess.gpu import (BLOCK, FRAME_DESC_DTYPE, INPUT_FORMATS, FrameGeometry,
                               PreprocessOptions, cpu_preprocess, fill_frame_desc,
                               kernel_norm_args, launch_grid)

pytest.importorskip("cv2")
GUARD = 37


def tolerance(o):
    grey = 1.0 if o.interpolation == "linear" else 0.0
    atol = grey * float(np.max(np.abs(o.scale))) + 1e-5
    rtol = 2.0 ** -11 if o.dtype == "float16" else 1e-6
    if o.dtype == "float16":
        atol += 2.0 ** -24
    return atol, rtol


def kernel_module(o, ppt=1, wide=False, smem=False):
    defines = o.kernel_defines()
    if ppt != 1:
        defines["PIX_PER_THREAD"] = ppt
    if wide:
        defines["WIDE_LOADS"] = 1
    if smem:
        defines["SMEM_ROWS"] = 1
    return compile_cpu_module("preprocess/preprocess.cu", defines)


def run_kernel(frames, o, force_table=False, uniform_stride=None, ppt=1, wide=False, smem=False):
    """Launch preprocess_u8 on the shim. ``frames``: list of HWC/HW uint8 host arrays (any
    strides with packed pixels). Uniform path when all share shape and pitch and sit at a
    constant stride (``uniform_stride`` bytes apart), else the descriptor table. ``ppt``:
    the PIX_PER_THREAD variant, with its grid; ``wide``: the WIDE_LOADS variant; ``smem``: the
    SMEM_ROWS variant."""
    mod = kernel_module(o, ppt, wide, smem)
    n = len(frames)
    total = int(np.prod(o.output_shape(n)))
    flat = np.full(total + 2 * GUARD, np.nan, o.np_dtype)
    out = flat[GUARD:GUARD + total].reshape(o.output_shape(n))
    geoms = [FrameGeometry.compute(f.shape[1], f.shape[0], o) for f in frames]
    norm = [np.float32(v) for v in kernel_norm_args(o)]
    grid = launch_grid(o, n, ppt)
    desc0 = np.zeros((), FRAME_DESC_DTYPE)
    if force_table:
        table = np.zeros(n, FRAME_DESC_DTYPE)
        for k, (f, g) in enumerate(zip(frames, geoms)):
            fill_frame_desc(table[k], o, g, f.__array_interface__["data"][0], f.strides[0])
        mod.launch("preprocess_u8", grid, BLOCK, table, desc0.tobytes(), np.int64(0), out,
                   np.int32(o.width), np.int32(o.height), *norm)
    else:
        f0 = frames[0]
        fill_frame_desc(desc0, o, geoms[0], f0.__array_interface__["data"][0], f0.strides[0])
        mod.launch("preprocess_u8", grid, BLOCK, None, desc0.tobytes(),
                   np.int64(uniform_stride or 0), out, np.int32(o.width), np.int32(o.height),
                   *norm)
    assert np.isnan(flat[:GUARD]).all() and np.isnan(flat[GUARD + total:]).all(), \
        "the kernel wrote outside its output"
    assert not np.isnan(out).any(), "the kernel left output elements unwritten"
    return out, geoms


def check(frames, o, **kw):
    got, geoms = run_kernel(frames, o, **kw)
    ref, rgeoms = cpu_preprocess(frames, o)
    assert geoms == rgeoms
    atol, rtol = tolerance(o)
    np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), atol=atol,
                               rtol=rtol, err_msg=str(o))


def frame(rng, h, w, fmt, gray2d=False):
    c = INPUT_FORMATS[fmt][0]
    shape = (h, w) if (c == 1 and gray2d) else (h, w, c)
    return rng.integers(0, 256, shape, dtype=np.uint8)


ALL = list(itertools.product(sorted(INPUT_FORMATS), ["float32", "float16"], ["NCHW", "NHWC"],
                             ["linear", "nearest"]))


@pytest.mark.parametrize("ppt,wide,smem", [(1, False, False), (2, False, False), (4, False, False),
                                            (1, True, False), (4, True, False), (1, False, True),
                                            (2, True, True)])
@pytest.mark.parametrize("fmt,dtype,layout,interp", ALL)
def test_every_variant(fmt, dtype, layout, interp, ppt, wide, smem):
    rng = np.random.default_rng(zlib.crc32(("%s%s%s%s%d%s%s" % (
        fmt, dtype, layout, interp, ppt, "w" if wide else "", "s" if smem else "")).encode()))
    for order in ("RGB", "BGR"):
        o = PreprocessOptions(width=int(rng.integers(40, 130)), height=int(rng.integers(40, 130)),
                              dtype=dtype, layout=layout, interpolation=interp, input_format=fmt,
                              channel_order=order, mean=tuple(rng.uniform(0, 255, 3)),
                              scale=tuple(rng.uniform(-0.03, 0.03, 3)))
        f = frame(rng, int(rng.integers(1, 300)), int(rng.integers(1, 300)), fmt,
                  gray2d=rng.random() < 0.5)
        check([f], o, ppt=ppt, wide=wide, smem=smem)


@pytest.mark.parametrize("interp", ["linear", "nearest"])
@pytest.mark.parametrize("size", [(1, 1), (781, 1823), (1823, 781), (2, 3), (300, 300), (600, 600)])
def test_odd_and_extreme_sizes(size, interp):
    rng = np.random.default_rng(size[0] * 7 + size[1])
    o = PreprocessOptions(interpolation=interp)          # 300x300, BGR -> RGB, x*2/255-1
    check([frame(rng, size[0], size[1], "BGR")], o)


@pytest.mark.parametrize("interp", ["linear", "nearest"])
@pytest.mark.parametrize("shape", [(1080, 1920), (1920, 1080), (7, 3000), (300, 300), (1, 1)])
def test_letterbox(shape, interp):
    rng = np.random.default_rng(shape[0])
    o = PreprocessOptions(width=320, height=240, letterbox=True, pad_value=114,
                          interpolation=interp, dtype="float16", layout="NHWC")
    f = frame(rng, shape[0], shape[1], "RGB")
    for ppt in (1, 2, 4):
        check([f], o, ppt=ppt)


def test_uniform_batch_with_stride_and_crop():
    # Frames are crops of bigger frames laid out at a constant stride: pitch != width * 3,
    # frame stride != height * pitch, exactly what the GPU uniform path gets.
    rng = np.random.default_rng(11)
    big = rng.integers(0, 256, (5, 211, 333, 3), dtype=np.uint8)
    crops = [big[k, 3:190, 5:301] for k in range(5)]
    o = PreprocessOptions(width=123, height=77)
    check(crops, o, uniform_stride=big.strides[0])


def test_mixed_sizes_by_table():
    rng = np.random.default_rng(12)
    frames = [frame(rng, 480, 640, "BGRA"), frame(rng, 1, 1, "BGRA"),
              frame(rng, 721, 1279, "BGRA")[7:, 3:], frame(rng, 300, 300, "BGRA")]
    for interp in ("linear", "nearest"):
        o = PreprocessOptions(input_format="BGRA", interpolation=interp, letterbox=True,
                              pad_value=0, mean=(123.675, 116.28, 103.53),
                              scale=(1 / 58.395, 1 / 57.12, 1 / 57.375))
        for ppt in (1, 4):
            check(frames, o, force_table=True, ppt=ppt)


def test_quantised_ssd_normalisation():
    # (x - 128) / 128 as detect.tflite wants, RGB order from BGR frames.
    rng = np.random.default_rng(13)
    o = PreprocessOptions(mean=128, scale=1 / 128)
    check([frame(rng, 480, 640, "BGR")], o)


# --------------------------------------------------------------------------------------------
# WIDE_LOADS=1: the bilinear path of 3- and 4-channel input reads pixel pairs with 32-bit loads
# of aligned words. It must give the byte variant's result bit for bit (same float arithmetic on
# the same bytes), take the word path where it can, and never read a byte outside the frame:
# frames here end exactly at the end of their numpy buffer and start at every byte alignment,
# and the shim build of the kernel counts every row_pair read outside [first byte, last byte].

def tight_frame(rng, h, w, c, pad=0, offset=0):
    """An [h, w, c] uint8 frame with row pitch w * c + pad whose first byte is ``offset`` bytes
    into its buffer and whose last byte is the buffer's last byte (its end is the allocation's
    end). Returns (frame, first byte address, one past the last byte)."""
    pitch = w * c + pad
    buf = rng.integers(0, 256, offset + (h - 1) * pitch + w * c, dtype=np.uint8)
    f = np.ndarray((h, w, c), np.uint8, buffer=buf, offset=offset, strides=(pitch, c, 1))
    base = buf.__array_interface__["data"][0]
    assert f.__array_interface__["data"][0] == base + offset
    return f, base + offset, base + buf.nbytes


def _shim_var(mod, name):
    import ctypes
    return ctypes.c_ulonglong.in_dll(mod.lib, name)


def run_wide_bounded(f, lo, hi, o, ppt=1, smem=False):
    """WIDE_LOADS=1 (SMEM_ROWS=1 if ``smem``) on ``f``, with the shim counting row_pair's (the
    shared-memory copy's) reads outside [lo, hi). Returns (output, words loaded, bytes loaded);
    with ``smem``, words are its 16-byte loads."""
    mod = kernel_module(o, ppt, wide=not smem, smem=smem)
    _shim_var(mod, "trtssd_pp_lo").value = lo
    _shim_var(mod, "trtssd_pp_hi").value = hi
    for v in ("trtssd_pp_outside", "trtssd_pp_words", "trtssd_pp_bytes") + (
            ("trtssd_pp_vec16",) if smem else ()):
        _shim_var(mod, v).value = 0
    try:
        got, _ = run_kernel([f], o, ppt=ppt, wide=not smem, smem=smem)
        outside = _shim_var(mod, "trtssd_pp_outside").value
        words = _shim_var(mod, "trtssd_pp_vec16" if smem else "trtssd_pp_words").value
        nbytes = _shim_var(mod, "trtssd_pp_bytes").value
        if smem:
            assert _shim_var(mod, "trtssd_pp_words").value == 0
    finally:
        _shim_var(mod, "trtssd_pp_lo").value = 0
        _shim_var(mod, "trtssd_pp_hi").value = (1 << 64) - 1
    assert outside == 0, "%d reads outside the frame %s (pitch %d)" % (outside, f.shape, f.strides[0])
    return got, words, nbytes


def check_wide_same_as_bytes(f, o, lo, hi, ppt=1, smem=False):
    got, words, nbytes = run_wide_bounded(f, lo, hi, o, ppt, smem)
    ref, _ = run_kernel([f], o, ppt=ppt)
    assert got.tobytes() == ref.tobytes(), "%s differ from byte loads: %s %s pitch %d" % (
        "shared-memory rows" if smem else "wide loads", o, f.shape, f.strides[0])
    cref, _ = cpu_preprocess([f], o)
    atol, rtol = tolerance(o)
    np.testing.assert_allclose(got.astype(np.float32), cref.astype(np.float32), atol=atol,
                               rtol=rtol, err_msg=str(o))
    return words, nbytes


@pytest.mark.parametrize("fmt", ["BGR", "RGB", "BGRA", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (2, 1), (1, 2), (2, 2), (5, 2), (3, 3), (1, 7),
                                  (97, 131), (45, 67), (13, 301)])
def test_wide_loads_edges_pitches_alignments(fmt, size):
    h, w = size
    c = INPUT_FORMATS[fmt][0]
    rng = np.random.default_rng(zlib.crc32(("%s%d_%d" % (fmt, h, w)).encode()))
    total_words = 0
    for k, (pad, offset) in enumerate([(0, 0), (1, 1), (2, 3), (3, 2), (5, 0), (0, 1), (0, 2),
                                       (0, 3), (7, 1)]):
        o = PreprocessOptions(width=int(rng.integers(20, 70)), height=int(rng.integers(10, 40)),
                              input_format=fmt, dtype=("float32", "float16")[k % 2],
                              layout=("NCHW", "NHWC")[k % 3 == 0], letterbox=k % 4 == 3,
                              pad_value=5, mean=tuple(rng.uniform(0, 255, 3)),
                              scale=tuple(rng.uniform(-0.03, 0.03, 3)))
        f, lo, hi = tight_frame(rng, h, w, c, pad, offset)
        words, nbytes = check_wide_same_as_bytes(f, o, lo, hi, ppt=(1, 2, 4)[k % 3])
        total_words += words
        if w == 1 and c == 3:
            # one 3-byte pixel a row: any word holding it runs past the row
            assert words == 0 and nbytes > 0
    if w >= 3:
        assert total_words > 0, "the word path never ran"


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_wide_loads_large_frame_ends_at_buffer_end(offset):
    # 1080p-like downscale (the benchmark's case) and an odd-sized one, the last row ending at
    # the buffer's end; the word path must carry nearly all the reads
    rng = np.random.default_rng(100 + offset)
    o = PreprocessOptions()                                 # 300x300, BGR -> RGB
    for h, w, pad in ((1080, 1920, 0), (781, 1823, offset)):
        f, lo, hi = tight_frame(rng, h, w, 3, pad, offset)
        words, nbytes = check_wide_same_as_bytes(f, o, lo, hi)
        assert words > 0 and nbytes <= 0.02 * 3 * words, (words, nbytes)


def test_wide_loads_crops_at_odd_byte_offsets():
    # crops of a bigger frame (pitch of the parent, first byte at any alignment), and a batch
    # of them at a constant stride (uniform path) and through the table
    rng = np.random.default_rng(101)
    for c, fmt in ((3, "BGR"), (4, "BGRA")):
        big = rng.integers(0, 256, (4, 101, 157, c), dtype=np.uint8)
        o = PreprocessOptions(width=61, height=37, input_format=fmt)
        for y0, x0 in ((0, 1), (3, 2), (1, 3), (5, 0)):
            crop = big[0, y0:, x0:]
            ref, _ = run_kernel([crop], o)
            got, _ = run_kernel([crop], o, wide=True)
            assert got.tobytes() == ref.tobytes()
        crops = [big[k, 2:99, 1:156] for k in range(4)]
        for kw in (dict(uniform_stride=big.strides[0]), dict(force_table=True)):
            ref, _ = run_kernel(crops, o, **kw)
            got, _ = run_kernel(crops, o, wide=True, **kw)
            assert got.tobytes() == ref.tobytes()
            check(crops, o, wide=True, **kw)


def test_wide_loads_highest_channel_last():
    # a channel map reading byte 3 of 4 (the last byte of a pixel, so a pair needs all 8
    # bytes): no PreprocessOptions makes it, the compile-variants line does; bit for bit the
    # byte variant's, within bounds
    rng = np.random.default_rng(102)
    defines = dict(PreprocessOptions(input_format="BGRA").kernel_defines(),
                   OUT_C0_SRC=3, OUT_C1_SRC=0, OUT_C2_SRC=2)
    mods = [compile_cpu_module("preprocess/preprocess.cu", dict(defines, WIDE_LOADS=wl)) for wl in (0, 1)]
    o = PreprocessOptions(width=41, height=23, input_format="BGRA")
    norm = [np.float32(v) for v in kernel_norm_args(o)]
    for pad, offset in ((0, 0), (1, 3), (2, 2), (3, 1)):
        f, lo, hi = tight_frame(rng, 17, 29, 4, pad, offset)
        g = FrameGeometry.compute(29, 17, o)
        desc = np.zeros((), FRAME_DESC_DTYPE)
        fill_frame_desc(desc, o, g, lo, f.strides[0])
        outs = []
        _shim_var(mods[1], "trtssd_pp_lo").value, _shim_var(mods[1], "trtssd_pp_hi").value = lo, hi
        _shim_var(mods[1], "trtssd_pp_outside").value = 0
        _shim_var(mods[1], "trtssd_pp_words").value = 0
        for mod in mods:
            out = np.full(o.output_shape(1), np.nan, np.float32)
            mod.launch("preprocess_u8", launch_grid(o, 1), BLOCK, None, desc.tobytes(),
                       np.int64(0), out, np.int32(o.width), np.int32(o.height), *norm)
            outs.append(out)
        assert _shim_var(mods[1], "trtssd_pp_outside").value == 0
        assert _shim_var(mods[1], "trtssd_pp_words").value > 0
        _shim_var(mods[1], "trtssd_pp_lo").value = 0
        _shim_var(mods[1], "trtssd_pp_hi").value = (1 << 64) - 1
        assert not np.isnan(outs[0]).any() and outs[0].tobytes() == outs[1].tobytes()
        # the channels the map names: the options read (2, 1, 0) of a BGRA frame, so the frame
        # with input channels (2, 0, 3) moved to (2, 1, 0) is the CPU path's equivalent
        ref, _ = cpu_preprocess([np.ascontiguousarray(f[..., [2, 0, 3, 1]])], o)
        atol, rtol = tolerance(o)
        np.testing.assert_allclose(outs[1], ref, atol=atol, rtol=rtol)


# --------------------------------------------------------------------------------------------
# SMEM_ROWS=1: each block copies its output rows' source rows (the column span they need) into
# shared memory with aligned 16-byte loads, byte loads at unaligned row edges, then blends from
# there. Bit for bit the byte variant's result, nothing read outside the frame (frames end at
# their buffer's end and start at every byte alignment; the shim counts reads outside), and the
# 16-byte path carries the bulk.

@pytest.mark.parametrize("fmt", ["BGR", "BGRA"])
@pytest.mark.parametrize("size", [(1, 1), (2, 1), (1, 2), (3, 3), (1, 7), (5, 2), (97, 131),
                                  (45, 67), (13, 301), (40, 700)])
def test_smem_rows_edges_pitches_alignments(fmt, size):
    h, w = size
    c = INPUT_FORMATS[fmt][0]
    rng = np.random.default_rng(zlib.crc32(("smem%s%d_%d" % (fmt, h, w)).encode()))
    total_vec = 0
    for k, (pad, offset) in enumerate([(0, 0), (1, 1), (2, 3), (3, 2), (5, 0), (0, 7), (0, 9),
                                       (13, 15), (7, 1)]):
        o = PreprocessOptions(width=int(rng.integers(20, 90)), height=int(rng.integers(10, 40)),
                              input_format=fmt, dtype=("float32", "float16")[k % 2],
                              layout=("NCHW", "NHWC")[k % 3 == 0], letterbox=k % 4 == 3,
                              pad_value=5, mean=tuple(rng.uniform(0, 255, 3)),
                              scale=tuple(rng.uniform(-0.03, 0.03, 3)),
                              channel_order=("RGB", "BGR")[k % 2])
        f, lo, hi = tight_frame(rng, h, w, c, pad, offset)
        vec, nbytes = check_wide_same_as_bytes(f, o, lo, hi, ppt=(1, 2, 4)[k % 3], smem=True)
        total_vec += vec
        if w * c < 16:
            assert vec == 0 and nbytes > 0      # no aligned 16 bytes inside a row
    if w * c >= 64:
        assert total_vec > 0, "the 16-byte path never ran"


@pytest.mark.parametrize("offset", [0, 1, 5, 15])
def test_smem_rows_large_frame_ends_at_buffer_end(offset):
    # the benchmark's 1080p downscale, an odd-sized one and an upscale, the last row ending at
    # the buffer's end; 16-byte loads carry nearly all the bytes
    rng = np.random.default_rng(200 + offset)
    for (h, w, pad), o in (((1080, 1920, 0), PreprocessOptions()),
                           ((781, 1823, offset), PreprocessOptions(letterbox=True, pad_value=1)),
                           ((61, 83, offset + 2), PreprocessOptions(width=211, height=173))):
        f, lo, hi = tight_frame(rng, h, w, 3, pad, offset)
        vec, nbytes = check_wide_same_as_bytes(f, o, lo, hi, smem=True)
        assert vec > 0 and nbytes <= 0.1 * 16 * vec, (vec, nbytes)


def test_smem_rows_strong_downscale_falls_back():
    # a block's span larger than the tile's row (3840 -> 20 columns: ~6000 bytes a block) reads
    # global memory as the default does: no 16-byte copy, same bits
    rng = np.random.default_rng(203)
    f, lo, hi = tight_frame(rng, 50, 3840, 3, 1, 3)
    o = PreprocessOptions(width=20, height=20)
    vec, nbytes = check_wide_same_as_bytes(f, o, lo, hi, smem=True)
    assert vec == 0 and nbytes == 0


def test_smem_rows_batches_crops_and_tables():
    # crops at every alignment, a uniform batch at a constant stride and a mixed-size table
    # batch (1x1 and letterboxed frames among them): bit for bit the byte variant's
    rng = np.random.default_rng(204)
    for c, fmt in ((3, "BGR"), (4, "BGRA")):
        big = rng.integers(0, 256, (4, 101, 157, c), dtype=np.uint8)
        o = PreprocessOptions(width=61, height=37, input_format=fmt)
        for y0, x0 in ((0, 1), (3, 2), (1, 3), (5, 0), (2, 5)):
            crop = big[0, y0:, x0:]
            ref, _ = run_kernel([crop], o)
            got, _ = run_kernel([crop], o, smem=True)
            assert got.tobytes() == ref.tobytes()
        crops = [big[k, 2:99, 1:156] for k in range(4)]
        for kw in (dict(uniform_stride=big.strides[0]), dict(force_table=True)):
            ref, _ = run_kernel(crops, o, **kw)
            got, _ = run_kernel(crops, o, smem=True, **kw)
            assert got.tobytes() == ref.tobytes()
            check(crops, o, smem=True, **kw)
        mixed = [frame(rng, 480, 640, fmt), frame(rng, 1, 1, fmt),
                 frame(rng, 721, 1279, fmt)[7:, 3:], frame(rng, 300, 300, fmt),
                 frame(rng, 2, 1, fmt)]
        ol = PreprocessOptions(input_format=fmt, letterbox=True, pad_value=9, width=123,
                               height=97)
        for ppt in (1, 2):
            ref, _ = run_kernel(mixed, ol, force_table=True, ppt=ppt)
            got, _ = run_kernel(mixed, ol, force_table=True, ppt=ppt, smem=True)
            assert got.tobytes() == ref.tobytes()
        check(mixed, ol, force_table=True, smem=True)


def test_wrong_defines_do_not_compile():
    # The kernel refuses a channel map that would read past the pixel.
    with pytest.raises(RuntimeError, match="OUT_Cn_SRC"):
        compile_cpu_module("preprocess/preprocess.cu", dict(PreprocessOptions(input_format="GRAY")
                                                 .kernel_defines(), OUT_C0_SRC=2))


# --------------------------------------------------------------------------------------------
# GpuPreprocessor's host side (staging, uploads, uniform/table choice, output views, errors)
# driven on the CPU: a fake pycuda driver whose "device memory" is host memory and whose
# kernel launches run the real kernel on the shim. This is not a GPU test; it catches host
# logic bugs before the GPU run.

@pytest.fixture(params=["direct", "prepared"])
def fake_gpu(monkeypatch, request):
    # the C parameter list: table* (NULL on the uniform path), FrameDesc (64 bytes), long long,
    # out*, int, int, 9 floats; a 3D grid
    return fake_cuda.install(monkeypatch, request.param, {"preprocess_u8": "P64sqPii" + "f" * 9},
                             nullable={"preprocess_u8": (0,)}, grid_len=3,
                             label=lambda args: "table" if args[0] else "uniform")


def _check_host(pre, frames, o, ref_frames=None, out=None, stream=None):
    (pre._out if out is None else out).fill_bytes(0xFF)
    res, geoms = pre.preprocess(frames, out=out, stream=stream)
    got = res.get()
    assert not np.isnan(got).any()
    ref, rgeoms = cpu_preprocess(ref_frames if ref_frames is not None else frames, o)
    assert geoms == rgeoms
    atol, rtol = tolerance(o)
    np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), atol=atol, rtol=rtol)
    return res


@pytest.mark.parametrize("mapped,ppt,wide,smem", [(False, 1, False, False), (True, 1, False, False),
                                                  (False, 4, False, False), (False, 1, True, False),
                                                  (True, 2, True, False), (False, 1, False, True),
                                                  (True, 1, False, True)])
def test_gpu_preprocessor_host_logic(fake_gpu, mapped, ppt, wide, smem):
    import ctypes
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.preprocess.gpu import GpuPreprocessor
    rng = np.random.default_rng(31)
    o = PreprocessOptions(width=57, height=43, dtype="float16", letterbox=True, pad_value=7)
    with GpuPreprocessor(o, max_batch=3, max_frame_shape=(120, 160, 3), mapped=mapped,
                         pix_per_thread=ppt, wide_loads=wide, smem_rows=smem) as pre:
        fn = fake_gpu.fns[-1]
        # the WIDE_LOADS variant was compiled exactly when asked for (its shim build has the
        # read counters)
        try:
            ctypes.c_ulonglong.in_dll(fn.mod.lib, "trtssd_pp_words")
            has_wide = True
        except ValueError:
            has_wide = False
        try:
            ctypes.c_ulonglong.in_dll(fn.mod.lib, "trtssd_pp_vec16")
            has_smem = True
        except ValueError:
            has_smem = False
        assert has_wide == (wide or smem) and pre.wide_loads == wide
        assert has_smem == smem and pre.smem_rows == smem
        # uniform batch of host frames: copied into slots, one launch on the uniform path
        frames = [frame(rng, 119, 157, "BGR") for _ in range(3)]
        _check_host(pre, frames, o)
        assert fn.launches[-1] == "uniform"
        # mixed sizes, a strided crop among them: the descriptor table
        frames = [frame(rng, 33, 21, "BGR"), frame(rng, 120, 160, "BGR")[5:, 9:150], frame(rng, 1, 1, "BGR")]
        for _ in range(6):                       # more calls than the table ring has slots
            _check_host(pre, frames, o)
            assert fn.launches[-1] == "table"
        # frames decoded straight into staging: no host copy, uploads merged when adjacent
        s0, s1 = pre.staging(0), pre.staging(1)
        s0[...] = frame(rng, 120, 160, "BGR")
        s1[...] = frame(rng, 120, 160, "BGR")
        n_copies = len(fake_gpu.copies)
        _check_host(pre, [s0, s1], o, ref_frames=[s0.copy(), s1.copy()])
        assert len(fake_gpu.copies) - n_copies == (0 if mapped else 1)
        assert fn.launches[-1] == "uniform"
        crop = pre.staging(0)[:50, :70]
        _check_host(pre, crop, o, ref_frames=crop.copy())
        # device-resident frames (any row pitch) are read in place
        big = frame(rng, 90, 130, "BGR")
        d = DeviceArray(big.shape, np.uint8).copy_from_host(big)
        n_copies = len(fake_gpu.copies)
        _check_host(pre, d, o, ref_frames=big)
        assert len(fake_gpu.copies) == n_copies
        # an [N, H, W, C] device batch: N frames, uniform path, no copy
        batch = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
        d4 = DeviceArray(batch.shape, np.uint8).copy_from_host(batch)
        n_copies = len(fake_gpu.copies)
        _check_host(pre, d4, o, ref_frames=list(batch))
        assert len(fake_gpu.copies) == n_copies and fn.launches[-1] == "uniform"
        # cached launch plans: fresh arrays (ids may be reused) and crops that move
        for k in range(4):
            base = frame(rng, 120, 160, "BGR")
            _check_host(pre, base[k:k + 100, 2 * k:2 * k + 140], o)
            sv = pre.staging(0)[k:k + 60, k:k + 80]
            sv[...] = frame(rng, 60, 80, "BGR")
            _check_host(pre, sv, o, ref_frames=sv.copy())
        # caller's out, on a stream: the result is out itself and knows its stream
        out = DeviceArray(o.output_shape(1), np.float16)
        st = fake_cuda.FakeStream()
        res = _check_host(pre, big, o, out=out, stream=st)
        assert res is out and out.__cuda_array_interface__["stream"] == st.handle
        assert st.waits == 1                     # ordered after the previous call's stream
        with pytest.raises(Exception, match="position"):
            pre.preprocess([frame(rng, 5, 5, "BGR"), pre.staging(0)])
        with pytest.raises(Exception, match="max_frame_shape"):
            pre.preprocess(frame(rng, 121, 161, "BGR"))
        with pytest.raises(Exception, match="shape"):
            pre.preprocess(big, out=DeviceArray(o.output_shape(2), np.float16))
    with pytest.raises(Exception, match="pix_per_thread"):
        GpuPreprocessor(o, pix_per_thread=3)
    with pytest.raises(InputError, match="wide_loads"):
        GpuPreprocessor(o, wide_loads="yes")


def test_gpu_preprocessor_gray_and_nhwc(fake_gpu):
    from trtssd.preprocess.gpu import GpuPreprocessor
    rng = np.random.default_rng(32)
    o = PreprocessOptions(width=31, height=29, input_format="GRAY", layout="NHWC",
                          interpolation="nearest")
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(64, 64)) as pre:
        _check_host(pre, [frame(rng, 64, 64, "GRAY", gray2d=True), frame(rng, 10, 63, "GRAY")], o)


def test_sanitize_script_on_the_shim(fake_gpu, capsys):
    # benchmarks/bench_preprocess.py --sanitize (the compute-sanitizer run) with the fake
    # driver: its every-variant loop runs and agrees with the CPU path.
    from benchmarks.bench_preprocess import sanitize_run
    assert sanitize_run() == 0
    assert "0 mismatches" in capsys.readouterr().out


def test_launch_path(fake_gpu):
    # _launch_kernel with the plan's packed buffer when pycuda has it, else prepared_async_call;
    # the packed buffer follows the output pointer when the caller's out changes
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.preprocess.gpu import GpuPreprocessor
    rng = np.random.default_rng(40)
    o = PreprocessOptions(width=33, height=21)
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(50, 60, 3)) as pre:
        fn = fake_gpu.fns[-1]
        f = frame(rng, 50, 60, "BGR")
        outs = [DeviceArray(o.output_shape(1), np.float32) for _ in range(2)]
        for out in outs + outs:
            _check_host(pre, f, o, out=out)
        _check_host(pre, [f, frame(rng, 7, 9, "BGR")], o)          # table path
        want = "direct" if isinstance(fn, fake_cuda.ShimFunctionDirect) else "prepared"
        assert set(fn.kinds) == {want} and fn.launches[-1] == "table"


def _pinned(shape, mapped=False):
    import trtssd.gpu.cuda as tcuda
    return tcuda.pinned_empty(shape, np.uint8, mapped=mapped)


def _staging_untouched(pre, marker=0xA5):
    return bool((pre._staging == marker).all())


def test_pinned_frames_upload_from_their_own_memory(fake_gpu):
    # A PinnedArray frame (or a packed crop of one) is uploaded straight from its memory: the
    # staging stays untouched (no np.copyto) and the copy's source is the frame's address.
    from trtssd.preprocess.gpu import GpuPreprocessor
    rng = np.random.default_rng(41)
    o = PreprocessOptions(width=47, height=39, dtype="float16")
    with GpuPreprocessor(o, max_batch=3, max_frame_shape=(90, 120, 3)) as pre:
        pre._staging[...] = 0xA5
        p = _pinned((90, 120, 3))
        p[...] = frame(rng, 90, 120, "BGR")
        n0 = len(fake_gpu.copies)
        _check_host(pre, p, o, ref_frames=np.array(p))
        assert fake_gpu.copies[n0:] == [(pre._frames_dev_base, p.nbytes, p.ctypes.data)]
        # the same frame, new content: the cached plan uploads again
        p[...] = frame(rng, 90, 120, "BGR")
        _check_host(pre, p, o, ref_frames=np.array(p))
        assert len(fake_gpu.copies) == n0 + 2
        # a crop: the rows it spans, read with the parent's pitch
        crop = p[7:80, 11:101]
        n0 = len(fake_gpu.copies)
        _check_host(pre, crop, o, ref_frames=crop.copy())
        span = (crop.shape[0] - 1) * p.strides[0] + crop.shape[1] * 3
        assert fake_gpu.copies[n0:] == [(pre._frames_dev_base, span, crop.ctypes.data)]
        # an [N, H, W, C] pinned batch: one copy of the whole block, uniform launch
        batch = _pinned((3, 40, 50, 3))
        batch[...] = rng.integers(0, 256, batch.shape, dtype=np.uint8)
        n0 = len(fake_gpu.copies)
        _check_host(pre, batch, o, ref_frames=list(np.array(batch)))
        assert fake_gpu.copies[n0:] == [(pre._frames_dev_base, batch.nbytes, batch.ctypes.data)]
        assert fake_gpu.fns[-1].launches[-1] == "uniform"
        # the same through a list of its frames, and crops of it at a constant stride
        _check_host(pre, list(batch), o, ref_frames=list(np.array(batch)))
        crops = [batch[k, 1:39, 2:49] for k in range(3)]
        n0 = len(fake_gpu.copies)
        _check_host(pre, crops, o, ref_frames=[c.copy() for c in crops])
        assert len(fake_gpu.copies) == n0 + 1 and fake_gpu.fns[-1].launches[-1] == "uniform"
        assert _staging_untouched(pre)


def test_pinned_mixed_with_plain_staging_and_device_frames(fake_gpu):
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.preprocess.gpu import GpuPreprocessor
    rng = np.random.default_rng(42)
    o = PreprocessOptions(width=52, height=44, letterbox=True, pad_value=9, layout="NHWC")
    with GpuPreprocessor(o, max_batch=5, max_frame_shape=(80, 100, 3)) as pre:
        p = _pinned((80, 100, 3))
        p[...] = frame(rng, 80, 100, "BGR")
        big = _pinned((200, 300, 3))          # bigger than the slots: a crop of it whose span
        big[...] = frame(rng, 200, 300, "BGR")  # does not fit goes through the staging
        plain = frame(rng, 61, 77, "BGR")
        d_host = frame(rng, 33, 44, "BGR")
        d = DeviceArray(d_host.shape, np.uint8).copy_from_host(d_host)
        s3 = pre.staging(3)[:50, :70]
        s3[...] = frame(rng, 50, 70, "BGR")
        frames = [plain, p[3:, :90], d, s3, big[10:70, 20:110]]
        refs = [plain, p[3:, :90].copy(), d_host, s3.copy(), big[10:70, 20:110].copy()]
        for _ in range(3):                    # cached plan, three times
            _check_host(pre, frames, o, ref_frames=refs)
            assert fake_gpu.fns[-1].launches[-1] == "table"
        # a crop of a pinned frame that is not packed pixels is copied (np.copyto handles it)
        every2 = p[:, ::2]
        _check_host(pre, every2, o, ref_frames=every2.copy())
        d.close()


def test_pinned_mapped_read_in_place(fake_gpu):
    # mapped=True: a mapped PinnedArray is read through its device pointer (no copy at all);
    # an unmapped one is copied into the mapped staging. (The fake's device pointer of mapped
    # memory is its host address, so the kernel on the shim reads the same bytes.)
    from trtssd.preprocess.gpu import GpuPreprocessor
    rng = np.random.default_rng(43)
    o = PreprocessOptions(width=41, height=37, interpolation="nearest")
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(64, 80, 3), mapped=True) as pre:
        pre._staging[...] = 0xA5
        m = _pinned((64, 80, 3), mapped=True)
        m[...] = frame(rng, 64, 80, "BGR")
        n0 = len(fake_gpu.copies)
        _check_host(pre, [m, m[5:60, 3:70]], o, ref_frames=[np.array(m), m[5:60, 3:70].copy()])
        # only the descriptor table (2 x 64 bytes) was uploaded
        assert [c[1] for c in fake_gpu.copies[n0:]] == [128] and _staging_untouched(pre)
        n0 = len(fake_gpu.copies)
        _check_host(pre, m[1:, 2:], o, ref_frames=m[1:, 2:].copy())
        assert len(fake_gpu.copies) == n0 and fake_gpu.fns[-1].launches[-1] == "uniform"
        u = _pinned((64, 80, 3))
        u[...] = frame(rng, 64, 80, "BGR")
        _check_host(pre, u, o, ref_frames=np.array(u))
        assert len(fake_gpu.copies) == n0 and not _staging_untouched(pre)


def test_context_pushed_only_when_not_current(fake_gpu):
    from trtssd.preprocess.gpu import GpuPreprocessor
    pushes = []

    class Ctx(object):                       # CudaContext's shape: _ctx (pycuda) and active()
        class _ctx(object):
            handle = 1234

        from contextlib import contextmanager

        @contextmanager
        def active(self):
            pushes.append(1)
            yield self

    current = [None]

    class Context(object):
        @staticmethod
        def get_current():
            return current[0]

        @staticmethod
        def synchronize():
            pass
    fake_gpu.Context = Context
    o = PreprocessOptions(width=20, height=10)
    f = np.zeros((30, 40, 3), np.uint8)
    pre = GpuPreprocessor(o, max_frame_shape=(30, 40, 3), context=Ctx())
    n0 = len(pushes)
    pre.preprocess(f)
    assert len(pushes) == n0 + 1              # not current: pushed
    current[0] = Ctx._ctx
    pre.preprocess(f)
    assert len(pushes) == n0 + 1              # current already: not pushed again
    pre.close()


def test_pinned_copies_are_not_pinned(fake_gpu):
    # p.copy() is a PinnedArray (numpy keeps the subclass, and the owner) in ordinary memory:
    # it must go through the staging, never be uploaded or (mapped) read as the original.
    from trtssd.preprocess.gpu import GpuPreprocessor
    rng = np.random.default_rng(44)
    o = PreprocessOptions(width=30, height=20)
    for mapped in (False, True):
        with GpuPreprocessor(o, max_frame_shape=(40, 50, 3), mapped=mapped) as pre:
            p = _pinned((40, 50, 3), mapped=True)
            p[...] = frame(rng, 40, 50, "BGR")
            c = p.copy()
            c[...] = frame(rng, 40, 50, "BGR")
            pre._staging[...] = 0xA5
            _check_host(pre, c, o, ref_frames=np.array(c))
            assert not _staging_untouched(pre)
