"""Each operator of the converter's table, each option and quantisation, in small TFLite files
written here, run by the official interpreter (LiteRT) and by ONNX Runtime on the converted ONNX.
Shapes are random (seeded) and odd-sized, so that an axis or padding mix-up cannot hide."""
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("tflite")
pytest.importorskip("flatbuffers")

from tflite_build import TfliteFile, interpreter  # noqa: E402

# Float graphs: both sides compute in float32, in different orders of summation; 1e-4 relative
# to the output's magnitude covers that for the few hundred terms of these convolutions.
FLOAT_TOL = 1e-4


def convert_and_run(tf, inp, outs, x, qdq=False):
    """[(name, LiteRT output, ONNX Runtime output, its quantisation (scale, zp) or None)]."""
    from trtssd.models.convert import SOURCES_METADATA_KEY, convert_graph
    from trtssd.models.tflite_reader import parse_tflite
    buf = tf.build([inp], outs)
    it = interpreter(buf)
    if it is None:
        pytest.skip("no TFLite interpreter: pip install ai-edge-litert")
    graph = parse_tflite(buf, "test.tflite")
    model, spec, _ = convert_graph(graph, qdq=qdq)
    onnx.checker.check_model(model)
    from trtssd.models.tflite_ops import ONNX_OPS
    assert set(n.op_type for n in model.graph.node) <= set(ONNX_OPS)
    det = it.get_input_details()[0]
    it.set_tensor(det["index"], x)
    it.invoke()
    ref = {d["name"]: (it.get_tensor(d["index"]), d["quantization"])
           for d in it.get_output_details()}
    t = graph.tensors[inp]
    xf = x.astype(np.float32)
    if t.quantized:
        xf = ((x.astype(np.float64) - t.zero_point[0]) * t.scale[0]).astype(np.float32)
    if xf.ndim == 4:
        xf = xf.transpose(0, 3, 1, 2)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    got = sess.run(None, {"images": np.ascontiguousarray(xf)})
    # the batch axis stays free: two frames give the one frame's outputs twice
    pair = sess.run(None, {"images": np.ascontiguousarray(np.concatenate([xf, xf]))})
    for one, two in zip(got, pair):
        assert two.shape == (2,) + one.shape[1:]
        np.testing.assert_allclose(two, np.concatenate([one, one]), rtol=1e-5, atol=1e-6)
    src = json.loads({p.key: p.value for p in model.metadata_props}[SOURCES_METADATA_KEY])
    out = []
    for n, g in zip(names, got):
        r, (s, z) = ref[src[n]]
        assert g.shape == r.shape, (n, g.shape, r.shape)
        if s:
            out.append((n, (r.astype(np.float64) - z) * s, g, s))
        else:
            out.append((n, r, g, None))
    return out


def assert_float_close(results, tol=FLOAT_TOL):
    for name, ref, got, _ in results:
        assert np.isfinite(got).all(), name
        err = np.abs(got.astype(np.float64) - ref).max() if ref.size else 0.0
        assert err <= tol * max(1.0, np.abs(ref).max()), (name, err)


def assert_steps(results, steps):
    for name, ref, got, s in results:
        assert s, name
        err = np.abs(got.astype(np.float64) - ref).max() / s
        assert err <= steps + 1e-4, (name, err)     # 1e-4: float32 noise of the division


def rand_shape(rng, lo=5, hi=14, cmax=7):
    return [1, int(rng.randint(lo, hi)), int(rng.randint(lo, hi)), int(rng.randint(1, cmax))]


def float_input(tf, rng, shape=None):
    shape = shape or rand_shape(rng)
    return tf.tensor(shape, name="input"), rng.uniform(-2, 2, shape).astype(np.float32), shape


def retain_tf_layout(tf, x, shape):
    """A RESHAPE to the same shape: the value then lives in TFLite's layout in the ONNX graph,
    so each op is checked on both layouts."""
    y = tf.tensor(shape)
    return tf.op("RESHAPE", [x, tf.const(np.array(shape, np.int32))], [y],
                 NewShape=list(shape))


