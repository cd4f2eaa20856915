"""GPU decode + NMS (kernels/postprocess.cu through GpuPostprocessor) against the NumPy path.

Skips without a GPU (the cuda_context fixture says why). Inputs are fresh seeded random
outputs of a model shaped like the COCO SSD (1917 anchors, 91 score columns), outputs
poisoned with 0xFF (NaN) before each launch and checked overwritten.
"""
import numpy as np
import pytest

from trtssd.core.errors import InputError, ModelError
from trtssd.postprocess import (GpuPostprocessor, MAX_DETECTIONS_GPU, postprocess_cpu,
                                select_frame)
from trtssd.core.spec import BoxCoder, ModelSpec, NmsParams

pytestmark = pytest.mark.gpu
f32 = np.float32


class Geo(object):
    def __init__(self, fw, fh, sx, sy, px, py):
        self.frame_width, self.frame_height = fw, fh
        self.scale_x, self.scale_y, self.pad_x, self.pad_y = sx, sy, px, py


def coco_like_spec(rng, num_anchors=1917, num_classes=91, max_det=10):
    centres = rng.uniform(0.1, 0.9, size=(40, 2))
    yx = centres[rng.integers(0, 40, size=num_anchors)] + rng.normal(0, 0.02, (num_anchors, 2))
    hw = rng.uniform(0.03, 0.6, size=(num_anchors, 2))
    anchors = np.concatenate([yx, hw], axis=1).astype(f32)
    return ModelSpec("coco-like", 300, 300, (128,) * 3, (1 / 128.,) * 3, "RGB", num_classes,
                     anchors, BoxCoder(10., 10., 5., 5.), NmsParams(1e-8, 0.6, max_det, 1, 100,
                                                                   False))


def outputs(rng, spec, n, hot=300, levels=None):
    """Sigmoid of random logits, mostly low, with `hot` high-scoring anchors per frame."""
    a, c = spec.num_anchors, spec.num_classes
    enc = rng.normal(0, 1.0, size=(n, a, 4)).astype(f32)
    logits = rng.normal(-8, 1.5, size=(n, a, c))       # max over 90 columns ~ 0.01 after sigmoid
    for f in range(n):
        idx = rng.choice(a, size=min(hot, a), replace=False)
        logits[f, idx, rng.integers(1, c, size=len(idx))] = rng.uniform(-2, 4, size=len(idx))
    scores = 1 / (1 + np.exp(-logits))
    if levels:
        scores = np.round(scores * levels) / levels   # quantised: ties across anchors/classes
    return enc, scores.astype(f32)


def run_gpu(post, enc, scores, stream=None):
    from trtssd.gpu.cuda import DeviceArray
    n = enc.shape[0]
    with DeviceArray(enc.shape, np.float32) as e, DeviceArray(scores.shape, np.float32) as s:
        e.copy_from_host(np.ascontiguousarray(enc))
        s.copy_from_host(np.ascontiguousarray(scores))
        # Poison every output and scratch buffer (0xFF bytes: NaN floats, -1 ints; the
        # mapped result rows: NaN).
        for scratch in (post._best_score, post._best_class, post._cand_box, post._cand_score,
                        post._cand_anchor, post._cand_count, post._mask):
            scratch.fill_bytes(0xFF)
        post._out_host.fill(np.nan)
        post.enqueue(e, s, n, stream)
        rows = post.raw_results()      # waits on the event recorded after the kernels
    return rows


def check_rows(rows, enc, scores, spec, thr, md):
    total = 0
    for f, r in enumerate(rows):
        idx, cls, sc, boxes = select_frame(enc[f], scores[f], spec, thr, md)
        assert r.shape == (len(idx), 8), "frame %d: %d kept on the GPU, %d in NumPy" % (
            f, r.shape[0], len(idx))
        assert np.all(np.isfinite(r)), "a kept row was not fully written"
        np.testing.assert_array_equal(r[:, 6].astype(np.int64), idx)     # the same anchors
        np.testing.assert_array_equal(r[:, 5].astype(np.int32), cls)     # the same classes
        np.testing.assert_array_equal(r[:, 4], sc)                       # scores are copied
        # Boxes: float32 on the GPU (expf, FMA) vs float64-then-rounded in NumPy; coordinates
        # are O(1), so a few ulp is ~1e-6 (a 300x300 input pixel is 3e-3).
        np.testing.assert_allclose(r[:, :4], boxes, rtol=0, atol=2e-6)
        assert np.all(r[:, 7] == 0)
        total += len(idx)
    return total


