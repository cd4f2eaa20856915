"""Check a conversion against the official interpreter: the same inputs through LiteRT (the
TFLite file; TensorFlow for a TF1 frozen graph, where it is installed) and ONNX Runtime (the
converted ONNX), each output compared, bound by name.

Tolerances, per output:
- a quantised output, exact Q/DQ conversion: 8 quantisation steps. The same integers at every
  layer; only a rounding near a tie may differ (ONNX Runtime requantises with float scales,
  TFLite with fixed-point multipliers), one step there, and such steps travel on through the
  layers after it: detect.tflite (uint8, no residual adds) matches exactly, an int8
  per-channel SSDLite-MobileNetV2 with residual adds (made with TensorFlow's converter from
  the pedestrian graph) is within 6 steps;
- a quantised output, float conversion: 24 steps. The float graph skips every layer's rounding
  (half a step each) and those errors add up through the network: on detect.tflite's real
  pictures the worst is 14 steps of the box encodings' coarse step, the mean half a step; a wrong
  layout, pad or weight order is off by tens to hundreds of steps;
- a quantised output, symmetric Q/DQ (TensorRT's int8): 48 steps. Every activation is
  re-quantised on a grid up to twice as coarse (a ReLU6's [0, 6] on 127 steps, not 255), the
  weights on their own per-channel int8 grids, and each layer rounds differently from the
  file's: on detect.tflite's 9 test pictures the worst is 40 steps, the mean under 2 (see
  tests/models/test_against_tflite.py);
- a float output: 1e-3 of the output's largest magnitude (float32 in a different order of
  summation, through tens of layers).
"""
import json

import numpy as np

from ..core.errors import EnvironmentProblem, InputError, ModelError

QDQ_STEPS = 8.0
FLOAT_STEPS = 24.0
SYMMETRIC_STEPS = 48.0
FLOAT_REL = 1e-3


def _interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise EnvironmentProblem("--check runs the official TFLite interpreter, which is not "
                                     "installed: pip install ai-edge-litert")
    it = Interpreter(model_path=path, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


def _picture(path, h, w):
    try:
        import cv2
    except ImportError:
        raise EnvironmentProblem("--image needs OpenCV: pip install opencv-python-headless")
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("--image %s is not a picture OpenCV can read" % path)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)


def tf_graph(tf, path):
    """The TF1 frozen graph at ``path`` imported into a new ``tf.Graph`` (names unprefixed)."""
    gd = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        gd.ParseFromString(f.read())
    g = tf.Graph()
    with g.as_default():
        tf.import_graph_def(gd, name="")
    return g


def _tf_reference(path):
    """TensorFlow on a TF1 frozen graph: a function image [1,H,W,3] uint8 -> {output: array}."""
    try:
        import tensorflow as tf
    except ImportError:
        raise EnvironmentProblem("--check of a frozen graph runs TensorFlow, which is not "
                                 "installed (trtssd itself never needs it): pip install "
                                 "tensorflow-cpu, or convert without --check")
    sess = tf.compat.v1.Session(graph=tf_graph(tf, path))
    names = {"box_encodings": "Postprocessor/raw_box_encodings:0",
             "class_scores": "Postprocessor/convert_scores:0"}

    def run(img):
        vals = sess.run(list(names.values()), {"image_tensor:0": img})
        return dict(zip(names, vals))
    return run


def _check_frozen_graph(path, model, image, seed):
    import onnxruntime as ort
    from ..core.spec import SPEC_METADATA_KEY, ModelSpec
    meta = {p.key: p.value for p in model.metadata_props}
    spec = ModelSpec.from_json(meta[SPEC_METADATA_KEY])
    run_tf = _tf_reference(path)
    h, w = spec.input_height, spec.input_width
    # pictures at the network's size: the graph's own resize is then the identity
    inputs = [("random", np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(
        np.uint8))]
    if image:
        inputs.append(("picture", _picture(image, h, w)))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = []
    for label, img in inputs:
        ref = run_tf(img[None])
        x = ((img.astype(np.float64) - spec.mean[0]) * spec.scale[0]).transpose(2, 0, 1)[None]
        got = dict(zip([o.name for o in sess.get_outputs()],
                       sess.run(None, {"images": np.ascontiguousarray(x, np.float32)})))
        for n in ("box_encodings", "class_scores"):
            r = ref[n].astype(np.float64)
            mine = got[n].astype(np.float64).reshape(r.shape)
            err = float(np.abs(mine - r).max())
            tol = FLOAT_REL * max(1.0, float(np.abs(r).max()))
            rows.append(dict(input=label, output=n, max_abs=err, max_steps=None, tol=tol,
                             unit="abs", ok=bool(np.isfinite(mine).all()) and err <= tol))
    return rows