# ---- convolutions ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1", "TANH"])
def test_conv2d(seed, padding, act):
    rng = np.random.RandomState(seed)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng)
    k, s, cout = int(rng.choice([1, 3, 5])), int(rng.choice([1, 2])), int(rng.randint(1, 9))
    d = 1 if s == 2 or k == 5 else int(rng.choice([1, 2]))
    w = tf.const(rng.normal(0, 0.5, (cout, k, k, shape[3])).astype(np.float32))
    bias = tf.const(rng.normal(0, 0.5, cout).astype(np.float32))
    oh = -(-shape[1] // s) if padding == "SAME" else (shape[1] - (k - 1) * d - 1) // s + 1
    ow = -(-shape[2] // s) if padding == "SAME" else (shape[2] - (k - 1) * d - 1) // s + 1
    y = tf.tensor([1, oh, ow, cout])
    tf.op("CONV_2D", [x, w, bias], [y], Padding=padding, StrideH=s, StrideW=s,
          DilationHFactor=d, DilationWFactor=d, FusedActivationFunction=act)
    assert_float_close(convert_and_run(tf, x, [y], xv))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("mult", [1, 2])
def test_depthwise_conv2d(seed, mult):
    rng = np.random.RandomState(10 + seed)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng)
    s = int(rng.choice([1, 2]))
    c = shape[3] * mult
    w = tf.const(rng.normal(0, 0.5, (1, 3, 3, c)).astype(np.float32))
    bias = tf.const(rng.normal(0, 0.5, c).astype(np.float32))
    y = tf.tensor([1, -(-shape[1] // s), -(-shape[2] // s), c])
    tf.op("DEPTHWISE_CONV_2D", [x, w, bias], [y], Padding="SAME", StrideH=s, StrideW=s,
          DepthMultiplier=mult, DilationHFactor=1, DilationWFactor=1,
          FusedActivationFunction="RELU6")
    assert_float_close(convert_and_run(tf, x, [y], xv))


def test_float16_weights_through_dequantize():
    """fp16 files: weights stored as float16, DEQUANTIZE'd to float32 before the convolution."""
    rng = np.random.RandomState(3)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng)
    w16 = tf.const(rng.normal(0, 0.5, (4, 3, 3, shape[3])).astype(np.float16))
    w = tf.tensor([4, 3, 3, shape[3]])
    tf.op("DEQUANTIZE", [w16], [w])
    b16 = tf.const(rng.normal(0, 0.5, 4).astype(np.float16))
    bias = tf.tensor([4])
    tf.op("DEQUANTIZE", [b16], [bias])
    y = tf.tensor([1, shape[1], shape[2], 4])
    tf.op("CONV_2D", [x, w, bias], [y], Padding="SAME", StrideH=1, StrideW=1,
          DilationHFactor=1, DilationWFactor=1)
    assert_float_close(convert_and_run(tf, x, [y], xv))


# ---- element-wise ---------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL", "DIV"])
@pytest.mark.parametrize("other", ["variable", "channels", "scalar", "map"])
@pytest.mark.parametrize("tf_layout", [False, True])
def test_binary(op, other, tf_layout):
    rng = np.random.RandomState(hash((op, other)) % 1000)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng)
    a = retain_tf_layout(tf, x, shape) if tf_layout else x
    if other == "variable":
        b = tf.tensor(shape)
        tf.op("LOGISTIC", [x], [b])   # a second value derived from the input, in (0, 1)
        b2 = tf.tensor(shape)
        tf.op("ADD", [b, tf.const(np.float32(0.5))], [b2])
        b = b2
    elif other == "channels":
        b = tf.const(rng.uniform(0.5, 2, shape[3]).astype(np.float32))
    elif other == "scalar":
        b = tf.const(np.float32(rng.uniform(0.5, 2)))
    else:
        b = tf.const(rng.uniform(0.5, 2, [1] + shape[1:]).astype(np.float32))
    y = tf.tensor(shape)
    tf.op(op, [a, b], [y], FusedActivationFunction="RELU6" if op == "ADD" else "NONE")
    assert_float_close(convert_and_run(tf, x, [y], xv))


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1",
                                "HARD_SWISH", "LEAKY_RELU", "PRELU"])
