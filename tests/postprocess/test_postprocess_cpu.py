"""NumPy postprocessing against an independent plain-Python implementation of TFLite's fast NMS."""
import math

import numpy as np
import pytest

from trtssd.core.detections import Detections, LabelMap
from trtssd.core.errors import InputError, ModelError
from trtssd.postprocess import (decode_boxes, nms_fast, postprocess_cpu, to_frame)
from trtssd.core.geometry import FrameGeometry
from trtssd.core.spec import BoxCoder, ModelSpec, NmsParams

f32 = np.float32


Geo = FrameGeometry   # x_net = x_frame * scale_x + pad_x


def make_spec(rng, num_anchors=301, num_classes=7, iou=0.6, max_det=10, clustered=True):
    if clustered:
        # Few anchor centres, many anchors on each: decoded boxes overlap heavily.
        centres = rng.uniform(0.2, 0.8, size=(12, 2))
        idx = rng.integers(0, len(centres), size=num_anchors)
        yx = centres[idx] + rng.normal(0, 0.01, size=(num_anchors, 2))
    else:
        yx = rng.uniform(0, 1, size=(num_anchors, 2))
    hw = rng.uniform(0.05, 0.4, size=(num_anchors, 2))
    anchors = np.concatenate([yx, hw], axis=1).astype(f32)
    return ModelSpec("test", 300, 300, (128,) * 3, (1 / 128.,) * 3, "RGB", num_classes, anchors,
                     BoxCoder(10.0, 10.0, 5.0, 5.0),
                     NmsParams(1e-8, iou, max_det, 1, 100, False))


def make_outputs(rng, spec, n, levels=None):
    a, c = spec.num_anchors, spec.num_classes
    enc = rng.normal(0, 1.0, size=(n, a, 4)).astype(f32)
    scores = 1 / (1 + np.exp(-rng.normal(-3, 2.5, size=(n, a, c))))
    if levels:
        # Quantised scores (like the uint8 model): many exact ties, within and across anchors.
        scores = np.round(scores * levels) / levels
    scores = scores.astype(f32)
    # Exact duplicate boxes with equal scores: the tie must go to the lower anchor.
    enc[:, 5] = enc[:, 3]
    scores[:, 5] = scores[:, 3]
    return enc, scores


def brute_force(enc, scores, anchors, coder, thr, iou_thr, max_det):
    """One frame, plain Python: returns [(anchor, class, score, (ymin, xmin, ymax, xmax))]."""
    a_count, c_count = scores.shape
    cands = []
    for a in range(a_count):
        best_c, best_s = None, None
        for c in range(1, c_count):
            s = float(scores[a, c])
            if best_s is None or s > best_s:
                best_c, best_s = c, s
        if best_s >= thr:
            ty, tx, th, tw = [float(v) for v in enc[a]]
            ya, xa, ha, wa = [float(v) for v in anchors[a]]
            yc = f32(ty / coder.y_scale * ha + ya)
            xc = f32(tx / coder.x_scale * wa + xa)
            hh = f32(0.5 * math.exp(th / coder.h_scale) * ha)
            hw = f32(0.5 * math.exp(tw / coder.w_scale) * wa)
            cands.append((a, best_c, best_s, (yc - hh, xc - hw, yc + hh, xc + hw)))
    cands.sort(key=lambda t: (-t[2], t[0]))

    def iou(p, q):
        area_p = (p[2] - p[0]) * (p[3] - p[1])
        area_q = (q[2] - q[0]) * (q[3] - q[1])
        if area_p <= 0 or area_q <= 0:
            return f32(0)
        inter = (max(min(p[2], q[2]) - max(p[0], q[0]), f32(0)) *
                 max(min(p[3], q[3]) - max(p[1], q[1]), f32(0)))
        return inter / (area_p + area_q - inter)

    dead = [False] * len(cands)
    kept = []
    for i in range(len(cands)):
        if len(kept) >= max_det:
            break
        if dead[i]:
            continue
        kept.append(cands[i])
        for j in range(i + 1, len(cands)):
            if not dead[j] and iou(cands[i][3], cands[j][3]) > iou_thr:
                dead[j] = True
    return kept


def to_frame_ref(box, geo, w_in, h_in):
    ymin, xmin, ymax, xmax = [float(v) for v in box]
    if geo is None:   # network-input pixels, clipped to the input
        return [min(max(v * s, 0), s) for v, s in
                ((xmin, w_in), (ymin, h_in), (xmax, w_in), (ymax, h_in))]
    xs = [min(max((x * w_in - geo.pad_x) / geo.scale_x, 0), geo.frame_width) for x in (xmin, xmax)]
    ys = [min(max((y * h_in - geo.pad_y) / geo.scale_y, 0), geo.frame_height) for y in (ymin, ymax)]
    return [xs[0], ys[0], xs[1], ys[1]]


