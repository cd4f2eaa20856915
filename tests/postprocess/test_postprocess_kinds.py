"""Every output kind and NMS family through the real postprocess.cu on the CPU shim, against the
NumPy reference (trtssd.postprocess.select_frame), on fresh seeded random outputs of odd
sizes: decoded boxes in each form, activations none/sigmoid/softmax, with and without a
background column, fast, per-class (with pytorch-ssd's per-class candidate cap) and no NMS.

Tolerances: activated scores are computed in float32 by the kernel (glibc's expf here) and in
float64 rounded once by NumPy: a few ulp, 2e-6 relative. Decoded corners are copied or
computed with the same float32 operations: exact; encoded boxes: 2e-6 (as the TFLite tests).
The seeds are fixed, so a near-tie that sorts differently would fail every run, not some.
"""
import numpy as np
import pytest

from test_postprocess_kernel_cpu import fake_gpu, run_kernels  # noqa: F401 (a fixture)
from trtssd.core.spec import BoxCoder, ModelSpec, NmsParams, OutputFormat
from trtssd.postprocess import kernel_defines, kernel_steps, select_frame

f32 = np.float32


def make_spec(rng, a, c, fmt, activation, background, method, **nms):
    kind = "raw" if fmt in ("yxhw", "xywh") else "decoded"
    anchors = np.zeros((0, 4), f32)
    if kind == "raw":
        centres = rng.uniform(0.1, 0.9, size=(20, 2))
        yx = centres[rng.integers(0, 20, size=a)] + rng.normal(0, 0.02, (a, 2))
        anchors = np.concatenate([yx, rng.uniform(0.05, 0.5, (a, 2))], 1).astype(f32)
    out = OutputFormat(kind=kind, box_format="encoded" if kind == "raw" else fmt,
                       encoding_order=fmt if kind == "raw" else "yxhw", activation=activation,
                       background=background)
    params = dict(score_threshold=0.0, iou_threshold=nms.pop("iou", 0.5), max_detections=100,
                  method=method)
    params.update(nms)
    return ModelSpec("kinds", 300, 300, (0,) * 3, (1,) * 3, "RGB", c, anchors,
                     BoxCoder(10., 10., 5., 5.), NmsParams(**params), outputs=out,
                     num_boxes=a if kind != "raw" else 0)


def make_outputs(rng, spec, n, hot, activation):
    a, c = spec.num_anchors, spec.num_classes
    fmt = spec.outputs.box_format
    if fmt == "encoded":
        boxes = rng.normal(0, 1, size=(n, a, 4)).astype(f32)
    else:
        centres = rng.uniform(0.1, 0.9, size=(15, 2))
        ctr = centres[rng.integers(0, 15, size=(n, a))] + rng.normal(0, 0.03, (n, a, 2))
        wh = rng.uniform(0.05, 0.4, size=(n, a, 2))
        if fmt == "cxcywh":
            boxes = np.concatenate([ctr, wh], 2)
        else:
            lo, hi = ctr - wh / 2, ctr + wh / 2
            boxes = np.concatenate([lo, hi], 2)        # xyxy
            if fmt == "yxyx":
                boxes = boxes[..., [1, 0, 3, 2]]
        boxes = np.ascontiguousarray(boxes, dtype=f32)   # the kernels read C order
    logits = rng.normal(-4, 1.5, size=(n, a, c))
    for f in range(n):
        idx = rng.choice(a, size=min(hot, a), replace=False)
        logits[f, idx, rng.integers(0, c, size=len(idx))] += rng.uniform(3, 9, size=len(idx))
    if activation == "none":     # already probabilities (softmax outputs, as pytorch-ssd's)
        e = np.exp(logits - logits.max(2, keepdims=True))
        return boxes, (e / e.sum(2, keepdims=True)).astype(f32)
    return boxes, logits.astype(f32)


def check(spec, boxes, scores, thr, max_det, exact_scores):
    _, _, out = run_kernels(spec, boxes, scores, thr, max_det)
    total = 0
    for f in range(scores.shape[0]):
        idx, cls, sc, bx = select_frame(boxes[f], scores[f], spec, thr, max_det)
        k = int(out[f, 0])
        rows = out[f, 8:8 + k * 8].reshape(-1, 8)
        assert k == len(idx), "frame %d: kernel kept %d, NumPy %d" % (f, k, len(idx))
        assert np.all(np.isfinite(rows)), "a kept row was not fully written"
        np.testing.assert_array_equal(rows[:, 6].astype(np.int64), idx)
        np.testing.assert_array_equal(rows[:, 5].astype(np.int64), cls)
        if exact_scores:
            np.testing.assert_array_equal(rows[:, 4], sc)
        else:
            np.testing.assert_allclose(rows[:, 4], sc, rtol=2e-6, atol=0)
        atol = 2e-6 if spec.outputs.box_format == "encoded" else 0
        np.testing.assert_allclose(rows[:, :4], bx, rtol=0, atol=atol)
        assert np.all(np.isnan(out[f, 8 + k * 8:])), "rows past the count were written"
        total += k
    return out, total


