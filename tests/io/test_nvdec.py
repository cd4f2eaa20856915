"""--decode auto|gpu|cpu: which decoder a source gets, and what it says; on a GPU with
PyNvVideoCodec, NVDEC's NV12 frames against FFmpeg's decode of the same H.264 clip (H.264
decoding is exact, so the bytes must be equal)."""
import argparse
import os
import sys

import numpy as np
import pytest

from tests.conftest import gpu_unavailable_reason
from tests.support import clips
from trtssd.core.errors import EnvironmentProblem, InputError
from trtssd.io import nvdec
from trtssd.io.sources import VideoSource, open_source


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return clips.clip("small-96x64", tmp_path_factory.mktemp("clip"))


def _no_nvc(monkeypatch):
    """As if PyNvVideoCodec were not installed."""
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)


def test_decode_argument():
    p = nvdec.add_decode_argument(argparse.ArgumentParser())
    assert p.parse_args([]).decode == "auto"
    assert p.parse_args(["--decode", "gpu"]).decode == "gpu"
    with pytest.raises(SystemExit):
        p.parse_args(["--decode", "fpga"])


def test_cpu_decode_is_opencv_and_says_so(clip):
    src = open_source(clip, decode="cpu")
    try:
        assert isinstance(src, VideoSource)
        assert src.read().image.shape == (64, 96, 3)
    finally:
        src.close()
    src = nvdec.open_decoded(clip, "cpu")
    try:
        assert src.decode == "cpu" and "OpenCV" in src.decode_note
    finally:
        src.close()


def test_auto_falls_back_to_the_cpu_and_says_why(clip, monkeypatch):
    _no_nvc(monkeypatch)
    src = open_source(clip, decode="auto")
    try:
        assert isinstance(src, VideoSource) and src.decode == "cpu"
        assert "pynvvideocodec" in src.decode_note and "NVDEC is not usable" in src.decode_note
    finally:
        src.close()


def test_gpu_insists_and_names_the_fix(clip, monkeypatch):
    _no_nvc(monkeypatch)
    with pytest.raises(EnvironmentProblem) as e:
        open_source(clip, decode="gpu")
    assert "--decode cpu" in str(e.value)
    with pytest.raises(InputError) as e:
        open_source("synthetic:32x32", decode="gpu")
    assert "--decode gpu" in str(e.value)
    with pytest.raises(InputError):
        nvdec.open_decoded(clip, "fpga")


def test_auto_leaves_other_sources_alone(monkeypatch):
    _no_nvc(monkeypatch)
    src = open_source("synthetic:32x32", decode="auto", frames=1)
    try:
        assert src.read() is not None and getattr(src, "pixel_format", "BGR") == "BGR"
    finally:
        src.close()
    assert nvdec.decodable("rtsp://127.0.0.1/x") and not nvdec.decodable("synthetic:8x8")
    assert not nvdec.decodable(3)


def test_unavailable_reason_is_text_without_a_gpu(monkeypatch):
    _no_nvc(monkeypatch)
    reason = nvdec.unavailable_reason()
    assert reason and isinstance(reason, str)


def test_planes_of_one_nv12_array_and_of_plane_lists():
    class A(object):
        def __init__(self, ptr, shape, strides):
            self.__cuda_array_interface__ = {"data": (ptr, False), "shape": shape,
                                             "strides": strides, "typestr": "|u1",
                                             "version": 3}

    one = A(4096, (96, 64), (128, 1))                 # (H*3/2, W) with a 128-byte pitch
    assert nvdec._planes(one, 64, 64) == [(4096, 128, 64, 0), (4096 + 128 * 64, 128, 32, 64)]

    class P(object):
        def cuda(self):
            return [A(1000, (64, 64, 1), (256, 1, 1)), A(90000, (32, 32, 2), (256, 2, 1))]
    assert nvdec._planes(P(), 64, 64) == [(1000, 256, 64, 0), (90000, 256, 32, 64)]


# ---------------------------------------------------------------------------------------------
# GPU (the lead runs these on the H200): NVDEC frames equal FFmpeg's, in every buffer kind
# ---------------------------------------------------------------------------------------------

def _reference_nv12(path):
    """FFmpeg's NV12 frames of ``path`` through PyAV, or the ones carried beside a carried
    clip (tests.support.clips writes them where PyAV is)."""
    carried = path[:-len(".mp4")] + ".nv12.npy"
    try:
        import av
    except ImportError:
        if os.path.isfile(carried):
            return list(np.load(carried))
        pytest.skip("PyAV is needed for FFmpeg's reference decode, and no %s was carried"
                    % carried)
    return clips.nv12_frames(av, path)


def _nvdec_or_skip(clip, **kw):
    reason = gpu_unavailable_reason() or nvdec.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return nvdec.NvdecSource(clip, **kw)


def test_nvdec_frames_equal_ffmpeg_on_the_device(cuda_context, clip):
    ref = _reference_nv12(clip)
    src = _nvdec_or_skip(clip)
    try:
        assert (src.width, src.height, src.pixel_format) == (96, 64, "NV12")
        frames = []
        while True:
            f = src.read()
            if f is None:
                break
            assert f.image.shape == (96, 96) and hasattr(f.image, "__cuda_array_interface__")
            frames.append(f.image.copy_to_host())
            f.done()
        assert len(frames) == len(ref) == 12
        for k, (a, b) in enumerate(zip(frames, ref)):
            assert np.array_equal(a, b), k
    finally:
        src.close()


def test_nvdec_host_frames_and_ring_back_pressure(cuda_context, clip):
    ref = _reference_nv12(clip)
    src = _nvdec_or_skip(clip, buffers=2)
    try:
        from trtssd.gpu.cuda import pinned_empty
        src.device_frames = False
        bufs = []

        def alloc(shape):
            bufs.append(pinned_empty(shape, np.uint8))
            return bufs[-1]
        assert src.provide_buffers(alloc, None, 3)
        held = [src.read() for _ in range(3)]      # every ring buffer out (3 asked)
        assert not src._ring._free
        for k, f in enumerate(held):
            assert np.array_equal(np.asarray(f.image), ref[k])
        held[0].done()
        f = src.read()                              # the buffer given back is reused
        assert np.array_equal(np.asarray(f.image), ref[3])
        out = np.zeros((96, 96), np.uint8)
        g = src.read(out=out)                       # a pageable host array of the caller
        assert g.image is out and np.array_equal(out, ref[4])
        for x in held[1:] + [f]:
            x.done()
    finally:
        src.close()
