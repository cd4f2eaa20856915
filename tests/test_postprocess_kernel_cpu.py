"""The real source of kernels/postprocess.cu, run on the CPU through kernels/cpu_shim.h, against
the NumPy path (trtssd.postprocess.select_frame) on fresh seeded random outputs.

The defines are the ones GpuPostprocessor compiles with (trtssd.postprocess.kernel_defines), so
this runs what the GPU runs, with threads as fibers between barriers (no warps are assumed).
"""
import numpy as np
import pytest

from kernel_shim import compile_cpu_module
from trtssd.postprocess import kernel_defines, select_frame
from trtssd.spec import BoxCoder, ModelSpec, NmsParams

f32 = np.float32


def make_spec(rng, a, c, iou=0.6):
    centres = rng.uniform(0.1, 0.9, size=(25, 2))
    yx = centres[rng.integers(0, 25, size=a)] + rng.normal(0, 0.02, (a, 2))
    hw = rng.uniform(0.03, 0.6, size=(a, 2))
    return ModelSpec("shim", 300, 300, (128,) * 3, (1 / 128.,) * 3, "RGB", c,
                     np.concatenate([yx, hw], 1).astype(f32), BoxCoder(10., 10., 5., 5.),
                     NmsParams(1e-8, iou, 10, 1, 100, False))


def make_outputs(rng, spec, n, hot, levels=None):
    a, c = spec.num_anchors, spec.num_classes
    enc = rng.normal(0, 1.0, size=(n, a, 4)).astype(f32)
    logits = rng.normal(-8, 1.5, size=(n, a, c))
    for f in range(n):
        idx = rng.choice(a, size=min(hot, a), replace=False)
        logits[f, idx, rng.integers(1, c, size=len(idx))] = rng.uniform(-2, 4, size=len(idx))
    scores = 1 / (1 + np.exp(-logits))
    if levels:
        scores = np.round(scores * levels) / levels
    return enc, scores.astype(f32)