@pytest.mark.parametrize("tf_layout", [False, True])
def test_unary(op, tf_layout):
    rng = np.random.RandomState(len(op))
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng)
    xv *= 4.0    # reach past the kinks at -3, -1, 0, 1, 3, 6
    a = retain_tf_layout(tf, x, shape) if tf_layout else x
    y = tf.tensor(shape)
    if op == "PRELU":
        alpha = tf.const(rng.uniform(0.05, 0.5, (1, 1, shape[3])).astype(np.float32))
        tf.op(op, [a, alpha], [y])
    elif op == "LEAKY_RELU":
        tf.op(op, [a], [y], Alpha=0.13)
    else:
        tf.op(op, [a], [y])
    assert_float_close(convert_and_run(tf, x, [y], xv))


def test_squeeze_and_excitation_broadcast():
    """MobileDet / EfficientDet blocks: a map times its own per-channel mean (two variables of
    different shapes), the hard sigmoid spelled out as ADD 3, RELU6, MUL 1/6."""
    rng = np.random.RandomState(7)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng, [1, 9, 7, 5])
    m = tf.tensor([1, 1, 1, 5])
    tf.op("MEAN", [x, tf.const(np.array([1, 2], np.int32))], [m], KeepDims=True)
    a = tf.tensor([1, 1, 1, 5])
    tf.op("ADD", [m, tf.const(np.float32(3.0))], [a], FusedActivationFunction="RELU6")
    h = tf.tensor([1, 1, 1, 5])
    tf.op("MUL", [a, tf.const(np.float32(1.0 / 6))], [h])
    y = tf.tensor(shape)
    tf.op("MUL", [x, h], [y])
    assert_float_close(convert_and_run(tf, x, [y], xv))


# ---- spatial --------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("seed", range(2))
def test_pool(op, padding, seed):
    rng = np.random.RandomState(20 + seed)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng)
    k, s = int(rng.choice([2, 3])), int(rng.choice([1, 2]))
    oh = -(-shape[1] // s) if padding == "SAME" else (shape[1] - k) // s + 1
    ow = -(-shape[2] // s) if padding == "SAME" else (shape[2] - k) // s + 1
    y = tf.tensor([1, oh, ow, shape[3]])
    tf.op(op, [x], [y], Padding=padding, StrideH=s, StrideW=s, FilterHeight=k, FilterWidth=k,
          FusedActivationFunction="RELU")
    assert_float_close(convert_and_run(tf, x, [y], xv))


@pytest.mark.parametrize("keep", [0, 1])
@pytest.mark.parametrize("axes", [[1, 2], [3], [-1, 1]])
def test_mean(keep, axes):
    rng = np.random.RandomState(30)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng)
    norm = sorted(a % 4 for a in axes)
    out = [1 if (i in norm) else d for i, d in enumerate(shape)] if keep else \
        [d for i, d in enumerate(shape) if i not in norm]
    y = tf.tensor(out)
    tf.op("MEAN", [x, tf.const(np.array(axes, np.int32))], [y], KeepDims=bool(keep))
    assert_float_close(convert_and_run(tf, x, [y], xv))


@pytest.mark.parametrize("op", ["PAD", "PADV2"])
@pytest.mark.parametrize("tf_layout", [False, True])
def test_pad(op, tf_layout):
    rng = np.random.RandomState(40)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng)
    a = retain_tf_layout(tf, x, shape) if tf_layout else x
    pads = np.array([[0, 0], [1, 2], [0, 3], [2, 1]], np.int32)
    y = tf.tensor([d + p.sum() for d, p in zip(shape, pads)])
    ins = [a, tf.const(pads)]
    if op == "PADV2":
        ins.append(tf.const(np.array([-0.75], np.float32)))
    tf.op(op, ins, [y])
    assert_float_close(convert_and_run(tf, x, [y], xv))


@pytest.mark.parametrize("op", ["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"])
@pytest.mark.parametrize("mode", ["plain", "align_corners", "half_pixel_centers"])
@pytest.mark.parametrize("size", [(2.0, 2.0), (1.6, 0.7)])
def test_resize(op, mode, size):
    rng = np.random.RandomState(50)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng)
    oh, ow = int(round(shape[1] * size[0])), int(round(shape[2] * size[1]))
    y = tf.tensor([1, oh, ow, shape[3]])
    tf.op(op, [x, tf.const(np.array([oh, ow], np.int32))], [y],
          AlignCorners=mode == "align_corners", HalfPixelCenters=mode == "half_pixel_centers")
    assert_float_close(convert_and_run(tf, x, [y], xv))