@pytest.mark.parametrize("batch", [1, 8])
def test_gpu_matches_numpy(cuda_context, batch):
    rng = np.random.default_rng(100 + batch)
    spec = coco_like_spec(rng)
    enc, scores = outputs(rng, spec, batch)
    with GpuPostprocessor(spec, max_batch=8, score_threshold=0.3,
                          max_detections=MAX_DETECTIONS_GPU) as post:
        rows = run_gpu(post, enc, scores)
        assert check_rows(rows, enc, scores, spec, 0.3, MAX_DETECTIONS_GPU) > 0
        # Detections in frame pixels equal the NumPy path's (same boxes to ~1e-6 normalised).
        geos = [Geo(1920, 1080, 300 / 1920., 300 / 1080., 0, 0) for _ in range(batch)]
        gpu = post.results(geos)
        cpu = postprocess_cpu(enc, scores, spec, geos, 0.3, max_detections=MAX_DETECTIONS_GPU)
        for g, c in zip(gpu, cpu):
            np.testing.assert_array_equal(g.class_ids, c.class_ids)
            np.testing.assert_allclose(g.boxes, c.boxes, rtol=0, atol=1e-2)   # 2e-6 * 1920


@pytest.mark.parametrize("case", ["all_candidates", "ties", "none", "cap", "stream"])
def test_gpu_edge_cases(cuda_context, case):
    from trtssd.gpu.cuda import driver
    rng = np.random.default_rng({"all_candidates": 1, "ties": 2, "none": 3, "cap": 4,
                                 "stream": 5}[case])
    spec = coco_like_spec(rng)
    n = 3
    thr, md, stream = 0.3, 10, None
    if case == "all_candidates":
        thr = 1e-8                    # TFLite's own threshold: all 1917 anchors are sorted
        enc, scores = outputs(rng, spec, n)
    elif case == "ties":
        enc, scores = outputs(rng, spec, n, levels=255)
        md = 100
    elif case == "none":
        enc, scores = outputs(rng, spec, n, hot=0)
        thr = 0.999
    elif case == "cap":
        enc, scores = outputs(rng, spec, n, hot=1500)
        thr, md = 0.05, 100           # more survivors than the cap: exactly 100 kept
    else:
        enc, scores = outputs(rng, spec, n)
        stream = driver().Stream()
    with GpuPostprocessor(spec, max_batch=n, score_threshold=thr, max_detections=md) as post:
        rows = run_gpu(post, enc, scores, stream)
        total = check_rows(rows, enc, scores, spec, thr, md)
    if case == "none":
        assert total == 0
    elif case == "cap":
        assert [len(r) for r in rows] == [100] * n
    else:
        assert total > 0


def clustered_spec(rng, iou, num_anchors=1917, clusters=12):
    """Anchors around a few centres with similar sizes: heavy overlap, long suppression chains."""
    centres = rng.uniform(0.2, 0.8, size=(clusters, 2))
    yx = centres[rng.integers(0, clusters, size=num_anchors)] + rng.normal(0, 0.01,
                                                                          (num_anchors, 2))
    hw = rng.uniform(0.1, 0.3, size=(num_anchors, 2))
    return ModelSpec("clustered", 300, 300, (128,) * 3, (1 / 128.,) * 3, "RGB", 91,
                     np.concatenate([yx, hw], 1).astype(f32), BoxCoder(10., 10., 5., 5.),
                     NmsParams(1e-8, iou, 10, 1, 100, False))


@pytest.mark.parametrize("iou,md,batch", [(0.6, 100, 1), (0.3, 100, 8), (0.9, 100, 8),
                                          (0.75, 37, 3)])
def test_gpu_all_anchors_heavy_overlap(cuda_context, iou, md, batch):
    # TFLite's threshold: all 1917 anchors enter the sort and the suppression matrix (30 x 30
    # words), boxes overlap heavily; with IoU 0.9 the 100 cap is reached deep in the list.
    rng = np.random.default_rng(int(iou * 100) + batch)
    spec = clustered_spec(rng, iou)
    enc = rng.normal(0, 0.3, size=(batch, 1917, 4)).astype(f32)
    scores = (1 / (1 + np.exp(-rng.normal(0, 2, size=(batch, 1917, 91))))).astype(f32)
    with GpuPostprocessor(spec, max_batch=batch, score_threshold=1e-8,
                          max_detections=md) as post:
        rows = run_gpu(post, enc, scores)
        assert post._out_host[:batch, 1].tolist() == [1917.0] * batch
        assert check_rows(rows, enc, scores, spec, 1e-8, md) > 2 * batch


def test_gpu_repeated_enqueue_same_result(cuda_context):
    # The scratch (mask, candidates) is reused between calls: a second batch with fewer
    # candidates must not see the first batch's leftovers.
    rng = np.random.default_rng(40)
    spec = clustered_spec(rng, 0.6)
    enc = rng.normal(0, 0.3, size=(2, 1917, 4)).astype(f32)
    many = (1 / (1 + np.exp(-rng.normal(0, 2, size=(2, 1917, 91))))).astype(f32)
    few = np.array(many)
    few[:, 64:, 1:] = 0.01   # only the first 64 anchors can pass 0.3
    from trtssd.gpu.cuda import DeviceArray
    with GpuPostprocessor(spec, max_batch=2, score_threshold=0.3, max_detections=100) as post, \
            DeviceArray(enc.shape, np.float32) as e, DeviceArray(many.shape, np.float32) as s:
        e.copy_from_host(enc)
        for scores in (many, few, many):
            s.copy_from_host(scores)
            post.enqueue(e, s, 2)
            check_rows(post.raw_results(), enc, scores, spec, 0.3, 100)