@pytest.mark.parametrize("seed,levels,thr,iou,max_det,clustered", [
    (1, None, 0.3, 0.6, 10, True),
    (2, 255, 0.2, 0.6, 100, True),    # quantised scores: ties everywhere
    (3, 16, 0.05, 0.3, 100, True),    # coarse levels, low IoU threshold, heavy overlap
    (4, None, 1e-8, 0.6, 10, False),  # TFLite's own threshold: every anchor is a candidate
    (5, 255, 0.5, 0.9, 5, True),
])
def test_postprocess_cpu_matches_brute_force(seed, levels, thr, iou, max_det, clustered):
    rng = np.random.default_rng(seed)
    spec = make_spec(rng, num_anchors=257 + seed * 10, iou=iou, max_det=max_det,
                     clustered=clustered)
    n = 3
    enc, scores = make_outputs(rng, spec, n, levels)
    geos = [Geo(1920, 1080, 300 / 1920., 300 / 1080., 0, 0), None,
            Geo(641, 479, 300 / 641., 300 / 641., 0, (300 - 479 * 300 / 641.) / 2)]
    dets = postprocess_cpu(enc, scores, spec, geos, thr, labels=None)
    assert len(dets) == n
    total = 0
    for f in range(n):
        ref = brute_force(enc[f], scores[f], spec.anchors, spec.box_coder, thr, iou, max_det)
        d = dets[f]
        assert len(d) == len(ref)
        total += len(d)
        assert [int(c) for c in d.class_ids] == [r[1] for r in ref]
        assert d.scores.tolist() == [f32(r[2]) for r in ref]          # copied, not computed
        want = np.array([to_frame_ref(r[3], geos[f], 300, 300) for r in ref]).reshape(-1, 4)
        # float32 frame pixels of coordinates up to 1920: half an ulp is ~1e-4 px.
        np.testing.assert_allclose(d.boxes, want, rtol=0, atol=1e-3)
    assert total > 0


def test_ties_go_to_lower_anchor_and_duplicates_suppressed():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3]], f32)
    scores = np.array([0.5, 0.9, 0.9, 0.5], f32)
    assert nms_fast(boxes, scores, 0.6, 10).tolist() == [1, 3]
    # zero-area boxes never suppress (IoU 0) even when identical
    flat = np.array([[0, 0, 0, 1], [0, 0, 0, 1]], f32)
    assert nms_fast(flat, np.array([0.7, 0.8], f32), 0.1, 10).tolist() == [1, 0]
    # IoU exactly at the threshold does not suppress (strictly greater suppresses)
    half = np.array([[0, 0, 1, 2], [0, 0, 1, 1]], f32)               # IoU 0.5
    assert nms_fast(half, np.array([0.9, 0.8], f32), 0.5, 10).tolist() == [0, 1]
    assert nms_fast(half, np.array([0.9, 0.8], f32), 0.49, 10).tolist() == [0]


def test_best_class_tie_goes_to_lowest_column():
    rng = np.random.default_rng(7)
    spec = make_spec(rng, num_anchors=3, num_classes=5, iou=1.0)   # IoU > 1: no suppression
    enc = np.zeros((1, 3, 4), f32)
    scores = np.zeros((1, 3, 5), f32)
    scores[0, 0] = [0.99, 0.4, 0.8, 0.8, 0.1]    # background ignored; tie 2 vs 3 -> 2
    scores[0, 1] = [0.0, 0.5, 0.2, 0.0, 0.0]     # exactly at the threshold: kept (>=)
    scores[0, 2] = [0.9, 0.1, 0.2, 0.0, 0.0]     # only the background is high: dropped
    dets = postprocess_cpu(enc, scores, spec, None, 0.5)
    assert dets[0].class_ids.tolist() == [2, 1]
    assert dets[0].scores.tolist() == [f32(0.8), f32(0.5)]


def test_prefilter_equals_tflite_threshold_then_filter():
    rng = np.random.default_rng(11)
    spec = make_spec(rng, num_anchors=400, max_det=10)
    enc, scores = make_outputs(rng, spec, 2, levels=255)
    full = postprocess_cpu(enc, scores, spec, None, 1e-8)
    pre = postprocess_cpu(enc, scores, spec, None, 0.3)
    for a, b in zip(full, pre):
        m = a[a.scores >= 0.3]
        assert len(b) == len(m) and len(b) > 0
        np.testing.assert_array_equal(m.boxes, b.boxes)
        np.testing.assert_array_equal(m.class_ids, b.class_ids)


def test_decode_known_values():
    anchors = np.array([[0.5, 0.5, 0.2, 0.4]], f32)
    enc = np.array([[1.0, -2.0, 0.0, 5.0 * math.log(2)]], f32)
    box = decode_boxes(enc, anchors, BoxCoder(10, 10, 5, 5))[0]
    yc, xc, h, w = 0.5 + 0.1 * 0.2, 0.5 - 0.2 * 0.4, 0.2, 0.8
    np.testing.assert_allclose(box, [yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], atol=1e-6)