@pytest.mark.parametrize("op", ["DEPTH_TO_SPACE", "SPACE_TO_DEPTH"])
def test_depth_space(op):
    rng = np.random.RandomState(60)
    tf = TfliteFile()
    if op == "DEPTH_TO_SPACE":
        shape = [1, 5, 7, 12]
        out = [1, 10, 14, 3]
    else:
        shape = [1, 6, 10, 3]
        out = [1, 3, 5, 12]
    x, xv, _ = float_input(tf, rng, shape)
    y = tf.tensor(out)
    tf.op(op, [x], [y], BlockSize=2)
    assert_float_close(convert_and_run(tf, x, [y], xv))


# ---- shapes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [3, -1, 1, 2])
def test_concatenation(axis):
    """With a fused RELU, which the interpreter's kernel does not apply: nor do we."""
    rng = np.random.RandomState(70)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng)
    s = tf.tensor(shape)
    tf.op("LOGISTIC", [x], [s])
    c = tf.const(rng.normal(0, 1, shape).astype(np.float32))
    out = list(shape)
    out[axis % 4] *= 3
    y = tf.tensor(out)
    tf.op("CONCATENATION", [x, s, c], [y], Axis=axis, FusedActivationFunction="RELU")
    assert_float_close(convert_and_run(tf, x, [y], xv))


def test_reshape_squeeze_transpose_softmax():
    rng = np.random.RandomState(80)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng, [1, 5, 3, 12])
    r = tf.tensor([1, 15, 1, 12])
    tf.op("RESHAPE", [x, tf.const(np.array([1, 15, 1, 12], np.int32))], [r],
          NewShape=[1, 15, 1, 12])
    q = tf.tensor([1, 15, 12])
    tf.op("SQUEEZE", [r], [q], SqueezeDims=[2])
    t = tf.tensor([1, 12, 15])
    tf.op("TRANSPOSE", [q, tf.const(np.array([0, 2, 1], np.int32))], [t])
    y = tf.tensor([1, 12, 15])
    tf.op("SOFTMAX", [t], [y], Beta=0.7)
    t4 = tf.tensor([1, 12, 5, 3])
    tf.op("TRANSPOSE", [x, tf.const(np.array([0, 3, 1, 2], np.int32))], [t4])
    assert_float_close(convert_and_run(tf, x, [y, t4], xv))


@pytest.mark.parametrize("case", range(5))
def test_strided_slice(case):
    rng = np.random.RandomState(90)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng, [1, 9, 8, 6])
    begin, end, strides, opts = {
        0: ([0, 1, 0, 0], [1, 8, 8, 6], [1, 2, 1, 1], {}),
        1: ([0, -3, 2, 1], [1, 0, 0, 5], [1, 1, 1, 2], {"BeginMask": 1, "EndMask": 6}),
        2: ([0, 0, 0, 2], [1, 9, 8, 3], [1, 1, 1, 1], {"ShrinkAxisMask": 8}),
        3: ([0, 8, 7, 5], [1, 0, 0, 0], [1, -1, -2, -1], {"EndMask": 14}),
        4: ([0, 4, 0, 0], [0, 5, 8, 6], [1, 1, 1, 1], {"EndMask": 1, "ShrinkAxisMask": 2}),
    }[case]
    ref = xv[0]
    idx = [slice(None)] * 4
    for a in range(1, 4):
        if (opts.get("ShrinkAxisMask", 0) >> a) & 1:
            idx[a] = begin[a]
        else:
            idx[a] = slice(None if (opts.get("BeginMask", 0) >> a) & 1 else begin[a],
                           None if (opts.get("EndMask", 0) >> a) & 1 else end[a], strides[a])
    out = list(xv[tuple(idx)].shape)
    del ref
    y = tf.tensor(out)
    tf.op("STRIDED_SLICE", [x, tf.const(np.array(begin, np.int32)),
                            tf.const(np.array(end, np.int32)),
                            tf.const(np.array(strides, np.int32))], [y], **opts)
    assert_float_close(convert_and_run(tf, x, [y], xv))


# ---- quantised ------------------------------------------------------------------------------
def _quant_input(tf, rng, shape, dtype):
    info = np.iinfo(dtype)
    scale, zp = 1.0 / 64, (128 if dtype == np.uint8 else 0)
    x = tf.tensor(shape, dtype, scale=[scale], zero_point=[zp], name="input")
    xv = rng.randint(info.min, info.max + 1, shape).astype(dtype)
    return x, xv, scale


