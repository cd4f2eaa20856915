"""The TFLite -> ONNX converter: structure, spec, errors; the synthetic model; model lookup."""
import os
import time

import numpy as np
import pytest

from trtssd.core.errors import ModelError

onnx = pytest.importorskip("onnx")
pytest.importorskip("tflite")

ALLOWED_OPS = {"Conv", "Clip", "Relu", "Sigmoid", "Transpose", "Reshape", "Concat", "Add",
               "AveragePool", "MaxPool"}


@pytest.fixture(scope="module")
def result():
    from conftest import model_file
    from trtssd.models.convert import convert_tflite
    return convert_tflite(model_file("detect.tflite"))


def _check_interface(model, anchors=1917, classes=91):
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 11 and model.ir_version == 6
    assert {n.op_type for n in model.graph.node} <= ALLOWED_OPS
    (inp,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "images" and dims == ["N", 3, 300, 300]
    outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
            for o in model.graph.output}
    assert outs == {"box_encodings": ["N", anchors, 4], "class_scores": ["N", anchors, classes]}
    for init in model.graph.initializer:
        assert init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64)


def test_real_model_converts_fast_to_plain_opset11(result):
    _check_interface(result.model)
    assert result.seconds < 30.0, "conversion target: under 30 s on 2 cores"
    assert result.op_counts["Conv"] == 47 and result.op_counts["Sigmoid"] == 1
    # the SAME pads of the stride-2 layers on even sizes are asymmetric: (0, 1)
    first = [n for n in result.model.graph.node if n.op_type == "Conv"][0]
    pads = [a for a in first.attribute if a.name == "pads"][0].ints
    assert list(pads) == [0, 0, 1, 1]


def test_spec_is_read_from_the_model(result):
    from trtssd.models.resolve import load_spec
    from trtssd.core.spec import SPEC_METADATA_KEY, ModelSpec
    meta = {p.key: p.value for p in result.model.metadata_props}
    spec = ModelSpec.from_json(meta[SPEC_METADATA_KEY])
    assert meta["trtssd.synthetic"] == "false" and not spec.synthetic
    assert spec.mean == (128.0,) * 3 and spec.scale == (1 / 128.0,) * 3
    assert spec.channel_order == "RGB" and spec.num_classes == 91
    assert (spec.input_height, spec.input_width) == (300, 300)
    assert vars(spec.box_coder) == {"y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0,
                                    "w_scale": 5.0}
    assert spec.nms.max_detections == 10 and spec.nms.max_classes_per_detection == 1
    assert abs(spec.nms.iou_threshold - 0.6) < 1e-6 and not spec.nms.use_regular_nms
    # anchors: uint8 with scale 0.00645 in the file; the first is the 19x19 grid's (0, 0)
    # cell, 0.1 x 0.1 box: centre 0.5/19 and size 0.1 to within one step
    assert spec.anchors.shape == (1917, 4)
    np.testing.assert_allclose(spec.anchors[0], [0.5 / 19, 0.5 / 19, 0.1, 0.1], atol=0.0065)
    assert meta["trtssd.source_sha256"] == \
        "e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13"


def test_anchor_generator_reproduces_the_file(result):
    """The synthetic model's anchors come from our SSD generator; they equal the file's to
    within half a quantisation step (0.00645 / 2) of its uint8 anchor table."""
    from trtssd.models.convert import ssd_anchors
    assert np.abs(ssd_anchors() - result.spec.anchors).max() <= 0.00645 / 2 + 1e-6


def test_synthetic_model_has_the_same_architecture(result):
    from trtssd.models.convert import synthetic_model
    syn = synthetic_model(seed=0)
    _check_interface(syn.model)
    assert syn.spec.synthetic
    meta = {p.key: p.value for p in syn.model.metadata_props}
    assert meta["trtssd.synthetic"] == "true" and "SYNTHETIC" in syn.model.doc_string
    shapes = lambda m: sorted(tuple(i.dims) for i in m.graph.initializer if len(i.dims) == 4)
    assert shapes(syn.model) == shapes(result.model)
    convs = lambda m: [[(a.name, list(a.ints), a.i) for a in n.attribute]
                       for n in m.graph.node if n.op_type == "Conv"]
    assert sorted(map(str, convs(syn.model))) == sorted(map(str, convs(result.model)))
    # deterministic per seed, different across seeds
    w = lambda r: onnx.numpy_helper.to_array(r.model.graph.initializer[0])
    assert np.array_equal(w(synthetic_model(0)), w(syn))
    assert not np.array_equal(w(synthetic_model(1)), w(syn))