@pytest.mark.parametrize("a,c,fmt,act,bg,method,extra,thr,md,seed", [
    # pytorch-ssd's layout and Predictor (odd anchor count: partial tiles)
    (997, 21, "xyxy", "none", 0, "per_class",
     dict(score_inclusive=False, iou_eps=1e-5, candidates_per_class=200, iou=0.45),
     0.3, 100, 1),
    (301, 7, "cxcywh", "softmax", None, "per_class", {}, 0.25, 50, 2),
    (513, 5, "yxyx", "sigmoid", 0, "per_class", dict(score_inclusive=False), 0.4, 100, 3),
    (777, 13, "yxyx", "softmax", None, "fast", {}, 0.3, 100, 4),
    (450, 9, "xywh", "sigmoid", 0, "fast", dict(iou=0.6), 0.35, 37, 5),
    (200, 4, "yxhw", "softmax", 2, "per_class", dict(iou=0.3), 0.2, 100, 6),
    (130, 6, "xyxy", "none", None, "none", {}, 0.2, 100, 7),
    (3000, 21, "xyxy", "none", 0, "per_class",                       # mb1-ssd's own shape
     dict(score_inclusive=False, iou_eps=1e-5, candidates_per_class=200, iou=0.45),
     0.3, 100, 8),
])
def test_kinds_match_numpy(a, c, fmt, act, bg, method, extra, thr, md, seed):
    rng = np.random.default_rng(seed)
    spec = make_spec(rng, a, c, fmt, act, bg, method, **extra)
    boxes, scores = make_outputs(rng, spec, 2, max(20, a // 3), act)
    _, total = check(spec, boxes, scores, thr, md, exact_scores=act == "none")
    assert total > 4


def test_kernel_steps_per_kind():
    rng = np.random.default_rng(0)
    assert kernel_steps(make_spec(rng, 64, 3, "xyxy", "none", 0, "per_class")) == (
        "ssd_sort", "ssd_nms")
    assert kernel_steps(make_spec(rng, 64, 3, "xyxy", "softmax", 0, "per_class"))[0] == \
        "ssd_best_class"
    assert kernel_steps(make_spec(rng, 64, 3, "xyxy", "none", 0, "none")) == (
        "ssd_best_class", "ssd_sort")
    d = kernel_defines(make_spec(rng, 3000, 21, "xyxy", "none", 0, "per_class",
                                 score_inclusive=False, iou_eps=1e-5, candidates_per_class=200))
    assert d["MAX_CAND"] == 4096 and d["METHOD"] == 1 and d["CAND_PER_CLASS"] == 200
    assert d["BOX_FORM"] == 3 and d["SCORE_INCLUSIVE"] == 0


def test_per_class_candidate_cap_on_the_kernel():
    # 260 disjoint boxes of class 1 above the threshold and 30 of class 2: the cap of 200
    # drops class 1's 60 weakest (they would all survive NMS), class 2 is untouched.
    a, c = 320, 3
    rng = np.random.default_rng(9)
    spec = make_spec(rng, a, c, "xyxy", "none", 0, "per_class", candidates_per_class=200,
                     score_inclusive=False)
    x = (np.arange(a, dtype=f32) % 20) * 0.05
    y = (np.arange(a, dtype=f32) // 20) * 0.05
    boxes = np.stack([x, y, x + 0.01, y + 0.01], 1)[None].astype(f32)
    scores = np.zeros((1, a, c), f32)
    scores[0, :260, 1] = rng.uniform(0.5, 0.99, 260)
    scores[0, 260:290, 2] = rng.uniform(0.5, 0.99, 30)
    out, total = check(spec, boxes, scores, 0.3, 100, exact_scores=True)
    # max_det 100 keeps the best 100 overall; with a larger cap of the output the counts show
    idx, cls = select_frame(boxes[0], scores[0], spec, 0.3, 100000)[:2]
    assert np.count_nonzero(cls == 1) == 200 and np.count_nonzero(cls == 2) == 30
    assert out[0, 1] == 290


def test_candidate_overflow_is_reported():
    # more (anchor, class) pairs above the threshold than MAX_CAND: the count of all is
    # reported (the host refuses it, naming --threshold), nothing is written out of bounds
    a, c = 300, 3
    rng = np.random.default_rng(10)
    spec = make_spec(rng, a, c, "xyxy", "none", None, "per_class")
    d = kernel_defines(spec, max_candidates=256)
    assert d["MAX_CAND"] == 256
    boxes, _ = make_outputs(rng, spec, 1, 10, "none")
    scores = np.full((1, a, c), 0.9, f32)
    from support.kernel_shim import compile_cpu_module
    mod = compile_cpu_module("postprocess/postprocess.cu", defines=d)
    cand = [np.full((1, 256, 4), np.nan, f32), np.full((1, 256), np.nan, f32),
            np.full((1, 256), -7, np.int32), np.full((1,), -7, np.int32),
            np.full((1, 256), -7, np.int32)]
    out = np.full((1, 8 + 800), np.nan, f32)
    best = np.zeros((1, a), f32), np.zeros((1, a), np.int32)
    mod.launch("ssd_sort", (1, 1, 1), (1024, 1, 1), boxes, np.zeros((1, 4), f32), scores,
               best[0], best[1], np.int32(a), f32(0.5), f32(10), f32(10), f32(5), f32(5),
               np.int32(100), *(cand + [out]))
    assert cand[3][0] == a * c
    assert np.all(np.isfinite(cand[1][0]))       # the first 256 were stored


@pytest.mark.parametrize("act,method", [("none", "per_class"), ("softmax", "per_class"),
                                        ("sigmoid", "none")])
def test_gpu_postprocessor_host_logic_per_kind(fake_gpu, act, method):
    # GpuPostprocessor's launches for the new kinds (which kernels, their arguments in the
    # kernels' order) on the fake driver running the shim, against NumPy; the per-class
    # overflow refused with the flag to change.
    from trtssd.core.errors import InputError
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.postprocess import GpuPostprocessor, postprocess_cpu
    rng = np.random.default_rng(40)
    spec = make_spec(rng, 600, 21, "xyxy", act, 0, method, score_inclusive=False)
    boxes, scores = make_outputs(rng, spec, 2, 200, act)
    with GpuPostprocessor(spec, max_batch=2, score_threshold=0.3, max_detections=100) as post, \
            DeviceArray(boxes.shape, np.float32) as b, DeviceArray(scores.shape, np.float32) as s:
        b.copy_from_host(boxes)
        s.copy_from_host(scores)
        post.enqueue(b, s, 2)
        assert [k for _, k in fake_gpu.calls] == list(kernel_steps(spec))
        gpu = post.results(None)
        cpu = postprocess_cpu(boxes, scores, spec, None, 0.3, max_detections=100)
        for f in range(2):
            np.testing.assert_array_equal(gpu[f].class_ids, cpu[f].class_ids)
            np.testing.assert_allclose(gpu[f].scores, cpu[f].scores, rtol=2e-6)
            np.testing.assert_allclose(gpu[f].boxes, cpu[f].boxes, rtol=0, atol=1e-3)
        assert sum(len(d) for d in gpu) > 4
    if act == "none":    # 600 x 20 pairs at 0.5 > 0.3: more than the 4096 the GPU sorts
        flat = np.full_like(scores, 0.5)
        with GpuPostprocessor(spec, max_batch=1, score_threshold=0.3) as post, \
                DeviceArray((1,) + boxes.shape[1:], np.float32) as b, \
                DeviceArray((1,) + scores.shape[1:], np.float32) as s:
            b.copy_from_host(boxes[:1])
            s.copy_from_host(flat[:1])
            post.enqueue(b, s, 1)
            with pytest.raises(InputError, match="raise --threshold"):
                post.results(None)


def test_pixel_boxes_map_like_normalised_ones():
    # box_units=pixels: the same boxes given in network-input pixels land on the same frame
    # pixels as their normalised twins (NMS is scale-free here: the IoUs are equal to rounding,
    # so the same boxes are kept)
    from trtssd.core.geometry import FrameGeometry
    from trtssd.postprocess import postprocess_cpu
    rng = np.random.default_rng(12)
    norm = make_spec(rng, 120, 4, "xyxy", "none", 0, "fast")
    pix = make_spec(rng, 120, 4, "xyxy", "none", 0, "fast")
    pix.outputs.normalized = False
    boxes, scores = make_outputs(rng, norm, 1, 40, "none")
    geo = FrameGeometry(640, 480, 300 / 640., 300 / 480.)
    a = postprocess_cpu(boxes, scores, norm, [geo], 0.3)[0]
    b = postprocess_cpu(boxes * f32(300), scores, pix, [geo], 0.3)[0]
    assert a.class_ids.tolist() == b.class_ids.tolist() and len(a) > 2
    np.testing.assert_allclose(a.boxes, b.boxes, rtol=0, atol=1e-3)


def test_bench_postprocess_pytorch_ssd_layout_on_the_shim(fake_gpu, monkeypatch, capsys):
    # the device script's `bench_postprocess.py --layout pytorch-ssd` path (checked against
    # NumPy first, events between the launches) with the fake driver
    import benchmarks.bench_postprocess as bp
    monkeypatch.setattr(bp, "FILLER_BYTES", 1024)
    spec = bp.pytorch_ssd_like()
    assert (spec.num_anchors, spec.num_classes, spec.nms.method) == (3000, 21, "per_class")
    enc, scores = bp.outputs(spec, 1, hot=300)
    res = bp.bench_gpu(spec, enc, scores, 0.3, iters=2, warmup_s=0.0)
    assert res["total"]["n"] == 2 and min(res["candidates_per_frame"]) > 100
    assert res["kept_per_frame"][0] > 10
    bp.print_table({"what": "x", "rows": [{"case": "worst", "batch": 1, "gpu": res,
                                           "numpy": res["total"]}]})
    assert "worst" in capsys.readouterr().out