@pytest.mark.parametrize("dtype,per_channel,depthwise", [
    (np.uint8, False, False), (np.uint8, False, True),
    (np.int8, True, False), (np.int8, True, True)])
@pytest.mark.parametrize("qdq", [False, True])
def test_quantised_convolution(dtype, per_channel, depthwise, qdq):
    """uint8 per-tensor (TF1 quantisation-aware SSDs) and int8 per-channel (TF2 / EdgeTPU /
    EfficientDet-Lite int8) weights. One layer: the float rebuild differs from the integer run
    by the output's rounding only (half a step), Q/DQ rounds the same way: one step bounds both."""
    rng = np.random.RandomState(100)
    tf = TfliteFile()
    shape = [1, 11, 9, 5]
    x, xv, in_scale = _quant_input(tf, rng, shape, dtype)
    cout = 5 if depthwise else 6
    wshape = (1, 3, 3, cout) if depthwise else (cout, 3, 3, 5)
    qdim = 3 if depthwise else 0
    if per_channel:
        w_scale = rng.uniform(0.002, 0.01, cout).astype(np.float32)
        w_q = rng.randint(-127, 128, wshape).astype(np.int8)
        w = tf.const(w_q, scale=w_scale, zero_point=np.zeros(cout, np.int64), qdim=qdim)
    else:
        w_scale = np.array([0.006], np.float32)
        w = tf.const(rng.randint(0, 256, wshape).astype(np.uint8), scale=w_scale,
                     zero_point=[131])
    b_scale = (in_scale * w_scale).astype(np.float32)
    bias = tf.const(rng.randint(-2000, 2000, cout).astype(np.int32), scale=b_scale,
                    zero_point=np.zeros(b_scale.size, np.int64), qdim=0)
    info = np.iinfo(dtype)
    y = tf.tensor([1, 6, 5, cout], dtype, scale=[0.05], zero_point=[info.min + 100])
    opts = dict(Padding="SAME", StrideH=2, StrideW=2, DilationHFactor=1, DilationWFactor=1,
                FusedActivationFunction="RELU6")
    if depthwise:
        tf.op("DEPTHWISE_CONV_2D", [x, w, bias], [y], DepthMultiplier=1, **opts)
    else:
        tf.op("CONV_2D", [x, w, bias], [y], **opts)
    assert_steps(convert_and_run(tf, x, [y], xv, qdq=qdq), 1.0)


@pytest.mark.parametrize("qdq", [False, True])
def test_quantised_add_pool_concat_logistic(qdq):
    """Requantising ops: their outputs take their own scale; ADD of two scales, the average
    pool's rounding, CONCATENATION of differently scaled inputs, LOGISTIC at 1/256."""
    rng = np.random.RandomState(110)
    tf = TfliteFile()
    shape = [1, 7, 9, 4]
    x, xv, _ = _quant_input(tf, rng, shape, np.uint8)
    a = tf.tensor(shape, np.uint8, scale=[1.0 / 64], zero_point=[128])   # max pool keeps it
    tf.op("MAX_POOL_2D", [x], [a], Padding="SAME", StrideH=1, StrideW=1, FilterHeight=3,
          FilterWidth=3)
    s = tf.tensor(shape, np.uint8, scale=[0.04], zero_point=[128])
    tf.op("ADD", [x, a], [s])
    p = tf.tensor(shape, np.uint8, scale=[0.04], zero_point=[128])
    tf.op("AVERAGE_POOL_2D", [s], [p], Padding="VALID", StrideH=1, StrideW=1, FilterHeight=1,
          FilterWidth=1)
    c = tf.tensor([1, 7, 9, 8], np.uint8, scale=[0.05], zero_point=[100])
    tf.op("CONCATENATION", [p, a], [c], Axis=3)
    y = tf.tensor([1, 7, 9, 8], np.uint8, scale=[1.0 / 256], zero_point=[0])
    tf.op("LOGISTIC", [c], [y])
    res = convert_and_run(tf, x, [y, c], xv, qdq=qdq)
    if qdq:
        # the same integers at every layer, but TFLite requantises ADD and CONCATENATION with
        # fixed-point multipliers and ONNX Runtime in float: a near-tie may round the other
        # way, one step of c; LOGISTIC's slope <= 1/4 makes that 0.05 / 4 * 256 = 3.2 steps
        # of y, plus y's own rounding
        assert_steps(res[1:], 1.0)
        assert_steps(res[:1], 4.2)
    else:
        # float skips the three roundings before c (half a step each of scales <= c's 0.05):
        # c within 1.5 of its steps; LOGISTIC's slope <= 1/4 turns one step of c into
        # 0.05 / 4 * 256 = 3.2 steps of y, plus y's own rounding: 1.5 * 3.2 + 0.5 = 5.3
        assert_steps(res[1:], 1.5)
        assert_steps(res[:1], 5.3)


