"""A source's pixel_format reaches the preprocessing of the slots a mode makes: NV12 host
frames through the CPU modes give the detections of the BGR frames OpenCV converts them to
(the reference converts with cv2.cvtColor, then resizes as for BGR: the same network input).
Sources that disagree on the format cannot be batched together."""
import numpy as np
import pytest

from trtssd.core.errors import InputError
from trtssd.io.sources import Source
from trtssd.pipeline import PipelineOptions, pixel_format_of, run

cv2 = pytest.importorskip("cv2")


def _nv12(bgr):
    h, w = bgr.shape[:2]
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    y, u, v = i420[:h], i420[h:h + h // 4].reshape(-1), i420[h + h // 4:].reshape(-1)
    uv = np.empty(u.size * 2, np.uint8)
    uv[0::2], uv[1::2] = u, v
    return np.concatenate([y.reshape(-1), uv]).reshape(h * 3 // 2, w)


class Frames(Source):
    def __init__(self, images, fmt, sid):
        Source.__init__(self)
        self.images, self.pixel_format, self.source_id = images, fmt, sid
        self.height, self.width = 96, 128

    def read(self, out=None):
        if self._next_index >= len(self.images):
            return None
        im = self.images[self._next_index]
        if out is not None:
            np.copyto(out, im)
            im = out
        return self._frame(im, None)


class Keep(object):
    draws = False

    def __init__(self):
        self.got = []

    def write(self, frame, dets):
        self.got.append((np.array(dets.boxes), np.array(dets.scores), np.array(dets.class_ids)))


def test_pixel_format_of_sources():
    class S(object):
        pass
    a, b = S(), S()
    assert pixel_format_of([a]) == "BGR"
    b.pixel_format = "nv12"
    assert pixel_format_of([b, b]) == "NV12"
    with pytest.raises(InputError) as e:
        pixel_format_of([a, b])
    assert "BGR, NV12" in str(e.value)


@pytest.mark.parametrize("mode", ["sync", "pipelined", "multi"])
def test_nv12_frames_give_the_detections_of_their_bgr(tflite_model, mode):
    pytest.importorskip("onnxruntime")
    from trtssd.backends import create_backend
    from trtssd.preprocess import PreprocessOptions
    try:
        PreprocessOptions(input_format="NV12")
    except InputError as e:
        pytest.skip("no NV12 preprocessing here (%s)" % e)
    rng = np.random.RandomState(5)
    bgr = [cv2.GaussianBlur(rng.randint(0, 256, (96, 128, 3)).astype(np.uint8), (9, 9), 3)
           for _ in range(4)]
    nv12 = [_nv12(b) for b in bgr]
    seen = [cv2.cvtColor(n, cv2.COLOR_YUV2BGR_NV12) for n in nv12]     # what NV12 shows
    backend = create_backend("onnxruntime", model=tflite_model, device="cpu", max_batch=2)
    try:
        out = {}
        for fmt, images in (("NV12", nv12), ("BGR", seen)):
            srcs = [Frames(images, fmt, "s%d" % k) for k in range(2 if mode == "multi" else 1)]
            keep = Keep()
            st = run(srcs, backend, keep, PipelineOptions(mode=mode, score_threshold=0.01,
                                                          source_timeout_ms=5000))
            assert st.frames == 4 * len(srcs)
            out[fmt] = keep.got
    finally:
        backend.close()
    for (b1, s1, c1), (b2, s2, c2) in zip(out["NV12"], out["BGR"]):
        np.testing.assert_allclose(s1, s2, atol=1e-5)
        np.testing.assert_allclose(b1, b2, atol=1e-3)
        assert np.array_equal(c1, c2)
