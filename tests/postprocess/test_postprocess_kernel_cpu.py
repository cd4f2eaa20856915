"""The real source of kernels/postprocess.cu, run on the CPU through kernels/cpu_shim.h, against
the NumPy path (trtssd.postprocess.select_frame) on fresh seeded random outputs.

The defines are the ones GpuPostprocessor compiles with (trtssd.postprocess.gpu.kernel_defines), so
this runs what the GPU runs, with threads as fibers between barriers (no warps are assumed).
"""
import numpy as np
import pytest

from support import fake_cuda
from support.kernel_shim import compile_cpu_module
from trtssd.postprocess import kernel_defines, kernel_steps, select_frame
from trtssd.core.spec import BoxCoder, ModelSpec, NmsParams

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


def run_kernels(spec, enc, scores, thr, max_det, scratch=None):
    """The kernels in GpuPostprocessor's order (kernel_steps), every output and scratch buffer
    poisoned. ``scratch``: a dict that receives the scratch arrays (for tests of the
    intermediate state).
    """
    d = kernel_defines(spec)
    steps = kernel_steps(spec)
    mod = compile_cpu_module("postprocess/postprocess.cu", defines=d)
    n, a, c = scores.shape
    mc = d["MAX_CAND"]
    words = mc // 64
    best_s = np.full((n, a), np.nan, f32)                    # poisoned
    best_c = np.full((n, a), -7, np.int32)
    if "ssd_best_class" in steps:
        mod.launch("ssd_best_class", ((a + d["TILE_A"] - 1) // d["TILE_A"], n, 1),
                   (d["TILE_A"] * d["PARTS"], 1, 1), scores, np.int32(a), best_s, best_c)
    cand_box = np.full((n, mc, 4), np.nan, f32)
    cand_score = np.full((n, mc), np.nan, f32)
    cand_anchor = np.full((n, mc), -7, np.int32)
    cand_count = np.full((n,), -7, np.int32)
    cand_rank = np.full((n, mc), -7, np.int32)
    mask = np.full((n, mc, words), 0xA5A5A5A5A5A5A5A5, np.uint64)
    bc = spec.box_coder
    stride = 8 + d["MAX_DET"] * 8
    out = np.full((n, stride), np.nan, f32)                  # poisoned
    anchors = spec.anchors if len(spec.anchors) else np.zeros((1, 4), f32)
    mod.launch("ssd_sort", (n, 1, 1), (d["SORT_THREADS"], 1, 1), enc, anchors, scores, best_s,
               best_c, np.int32(a), f32(thr), f32(bc.y_scale), f32(bc.x_scale),
               f32(bc.h_scale), f32(bc.w_scale), np.int32(max_det), cand_box, cand_score,
               cand_anchor, cand_count, cand_rank, out)
    if scratch is not None:
        scratch["count_after_sort"] = cand_count.copy()
    if "ssd_nms" in steps:
        done = np.zeros((n,), np.uint32)
        mod.launch("ssd_nms", (words * (words + 1) // 2, n, 1), (64, 1, 1), cand_box,
                   cand_score, cand_anchor, cand_count, f32(spec.nms.iou_threshold), mask,
                   cand_rank, best_c, np.int32(a), np.int32(max_det), done, out)
        assert np.all(done == 0), "the last tile of a frame resets its counter"
    if scratch is not None:
        scratch.update(cand_box=cand_box, cand_score=cand_score, cand_anchor=cand_anchor,
                       cand_count=cand_count, mask=mask, cand_rank=cand_rank)
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


def make_clustered_spec(rng, a, c, iou, clusters=12, spread=0.01):
    """Anchors around a few centres with similar sizes: heavy overlap, long suppression chains."""
    centres = rng.uniform(0.2, 0.8, size=(clusters, 2))
    yx = centres[rng.integers(0, clusters, size=a)] + rng.normal(0, spread, (a, 2))
    hw = rng.uniform(0.1, 0.3, size=(a, 2))
    return ModelSpec("clustered", 300, 300, (128,) * 3, (1 / 128.,) * 3, "RGB", c,
                     np.concatenate([yx, hw], 1).astype(f32), BoxCoder(10., 10., 5., 5.),
                     NmsParams(1e-8, iou, 10, 1, 100, False))


@pytest.mark.parametrize("iou,max_det,seed", [
    (0.6, 100, 11),    # every one of 1917 anchors is a candidate; 12 clusters: few kept
    (0.3, 100, 12),    # stronger suppression
    (0.9, 100, 13),    # weak suppression: the 100 cap is reached deep in the list
    (0.75, 37, 14),    # cap reached inside a 64-candidate chunk
])
def test_all_anchors_candidates_heavy_overlap(iou, max_det, seed):
    rng = np.random.default_rng(seed)
    spec = make_clustered_spec(rng, 1917, 91, iou)
    enc = (rng.normal(0, 0.3, size=(2, 1917, 4))).astype(f32)
    logits = rng.normal(0, 2, size=(2, 1917, 91))
    scores = (1 / (1 + np.exp(-logits))).astype(f32)
    scratch = {}
    run_kernels(spec, enc, scores, 1e-8, max_det, scratch)
    assert scratch["cand_count"].tolist() == [1917, 1917]
    total = check(spec, enc, scores, 1e-8, max_det)
    assert total > 2


@pytest.mark.parametrize("n_cand", [1, 63, 64, 65, 128, 129, 200])
def test_candidate_counts_at_word_boundaries(n_cand):
    # Exactly n_cand anchors pass; 0.99 IoU keeps nearly all, so the walk crosses every chunk.
    rng = np.random.default_rng(20 + n_cand)
    spec = make_spec(rng, 200, 5, iou=0.99)
    enc = rng.normal(0, 1.0, size=(1, 200, 4)).astype(f32)
    scores = np.full((1, 200, 5), 0.01, f32)
    idx = rng.choice(200, size=n_cand, replace=False)
    scores[0, idx, rng.integers(1, 5, size=n_cand)] = rng.uniform(0.5, 1.0, n_cand).astype(f32)
    _, _, out = run_kernels(spec, enc, scores, 0.4, 100)
    assert out[0, 1] == n_cand
    assert check(spec, enc, scores, 0.4, 100) == min(100, len(select_frame(
        enc[0], scores[0], spec, 0.4, 100)[0]))
    assert out[0, 0] >= min(n_cand, 2)


def test_sorted_candidates_and_suppression_matrix():
    # The intermediate state, checked directly: the sort is NumPy's stable order, and every
    # mask word the scan may read equals NumPy's IoU > threshold test on the kernel's boxes,
    # bit for bit (the kernel's IoU is rounded as NumPy's: no FMA contraction).
    from trtssd.postprocess import iou_one_to_many
    rng = np.random.default_rng(30)
    spec = make_clustered_spec(rng, 1917, 91, 0.5)
    enc, scores = make_outputs(rng, spec, 2, 700, levels=64)   # quantised: many tied scores
    scratch = {}
    run_kernels(spec, enc, scores, 0.2, 100, scratch)
    fg = scores[:, :, 1:].max(axis=2)
    for f in range(2):
        cand = np.flatnonzero(fg[f] >= 0.2)
        order = cand[np.argsort(-fg[f][cand], kind="stable")]
        n = len(order)
        assert n > 128 and scratch["cand_count"][f] == n
        np.testing.assert_array_equal(scratch["cand_anchor"][f, :n], order)
        np.testing.assert_array_equal(scratch["cand_score"][f, :n], fg[f][order])
        boxes = scratch["cand_box"][f, :n]
        assert np.all(np.isfinite(boxes))
        mask = scratch["mask"][f]
        for i in range(n):
            sup = np.zeros(n, bool)
            sup[i + 1:] = iou_one_to_many(boxes[i], boxes[i + 1:]) > 0.5
            for w in range(i // 64, (n + 63) // 64):
                seg = sup[w * 64:(w + 1) * 64]
                want = int(np.sum(seg.astype(np.uint64) << np.arange(len(seg), dtype=np.uint64)))
                assert int(mask[i, w]) == want, "frame %d row %d word %d" % (f, i, w)


# --------------------------------------------------------------------------------------------
# GpuPostprocessor's host side (buffers, the four launches' arguments in the order of the
# kernels' parameter lists, the copy, events) driven on the CPU: a fake pycuda driver whose
# "device memory" is host memory, and whose prepared functions run the real kernels on the
# shim. Not a GPU test: it catches argument-order and format mistakes before the GPU run.

# The kernels' parameter lists as prepared-call formats; every pointer non-NULL; 2D grids.
_PARAMS = {"ssd_best_class": "PiPP", "ssd_sort": "PPPPPifffffiPPPPPP",
           "ssd_nms": "PPPPfPPPiiPP"}


@pytest.fixture(params=["direct", "prepared"])
def fake_gpu(monkeypatch, request):
    return fake_cuda.install(monkeypatch, request.param, _PARAMS, grid_len=2)


@pytest.mark.parametrize("threshold,hot", [(0.3, 300), (1e-8, 0), (0.3, 20), (0.999, 0)])
def test_gpu_postprocessor_host_logic(fake_gpu, threshold, hot):
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.postprocess import GpuPostprocessor, postprocess_cpu
    rng = np.random.default_rng(50)
    spec = make_spec(rng, 1917, 91)
    enc, scores = make_outputs(rng, spec, 3, hot)
    with GpuPostprocessor(spec, max_batch=4, score_threshold=threshold,
                          max_detections=100) as post, \
            DeviceArray(enc.shape, np.float32) as e, DeviceArray(scores.shape, np.float32) as s:
        e.copy_from_host(enc)
        s.copy_from_host(scores)
        for buf in (post._best_score, post._best_class, post._cand_box, post._cand_score,
                    post._cand_anchor, post._cand_count, post._mask):
            buf.fill_bytes(0xFF)
        post._out_host.fill(np.nan)
        events = [fake_gpu.Event() for _ in range(4)]
        post.enqueue(e, s, 3, events=events)
        kernels = ["ssd_best_class", "ssd_sort", "ssd_nms"]
        assert fake_gpu.calls == [(fake_gpu.how, k) for k in kernels]
        assert [ev.recorded for ev in events] == [1] * 4
        rows = post.raw_results()
        gpu = post.results(None)
        cpu = postprocess_cpu(enc, scores, spec, None, threshold, max_detections=100)
    for f in range(3):
        idx = select_frame(enc[f], scores[f], spec, threshold, 100)[0]
        np.testing.assert_array_equal(rows[f][:, 6].astype(np.int64), idx)
        np.testing.assert_array_equal(gpu[f].class_ids, cpu[f].class_ids)
        np.testing.assert_allclose(gpu[f].boxes, cpu[f].boxes, rtol=0, atol=1e-3)
    with pytest.raises(Exception, match="4 pycuda Events"):
        post2 = GpuPostprocessor(spec, max_batch=1, score_threshold=0.3)
        try:
            with DeviceArray((1, 1917, 4), np.float32) as e1, \
                    DeviceArray((1, 1917, 91), np.float32) as s1:
                post2.enqueue(e1, s1, 1, events=[])
        finally:
            post2.close()


def test_bench_postprocess_on_the_shim(fake_gpu, monkeypatch, capsys):
    # benchmarks/bench_postprocess.py's GPU path (checked against NumPy, events between the
    # launches) with the fake driver: the lent GPU run must not be the first run of it.
    import benchmarks.bench_postprocess as bp
    monkeypatch.setattr(bp, "FILLER_BYTES", 1024)
    spec = bp.coco_like()
    enc, scores = bp.outputs(spec, 2, hot=40)
    res = bp.bench_gpu(spec, enc, scores, 0.3, iters=2, warmup_s=0.0)
    assert set(bp.STEPS) <= set(res) and res["total"]["n"] == 2
    assert len(res["kept_per_frame"]) == 2 and min(res["candidates_per_frame"]) > 0
    bp.print_table({"what": "x", "rows": [{"case": "realistic", "batch": 2, "gpu": res,
                                           "numpy": res["total"]}]})
    assert "realistic" in capsys.readouterr().out


def test_gpu_postprocessor_plans(fake_gpu):
    # Plans are cached per (batch, buffers); the same DeviceArrays again take the fast path;
    # new buffers or another batch size get their own plan; a closed buffer is refused.
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.core.errors import InputError
    from trtssd.postprocess import GpuPostprocessor
    rng = np.random.default_rng(51)
    spec = make_spec(rng, 300, 5)
    enc, scores = make_outputs(rng, spec, 2, 60)
    with GpuPostprocessor(spec, max_batch=2, score_threshold=0.3, max_detections=100) as post, \
            DeviceArray(enc.shape, np.float32) as e, DeviceArray(scores.shape, np.float32) as s, \
            DeviceArray(scores.shape, np.float32) as s2:
        e.copy_from_host(enc)
        s.copy_from_host(scores)
        s2.copy_from_host(scores[::-1].copy())
        for args, frames in (((e, s, 2), scores), ((e, s, 2), scores), ((e, s, 1), scores),
                             ((e, s2, 2), scores[::-1]), ((e, s, 2), scores)):
            post.enqueue(*args)
            rows = post.raw_results()
            assert len(rows) == args[2]
            for f in range(args[2]):
                idx = select_frame(enc[f], frames[f], spec, 0.3, 100)[0]
                np.testing.assert_array_equal(rows[f][:, 6].astype(np.int64), idx)
        assert len(post._plans) == 3
        s2.close()
        with pytest.raises(InputError, match="closed"):
            post.enqueue(e, s2, 2)
        with pytest.raises(InputError, match="max_batch"):
            post.enqueue(e, s, 3)


@pytest.mark.parametrize("sizes", [
    [(1920, 1080)] * 3,                      # one geometry object for the batch
    [(1920, 1080), (1920, 1080), (640, 480)],   # two frame sizes: mapped frame by frame
])
def test_a_batch_maps_each_frame_with_its_own_geometry_and_labels(fake_gpu, sizes):
    # GpuPostprocessor.results for a batch (one mapping where the frames share a geometry,
    # one check for the batch) against the NumPy postprocessing of the same outputs, frame
    # by frame, with letterboxed geometries and label names; outputs poisoned first
    from trtssd.core.geometry import FrameGeometry
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.postprocess import GpuPostprocessor, postprocess_cpu
    from trtssd.preprocess import PreprocessOptions
    rng = np.random.default_rng(52)
    spec = make_spec(rng, 1917, 91)
    enc, scores = make_outputs(rng, spec, 3, 300)
    o = PreprocessOptions(letterbox=True)
    cache = {}
    geoms = [cache.setdefault(s, FrameGeometry.compute(s[0], s[1], o)) for s in sizes]
    labels = ["name%d" % i for i in range(91)]
    with GpuPostprocessor(spec, max_batch=3, score_threshold=0.3, max_detections=100) as post, \
            DeviceArray(enc.shape, np.float32) as e, DeviceArray(scores.shape, np.float32) as s:
        e.copy_from_host(enc)
        s.copy_from_host(scores)
        post._out_host.fill(np.nan)
        post.enqueue(e, s, 3)
        gpu = post.results(geoms, labels)
    for f in range(3):
        cpu = postprocess_cpu(enc[f:f + 1], scores[f:f + 1], spec, [geoms[f]], 0.3,
                              max_detections=100, labels=labels)[0]
        assert len(gpu[f]) == len(cpu) > 0
        np.testing.assert_array_equal(gpu[f].class_ids, cpu.class_ids)
        # both map with boxes_to_frame; the kernel decodes in float32 as NumPy does, to 1e-3
        # of a network pixel, which a 1080p frame scales by 3.6
        np.testing.assert_allclose(gpu[f].boxes, cpu.boxes, rtol=0, atol=4e-3 * 3.6)
        assert gpu[f].labels == cpu.labels
        assert gpu[f].boxes.max() <= max(sizes[f])