def run_kernels(spec, enc, scores, thr, max_det):
    d = kernel_defines(spec)
    mod = compile_cpu_module("postprocess.cu", defines=d)
    n, a, c = scores.shape
    best_s = np.full((n, a), np.nan, f32)                    # poisoned
    best_c = np.full((n, a), -7, np.int32)
    mod.launch("ssd_best_class", ((a + d["TILE_A"] - 1) // d["TILE_A"], n, 1),
               (d["TILE_A"] * d["PARTS"], 1, 1), scores, np.int32(a), best_s, best_c)
    stride = 8 + d["MAX_DET"] * 8
    out = np.full((n, stride), np.nan, f32)                  # poisoned
    bc = spec.box_coder
    mod.launch("ssd_nms", (n, 1, 1), (d["NMS_THREADS"], 1, 1), enc, spec.anchors, best_s, best_c,
               np.int32(a), f32(thr), f32(spec.nms.iou_threshold), f32(bc.y_scale),
               f32(bc.x_scale), f32(bc.h_scale), f32(bc.w_scale), np.int32(max_det), out)
    return best_s, best_c, out


def check(spec, enc, scores, thr, max_det):
    best_s, best_c, out = run_kernels(spec, enc, scores, thr, max_det)
    fg = scores[:, :, 1:]
    # Best class: exact (a comparison, no arithmetic), first maximum on ties.
    np.testing.assert_array_equal(best_c, np.argmax(fg, axis=2) + 1)
    np.testing.assert_array_equal(best_s, fg.max(axis=2))
    total = 0
    for f in range(scores.shape[0]):
        idx, cls, sc, boxes = select_frame(enc[f], scores[f], spec, thr, max_det)
        k = out[f, 0]
        assert k == len(idx), "frame %d: kernel kept %r, NumPy %d" % (f, k, len(idx))
        assert out[f, 1] == np.count_nonzero(fg[f].max(axis=1) >= thr)
        assert np.all(out[f, 2:8] == 0)
        rows = out[f, 8:8 + len(idx) * 8].reshape(-1, 8)
        assert np.all(np.isfinite(rows)), "a kept row was not fully written"
        np.testing.assert_array_equal(rows[:, 6].astype(np.int64), idx)
        np.testing.assert_array_equal(rows[:, 5].astype(np.int32), cls)
        np.testing.assert_array_equal(rows[:, 4], sc)
        # float32 decode (here without FMA) vs NumPy's float64 rounded once: a few ulp of
        # O(1) coordinates.
        np.testing.assert_allclose(rows[:, :4], boxes, rtol=0, atol=2e-6)
        assert np.all(rows[:, 7] == 0)
        # rows past the count stay untouched (still the poison)
        assert np.all(np.isnan(out[f, 8 + len(idx) * 8:]))
        total += len(idx)
    return total


@pytest.mark.parametrize("a,c,n,hot,thr,max_det,levels,seed", [
    (1917, 91, 2, 300, 0.3, 100, None, 1),    # the COCO SSD's shape, realistic scores
    (1917, 91, 1, 300, 1e-8, 10, None, 2),    # TFLite's threshold: all 1917 anchors sorted
    (1917, 91, 2, 400, 0.2, 100, 255, 3),     # quantised scores: ties broken by anchor index
    (997, 13, 3, 200, 0.25, 37, None, 4),     # odd sizes: partial tiles and candidate list
    (301, 2, 2, 150, 0.4, 100, 16, 5),        # one foreground class, coarse ties
    (1917, 91, 1, 0, 0.9, 100, None, 6),      # no candidate at all
])
def test_kernels_match_numpy(a, c, n, hot, thr, max_det, levels, seed):
    rng = np.random.default_rng(seed)
    spec = make_spec(rng, a, c)
    enc, scores = make_outputs(rng, spec, n, hot, levels)
    total = check(spec, enc, scores, thr, max_det)
    if hot:
        assert total > 0
    else:
        assert total == 0


def test_kernel_cap_on_kept_boxes():
    rng = np.random.default_rng(7)
    spec = make_spec(rng, 1917, 91, iou=0.95)   # little suppression: many survivors
    enc, scores = make_outputs(rng, spec, 1, 1500)
    _, _, out = run_kernels(spec, enc, scores, 0.05, 100)
    assert out[0, 0] == 100
    assert check(spec, enc, scores, 0.05, 100) == 100


def test_best_class_ties_across_parts():
    # Equal maxima in columns handled by different threads of an anchor: lowest column wins.
    rng = np.random.default_rng(8)
    spec = make_spec(rng, 130, 91)
    enc, scores = make_outputs(rng, spec, 1, 0)
    scores[0, :, 1:] = 0.25
    scores[0, 7, [3, 4, 5, 6]] = 0.75
    scores[0, 9, [90, 47]] = 0.5
    best_s, best_c, _ = run_kernels(spec, enc, scores, 0.3, 10)
    assert best_c[0, 7] == 3 and best_c[0, 9] == 47 and best_c[0, 0] == 1
    assert best_s[0, 7] == f32(0.75)


def test_iou_exactly_at_threshold_does_not_suppress():
    # Dyadic anchors, zero encodings: boxes and IoU are exact in float. A covers twice B.
    anchors = np.zeros((4, 4), f32)
    anchors[:] = [0.5, 0.5, 0.25, 0.5]             # A: [0.375, 0.25, 0.625, 0.75]
    anchors[1] = [0.5, 0.375, 0.25, 0.25]          # B: [0.375, 0.25, 0.625, 0.5], IoU 0.5
    for iou, want in ((0.5, [0, 1]), (0.4999, [0])):
        spec = ModelSpec("exact", 300, 300, (128,) * 3, (1 / 128.,) * 3, "RGB", 3, anchors,
                         BoxCoder(10., 10., 5., 5.), NmsParams(1e-8, iou, 10, 1, 100, False))
        enc = np.zeros((1, 4, 4), f32)
        scores = np.zeros((1, 4, 3), f32)
        scores[0, 0, 1] = 0.9
        scores[0, 1, 2] = 0.8
        _, _, out = run_kernels(spec, enc, scores, 0.5, 10)
        assert out[0, 8 + 6:8 + int(out[0, 0]) * 8:8].astype(int).tolist() == want
        assert select_frame(enc[0], scores[0], spec, 0.5, 10)[0].tolist() == want
