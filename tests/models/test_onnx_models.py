"""Foreign ONNX SSDs: a real pytorch-ssd mb1-ssd (random weights, exported as jetson-inference
does), spec-driven graphs of each output kind, an EfficientNMS_TRT graph, and bad inputs.

Each is checked against an independent NumPy model of what the original software does
(pytorch-ssd's Predictor, TensorRT's EfficientNMS plugin as its README documents it), on the
outputs of the original graph run by ONNX Runtime.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2", reason="the pictures are resized with OpenCV")

import pytorch_ssd_net as P  # noqa: E402  (tests/models/pytorch_ssd_net.py)
from trtssd.core.errors import ModelError  # noqa: E402
from trtssd.models import onnx_models, sidecar  # noqa: E402
from trtssd.models.resolve import load_spec, onnx_for  # noqa: E402
from trtssd.postprocess import postprocess_cpu, select_frame  # noqa: E402
from trtssd.preprocess import FrameGeometry, PreprocessOptions, cpu_preprocess  # noqa: E402

f32 = np.float32
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def mb1(tmp_path_factory, cache):
    """(torch net, folder, path of ssd-mobilenet.onnx with labels.txt beside it)."""
    d = tmp_path_factory.mktemp("mb1")
    net = P.build_mb1_ssd(torch)
    path = P.export_onnx(torch, net, str(d / "ssd-mobilenet.onnx"), dynamic_batch=True)
    with open(str(d / "labels.txt"), "w") as f:
        f.write("BACKGROUND\n" + "\n".join("class%d" % i for i in range(1, 21)) + "\n")
    return net, d, path


@pytest.fixture(scope="module")
def pictures():
    skdata = pytest.importorskip("skimage.data", reason="test pictures come from scikit-image")
    return [np.ascontiguousarray(getattr(skdata, n)()[..., :3])
            for n in ("astronaut", "chelsea", "coffee")]


def _keys(dets):
    return sorted((int(c), round(float(s), 5)) for c, s in zip(dets.class_ids, dets.scores))


# ------------------------------------------------------------------------ pytorch-ssd

def test_mb1_ssd_recognised_with_no_flag(mb1):
    _, _, path = mb1
    spec = load_spec(onnx_for(path))
    assert spec.family == "pytorch-ssd"
    assert (spec.input_height, spec.input_width, spec.channel_order) == (300, 300, "RGB")
    assert spec.mean == (127.0,) * 3 and spec.scale == (1 / 128.0,) * 3
    assert (spec.num_anchors, spec.num_classes) == (3000, 21)
    o, n = spec.outputs, spec.nms
    assert (o.kind, o.box_format, o.normalized, o.activation, o.background) == (
        "decoded", "xyxy", True, "none", 0)
    assert (n.method, n.iou_threshold, n.score_inclusive, n.candidates_per_class) == (
        "per_class", 0.45, False, 200)
    assert spec.batch == 0     # the export has a dynamic batch
    m = onnx.load(onnx_for(path))
    assert [i.name for i in m.graph.input] == ["images"]
    assert [o.name for o in m.graph.output] == ["box_encodings", "class_scores"]


def test_pytorch_ssd_priors_generator_matches_its_code():
    a = sidecar.generate_anchors({"generator": "pytorch-ssd", "image_size": 300,
                                  "specs": [list(s[:4]) + [list(s[4])] for s in P.SPECS]})
    want = P.priors_cxcywh()[:, [1, 0, 3, 2]]        # (cx, cy, w, h) -> (cy, cx, h, w)
    np.testing.assert_allclose(a, want, rtol=0, atol=1e-7)


@pytest.mark.parametrize("threshold", [0.3, 0.6])
def test_postprocess_equals_pytorch_ssd_predictor(mb1, pictures, threshold):
    # The same network outputs (ONNX Runtime on the original graph) through trtssd's NumPy
    # postprocessing and through the NumPy Predictor: the same detections, bit for bit in
    # scores (copied) and to float32 rounding of the pixel mapping in boxes.
    net, _, path = mb1
    spec = load_spec(onnx_for(path))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    total = 0
    for rgb in pictures:
        h, w = rgb.shape[:2]
        x = P.preprocess(rgb)[None]
        scores, boxes = sess.run(["scores", "boxes"], {"input_0": x})
        ref_boxes, ref_labels, ref_probs = P.predict(scores[0], boxes[0], w, h, threshold)
        geo = FrameGeometry(w, h, 300.0 / w, 300.0 / h)
        # the Predictor has no overall cap (top_k=-1): all of its detections, then the cap
        # of 100 keeps the 100 best of them (a prefix of the greedy order)
        order = np.argsort(-ref_probs, kind="stable")
        for cap in (100000, 100):
            d = postprocess_cpu(boxes, scores, spec, [geo], threshold, max_detections=cap)[0]
            keep = order[:cap]
            got = sorted(zip(d.class_ids.tolist(), d.scores.tolist(), map(tuple, d.boxes)))
            want = sorted(zip(ref_labels[keep].tolist(), ref_probs[keep].tolist(),
                              map(tuple, np.clip(ref_boxes[keep], 0, [w, h, w, h]))))
            assert [(c, s) for c, s, _ in got] == [(c, s) for c, s, _ in want]
            # pixels: x * w (Predictor) vs x * 300 / (300 / w) (FrameGeometry), float32
            np.testing.assert_allclose(np.array([b for _, _, b in got]).reshape(-1, 4),
                                       np.array([b for _, _, b in want]).reshape(-1, 4),
                                       rtol=0, atol=0.02)
        total += len(got)
    assert total > 5


def test_candidate_cap_per_class_is_applied():
    # pytorch-ssd's candidate_size: only the best 200 of a class enter its NMS. 250
    # disjoint boxes of one class above the threshold: 200 survive, not 250.
    spec = onnx_models.pytorch_ssd_spec("cap", 300, 300, 3, 250)
    x = np.arange(250, dtype=f32)[:, None] * 0.004
    boxes = np.concatenate([x, x * 0, x + 0.002, x * 0 + 0.002], 1).astype(f32)
    scores = np.zeros((250, 3), f32)
    scores[:, 1] = np.linspace(0.99, 0.5, 250, dtype=f32)
    idx, cls, sc, _ = select_frame(boxes, scores, spec, 0.3, 300)
    ref = P.predict(scores, boxes, 300, 300, 0.3)
    assert len(idx) == len(ref[2]) == 200
    np.testing.assert_array_equal(sc, ref[2])


def _assert_same_as_predictor(dets, scores, boxes, sizes, threshold, cap=100):
    """trtssd's detections of frames == the Predictor on the same outputs, best ``cap``."""
    total = 0
    for f, (w, h) in enumerate(sizes):
        px, labels, probs = P.predict(scores[f], boxes[f], w, h, threshold)
        top = np.argsort(-probs, kind="stable")[:cap]
        want = sorted(zip(labels[top].tolist(), probs[top].tolist()))
        got = sorted(zip(dets[f].class_ids.tolist(), dets[f].scores.tolist()))
        assert got == want, "frame %d" % f
        total += len(got)
    return total