def test_quantize_dequantize_activations():
    """TF2 exports: a float input QUANTIZE'd to int8, integer layers, DEQUANTIZE'd outputs."""
    rng = np.random.RandomState(120)
    tf = TfliteFile()
    x, xv, shape = float_input(tf, rng, [1, 6, 7, 3])
    q = tf.tensor(shape, np.int8, scale=[4.0 / 255], zero_point=[-1])
    tf.op("QUANTIZE", [x], [q])
    r = tf.tensor(shape, np.int8, scale=[2.0 / 255], zero_point=[-128])
    tf.op("RELU", [q], [r])
    y = tf.tensor(shape)
    tf.op("DEQUANTIZE", [r], [y])
    # the float input rounds to int8 at QUANTIZE: at most half of its step, then RELU exactly
    res = convert_and_run(tf, x, [y], xv)
    assert_float_close(res, tol=0.5 * 4.0 / 255 + 1e-6)


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH", "HARD_SWISH", "RELU6", "LEAKY_RELU", "MUL",
                                "SUB", "MEAN", "RESIZE_BILINEAR", "AVERAGE_POOL_2D", "SOFTMAX"])
@pytest.mark.parametrize("qdq", [None, "exact"])
def test_quantised_int8_ops(op, qdq):
    """int8 activations (TF2 / EfficientDet-Lite int8 exports) through each op: one layer from
    exact integer inputs, so the float rebuild and Q/DQ differ from the interpreter by its
    output rounding and its fixed-point or table kernels (LOGISTIC, TANH, HARD_SWISH): within
    one output step."""
    rng = np.random.RandomState(len(op) + 200)
    tf = TfliteFile()
    shape = [1, 7, 6, 4]
    x = tf.tensor(shape, np.int8, scale=[0.05], zero_point=[3], name="input")
    xv = rng.randint(-128, 128, shape).astype(np.int8)
    # the converter writes pools and resizes with their input's quantisation (the kernels
    # assume it), the others with their own
    out_q = {"LOGISTIC": ([1.0 / 256], [-128]), "TANH": ([1.0 / 128], [0]),
             "SOFTMAX": ([1.0 / 256], [-128]), "RESIZE_BILINEAR": ([0.05], [3]),
             "AVERAGE_POOL_2D": ([0.05], [3])}.get(op, ([0.04], [-10]))
    out_shape = shape
    ins = [x]
    opts = {}
    if op in ("MUL", "SUB"):
        ins.append(tf.const(rng.randint(-128, 128, [shape[3]]).astype(np.int8), scale=[0.02],
                            zero_point=[0]))
    elif op == "MEAN":
        ins.append(tf.const(np.array([1, 2], np.int32)))
        out_shape = [1, 1, 1, shape[3]]
        opts = {"KeepDims": True}
    elif op == "RESIZE_BILINEAR":
        ins.append(tf.const(np.array([11, 9], np.int32)))
        out_shape = [1, 11, 9, shape[3]]
        opts = {"HalfPixelCenters": True}
    elif op == "AVERAGE_POOL_2D":
        out_shape = [1, 7, 6, shape[3]]
        opts = dict(Padding="SAME", StrideH=1, StrideW=1, FilterHeight=3, FilterWidth=3)
    elif op == "LEAKY_RELU":
        opts = {"Alpha": 0.2}
    elif op == "SOFTMAX":
        opts = {"Beta": 1.0}
    y = tf.tensor(out_shape, np.int8, scale=out_q[0], zero_point=out_q[1])
    tf.op(op, ins, [y], **opts)
    assert_steps(convert_and_run(tf, x, [y], xv, qdq=qdq), 1.0)