def test_synthetic_model_runs(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from trtssd.models.convert import synthetic_model
    path = synthetic_model().save(str(tmp_path / "s.onnx"))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.random.RandomState(3).uniform(-1, 1, (2, 3, 300, 300)).astype(np.float32)
    b, s = sess.run(None, {"images": x})
    assert b.shape == (2, 1917, 4) and s.shape == (2, 1917, 91)
    assert np.isfinite(b).all() and ((s >= 0) & (s <= 1)).all()


def test_dynamic_batch_equals_single_frames(result, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = result.save(str(tmp_path / "d.onnx"))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.random.RandomState(5).uniform(-1, 1, (3, 3, 300, 300)).astype(np.float32)
    b3, s3 = sess.run(None, {"images": x})
    b1, s1 = sess.run(None, {"images": x[1:2]})
    # same arithmetic per frame; batching may change the summation order: float32 rounding
    np.testing.assert_allclose(b3[1:2], b1, atol=1e-4)
    np.testing.assert_allclose(s3[1:2], s1, atol=1e-5)


# ---- errors ------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    from trtssd.models.convert import convert_tflite
    with pytest.raises(ModelError, match="does not exist.*coco_ssd_mobilenet_v1_1.0_quant"):
        convert_tflite(str(tmp_path / "nope.tflite"))


def test_foreign_file(tmp_path):
    from trtssd.models.convert import convert_tflite
    p = tmp_path / "picture.tflite"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ModelError, match="not a TFLite model.*coco_ssd_mobilenet"):
        convert_tflite(str(p))


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.01])
def test_truncated_file(tmp_path, keep):
    from conftest import model_file
    from trtssd.models.convert import convert_tflite
    data = open(model_file("detect.tflite"), "rb").read()
    p = tmp_path / "cut.tflite"
    p.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ModelError, match="truncated or corrupt|holds .* bytes"):
        convert_tflite(str(p))


def test_unsupported_operator_is_named_counted_and_located():
    from conftest import model_file
    from trtssd.models.convert import convert_graph
    from trtssd.models.tflite_reader import read_tflite
    g = read_tflite(model_file("detect.tflite"))
    for i in (5, 7, 9, 11):
        g.ops[i].type = "LSTM"
    g.ops[6].type = "GATHER"
    with pytest.raises(ModelError) as e:
        convert_graph(g)
    msg = str(e.value)
    out5 = g.tensors[g.ops[5].outputs[0]].name
    assert "5 operators that trtssd's converter does not know" in msg
    assert "LSTM x4 (op 5 -> %r" % out5 in msg and ", ...)" in msg
    assert "GATHER x1 (op 6 -> " in msg and "it converts " in msg and "HARD_SWISH" in msg


def test_graph_without_detection_op_converts_to_raw_outputs(tmp_path):
    """No TFLite_Detection_PostProcess: the graph's own outputs, under their own names, and no
    spec (the anchors come from the model's sidecar spec)."""
    import json
    ort = pytest.importorskip("onnxruntime")
    from conftest import model_file
    from trtssd.models.convert import RAW_METADATA_KEY, convert_graph
    from trtssd.models.tflite_reader import read_tflite
    g = read_tflite(model_file("detect.tflite"))
    post = [op for op in g.ops if op.type == "TFLite_Detection_PostProcess"][0]
    g.ops = [op for op in g.ops if op is not post]
    g.outputs = list(post.inputs[:2])
    model, spec, _ = convert_graph(g)
    assert spec is None
    names = [o.name for o in model.graph.output]
    assert names == [g.tensors[i].name for i in post.inputs[:2]]
    meta = {p.key: p.value for p in model.metadata_props}
    assert "trtssd.spec" not in meta
    raw = json.loads(meta[RAW_METADATA_KEY])
    assert raw["mean"] == 128.0 and raw["scale"] == 1.0 / 128
    assert [o["shape"] for o in raw["outputs"]] == [["N", 1917, 4], ["N", 1917, 91]]
    p = str(tmp_path / "raw.onnx")
    onnx.save(model, p)
    x = np.random.RandomState(0).uniform(-1, 1, (2, 3, 300, 300)).astype(np.float32)
    boxes, scores = ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None,
                                                                                    {"images": x})
    assert boxes.shape == (2, 1917, 4) and scores.shape == (2, 1917, 91)
    assert 0.0 <= scores.min() and scores.max() <= 1.0