@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
def test_every_cpu_backend_matches_the_reference_network(mb1, pictures, kind):
    # trtssd on the CPU: its preprocessing against pytorch-ssd's transform, the backend on the
    # adapted graph against the torch network itself, its postprocessing against the
    # Predictor on the backend's outputs. (The random network's NMS is chaotic: hundreds of
    # overlapping boxes with near-equal scores, so outputs 1e-6 apart may keep a different
    # box; the detections are therefore compared on the same outputs, exactly.)
    from trtssd.backends import create_backend
    net, _, path = mb1
    be = create_backend(kind, model=path, device="cpu", max_batch=3)
    try:
        opts = PreprocessOptions.from_spec(be.spec, input_format="BGR")
        frames = [np.ascontiguousarray(p[..., ::-1]) for p in pictures]
        x, geos = cpu_preprocess(frames, opts)
        ref_x = np.stack([P.preprocess(p) for p in pictures])
        # OpenCV's uint8 resize of BGR vs RGB rounds alike; trtssd's own resize may differ by
        # one grey level
        np.testing.assert_allclose(x, ref_x, rtol=0, atol=1.01 / 128)
        b, s = be.infer(x)
        dets = postprocess_cpu(b, s, be.spec, geos, 0.4, max_detections=100)
        b_ref_in, s_ref_in = be.infer(ref_x)
    finally:
        be.close()
    with torch.no_grad():
        rs, rb = net(torch.from_numpy(ref_x))
    # float order only: the converted graph and the torch network run other convolution
    # kernels (oneDNN picks them per CPU: 2e-6 apart on one CI host, 4.3e-6 on another), so
    # the softmax outputs are held to 1e-5 (float order, not a wrong weight or layout), the
    # corners in 0..1 to 1e-6
    np.testing.assert_allclose(s_ref_in, rs.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(b_ref_in, rb.numpy(), rtol=0, atol=1e-6)
    sizes = [(p.shape[1], p.shape[0]) for p in pictures]
    assert _assert_same_as_predictor(dets, s, b, sizes, 0.4) > 3


def test_detectnet_command_line_carries_over(mb1, pictures, tmp_path, cache):
    # `detectnet --model=ssd-mobilenet.onnx --labels=labels.txt --input-blob=input_0
    # --output-cvg=scores --output-bbox=boxes` as `trtssd detect`, JSON lines out.
    _, d, path = mb1
    img = str(tmp_path / "astronaut.png")
    cv2.imwrite(img, pictures[0][..., ::-1])
    out = str(tmp_path / "out.jsonl")
    env = dict(os.environ, TRTSSD_CACHE=cache, PYTHONPATH=REPO)
    cmd = [sys.executable, "-m", "trtssd", "detect", img, "--model=" + path,
           "--labels=" + str(d / "labels.txt"), "--input-blob=input_0", "--output-cvg=scores",
           "--output-bbox=boxes", "--backend", "onnxruntime", "--threshold", "0.4",
           "-o", out, "-q"]
    r = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    rec = json.loads(open(out).read().splitlines()[0])
    assert rec["detections"] and all(x["label"].startswith("class") for x in rec["detections"])
    info = subprocess.run([sys.executable, "-m", "trtssd", "info", path], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    text = info.stdout.decode()
    assert info.returncode == 0, info.stderr.decode()
    for part in ("pytorch-ssd", "input_0 NCHW, 300x300", "(pixel - [127, 127, 127]) / [128",
                 "xyxy, normalised", "21 score columns, background column 0",
                 "21 names (BACKGROUND", "per class", "IoU > 0.45", "best 200 per class"):
        assert part in text, (part, text)


# ------------------------------------------------------------------------ small graphs

def _head_graph(path, outputs, a, c, nhwc=False, extra_nodes=(), extra_inits=(), name_in="x",
                dynamic_hw=False):
    """A small convolutional 'SSD' 48x48 -> A rows: 'raw_boxes' [N, A, 4] and 'raw_scores'
    [N, A, C] (random weights), then ``extra_nodes`` computing the named ``outputs``."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(a * 31 + c)
    cells = 36                         # 6 x 6 after a stride-8 conv
    per = a // cells
    assert per * cells == a
    w = rng.normal(0, 0.08, size=(per * (4 + c), 3, 8, 8)).astype(f32)
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.array([0, -1, 4 + c], np.int64), "shape3"),
             numpy_helper.from_array(np.array([4, c], np.int64), "split")] + list(extra_inits)
    nodes = []
    src = name_in
    if nhwc:
        nodes.append(helper.make_node("Transpose", [name_in], ["nchw"], perm=[0, 3, 1, 2]))
        src = "nchw"
    nodes += [helper.make_node("Conv", [src, "w"], ["feat"], strides=[8, 8]),
              helper.make_node("Transpose", ["feat"], ["feat_t"], perm=[0, 2, 3, 1]),
              helper.make_node("Reshape", ["feat_t", "shape3"], ["rows"]),
              helper.make_node("Split", ["rows", "split"], ["raw_boxes", "raw_scores"], axis=2)]
    nodes += list(extra_nodes)
    hw = ("H", "W") if dynamic_hw else (48, 48)
    shape = ["N", hw[0], hw[1], 3] if nhwc else ["N", 3, hw[0], hw[1]]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(
        name_in, TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            o, TensorProto.INT32 if o in ("num_det", "num_detections") else TensorProto.FLOAT,
            None) for o in outputs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("TRT", 1)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def _run_original(path, x, names, input_name="x"):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(names, {input_name: x})


def _sigmoid(v):
    return (1 / (1 + np.exp(-v.astype(np.float64)))).astype(f32)


def _softmax(v):
    e = np.exp(v.astype(np.float64) - v.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(f32)


def _reference(boxes_yxyx, probs, background, per_class, thr, iou, max_det, inclusive):
    """Plain-Python greedy NMS: [(score, anchor, class, box)] best first."""
    cands = []
    a, c = probs.shape
    for i in range(a):
        cols = [k for k in range(c) if k != background]
        if per_class:
            pairs = [(probs[i, k], k) for k in cols]
        else:
            best = max(cols, key=lambda k: (probs[i, k], -k))
            pairs = [(probs[i, best], best)]
        for s, k in pairs:
            if (s >= thr) if inclusive else (s > thr):
                cands.append((float(s), i, k))
    cands.sort(key=lambda t: (-t[0], t[1], t[2]))

    def iou_of(p, q):
        ap = (p[2] - p[0]) * (p[3] - p[1])
        aq = (q[2] - q[0]) * (q[3] - q[1])
        if ap <= 0 or aq <= 0:
            return 0.0
        inter = max(min(p[2], q[2]) - max(p[0], q[0]), 0) * max(min(p[3], q[3]) - max(p[1], q[1]),
                                                               0)
        return inter / (ap + aq - inter)

    kept = []
    for s, i, k in cands:
        if len(kept) >= max_det:
            break
        if any((not per_class or kk == k) and iou_of(boxes_yxyx[i], boxes_yxyx[ii]) > iou
               for _, ii, kk in kept):
            continue
        kept.append((s, i, k))
    return kept


@pytest.mark.parametrize("box_format,activation,background,nms", [
    ("xyxy", "sigmoid", 0, "per_class"),
    ("yxyx", "softmax", None, "fast"),
    ("cxcywh", "none", 0, "fast"),
    ("xyxy", "softmax", 0, "per_class"),
])
def test_spec_driven_decoded_model(tmp_path, cache, box_format, activation, background, nms):
    a, c = 36 * 4, 6
    path = _head_graph(str(tmp_path / "dec.onnx"), ["raw_boxes", "raw_scores"], a, c)
    spec_file = tmp_path / "dec.json"        # MODEL.json beside the model
    spec_file.write_text(json.dumps({
        "output_kind": "decoded", "output_bbox": "raw_boxes", "output_cvg": "raw_scores",
        "box_format": box_format, "activation": activation,
        "background": "none" if background is None else background, "nms": nms,
        "iou_threshold": 0.4, "mean": [127.5], "std": [127.5], "channel_order": "BGR"}))
    spec = load_spec(onnx_for(path))
    assert (spec.outputs.box_format, spec.outputs.activation, spec.outputs.background,
            spec.nms.method) == (box_format, activation, background, nms)
    assert spec.channel_order == "BGR" and spec.mean == (127.5,) * 3
    x = np.random.default_rng(3).uniform(-1, 1, (2, 3, 48, 48)).astype(f32)
    rb, rs = _run_original(path, x, ["raw_boxes", "raw_scores"])
    from trtssd.backends import create_backend
    with create_backend("onnxruntime", model=path, device="cpu", max_batch=2) as be:
        b, s = be.infer(x)
    np.testing.assert_array_equal(b, rb)
    np.testing.assert_array_equal(s, rs)
    probs = {"none": rs, "sigmoid": _sigmoid(rs), "softmax": _softmax(rs)}[activation]
    if box_format == "xyxy":
        yxyx = rb[..., [1, 0, 3, 2]]
    elif box_format == "yxyx":
        yxyx = rb
    else:
        yxyx = np.stack([rb[..., 1] - rb[..., 3] * f32(0.5), rb[..., 0] - rb[..., 2] * f32(0.5),
                         rb[..., 1] + rb[..., 3] * f32(0.5), rb[..., 0] + rb[..., 2] * f32(0.5)],
                        -1)
    thr = float(np.quantile(probs[..., [k for k in range(c) if k != background]], 0.9))
    for f in range(2):
        idx, cls, sc, boxes = select_frame(b[f], s[f], spec, thr, 50)
        ref = _reference(yxyx[f], probs[f], background, nms == "per_class", thr, 0.4, 50, True)
        assert len(ref) > 3
        assert list(zip(idx.tolist(), cls.tolist())) == [(i, k) for _, i, k in ref]
        np.testing.assert_allclose(sc, [s_ for s_, _, _ in ref], rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(boxes, yxyx[f][idx], rtol=0, atol=1e-7)


def test_spec_driven_raw_model_with_anchors(tmp_path, cache):
    # raw encodings in pytorch-ssd's order (x, y, w, h) with variances 0.1 / 0.2, anchors
    # from a .npy, flags instead of a file
    a, c = 36 * 2, 4
    path = _head_graph(str(tmp_path / "raw.onnx"), ["raw_boxes", "raw_scores"], a, c)
    rng = np.random.default_rng(5)
    anchors = np.concatenate([rng.uniform(0.2, 0.8, (a, 2)), rng.uniform(0.1, 0.4, (a, 2))],
                             1).astype(f32)
    np.save(str(tmp_path / "anchors.npy"), anchors)
    keys = sidecar.parse_keys({"output_kind": "raw", "output_bbox": "raw_boxes",
                               "output_cvg": "raw_scores", "encoding_order": "xywh",
                               "variances": "0.1,0.2", "anchors": str(tmp_path / "anchors.npy"),
                               "activation": "sigmoid"}, "test")
    spec = load_spec(onnx_models.prepare_onnx(path, keys))
    assert spec.outputs.kind == "raw" and spec.num_anchors == a
    assert vars(spec.box_coder) == dict(y_scale=10.0, x_scale=10.0, h_scale=5.0, w_scale=5.0)
    x = np.random.default_rng(6).uniform(-1, 1, (1, 3, 48, 48)).astype(f32)
    rb, rs = _run_original(path, x, ["raw_boxes", "raw_scores"])
    e = rb[0].astype(np.float64)
    yc = e[:, 1] * 0.1 * anchors[:, 2] + anchors[:, 0]
    xc = e[:, 0] * 0.1 * anchors[:, 3] + anchors[:, 1]
    hh = np.exp(e[:, 3] * 0.2) * anchors[:, 2] / 2
    hw = np.exp(e[:, 2] * 0.2) * anchors[:, 3] / 2
    yxyx = np.stack([yc - hh, xc - hw, yc + hh, xc + hw], 1).astype(f32)
    probs = _sigmoid(rs[0])
    ref = _reference(yxyx, probs, 0, False, 0.5, spec.nms.iou_threshold, 100, True)
    idx, cls, sc, boxes = select_frame(rb[0], rs[0], spec, 0.5, 100)
    assert len(ref) > 2
    assert list(zip(idx.tolist(), cls.tolist())) == [(i, k) for _, i, k in ref]
    np.testing.assert_allclose(boxes, yxyx[idx], rtol=0, atol=2e-6)


def test_spec_driven_post_nms_model(tmp_path, cache):
    # count [N, 1] int, boxes [N, K, 4] yxyx, scores [N, K], classes [N, K] (0-based, +1 to
    # the label lines): rows past the count never appear, classes land in their columns.
    from onnx import TensorProto, helper, numpy_helper
    k = 36
    cls_const = (np.arange(k) % 3).astype(f32)[None]
    count_const = np.array([[5.0]], f32)
    nodes = [helper.make_node("Sigmoid", ["raw_boxes"], ["sig_boxes"]),
             helper.make_node("Slice", ["sig_boxes", "s0", "s2", "ax2"], ["lo"]),
             helper.make_node("Slice", ["sig_boxes", "s2", "s4", "ax2"], ["hi"]),
             helper.make_node("Min", ["lo", "hi"], ["mins"]),
             helper.make_node("Max", ["lo", "hi"], ["maxs"]),
             helper.make_node("Concat", ["mins", "maxs"], ["det_boxes"], axis=2),
             helper.make_node("ReduceMax", ["raw_scores"], ["smax"], axes=[2], keepdims=0),
             helper.make_node("Sigmoid", ["smax"], ["det_scores"]),
             helper.make_node("Mul", ["det_scores", "zero"], ["zeros"]),
             helper.make_node("Add", ["zeros", "cls_const"], ["det_classes"]),
             helper.make_node("ReduceMax", ["zeros"], ["z1"], axes=[1], keepdims=1),
             helper.make_node("Add", ["z1", "count_const"], ["count_f"]),
             helper.make_node("Cast", ["count_f"], ["num_det"], to=TensorProto.INT32)]
    inits = [numpy_helper.from_array(np.array(0, f32), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "s0"),
             numpy_helper.from_array(np.array([2], np.int64), "s2"),
             numpy_helper.from_array(np.array([4], np.int64), "s4"),
             numpy_helper.from_array(np.array([2], np.int64), "ax2"),
             numpy_helper.from_array(cls_const, "cls_const"),
             numpy_helper.from_array(count_const, "count_const")]
    path = _head_graph(str(tmp_path / "post.onnx"), ["num_det", "det_boxes", "det_scores",
                                                     "det_classes"], k, 1, extra_nodes=nodes,
                       extra_inits=inits)
    with open(str(tmp_path / "post.txt"), "w") as f:      # MODEL.txt labels beside
        f.write("background\na\nb\nc\n")
    keys = sidecar.parse_keys({"output_kind": "post_nms", "output_count": "num_det",
                               "output_bbox": "det_boxes", "output_cvg": "det_scores",
                               "output_classes": "det_classes", "class_offset": 1,
                               "box_format": "yxyx"}, "test")
    spec = load_spec(onnx_models.prepare_onnx(path, keys))
    assert (spec.outputs.kind, spec.nms.method, spec.num_classes, spec.num_anchors) == (
        "post_nms", "none", 4, k)
    x = np.random.default_rng(8).uniform(-1, 1, (2, 3, 48, 48)).astype(f32)
    n, db, ds, dc = _run_original(path, x, ["num_det", "det_boxes", "det_scores",
                                            "det_classes"])
    from trtssd.backends import create_backend
    for kind in ("onnxruntime", "torch"):
        with create_backend(kind, model=onnx_models.prepare_onnx(path, keys), device="cpu",
                            max_batch=2) as be:
            b, s = be.infer(x)
        dets = postprocess_cpu(b, s, spec, None, 0.0)
        for f in range(2):
            order = np.argsort(-ds[f][:5], kind="stable")
            assert dets[f].class_ids.tolist() == (dc[f][:5][order] + 1).astype(int).tolist()
            np.testing.assert_allclose(dets[f].scores, ds[f][:5][order], rtol=1e-6)
            want = db[f][:5][order][:, [1, 0, 3, 2]] * 48
            np.testing.assert_allclose(dets[f].boxes, want, rtol=0, atol=1e-3)


def _efficient_nms_graph(tmp_path, a, c, attrs):
    """An NHWC graph ending in an EfficientNMS_TRT node (custom domain TRT) with an anchors
    constant, as NVIDIA's create_onnx.py builds it."""
    from onnx import helper, numpy_helper
    rng = np.random.default_rng(11)
    anchors = np.concatenate([rng.uniform(0.2, 0.8, (a, 2)), rng.uniform(0.1, 0.4, (a, 2))],
                             1).astype(f32)[None]          # [1, A, 4] x, y, w, h
    node = helper.make_node("EfficientNMS_TRT", ["raw_boxes", "raw_scores", "anchors"],
                            ["num_detections", "detection_boxes", "detection_scores",
                             "detection_classes"], domain="TRT", **attrs)
    path = _head_graph(str(tmp_path / "effnms.onnx"), ["num_detections", "detection_boxes",
                                                        "detection_scores",
                                                        "detection_classes"], a, c, nhwc=True,
                       extra_nodes=[node], extra_inits=[numpy_helper.from_array(anchors,
                                                                                "anchors")],
                       name_in="input_tensor")
    return path, anchors[0]


def efficient_nms_model(boxes, scores, anchors, attrs):
    """TensorRT's EfficientNMS_TRT as its README documents it, one frame: box_coding 1 with
    anchors decodes (x, y, w, h) deltas as x = xa + dx * wa, w = wa * exp(dw) (no variances);
    score_activation 1: sigmoid; background_class: the column never reported (-1: none);
    class_agnostic 0: NMS per class; candidates need score > score_threshold; a box is
    suppressed when its IoU with a kept one of its class is > iou_threshold; the best
    max_output_boxes are kept. Returns [(score, anchor, class)] best first and the corner
    boxes (y1, x1, y2, x2)."""
    d = boxes.astype(np.float64)
    xa, ya, wa, ha = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    xc = xa + d[:, 0] * wa
    yc = ya + d[:, 1] * ha
    w = wa * np.exp(d[:, 2])
    h = ha * np.exp(d[:, 3])
    yxyx = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], 1).astype(f32)
    probs = _sigmoid(scores) if attrs["score_activation"] else scores
    bg = attrs["background_class"]
    kept = _reference(yxyx, probs, None if bg < 0 else bg, not attrs["class_agnostic"],
                      attrs["score_threshold"], attrs["iou_threshold"],
                      attrs["max_output_boxes"], False)
    return kept, yxyx


