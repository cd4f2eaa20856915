"""On a GPU with PyNvVideoCodec and the PyTorch backend: an H.264 clip decoded by NVDEC (NV12
frames on the GPU, read in place) gives the detections of the same clip decoded by OpenCV in
every mode, multi with several decoders too. Tolerances as in test_pipeline_gpu.py (the NV12
path converts colour in the kernel, OpenCV's BGR comes from FFmpeg's own conversion: about one
grey level apart, as between the GPU and CPU preprocessing)."""
import numpy as np
import pytest

from tests.pipeline.test_pipeline_gpu import Keep, assert_match
from tests.support import clips
from trtssd.pipeline import PipelineOptions, run

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def h264(tmp_path_factory):
    pytest.importorskip("skimage")
    return clips.clip("pictures-480x360", tmp_path_factory.mktemp("nvdec"))


@pytest.fixture(scope="module")
def backend(cuda_context, tflite_model):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA here")
    from trtssd.io import nvdec
    reason = nvdec.unavailable_reason()
    if reason:
        pytest.skip(reason)
    from trtssd.preprocess import PreprocessOptions
    try:
        PreprocessOptions(input_format="NV12")
    except Exception as e:
        pytest.skip("the preprocessing does not read NV12 frames here (%s)" % e)
    from trtssd.backends import create_backend
    b = create_backend("torch", model=tflite_model, device="cuda", max_batch=3)
    yield b
    b.close()


def _run(path, backend, mode, decode, nsources=1, depth=2):
    from trtssd.io.sources import open_source
    srcs = [open_source(path, decode=decode, source_id="s%d" % k) for k in range(nsources)]
    keep = Keep()
    try:
        stats = run(srcs, backend, keep, PipelineOptions(mode=mode, depth=depth,
                                                         source_timeout_ms=5000))
    finally:
        for s in srcs:
            s.close()
    return stats, sorted(keep.got, key=lambda g: (g[0], g[1]))


@pytest.mark.parametrize("mode,nsources", [("gpu", 1), ("pipelined", 1), ("multi", 3),
                                           ("sync", 1)])
def test_nvdec_frames_give_the_detections_of_cpu_decode(h264, backend, mode, nsources):
    st_c, cpu = _run(h264, backend, mode, "cpu", nsources)
    st_g, gpu = _run(h264, backend, mode, "gpu", nsources)
    assert st_g.frames == st_c.frames == 9 * nsources
    assert any("NVDEC" in n for n in st_g.notes)
    assert_match(gpu, cpu, "%s, NVDEC vs OpenCV decode" % mode)