def _dequantized_steps(path):
    """{float tensor name: step of the quantised tensor it was DEQUANTIZE'd from}: the outputs
    of a model quantised inside (float I/O) carry that quantisation's error."""
    from .tflite_reader import read_tflite
    g = read_tflite(path)
    out = {}
    for op in g.ops:
        if op.type == "DEQUANTIZE" and op.inputs:
            t = g.tensors[op.inputs[0]]
            if t.quantized and t.data is None and t.scale.size == 1:
                out[g.tensors[op.outputs[0]].name] = float(t.scale[0])
    return out


def check_conversion(tflite_path, model, image=None, seed=0):
    """Rows ``{input, output, max_abs, max_steps, tol, unit, ok}`` for a random input and, if
    ``image`` is given, that picture. ``model`` is the converted ``onnx.ModelProto``; the
    reference is LiteRT for a .tflite, TensorFlow for a TF1 frozen graph (.pb)."""
    import onnxruntime as ort
    if tflite_path.lower().endswith(".pb"):
        return _check_frozen_graph(tflite_path, model, image, seed)
    from .convert import SOURCES_METADATA_KEY
    meta = {p.key: p.value for p in model.metadata_props}
    if SOURCES_METADATA_KEY not in meta:
        raise ModelError("this ONNX does not say which TFLite tensors its outputs are; "
                         "re-convert it with `trtssd convert`")
    sources = json.loads(meta[SOURCES_METADATA_KEY])
    qdq = meta.get("trtssd.qdq", "none")
    padded = meta.get("trtssd.background_column_added") == "true"
    it = _interpreter(tflite_path)
    ind = it.get_input_details()[0]
    by_name = {d["name"]: d for d in it.get_tensor_details()}
    shape = [int(v) for v in ind["shape"]]
    dtype = np.dtype(ind["dtype"])
    s_in, z_in = ind["quantization"]
    rng = np.random.RandomState(seed)
    inputs = []
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        inputs.append(("random", rng.randint(info.min, info.max + 1, shape).astype(dtype)))
    else:
        inputs.append(("random", rng.uniform(-1, 1, shape).astype(dtype)))
    if image:
        if len(shape) != 4 or shape[3] != 3:
            raise InputError("--image needs a model with an image input, this one takes %s"
                             % shape)
        pic = _picture(image, shape[1], shape[2]).astype(np.int32)
        if dtype == np.uint8:
            x = pic.astype(np.uint8)
        elif dtype == np.int8:
            x = (pic - 128).astype(np.int8)
        else:
            x = ((pic - 127.5) / 127.5).astype(dtype)
        inputs.append(("picture", x[None]))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    dequantized_from = _dequantized_steps(tflite_path)
    rows = []
    for label, x in inputs:
        it.set_tensor(ind["index"], x)
        it.invoke()
        xf = x.astype(np.float64)
        if s_in:
            xf = (xf - z_in) * s_in
        if xf.ndim == 4:
            xf = xf.transpose(0, 3, 1, 2)
        got = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name:
                                              np.ascontiguousarray(xf, np.float32)})))
        for n in names:
            d = by_name.get(sources.get(n))
            if d is None:
                raise ModelError("output %s stands for TFLite tensor %r, which %s does not have; "
                                 "the ONNX was converted from another file"
                                 % (n, sources.get(n), tflite_path))
            ref = it.get_tensor(d["index"])
            s, z = d["quantization"]
            ref = (ref.astype(np.float64) - z) * s if s else ref.astype(np.float64)
            mine = got[n].astype(np.float64)
            if padded and mine.shape[-1] == ref.shape[-1] + 1:
                mine = mine[..., 1:]
            mine = mine.reshape(ref.shape)
            err = float(np.abs(mine - ref).max()) if ref.size else 0.0
            if not s:    # a float output DEQUANTIZE'd from a quantised one: its step counts
                s = dequantized_from.get(sources.get(n), 0.0)
            if s:
                steps = err / s
                tol = {"exact": QDQ_STEPS, "symmetric": SYMMETRIC_STEPS}.get(qdq, FLOAT_STEPS)
                rows.append(dict(input=label, output=n, max_abs=err, max_steps=steps, tol=tol,
                                 unit="steps", ok=bool(np.isfinite(mine).all()) and
                                 steps <= tol + 1e-4))
            else:
                tol = FLOAT_REL * max(1.0, float(np.abs(ref).max()))
                rows.append(dict(input=label, output=n, max_abs=err, max_steps=None, tol=tol,
                                 unit="abs", ok=bool(np.isfinite(mine).all()) and err <= tol))
    return rows


def format_rows(rows):
    lines = []
    for r in rows:
        if r["unit"] == "steps":
            what = "max error %.3g = %.2f quantisation steps (tolerance %g steps)" % (
                r["max_abs"], r["max_steps"], r["tol"])
        else:
            what = "max error %.3g (tolerance %.3g)" % (r["max_abs"], r["tol"])
        lines.append("%-7s %-24s %s  %s" % (r["input"], r["output"], what,
                                            "ok" if r["ok"] else "FAIL"))
    return "\n".join(lines)