def test_efficient_nms_graph_cut_and_decoded(tmp_path, cache):
    a, c = 36 * 3, 5
    attrs = dict(background_class=-1, box_coding=1, iou_threshold=0.45, max_output_boxes=40,
                 score_activation=1, score_threshold=0.4, class_agnostic=0, plugin_version="1")
    path, anchors = _efficient_nms_graph(tmp_path, a, c, attrs)
    adapted = onnx_for(path)
    m = onnx.load(adapted)
    assert not any(n.op_type == "EfficientNMS_TRT" for n in m.graph.node)
    assert [i.name for i in m.graph.input] == ["images"]
    spec = load_spec(adapted)
    assert spec.family == "tensorrt-efficientnms" and spec.source["plugin"] == "EfficientNMS_TRT"
    assert (spec.outputs.kind, spec.outputs.encoding_order, spec.outputs.activation,
            spec.outputs.background, spec.nms.method, spec.nms.score_inclusive) == (
        "raw", "xywh", "sigmoid", None, "per_class", False)
    x_nhwc = np.random.default_rng(12).uniform(-1, 1, (2, 48, 48, 3)).astype(f32)
    x_nchw = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
    # the original graph up to the plugin's inputs (ONNX Runtime cannot run the plugin)
    cut = onnx.load(path)
    del cut.graph.node[-1]
    del cut.graph.output[:]
    cut.graph.output.extend([onnx.helper.make_tensor_value_info(n, 1, None)
                             for n in ("raw_boxes", "raw_scores")])
    onnx.save(cut, str(tmp_path / "cut_ref.onnx"))
    rb, rs = _run_original(str(tmp_path / "cut_ref.onnx"), x_nhwc, ["raw_boxes", "raw_scores"],
                           "input_tensor")
    from trtssd.backends import create_backend
    for kind in ("onnxruntime", "torch"):
        with create_backend(kind, model=path, device="cpu", max_batch=2) as be:
            b, s = be.infer(x_nchw)
        np.testing.assert_allclose(b, rb, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(s, rs, rtol=1e-5, atol=1e-5)
    total = 0
    for f in range(2):
        want, yxyx = efficient_nms_model(rb[f], rs[f], anchors, attrs)
        idx, cls, sc, boxes = select_frame(rb[f], rs[f], spec, 0.4, 40)
        assert list(zip(idx.tolist(), cls.tolist())) == [(i, k) for _, i, k in want]
        np.testing.assert_allclose(boxes, yxyx[idx], rtol=0, atol=2e-6)
        total += len(want)
    assert total > 3


# ------------------------------------------------------------------------ bad input

def test_unknown_layout_lists_the_graph_and_the_keys(tmp_path, cache):
    path = _head_graph(str(tmp_path / "odd.onnx"), ["raw_boxes", "raw_scores"], 36, 3)
    with pytest.raises(ModelError) as e:
        onnx_for(path)
    msg = str(e.value)
    for part in ("match no layout", "x ['N', 3, 48, 48]", "raw_boxes", "raw_scores",
                 "--output-bbox", "--spec"):
        assert part in msg, msg


def test_contradictory_specs_are_refused_before_running(tmp_path, cache):
    path = _head_graph(str(tmp_path / "c.onnx"), ["raw_boxes", "raw_scores"], 36, 3)
    base = {"output_kind": "decoded", "output_bbox": "raw_boxes", "output_cvg": "raw_scores"}
    cases = [
        (dict(base, output_bbox="nope"), "no such tensor"),
        (dict(base, input_blob="images_0"), "not an input"),
        (dict(base, output_kind="raw", anchors=None), "anchors"),
        (dict(base, output_bbox="raw_scores"), "box output"),
        (dict(base, background=7), "background column 7"),
        (dict(base, nms="regular"), "must be one of"),
        (dict(base, colour="RGB"), "unknown spec key 'colour'"),
    ]
    for keys, part in cases:
        keys = dict((k, v) for k, v in keys.items() if v is not None)
        with pytest.raises(ModelError) as e:
            onnx_models.prepare_onnx(path, sidecar.parse_keys(keys, "test"))
        assert part in str(e.value), (keys, str(e.value))
    # a broken sidecar beside the model
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        onnx_for(path)


def test_labels_of_the_wrong_length(mb1, tmp_path, cache):
    _, _, path = mb1
    bad = tmp_path / "labels.txt"
    bad.write_text("\n".join("c%d" % i for i in range(20)) + "\n")   # no BACKGROUND line
    with pytest.raises(ModelError, match="20 names but the model has 21"):
        onnx_models.prepare_onnx(path, {"labels": str(bad)})


def test_dynamic_anchor_count_is_refused(tmp_path, cache):
    net = P.build_mb1_ssd(torch, num_classes=3)
    path = str(tmp_path / "dyn.onnx")
    dummy = torch.randn(1, 3, 300, 300)
    torch.onnx.export(net, dummy, path, input_names=["input_0"],
                      output_names=["scores", "boxes"], opset_version=11, dynamo=False,
                      dynamic_axes={"input_0": {0: "n", 2: "h", 3: "w"},
                                    "scores": {0: "n", 1: "a"}, "boxes": {0: "n", 1: "a"}})
    with pytest.raises(ModelError) as e:
        onnx_for(path)
    assert "dynamic" in str(e.value) and ("--input-size" in str(e.value) or
                                          "fixed input size" in str(e.value))


def test_fixed_batch_export_as_onnx_export_py_makes_it(tmp_path, cache, pictures):
    # jetson-inference's onnx_export.py exports batch 1 without dynamic axes: it runs at
    # batch 1 on both CPU backends (the same detections as the Predictor) and a larger batch
    # is refused naming the fix
    from trtssd.backends import create_backend
    from trtssd.core.errors import InputError
    net = P.build_mb1_ssd(torch, seed=3)
    path = P.export_onnx(torch, net, str(tmp_path / "ssd-mobilenet.onnx"))
    spec = load_spec(onnx_for(path))
    assert spec.batch == 1
    x = P.preprocess(pictures[1])[None]
    h, w = pictures[1].shape[:2]
    for kind in ("onnxruntime", "torch"):
        with create_backend(kind, model=path, device="cpu", max_batch=1) as be:
            b, s = be.infer(x)
        geo = FrameGeometry(w, h, 300.0 / w, 300.0 / h)
        dets = postprocess_cpu(b, s, spec, [geo], 0.4, max_detections=100)
        _assert_same_as_predictor(dets, s, b, [(w, h)], 0.4)
        with pytest.raises(InputError, match="fixed batch of 1.*--batch 1.*dynamic_axes"):
            create_backend(kind, model=path, device="cpu", max_batch=2)


def test_tensorrt_engine_builds_from_the_adapted_graph(mb1, tmp_path):
    # the TensorRT backend's builder takes the adapted pytorch-ssd graph like trtssd's own
    # (the fakes follow each TensorRT generation's documented API: not a run of TensorRT);
    # the engine's sidecar carries the pytorch-ssd spec
    from support.fake_tensorrt import GENERATIONS, GPU, make
    from trtssd.backends.tensorrt import build as eb
    _, _, path = mb1
    adapted = onnx_for(path)
    for gen in GENERATIONS:
        trt = make(gen)
        engine, side = eb.ensure_engine(adapted, eb.BuildOptions(precision="fp16", max_batch=2),
                                        cache_dir=str(tmp_path / gen), trt=trt, gpu=GPU)
        spec = side["spec"]      # the sidecar, as a dict
        assert spec["family"] == "pytorch-ssd" and spec["num_boxes"] == 3000
        assert spec["nms"]["method"] == "per_class"


def test_cli_spec_flags_spec_file_and_bad_input(tmp_path, cache, capsys):
    # the spec keys as flags and --spec FILE on `trtssd info`; a graph of no known layout is a
    # one-line error with a non-zero exit, naming the flags to give
    from trtssd.commands.cli import main
    path = _head_graph(str(tmp_path / "flags.onnx"), ["raw_boxes", "raw_scores"], 36, 3)
    assert main(["info", path]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "match no layout" in err[0] and "--output-bbox" in err[0]
    assert main(["info", path, "--output-kind", "decoded", "--output-bbox", "raw_boxes",
                 "--output-cvg", "raw_scores", "--activation", "sigmoid", "--nms",
                 "per_class", "--background", "none"]) == 0
    out = capsys.readouterr().out
    assert "through a sigmoid" in out and "background none" in out and "per class" in out
    spec_file = tmp_path / "elsewhere.json"
    spec_file.write_text(json.dumps({"output_kind": "decoded", "output_bbox": "raw_boxes",
                                     "output_cvg": "raw_scores", "box_format": "cxcywh"}))
    assert main(["info", path, "--spec", str(spec_file)]) == 0
    assert "cxcywh" in capsys.readouterr().out
    assert main(["info", path, "--spec", str(tmp_path / "missing.json")]) != 0
    assert "--spec FILE" in capsys.readouterr().err
