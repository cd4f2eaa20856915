"""trtssd/preprocess/preprocess.cu, its real source, run on the CPU through the shim, against cpu_preprocess.

The kernel gets exactly the arguments GpuPreprocessor gives it (the same FrameDesc records from
trtssd.preprocess.plan.fill_frame_desc and the same normalisation constants); only the pointers are
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
from support.frames import frame, tolerance
from support.kernel_shim import compile_cpu_module
from support.preprocess_kernel import check
from trtssd.preprocess import INPUT_FORMATS, PreprocessOptions, cpu_preprocess

pytest.importorskip("cv2")


ALL = list(itertools.product(sorted(INPUT_FORMATS), ["float32", "float16"], ["NCHW", "NHWC"],
                             ["linear", "nearest"]))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fmt,dtype,layout,interp", ALL)
def test_every_variant(fmt, dtype, layout, interp, seed):
    rng = np.random.default_rng(zlib.crc32(("%s%s%s%s%d" % (
        fmt, dtype, layout, interp, seed)).encode()))
    for order in ("RGB", "BGR"):
        o = PreprocessOptions(width=int(rng.integers(40, 130)), height=int(rng.integers(40, 130)),
                              dtype=dtype, layout=layout, interpolation=interp, input_format=fmt,
                              channel_order=order, mean=tuple(rng.uniform(0, 255, 3)),
                              scale=tuple(rng.uniform(-0.03, 0.03, 3)))
        f = frame(rng, int(rng.integers(1, 300)), int(rng.integers(1, 300)), fmt,
                  gray2d=rng.random() < 0.5)
        check([f], o)


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
    check([f], o)


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
        check(frames, o, force_table=True)


def test_quantised_ssd_normalisation():
    # (x - 128) / 128 as detect.tflite wants, RGB order from BGR frames.
    rng = np.random.default_rng(13)
    o = PreprocessOptions(mean=128, scale=1 / 128)
    check([frame(rng, 480, 640, "BGR")], o)


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


@pytest.mark.parametrize("mapped", [False, True])
def test_gpu_preprocessor_host_logic(fake_gpu, mapped):
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(31)
    o = PreprocessOptions(width=57, height=43, dtype="float16", letterbox=True, pad_value=7)
    with GpuPreprocessor(o, max_batch=3, max_frame_shape=(120, 160, 3), mapped=mapped) as pre:
        fn = fake_gpu.function("preprocess_u8")
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
        # (their 160-byte rows are 16-byte multiples and the filter reads 86 of 120: not copied
        # whole, gathered by one gather_rows launch; mapped ones are read in place)
        n_copies, n_gathers = len(fake_gpu.copies), fake_gpu.launches("gather_rows")
        _check_host(pre, [s0, s1], o, ref_frames=[s0.copy(), s1.copy()])
        assert len(fake_gpu.copies) == n_copies
        assert fake_gpu.launches("gather_rows") - n_gathers == (0 if mapped else 1)
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


def test_gpu_preprocessor_gray_and_nhwc(fake_gpu):
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(32)
    o = PreprocessOptions(width=31, height=29, input_format="GRAY", layout="NHWC",
                          interpolation="nearest")
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(64, 64)) as pre:
        _check_host(pre, [frame(rng, 64, 64, "GRAY", gray2d=True), frame(rng, 10, 63, "GRAY")], o)


def test_sanitize_script_on_the_shim(monkeypatch, capsys):
    # benchmarks/bench_preprocess.py --sanitize (the compute-sanitizer run) with the fake
    # driver: its every-variant loop (YUV too: a 96-byte frame descriptor) runs and agrees with
    # the CPU path.
    fake_cuda.install(monkeypatch, "direct",
                      {"preprocess_u8": ("P64sqPii" + "f" * 9, "P96sqPii" + "f" * 9)},
                      nullable={"preprocess_u8": (0,)}, grid_len=3)
    from benchmarks.bench_preprocess import sanitize_run
    assert sanitize_run() == 0
    assert "0 mismatches" in capsys.readouterr().out


def test_launch_path(fake_gpu):
    # _launch_kernel with the plan's packed buffer when pycuda has it, else prepared_async_call;
    # the packed buffer follows the output pointer when the caller's out changes
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(40)
    o = PreprocessOptions(width=33, height=21)
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(50, 60, 3)) as pre:
        fn = fake_gpu.function("preprocess_u8")
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
    from trtssd.preprocess import GpuPreprocessor
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
        assert fake_gpu.function("preprocess_u8").launches[-1] == "uniform"
        # the same through a list of its frames, and crops of it at a constant stride
        _check_host(pre, list(batch), o, ref_frames=list(np.array(batch)))
        crops = [batch[k, 1:39, 2:49] for k in range(3)]
        n0 = len(fake_gpu.copies)
        _check_host(pre, crops, o, ref_frames=[c.copy() for c in crops])
        assert len(fake_gpu.copies) == n0 + 1 and fake_gpu.function("preprocess_u8").launches[-1] == "uniform"
        assert _staging_untouched(pre)


def rows_read(h, inner_h, interp):
    """The source rows the filter reads for a frame of ``h`` rows resized to ``inner_h``: a
    NumPy model of preprocess.cu's rule, written from OpenCV's mappings (bilinear: f = (y +
    0.5) * sy - 0.5 in float32 with sy = h / inner_h, rows floor(f) and the next, clamped to
    the frame; nearest: floor(y * (1 / (inner_h / h))) in double). The shim's g++ does not
    contract to FMA, so the model is exact here (on the GPU the tests compare with whole
    uploads instead)."""
    rows = set()
    if interp == "nearest":
        nn = 1.0 / (float(inner_h) / float(h))
        for y in range(inner_h):
            rows.add(min(int(np.floor(y * nn)), h - 1))
        return rows
    sy = np.float32(float(h) / float(inner_h))
    for y in range(inner_h):
        f = np.float32(np.float32(np.float32(y) + np.float32(0.5)) * sy) - np.float32(0.5)
        i = int(np.floor(f))
        i = min(max(i, 0), h - 1)
        rows.update((i, min(i + 1, h - 1)))
    return rows


def _device_rows(ptr, pitch, h, row_bytes):
    import ctypes
    buf = (ctypes.c_ubyte * ((h - 1) * pitch + row_bytes)).from_address(ptr)
    flat = np.frombuffer(buf, np.uint8)
    return np.lib.stride_tricks.as_strided(flat, (h, row_bytes), (pitch, 1))


@pytest.mark.parametrize("interp", ["linear", "nearest"])
def test_gather_moves_the_rows_the_filter_reads_and_no_others(fake_gpu, interp):
    # pinned frames (one a crop, one of another size) and a plain host frame copied through
    # the staging: one gather_rows launch moves, of each, exactly the rows the model says the
    # filter reads into the device copy, poisoned before (so a row not moved stays 0xA5), and
    # nothing else; the output is the CPU path's. With whole_uploads every row goes up.
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(51 + (interp == "nearest"))
    o = PreprocessOptions(width=61, height=37, interpolation=interp)
    h, w = 217, 160                 # rows of 480 bytes; 217 / 37 = 5.9 source rows per output row
    p = _pinned((2, h, w, 3))
    p[...] = rng.integers(0, 256, p.shape, dtype=np.uint8)
    q = _pinned((191, 96, 3))
    q[...] = rng.integers(0, 256, q.shape, dtype=np.uint8)
    plain = frame(rng, 150, 64, "BGR")
    frames = [p[0], p[1][6:], q, plain]
    refs = [np.array(f) for f in frames]
    assert all(f.ctypes.data % 16 == 0 for f in (p, q))
    for whole in (False, True):
        with GpuPreprocessor(o, max_batch=4, max_frame_shape=(h, w, 3),
                             whole_uploads=whole) as pre:
            pre._stage.device.fill_bytes(0xA5)
            n_copies, n_gathers = len(fake_gpu.copies), fake_gpu.launches("gather_rows")
            _check_host(pre, frames, o, ref_frames=refs)
            assert fake_gpu.launches("gather_rows") - n_gathers == (0 if whole else 1)
            frame_copies = [c for c in fake_gpu.copies[n_copies:]
                            if c[1] > pre._tables.table_bytes]
            assert bool(frame_copies) == whole
            for ref, (ptr, pitch, fw, fh, staged) in zip(refs, pre.device_frames(frames)):
                assert staged
                got = _device_rows(ptr, pitch, fh, fw * 3)
                want = set(range(fh)) if whole else rows_read(fh, o.height, interp)
                assert len(want) < (fh if not whole else fh + 1)
                for r in range(fh):
                    if r in want:
                        np.testing.assert_array_equal(got[r], ref[r].reshape(-1))
                    else:
                        assert (got[r] == 0xA5).all(), "row %d was moved" % r


def test_gather_only_where_it_saves_bytes_and_can_run(fake_gpu):
    # gathered when the filter reads at most 3/4 of the rows (bilinear: 8/3 source rows per
    # output row or more) and every address, pitch and row is a multiple of 16 bytes, up to 16
    # frames a call; otherwise the frames are uploaded whole, and the output is right either way
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(52)
    o = PreprocessOptions(width=40, height=37)           # 8/3 x 37 = 98.7 rows

    def gathered(pre, frames):
        n = fake_gpu.launches("gather_rows")
        refs = [np.array(f) for f in frames] if isinstance(frames, list) else np.array(frames)
        _check_host(pre, frames, o, ref_frames=refs)
        return fake_gpu.launches("gather_rows") - n

    with GpuPreprocessor(o, max_batch=17, max_frame_shape=(120, 64, 3)) as pre:
        for rows, want in ((99, 1), (98, 0), (120, 1)):
            assert gathered(pre, frame(rng, rows, 64, "BGR")) == want, rows
        assert gathered(pre, frame(rng, 120, 63, "BGR")) == 0        # 189-byte rows
        p = _pinned((120, 64, 3))
        p[...] = rng.integers(0, 256, p.shape, dtype=np.uint8)
        assert gathered(pre, p[:, 1:]) == 0                          # starts 3 bytes in
        assert gathered(pre, p[1:]) == 1                             # 192 bytes in
        assert gathered(pre, [frame(rng, 120, 64, "BGR") for _ in range(16)]) == 1
        assert gathered(pre, [frame(rng, 120, 64, "BGR") for _ in range(17)]) == 0
    # no gather kernel where it cannot help: mapped frames, an integrated GPU, a GPU without
    # unified addressing (YUV formats: test_preprocess_yuv.py)
    n_fns = len(fake_gpu.fns)
    with GpuPreprocessor(o, max_frame_shape=(120, 64, 3), mapped=True):
        pass
    dev = fake_gpu.Context.device
    for attrs in ({"UNIFIED_ADDRESSING": 1, "INTEGRATED": 1},
                  {"UNIFIED_ADDRESSING": 0, "INTEGRATED": 0}):
        dev.attributes = attrs
        with GpuPreprocessor(o, max_frame_shape=(120, 64, 3)) as pre:
            assert gathered(pre, frame(rng, 120, 64, "BGR")) == 0
    assert [f.kernel for f in fake_gpu.fns[n_fns:]] == ["preprocess_u8"] * 3


def test_staged_upload_gathers_on_the_upload_stream(fake_gpu):
    # upload() of gatherable frames launches gather_rows on its stream, after the last kernel;
    # the next preprocess of them launches the preprocessing kernel only
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(53)
    o = PreprocessOptions(width=40, height=37)
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(120, 64, 3)) as pre:
        run, up = fake_gpu.Stream(), fake_gpu.Stream()
        _check_host(pre, [frame(rng, 120, 64, "BGR")] * 2, o, stream=run)
        kernel_event = pre._last_event
        p = _pinned((2, 120, 64, 3))
        p[...] = rng.integers(0, 256, p.shape, dtype=np.uint8)
        pinned = [p[0], p[1]]
        n_calls, n_copies = len(fake_gpu.calls), len(fake_gpu.copies)
        pre.upload(pinned, stream=up)
        assert [c[1] for c in fake_gpu.calls[n_calls:]] == ["gather_rows"]
        assert fake_gpu.call_streams[n_calls:] == [up] and up.waited == [kernel_event]
        assert len(fake_gpu.copies) == n_copies
        _check_host(pre, pinned, o, ref_frames=list(np.array(p)), stream=run)
        assert [c[1] for c in fake_gpu.calls[n_calls + 1:]] == ["preprocess_u8"]
        assert run.waited[-1] is pre._upload_event


def test_upload_ahead_then_preprocess_launches_only(fake_gpu):
    # upload(frames, stream) enqueues the copies on that stream after the last kernel; the
    # next preprocess of the same frames uploads nothing, waits for the upload's event and
    # reads what was uploaded then; other frames wait for it and upload their own
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(43)
    o = PreprocessOptions(width=41, height=37)
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(70, 90, 3)) as pre:
        run, up = fake_gpu.Stream(), fake_gpu.Stream()
        first = [frame(rng, 70, 90, "BGR") for _ in range(2)]
        _check_host(pre, first, o, stream=run)
        kernel_event = pre._last_event
        p = _pinned((2, 70, 90, 3))
        p[...] = rng.integers(0, 256, p.shape, dtype=np.uint8)
        pinned = [p[0], p[1]]
        n0 = len(fake_gpu.copies)
        assert pre.upload(pinned, stream=up) is None
        assert fake_gpu.copies[n0:] == [(pre._frames_dev_base, p.nbytes, p.ctypes.data)]
        assert fake_gpu.copy_streams[n0:] == [up] and up.waited == [kernel_event]
        uploaded = pre._upload_event
        _check_host(pre, pinned, o, ref_frames=list(np.array(p)), stream=run)
        assert len(fake_gpu.copies) == n0 + 1                   # nothing uploaded again
        assert run.waited[-1] is uploaded
        # plain host frames: copied into the staging by upload(); changing them afterwards
        # does not change what the next preprocess of them reads
        plain = [frame(rng, 61, 83, "BGR"), frame(rng, 70, 90, "BGR")]
        want = [f.copy() for f in plain]
        pre.upload(plain, stream=up)
        n1 = len(fake_gpu.copies)
        for f in plain:
            f[...] = 0
        _check_host(pre, plain, o, ref_frames=want, stream=run)
        base, end = pre._frames_dev_base, pre._frames_dev_base + pre._staging.nbytes
        assert not [c for c in fake_gpu.copies[n1:] if base <= c[0] < end]   # the table only
        # staged, then other frames: they wait for the staged upload and upload their own
        pre.upload(pinned, stream=up)
        run_waits = len(run.waited)
        n2 = len(fake_gpu.copies)
        other = [frame(rng, 50, 60, "BGR")]
        _check_host(pre, other, o, stream=run)
        assert run.waited[run_waits] is pre._upload_event and len(fake_gpu.copies) > n2
        assert pre._staged is None
        # then the pinned frames again: not staged any more, so uploaded on the run stream
        n3 = len(fake_gpu.copies)
        _check_host(pre, pinned, o, ref_frames=list(np.array(p)), stream=run)
        assert fake_gpu.copy_streams[n3:] == [run]
        # device frames: nothing to stage
        d = DeviceArray((70, 90, 3), np.uint8).copy_from_host(first[0])
        n4 = len(fake_gpu.copies)
        pre.upload(d, stream=up)
        assert len(fake_gpu.copies) == n4 and pre._staged is None
        d.close()


def test_pinned_mixed_with_plain_staging_and_device_frames(fake_gpu):
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.preprocess import GpuPreprocessor
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
            assert fake_gpu.function("preprocess_u8").launches[-1] == "table"
        # a crop of a pinned frame that is not packed pixels is copied (np.copyto handles it)
        every2 = p[:, ::2]
        _check_host(pre, every2, o, ref_frames=every2.copy())
        d.close()


def test_pinned_mapped_read_in_place(fake_gpu):
    # mapped=True: a mapped PinnedArray is read through its device pointer (no copy at all);
    # an unmapped one is copied into the mapped staging. (The fake's device pointer of mapped
    # memory is its host address, so the kernel on the shim reads the same bytes.)
    from trtssd.preprocess import GpuPreprocessor
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
        assert len(fake_gpu.copies) == n0 and fake_gpu.function("preprocess_u8").launches[-1] == "uniform"
        u = _pinned((64, 80, 3))
        u[...] = frame(rng, 64, 80, "BGR")
        _check_host(pre, u, o, ref_frames=np.array(u))
        assert len(fake_gpu.copies) == n0 and not _staging_untouched(pre)


def test_context_pushed_only_when_not_current(fake_gpu):
    from trtssd.preprocess import GpuPreprocessor
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
        get_device = fake_gpu.Context.get_device

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
    from trtssd.preprocess import GpuPreprocessor
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


class _Foreign(object):
    """Another library's device array (its "device memory" is the fake driver's host memory):
    a fresh interface dict on each access, counted."""

    def __init__(self, arr, typestr="|u1"):
        self.arr, self.typestr, self.reads = arr, typestr, 0

    @property
    def __cuda_array_interface__(self):
        self.reads += 1
        return {"shape": self.arr.shape, "typestr": self.typestr, "strides": None,
                "data": (self.arr.ctypes.data, False), "version": 2}


def test_foreign_arrays_cached_by_their_memory(fake_gpu):
    # Frames and out= of other libraries: the plan and the checked out pointer are cached by
    # the arrays' memory description, so a second call reads each interface once and makes no
    # plan; when an array's memory changes (same object, new pointer or shape), the call
    # follows it.
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(45)
    o = PreprocessOptions(width=31, height=23)
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(8, 8, 3)) as pre:
        frames = [frame(rng, 40, 50, "BGR"), frame(rng, 40, 50, "BGR")]
        fa = [_Foreign(f) for f in frames]
        outs = np.full(o.output_shape(2), np.nan, np.float32)
        fo = _Foreign(outs, "<f4")
        ref = cpu_preprocess(frames, o)[0]
        pre.preprocess(fa, out=fo)
        np.testing.assert_allclose(outs, ref, atol=tolerance(o)[0], rtol=1e-6)
        made = len(pre._planner.plans)
        reads = [a.reads for a in fa] + [fo.reads]
        outs[...] = np.nan
        pre.preprocess(fa, out=fo)
        np.testing.assert_allclose(outs, ref, atol=tolerance(o)[0], rtol=1e-6)
        assert len(pre._planner.plans) == made
        assert [a.reads for a in fa] + [fo.reads] == [r + 1 for r in reads]
        # new memory behind the same objects: new plan, right result, new out pointer used
        frames2 = [frame(rng, 30, 70, "BGR"), frame(rng, 40, 50, "BGR")]
        fa[0].arr, fa[1].arr = frames2
        outs2 = np.full(o.output_shape(2), np.nan, np.float32)
        fo.arr = outs2
        pre.preprocess(fa, out=fo)
        np.testing.assert_allclose(outs2, cpu_preprocess(frames2, o)[0], atol=tolerance(o)[0],
                                   rtol=1e-6)
        assert fake_gpu.function("preprocess_u8").launches[-1] == "table"


def test_descriptor_tables_uploaded_once_per_ring_slot(fake_gpu):
    """Device frames of mixed sizes (the table path): a ring slot that already holds a plan's
    table, uploaded on the same stream, is not written or uploaded again; one that holds
    another plan's table, or was uploaded on another stream, is; every call's output is
    still its own frames' (two frame sets taking turns, out= alternating)."""
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.preprocess import GpuPreprocessor
    rng = np.random.default_rng(46)
    o = PreprocessOptions(width=29, height=21)
    sets = [[frame(rng, 37, 45, "BGR"), frame(rng, 23, 61, "BGR")],
            [frame(rng, 41, 33, "BGR"), frame(rng, 19, 27, "BGR")]]
    dev = [[DeviceArray(f.shape, np.uint8).copy_from_host(f) for f in fs] for fs in sets]
    outs = [DeviceArray(o.output_shape(2), np.float32) for _ in range(2)]
    with GpuPreprocessor(o, max_batch=2, max_frame_shape=(8, 8, 3), table_ring=3) as pre:
        tables = pre._tables
        lo, hi = tables.device_base, tables.device_base + tables.ring * tables.table_bytes

        def table_uploads():
            return sum(1 for dst, _, _ in fake_gpu.copies if lo <= dst < hi)
        # (order of the frame sets, table uploads expected): the same set 7 times (calls 0-6)
        # fills the ring's 3 slots once; then calls 7-12 alternate sets over slots 1, 2, 0,
        # 1, 2, 0: only call 8 (set 0 into slot 2, which holds set 0's table) is spared
        # then set 0 on two streams taking turns: every slot's holder changes stream each time
        s1, s2 = fake_gpu.Stream(), fake_gpu.Stream()
        for pattern, want, streams in (([0] * 7, 3, [None]), ([1, 0] * 3, 5, [None]),
                                       ([0] * 6, 6, [s1, s2])):
            before = table_uploads()
            for call, k in enumerate(pattern):
                out = outs[call % 2]
                out.fill_bytes(0xFF)
                pre.preprocess(dev[k], out=out, stream=streams[call % len(streams)])
                assert fake_gpu.function("preprocess_u8").launches[-1] == "table"
                np.testing.assert_allclose(out.get(), cpu_preprocess(sets[k], o)[0],
                                           atol=tolerance(o)[0], rtol=1e-6)
            assert table_uploads() - before == want, pattern
    for d in [d for fs in dev for d in fs] + outs:
        d.close()


def test_foreign_key_follows_torch_metadata():
    # torch tensors are keyed by data_ptr, shape, stride and dtype: any change to what their
    # __cuda_array_interface__ would describe changes the key (CPU tensors here: the key does
    # not need CUDA)
    torch = pytest.importorskip("torch")
    from trtssd.gpu.cuda import foreign_key
    t = torch.zeros((4, 6, 3), dtype=torch.uint8)
    k = foreign_key(t)
    assert k == foreign_key(t) and k[0] == "torch"
    assert foreign_key(t[1:]) != k                    # a view elsewhere
    u = t.clone()
    u.transpose_(0, 1)
    assert foreign_key(u) != foreign_key(t.clone())   # strides changed in place
    v = t.clone()
    kv = foreign_key(v)
    v.set_(torch.zeros((4, 6, 3), dtype=torch.uint8))
    assert foreign_key(v) != kv                       # new storage behind the same object
    assert foreign_key(t.view(torch.int8)) != k      # same memory, another dtype