def test_letterbox_mapping_and_clipping():
    # 640x480 frame letterboxed into 300x300: scale 300/640, pad_y = (300 - 225) / 2
    g = FrameGeometry(640, 480, 300 / 640., 300 / 640., 0.0, 37.5)
    boxes = np.array([[37.5 / 300, 0, 262.5 / 300, 1.0],      # the whole picture area
                      [0.0, -0.1, 0.1, 0.2]], f32)            # in the pad, beyond the left
    out = to_frame(boxes, g, make_spec(np.random.default_rng(0)))
    np.testing.assert_allclose(out[0], [0, 0, 640, 480], atol=1e-3)
    np.testing.assert_allclose(out[1], [0, 0, 0.2 * 640, 0], atol=1e-3)


def test_labels_attached_and_checked():
    rng = np.random.default_rng(3)
    spec = make_spec(rng, num_anchors=50, num_classes=4)
    enc, scores = make_outputs(rng, spec, 1)
    lm = LabelMap(["???", "a", "b", "c"])
    d = postprocess_cpu(enc, scores, spec, None, 0.1, labels=lm)[0]
    assert len(d) > 0
    assert d.labels == [lm.names[c] for c in d.class_ids]
    with pytest.raises(ModelError, match="3 names but the model has 4"):
        postprocess_cpu(enc, scores, spec, None, 0.1, labels=LabelMap(["a", "b", "c"]))


def test_bad_inputs_are_clear_errors():
    rng = np.random.default_rng(4)
    spec = make_spec(rng, num_anchors=20, num_classes=4)
    enc, scores = make_outputs(rng, spec, 2)
    with pytest.raises(InputError, match="box_encodings must be"):
        postprocess_cpu(enc[:, :10], scores, spec, None, 0.3)
    with pytest.raises(InputError, match="class_scores must be"):
        postprocess_cpu(enc, scores[..., :3], spec, None, 0.3)
    with pytest.raises(InputError, match="score_threshold"):
        postprocess_cpu(enc, scores, spec, None, 1.5)
    with pytest.raises(InputError, match="max_detections"):
        postprocess_cpu(enc, scores, spec, None, 0.3, max_detections=0)
    with pytest.raises(InputError, match="FrameGeometry"):
        postprocess_cpu(enc, scores, spec, [None], 0.3)


def test_nothing_above_threshold_gives_empty():
    rng = np.random.default_rng(5)
    spec = make_spec(rng, num_anchors=30)
    enc, scores = make_outputs(rng, spec, 2)
    dets = postprocess_cpu(enc, scores * 0, spec, None, 0.3)
    assert [len(d) for d in dets] == [0, 0]
    assert isinstance(dets[0], Detections)


def test_matches_tflite_postprocess_op_on_real_pictures(tflite_model):
    """Our NumPy path fed the op's own (dequantised) inputs gives the op's outputs: the same
    classes and scores in the same order (quantised scores: many exact ties) and boxes."""
    interp_mod = pytest.importorskip("ai_edge_litert.interpreter",
                                     reason="the official interpreter (ai-edge-litert) is needed")
    skdata = pytest.importorskip("skimage.data", reason="test pictures come from scikit-image")
    cv2 = pytest.importorskip("cv2", reason="OpenCV resizes the test pictures")
    it = interp_mod.Interpreter(model_path=tflite_model, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    op = [o for o in it._get_ops_details() if "Detection_PostProcess" in o["op_name"]][0]
    details = {t["index"]: t for t in it.get_tensor_details()}

    def dequantised(i):
        scale, zero = details[i]["quantization"]
        return ((it.get_tensor(i).astype(np.float64) - zero) * scale).astype(f32)

    checked = 0
    for img in (skdata.astronaut(), skdata.chelsea(), skdata.coffee()):
        x = cv2.resize(img, (300, 300), interpolation=cv2.INTER_LINEAR)[None]
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        enc, scores, anchors = [dequantised(i) for i in op["inputs"]]
        boxes, classes, op_scores, num = [it.get_tensor(i) for i in op["outputs"]]
        spec = ModelSpec("detect", 300, 300, (128,) * 3, (1 / 128.,) * 3, "RGB", 91, anchors,
                         BoxCoder(10., 10., 5., 5.), NmsParams(1e-8, 0.6, 10, 1, 100, False))
        d = postprocess_cpu(enc, scores, spec, None, 1e-8)[0]
        n = int(num[0])
        assert len(d) == n == 10
        assert (d.class_ids - 1).tolist() == classes[0, :n].astype(int).tolist()
        assert d.scores.tolist() == op_scores[0, :n].tolist()
        # The op does not clip; ours clips to the input. Same float64 decode: ~1e-7.
        want = np.clip(boxes[0, :n][:, [1, 0, 3, 2]], 0, 1) * 300
        np.testing.assert_allclose(d.boxes, want, rtol=0, atol=1e-4)
        checked += len(np.unique(d.scores)) < n      # pictures with tied scores
    assert checked >= 1