def test_gpu_odd_model_shape(cuda_context):
    # 997 anchors, 13 classes: tiles and the candidate list are not full.
    rng = np.random.default_rng(9)
    spec = coco_like_spec(rng, num_anchors=997, num_classes=13)
    enc, scores = outputs(rng, spec, 5, hot=200)
    with GpuPostprocessor(spec, max_batch=5, score_threshold=0.2, max_detections=50) as post:
        assert check_rows(run_gpu(post, enc, scores), enc, scores, spec, 0.2, 50) > 0


def test_gpu_bad_input_rejected_before_launch(cuda_context):
    from trtssd.gpu.cuda import DeviceArray
    rng = np.random.default_rng(10)
    spec = coco_like_spec(rng)
    with GpuPostprocessor(spec, max_batch=2, score_threshold=0.3) as post:
        with DeviceArray((2, 1917, 4), np.float32) as e, \
                DeviceArray((2, 1917, 90), np.float32) as wrong, \
                DeviceArray((2, 1917, 91), np.float16) as half:
            with pytest.raises(InputError, match="class_scores has shape"):
                post.enqueue(e, wrong, 2)
            with pytest.raises(InputError, match="float32"):
                post.enqueue(e, half, 2)
            with pytest.raises(InputError, match="max_batch"):
                post.enqueue(e, wrong, 3)
        with pytest.raises(InputError, match="enqueue"):
            post.raw_results()
    with pytest.raises(InputError, match="limit of 100"):
        GpuPostprocessor(spec, max_detections=101)
    big = coco_like_spec(rng, num_anchors=5000)
    with pytest.raises(ModelError, match="5000 anchors"):
        GpuPostprocessor(big)


@pytest.mark.parametrize("counts,iou,md", [([511, 512, 513], 0.99, 100),
                                           ([448, 576, 0], 0.5, 100),
                                           ([512, 65, 1], 0.99, 37)])
def test_gpu_candidate_counts_and_repeated_runs(cuda_context, counts, iou, md):
    # Frames of one batch with candidate counts around chunk boundaries (and none): each
    # equals NumPy; ssd_nms's last tile per frame runs the scan and resets the frame's
    # counter, so a second and third run of the same postprocessor give the same bytes.
    rng = np.random.default_rng(sum(counts))
    spec = coco_like_spec(rng, num_anchors=700, num_classes=5)
    spec.nms = NmsParams(1e-8, iou, 10, 1, 100, False)
    n = len(counts)
    enc = rng.normal(0, 1.0, size=(n, 700, 4)).astype(f32)
    scores = np.full((n, 700, 5), 0.01, f32)
    for f, k in enumerate(counts):
        idx = rng.choice(700, size=k, replace=False)
        scores[f, idx, rng.integers(1, 5, size=k)] = (
            np.round(rng.uniform(0.5, 1.0, k) * 200) / 200).astype(f32)
    outs = []
    with GpuPostprocessor(spec, max_batch=n, score_threshold=0.4, max_detections=md) as post:
        for _ in range(3):
            rows = run_gpu(post, enc, scores)
            assert post._out_host[:n, 1].tolist() == [float(k) for k in counts]
            check_rows(rows, enc, scores, spec, 0.4, md)
            assert post._tiles_done.copy_to_host().tolist() == [0] * n
            outs.append(np.array(post._out_host[:n]))
    for o in outs[1:]:
        np.testing.assert_array_equal(outs[0].view(np.uint32), o.view(np.uint32))


def test_gpu_plan_follows_buffers(cuda_context):
    # The launch plans are cached per (batch, buffers): new buffers, another batch size and a
    # closed buffer must not reuse a stale plan.
    from trtssd.gpu.cuda import DeviceArray
    rng = np.random.default_rng(41)
    spec = coco_like_spec(rng)
    enc, scores = outputs(rng, spec, 2)
    enc2, scores2 = outputs(rng, spec, 2, hot=100)
    with GpuPostprocessor(spec, max_batch=2, score_threshold=0.3, max_detections=100) as post:
        for e_host, s_host, b in ((enc, scores, 2), (enc2, scores2, 2), (enc, scores, 1),
                                  (enc2, scores2, 2)):
            with DeviceArray(e_host.shape, np.float32) as e, \
                    DeviceArray(s_host.shape, np.float32) as s:
                e.copy_from_host(e_host)
                s.copy_from_host(s_host)
                post.enqueue(e, s, b)
                post.enqueue(e, s, b)      # the cached plan
                check_rows(post.raw_results(), e_host, s_host, spec, 0.3, 100)
        e.close()
        with pytest.raises(InputError, match="closed"):
            post.enqueue(e, s, 2)
