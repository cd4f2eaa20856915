"""Row-subset uploads: the rows the preprocessing kernel reads, and the strided copies that
cover exactly those. The kernel's own source (through the CPU shim) must give the same bits
when every row outside the list is overwritten with noise: the list misses no row it reads."""
import numpy as np
import pytest

from support.kernel_shim import compile_cpu_module
from trtssd.pipeline import rows as R
from trtssd.preprocess import FrameGeometry, PreprocessOptions
from trtssd.preprocess.gpu import BLOCK, kernel_norm_args, launch_grid
from trtssd.preprocess.plan import FRAME_DESC_DTYPE, fill_frame_desc


def _run(mod, frame, o):
    out = np.full(o.output_shape(1), np.nan, o.np_dtype)
    g = FrameGeometry.compute(frame.shape[1], frame.shape[0], o)
    desc = np.zeros((), FRAME_DESC_DTYPE)
    fill_frame_desc(desc, o, g, frame.__array_interface__["data"][0], frame.strides[0])
    mod.launch("preprocess_u8", launch_grid(o, 1), BLOCK, None, desc.tobytes(), np.int64(0),
               out, np.int32(o.width), np.int32(o.height),
               *[np.float32(v) for v in kernel_norm_args(o)])
    return out, g


@pytest.mark.parametrize("h,w,oh,ow,letterbox,interp", [
    (1080, 96, 300, 300, False, "linear"), (720, 64, 300, 300, False, "linear"),
    (361, 77, 300, 300, False, "linear"), (1080, 120, 320, 320, True, "linear"),
    (97, 33, 300, 300, False, "linear"), (1080, 64, 300, 300, False, "nearest"),
    (479, 53, 300, 300, True, "nearest")])
def test_rows_outside_the_list_do_not_change_the_output(h, w, oh, ow, letterbox, interp):
    pytest.importorskip("cv2")
    o = PreprocessOptions(width=ow, height=oh, letterbox=letterbox, interpolation=interp)
    mod = compile_cpu_module("preprocess/preprocess.cu", o.kernel_defines())
    rng = np.random.RandomState(h * 7 + w)
    frame = rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)
    ref, g = _run(mod, frame, o)
    rows = R.rows_read(o, g)
    assert rows.min() >= 0 and rows.max() < h
    noisy = rng.randint(0, 256, size=frame.shape).astype(np.uint8)
    noisy[rows] = frame[rows]
    got, _ = _run(mod, noisy, o)
    assert np.array_equal(got, ref)
    if h > 2 * oh:                       # a strong downscale reads about two rows per output
        assert len(rows) <= 2 * (g.inner_size[1] if letterbox else oh) + 2


@pytest.mark.parametrize("h,oh,worth", [(1080, 300, True), (720, 300, True), (1080, 320, True),
                                        (2160, 300, True), (1081, 300, True),
                                        (1081, 299, False),
                                        (480, 300, False), (300, 300, False)])
def test_copy_plan_covers_exactly_the_rows(h, oh, worth):
    o = PreprocessOptions(width=300, height=oh)
    g = FrameGeometry.compute(640, h, o)
    rows = R.rows_read(o, g)
    plan = R.copy_plan(rows, h)
    # below a 15% saving (a mild downscale reads nearly every row), or when the rows need
    # more than MAX_BLOCKS copies (an irregular ratio), the frame goes up whole
    assert (plan is not None) == worth, (len(rows), h)
    if plan is None:
        assert (len(rows) > (1 - R.MIN_SAVING) * h
                or len(R.copy_plan(rows, h, max_blocks=10 ** 6)) > R.MAX_BLOCKS)
        return
    assert R.plan_rows(plan) == list(rows)
    assert len(plan) <= R.MAX_BLOCKS
    for b in plan:
        assert b.count == 1 or b.period >= b.rows       # no copy overlaps itself


def test_1080p_to_300_is_600_rows_in_5_copies():
    o = PreprocessOptions(width=300, height=300)
    rows = R.rows_read(o, FrameGeometry.compute(1920, 1080, o))
    plan = R.copy_plan(rows, 1080)
    assert len(rows) == 600 and plan is not None and len(plan) == 5
    assert sum(b.rows * b.count for b in plan) == 600


