"""The one mapping of boxes back to the frame (trtssd.core.geometry) against a plain NumPy
reference written here, on random boxes (some outside the input, so the clip matters) and
geometries with and without letterbox: equal bit for bit (the same float64 operations in the
same order, one float32 cast at the end), the caller's arrays untouched, and a geometry's
equality and hash unchanged by the constants it keeps."""
import numpy as np
import pytest

from trtssd.core.geometry import FrameGeometry, boxes_to_frame


class Options(object):
    def __init__(self, width, height, letterbox):
        self.width, self.height, self.letterbox = width, height, letterbox


def reference(norm, g, w, h):
    b = np.asarray(norm, np.float64).reshape(-1, 4)
    xy = np.stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], 1)
    if g is None:
        lim = np.array([w, h, w, h], np.float64)
    else:
        xy = np.stack([(xy[:, 0] - g.pad_x) / g.scale_x, (xy[:, 1] - g.pad_y) / g.scale_y,
                       (xy[:, 2] - g.pad_x) / g.scale_x, (xy[:, 3] - g.pad_y) / g.scale_y], 1)
        lim = np.array([g.frame_width, g.frame_height] * 2, np.float64)
    return np.minimum(np.maximum(xy, 0.0), lim).astype(np.float32)


@pytest.mark.parametrize("letterbox", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_boxes_to_frame_is_the_reference_bit_for_bit(letterbox, dtype):
    rng = np.random.default_rng()
    for _ in range(20):
        fw, fh = (int(v) for v in rng.integers(17, 2000, 2))
        w, h = (int(v) for v in rng.integers(31, 640, 2))
        g = FrameGeometry.compute(fw, fh, Options(w, h, letterbox))
        k = int(rng.integers(0, 13))
        rows = rng.uniform(-0.2, 1.2, (k, 8)).astype(dtype)   # kernel-like rows, boxes in 0:4
        norm = rows[:, :4]
        before = rows.copy()
        for geo in (g, None):
            got = boxes_to_frame(norm, geo, w, h)
            want = reference(norm, geo, w, h)
            assert got.dtype == np.float32 and got.shape == (k, 4)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        np.testing.assert_array_equal(rows, before)
        net = rng.uniform(-20, w + 20, (k, 4))
        net_before = net.copy()
        want = np.minimum(np.maximum((net - np.array([g.pad_x, g.pad_y] * 2, np.float64))
                                     / np.array([g.scale_x, g.scale_y] * 2), 0.0),
                          np.array([fw, fh, fw, fh], np.float64)).astype(np.float32)
        np.testing.assert_array_equal(g.to_frame(net), want)     # network-input pixels back
        np.testing.assert_array_equal(net, net_before)


def test_a_geometry_keeps_its_equality_and_hash_after_use():
    o = Options(300, 300, True)
    a, b = FrameGeometry.compute(1280, 720, o), FrameGeometry.compute(1280, 720, o)
    boxes_to_frame(np.zeros((1, 4), np.float32), a, 300, 300)
    boxes_to_frame(np.zeros((1, 4), np.float32), a, 320, 320)     # another input size
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    got = boxes_to_frame(np.array([[0.5, 0.5, 1.0, 1.0]], np.float32), a, 300, 300)
    np.testing.assert_array_equal(got, reference([[0.5, 0.5, 1.0, 1.0]], b, 300, 300))
