"""preprocess.cu on the CPU shim with exactly the arguments GpuPreprocessor gives it (the same
frame descriptors from trtssd.preprocess.plan and normalisation constants; pointers are host
addresses), the output poisoned with NaN between guard bands that must stay untouched."""
import numpy as np

from support.frames import tolerance
from support.kernel_shim import compile_cpu_module
from trtssd.preprocess import FrameGeometry, cpu_preprocess
from trtssd.preprocess.frames import YuvFrame, frame_size
from trtssd.preprocess.gpu import BLOCK, kernel_norm_args, launch_grid
from trtssd.preprocess.plan import fill_frame_desc, frame_desc_dtype

GUARD = 37


def _addr(a):
    return a.__array_interface__["data"][0]


def _where(f, o):
    """(ptr, pitch, width, height, chroma or None) of a frame: an array (any row pitch, packed
    pixels; YUV: OpenCV's single buffer, chroma derived) or a host YuvFrame (its planes)."""
    if isinstance(f, YuvFrame):
        planes, pitches = f.planes, f.pitches
        chroma = (_addr(planes[1]), pitches[1]) + (
            (_addr(planes[2]), pitches[2]) if len(planes) == 3 else (0, 0))
        return _addr(planes[0]), pitches[0], f.width, f.height, chroma
    h, w = frame_size(f.shape, o, "frame")
    return _addr(f), f.strides[0], w, h, None


def run_kernel(frames, o, force_table=False, uniform_stride=None):
    """Launch preprocess_u8 on the shim. Uniform path (frame 0's descriptor, frames
    ``uniform_stride`` bytes apart) unless ``force_table``: one descriptor per frame."""
    mod = compile_cpu_module("preprocess/preprocess.cu", o.kernel_defines())
    n = len(frames)
    total = int(np.prod(o.output_shape(n)))
    flat = np.full(total + 2 * GUARD, np.nan, o.np_dtype)
    out = flat[GUARD:GUARD + total].reshape(o.output_shape(n))
    where = [_where(f, o) for f in frames]
    geoms = [FrameGeometry.compute(w, h, o) for _, _, w, h, _ in where]
    norm = [np.float32(v) for v in kernel_norm_args(o)]
    grid = launch_grid(o, n)
    dt = frame_desc_dtype(o)
    desc0 = np.zeros((), dt)
    if force_table:
        table = np.zeros(n, dt)
        for k, ((p, pitch, _, _, c), g) in enumerate(zip(where, geoms)):
            fill_frame_desc(table[k], o, g, p, pitch, c)
        mod.launch("preprocess_u8", grid, BLOCK, table, desc0.tobytes(), np.int64(0), out,
                   np.int32(o.width), np.int32(o.height), *norm)
    else:
        p, pitch, _, _, c = where[0]
        fill_frame_desc(desc0, o, geoms[0], p, pitch, c)
        mod.launch("preprocess_u8", grid, BLOCK, None, desc0.tobytes(),
                   np.int64(uniform_stride or 0), out, np.int32(o.width), np.int32(o.height),
                   *norm)
    assert np.isnan(flat[:GUARD]).all() and np.isnan(flat[GUARD + total:]).all(), \
        "the kernel wrote outside its output"
    assert not np.isnan(out).any(), "the kernel left output elements unwritten"
    return out, geoms


def check(frames, o, ref_frames=None, **kw):
    """run_kernel against cpu_preprocess (of ``ref_frames`` if given) within tolerance(o)."""
    got, geoms = run_kernel(frames, o, **kw)
    ref, rgeoms = cpu_preprocess(frames if ref_frames is None else ref_frames, o)
    assert geoms == rgeoms
    atol, rtol = tolerance(o)
    np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), atol=atol,
                               rtol=rtol, err_msg=str(o))
    return got