def test_no_saving_no_plan():
    assert R.copy_plan(np.arange(100), 100) is None
    assert R.copy_plan(np.arange(0, 100, 2), 100, max_blocks=0) is None


@pytest.mark.parametrize("h,w", [(1080, 1920), (721, 1283)])
def test_row_upload_gives_the_bits_of_a_full_upload_on_the_gpu(cuda_context, h, w):
    """On a GPU: a pinned frame's read rows copied into a poisoned device frame, then
    preprocessed there, equal the preprocessing of the whole frame from the host."""
    import pycuda.driver as drv
    from trtssd.gpu.cuda import DeviceArray, pinned_empty
    from trtssd.preprocess import GpuPreprocessor
    o = PreprocessOptions(width=300, height=300)
    rng = np.random.RandomState(h)
    host = pinned_empty((h, w, 3), np.uint8)
    host[...] = rng.randint(0, 256, size=host.shape)
    rows = R.rows_read(o, FrameGeometry.compute(w, h, o))
    plan = R.copy_plan(rows, h, max_blocks=10 ** 6)
    dev = DeviceArray((h, w, 3), np.uint8)
    out_a = DeviceArray(o.output_shape(1), np.float32)
    out_b = DeviceArray(o.output_shape(1), np.float32)
    stream = drv.Stream()
    with GpuPreprocessor(o, max_batch=1, max_frame_shape=(h, w, 3)) as pre:
        try:
            dev.fill_bytes(0xA5)
            out_a.fill_bytes(0xFF)
            out_b.fill_bytes(0xFF)
            pre.preprocess(host, out=out_a, stream=stream)
            R.upload_rows(plan, host, dev.ptr, stream)
            pre.preprocess(dev, out=out_b, stream=stream)
            stream.synchronize()
            a, b = out_a.copy_to_host(), out_b.copy_to_host()
            assert np.isfinite(a).all() and np.array_equal(a, b)
            back = dev.copy_to_host()
            assert np.array_equal(back[rows], host[rows])          # the read rows went up
            others = np.setdiff1d(np.arange(h), rows)
            assert (back[others] == 0xA5).all()                     # and nothing else
        finally:
            for x in (dev, out_a, out_b):
                x.close()
            host.close()


class _HostMemcpy2D(object):
    """pycuda's Memcpy2D for host-to-"device" copies where device memory is host memory."""
    def set_src_host(self, arr):
        self.src = np.frombuffer(arr, np.uint8).ctypes.data

    def set_dst_device(self, ptr):
        self.dst = int(ptr)

    def __call__(self, stream=None):
        import ctypes
        assert self.src_pitch >= self.width_in_bytes and self.dst_pitch >= self.width_in_bytes
        for r in range(self.height):
            ctypes.memmove(self.dst + r * self.dst_pitch, self.src + r * self.src_pitch,
                           self.width_in_bytes)


@pytest.mark.parametrize("h,w,oh", [(1080, 40, 300), (720, 33, 300), (1081, 17, 300)])
def test_upload_rows_copies_the_read_rows_and_nothing_else(monkeypatch, h, w, oh):
    import types
    import trtssd.gpu.cuda as tcuda
    monkeypatch.setattr(tcuda, "_driver", types.SimpleNamespace(Memcpy2D=_HostMemcpy2D))
    o = PreprocessOptions(width=300, height=oh)
    rows = R.rows_read(o, FrameGeometry.compute(w, h, o))
    plan = R.copy_plan(rows, h, max_blocks=10 ** 6)
    rng = np.random.RandomState(w)
    host = rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)
    dev = np.full((h, w, 3), 0xA5, np.uint8)
    R.upload_rows(plan, host, dev.ctypes.data, stream=None)
    assert np.array_equal(dev[rows], host[rows])
    assert (dev[np.setdiff1d(np.arange(h), rows)] == 0xA5).all()
