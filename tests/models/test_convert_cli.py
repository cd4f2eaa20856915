"""`trtssd convert`: the command, its --check against LiteRT, the detection op's options read
from the file (EfficientDet-Lite's among them) and bad input."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tflite")

from tflite_build import TfliteFile, interpreter  # noqa: E402


def _detector(size, background, scales, num_classes=6, anchors_per_cell=3, seed=0):
    """A small SSD: two 1x1 heads on a stride-`cell` convolution, the real custom op after."""
    flex = pytest.importorskip("flatbuffers.flexbuffers")
    rng = np.random.RandomState(seed)
    tf = TfliteFile()
    x = tf.tensor([1, size, size, 3], name="serving_default_images")
    g = -(-size // 32)
    f = tf.tensor([1, g, g, 8])
    tf.op("CONV_2D", [x, tf.const(rng.normal(0, 0.3, (8, 32, 32, 3)).astype(np.float32)),
                      tf.const(np.zeros(8, np.float32))], [f], Padding="SAME", StrideH=32,
          StrideW=32, DilationHFactor=1, DilationWFactor=1, FusedActivationFunction="RELU6")
    a = g * g * anchors_per_cell
    cols = num_classes + (1 if background else 0)
    heads = []
    for k, name in ((4, "boxes"), (cols, "scores")):
        h = tf.tensor([1, g, g, anchors_per_cell * k])
        tf.op("CONV_2D", [f, tf.const(rng.normal(0, 0.5, (anchors_per_cell * k, 1, 1, 8))
                                      .astype(np.float32)),
                          tf.const(rng.normal(0, 0.5, anchors_per_cell * k).astype(np.float32))],
              [h], Padding="SAME", StrideH=1, StrideW=1, DilationHFactor=1, DilationWFactor=1)
        r = tf.tensor([1, a, k], name="raw_" + name)
        tf.op("RESHAPE", [h, tf.const(np.array([1, a, k], np.int32))], [r], NewShape=[1, a, k])
        heads.append(r)
    s = tf.tensor([1, a, cols], name="scores_sigmoid")
    tf.op("LOGISTIC", [heads[1]], [s])
    yx = rng.uniform(0.1, 0.9, (a, 2))
    hw = rng.uniform(0.1, 0.5, (a, 2))
    anchors = tf.const(np.concatenate([yx, hw], 1).astype(np.float32))
    opts = {"max_detections": 7, "max_classes_per_detection": 1, "detections_per_class": 5,
            "num_classes": num_classes, "nms_score_threshold": 0.25, "nms_iou_threshold": 0.55,
            "y_scale": scales, "x_scale": scales, "h_scale": scales, "w_scale": scales,
            "use_regular_nms": False}
    # TF2 exports list the four outputs in another order than TF1's: the converter must not care
    outs = [tf.tensor([1, 7, 4], name="boxes"), tf.tensor([1, 7], name="classes"),
            tf.tensor([1, 7], name="det_scores"), tf.tensor([1], name="count")]
    tf.op("TFLite_Detection_PostProcess", [heads[0], s, anchors], outs,
          custom_options=bytes(flex.Dumps(opts)))
    return tf, x, [outs[3], outs[2], outs[0], outs[1]], opts, a


@pytest.mark.parametrize("size,background,scales", [(320, True, 10.0), (384, False, 1.0),
                                                    (512, True, 5.0), (640, False, 1.0)])
def test_detection_op_options_and_raw_outputs(tmp_path, size, background, scales):
    from trtssd.models.check import check_conversion
    from trtssd.models.convert import convert_tflite
    tf, x, outs, opts, a = _detector(size, background, scales)
    buf = tf.build([x], outs)
    if interpreter(buf) is None:
        pytest.skip("no TFLite interpreter: pip install ai-edge-litert")
    p = tmp_path / "det.tflite"
    p.write_bytes(buf)
    res = convert_tflite(str(p))
    spec = res.spec
    assert (spec.input_height, spec.input_width) == (size, size)
    assert spec.num_anchors == a and spec.num_classes == opts["num_classes"] + 1
    assert vars(spec.box_coder) == {"y_scale": scales, "x_scale": scales, "h_scale": scales,
                                    "w_scale": scales}
    assert spec.nms.max_detections == 7 and spec.nms.detections_per_class == 5
    assert spec.nms.iou_threshold == pytest.approx(0.55)
    assert spec.nms.score_threshold == pytest.approx(0.25)
    rows = check_conversion(str(p), res.model, seed=3)
    assert [r["output"] for r in rows] == ["box_encodings", "class_scores"]
    assert all(r["ok"] and r["unit"] == "abs" for r in rows), rows
    import onnxruntime as ort
    sess = ort.InferenceSession(res.model.SerializeToString(), providers=["CPUExecutionProvider"])
    xin = np.random.RandomState(1).uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    scores = sess.run(["class_scores"], {"images": xin})[0]
    assert scores.shape == (1, a, opts["num_classes"] + 1)
    if not background:   # EfficientDet-Lite: a zero background column in front
        assert (scores[..., 0] == 0).all()


def test_check_catches_a_wrong_conversion(tmp_path):
    from onnx import numpy_helper
    from trtssd.models.check import check_conversion
    from trtssd.models.convert import convert_tflite
    tf, x, outs, _, _ = _detector(320, True, 10.0)
    p = tmp_path / "det.tflite"
    p.write_bytes(tf.build([x], outs))
    if interpreter(p.read_bytes()) is None:
        pytest.skip("no TFLite interpreter: pip install ai-edge-litert")
    res = convert_tflite(str(p))
    init = [i for i in res.model.graph.initializer if i.name.endswith("/weights")][0]
    w = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array(w[:, :, ::-1, :].copy(), init.name))  # kernel flipped
    rows = check_conversion(str(p), res.model, seed=3)
    assert not all(r["ok"] for r in rows)


def test_cli_convert_check_on_the_real_model(tmp_path, capsys):
    from conftest import model_file
    from trtssd.commands.cli import main
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("ai_edge_litert")
    pic = tmp_path / "pic.png"
    rng = np.random.RandomState(0)
    cv2.imwrite(str(pic), cv2.GaussianBlur(rng.randint(0, 256, (240, 320, 3)).astype(np.uint8),
                                           (9, 9), 3))
    for extra, name, tol in (([], "m.onnx", "24 steps"), (["--qdq"], "q.onnx", "8 steps"),
                             (["--qdq", "symmetric"], "s.onnx", "48 steps")):
        out = tmp_path / name
        rc = main(["convert", model_file("detect.tflite"), "-o", str(out), "--check", "--image",
                   str(pic)] + extra)
        text = capsys.readouterr().out
        assert rc == 0, text
        assert out.is_file() and "1917 anchors, 91 classes" in text
        for inp in ("random", "picture"):
            for o in ("box_encodings", "class_scores"):
                line = [ln for ln in text.splitlines() if ln.startswith(inp) and o in ln]
                assert line and line[0].endswith("ok") and tol in line[0], text


def test_cli_convert_bad_input(tmp_path, capsys):
    from trtssd.commands.cli import main
    assert main(["convert", str(tmp_path / "gone.tflite")]) == 1
    assert "does not exist" in capsys.readouterr().err
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    assert main(["convert", str(junk), "-o", str(tmp_path / "j.onnx")]) == 1
    assert "not a TFLite model" in capsys.readouterr().err
    assert not (tmp_path / "j.onnx").exists()
    m = tmp_path / "m.onnx"
    m.write_bytes(b"x")
    assert main(["convert", str(m)]) == 1
    assert "reads a .tflite model or a TF1 frozen graph" in capsys.readouterr().err
    assert main(["convert", str(junk), "--image", "x.png"]) == 1
    assert "add --check" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.tflite", "m.onnx"]


def test_qdq_of_a_float_model_is_refused(tmp_path):
    from trtssd.core.errors import ModelError
    from trtssd.models.convert import convert_tflite
    tf, x, outs, _, _ = _detector(320, True, 10.0)
    p = tmp_path / "float.tflite"
    p.write_bytes(tf.build([x], outs))
    with pytest.raises(ModelError, match="no quantised weights.*without --qdq"):
        convert_tflite(str(p), qdq=True)


def test_cli_convert_check_of_a_network_without_detection_op(tmp_path, capsys):
    from trtssd.commands.cli import main
    rng = np.random.RandomState(5)
    tf = TfliteFile()
    x = tf.tensor([1, 33, 21, 3], name="input")
    y = tf.tensor([1, 17, 11, 8], name="features")
    tf.op("CONV_2D", [x, tf.const(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)),
                      tf.const(np.zeros(8, np.float32))], [y], Padding="SAME", StrideH=2,
          StrideW=2, DilationHFactor=1, DilationWFactor=1, FusedActivationFunction="RELU")
    z = tf.tensor([1, 17 * 11, 8], name="logits")
    tf.op("RESHAPE", [y, tf.const(np.array([1, 187, 8], np.int32))], [z], NewShape=[1, 187, 8])
    p = tmp_path / "net.tflite"
    p.write_bytes(tf.build([x], [z, y]))
    if interpreter(p.read_bytes()) is None:
        pytest.skip("no TFLite interpreter: pip install ai-edge-litert")
    assert main(["convert", str(p), "--check"]) == 0
    text = capsys.readouterr().out
    assert "raw outputs logits ['N', 187, 8], features ['N', 17, 11, 8]" in text
    assert "no detection op" in text
    assert [ln.split()[1] for ln in text.splitlines() if ln.startswith("random")] == \
        ["logits", "features"]
    assert (tmp_path / "net.onnx").is_file()