def test_flexbuffer_reader_agrees_with_flatbuffers():
    flex = pytest.importorskip("flatbuffers.flexbuffers")
    from conftest import model_file
    from trtssd.models.tflite_reader import read_flexbuffer_map, read_tflite
    import tflite
    buf = open(model_file("detect.tflite"), "rb").read()
    m = tflite.Model.GetRootAsModel(buf, 0)
    g = m.Subgraphs(0)
    raw = g.Operators(g.OperatorsLength() - 1).CustomOptionsAsNumpy().tobytes()
    assert read_flexbuffer_map(raw) == flex.Loads(raw)
    assert read_tflite(model_file("detect.tflite")).ops[-1].options == flex.Loads(raw)


# ---- model lookup and cache ----------------------------------------------------------------
def test_resolve_model_order(tmp_path, monkeypatch):
    from trtssd.models import resolve as models
    f = tmp_path / "m.tflite"
    f.write_bytes(b"x")
    assert models.resolve_model(str(f)) == str(f)
    monkeypatch.setenv("TRTSSD_MODEL", str(f))
    assert models.resolve_model() == str(f)
    monkeypatch.setenv("TRTSSD_MODEL", str(tmp_path / "gone.tflite"))
    with pytest.raises(ModelError, match="TRTSSD_MODEL.*coco_ssd_mobilenet"):
        models.resolve_model()
    with pytest.raises(ModelError, match="does not exist"):
        models.resolve_model(str(tmp_path / "gone.tflite"))
    monkeypatch.delenv("TRTSSD_MODEL")
    monkeypatch.setattr(models, "_checkout_models_dir", lambda: str(tmp_path / "none"))
    with pytest.raises(ModelError, match="no model given.*coco_ssd_mobilenet"):
        models.resolve_model()


def test_a_checkout_finds_the_model_in_the_shared_folder_beside_it(monkeypatch):
    # README: "Run from a checkout, trtssd also looks in ../shared/models/"
    import os
    from trtssd.models import resolve as models
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    want = os.path.join(os.path.dirname(checkout), "shared", "models")
    assert models._checkout_models_dir() == want
    monkeypatch.delenv("TRTSSD_MODEL", raising=False)
    if os.path.isfile(os.path.join(want, "detect.tflite")):     # CI and this project: it is
        assert models.resolve_model() == os.path.join(want, "detect.tflite")


def test_resolve_labels_beside_the_model(tmp_path, monkeypatch):
    from trtssd.models import resolve as models
    monkeypatch.delenv("TRTSSD_LABELS", raising=False)
    monkeypatch.setattr(models, "_checkout_models_dir", lambda: str(tmp_path / "none"))
    m = tmp_path / "detect.tflite"
    m.write_bytes(b"x")
    assert models.resolve_labels(model_path=str(m)) is None
    (tmp_path / "coco_labels.txt").write_text("???\nperson\n")
    assert models.resolve_labels(model_path=str(m)) == str(tmp_path / "coco_labels.txt")
    with pytest.raises(ModelError, match="does not exist"):
        models.resolve_labels(str(tmp_path / "x.txt"))


def test_onnx_for_caches_by_content(tmp_path):
    from conftest import model_file
    from trtssd.models import resolve as models
    src = model_file("detect.tflite")
    cache = str(tmp_path / "cache")
    p1 = models.onnx_for(src, cache_dir=cache)
    t1 = os.path.getmtime(p1)
    time.sleep(0.01)
    assert models.onnx_for(src, cache_dir=cache) == p1 and os.path.getmtime(p1) == t1
    assert models.onnx_for(p1) == p1            # an .onnx is used as it is
    assert models.load_spec(p1).num_anchors == 1917
    assert len(os.listdir(cache)) == 1          # no temporary files left behind


def test_load_spec_of_a_foreign_onnx(tmp_path):
    from onnx import helper, TensorProto
    from trtssd.models.resolve import load_spec
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    p = str(tmp_path / "foreign.onnx")
    onnx.save(helper.make_model(g), p)
    with pytest.raises(ModelError, match="not made by trtssd's converter"):
        load_spec(p)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not a readable ONNX"):
        load_spec(str(bad))
