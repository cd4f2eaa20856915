"""The FP16 copy of trtssd's ONNX that TensorRT 11 builds FP16 engines from (backends/tensorrt/
fp16.py), run by ONNX Runtime on the CPU against the float32 original."""
import numpy as np

from trtssd.backends.tensorrt import fp16


def _run(path, x):
    import onnxruntime as ort
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})


def _check_fp16_graph(path):
    import onnx
    from onnx import TensorProto
    m = onnx.load(path)
    floats = [t for t in m.graph.initializer if t.data_type in (TensorProto.FLOAT,
                                                                TensorProto.FLOAT16)]
    assert floats and all(t.data_type == TensorProto.FLOAT16 for t in floats)
    # the engine's contract is unchanged: float32 in, float32 out, a Cast at each end
    for vi in list(m.graph.input) + list(m.graph.output):
        assert vi.type.tensor_type.elem_type == TensorProto.FLOAT, vi.name
    assert m.graph.node[0].op_type == "Cast" and m.graph.node[-1].op_type == "Cast"
    return m


def _compare(fp32_path, tmp_path, seeds, shape):
    out = fp16.write_fp16(fp32_path, str(tmp_path / "m.fp16.onnx"))
    _check_fp16_graph(out)
    for seed in seeds:
        # the preprocessed input's range: (pixel - 128) / 128 in [-1, 1]
        x = np.random.RandomState(seed).uniform(-1, 1, shape).astype(np.float32)
        (b32, s32), (b16, s16) = _run(fp32_path, x), _run(out, x)
        assert b16.dtype == np.float32 and s16.dtype == np.float32
        # float16 keeps 11 significant bits (relative step 2^-11 ~ 4.9e-4); each of the ~28
        # conv layers rounds its weights and activations, so errors add up with depth. Measured
        # on detect.tflite's graph: box encodings (up to ~14 in magnitude) within 0.3% of their
        # largest value, scores (sigmoid, 0..1) within 0.004. Bounds with headroom:
        np.testing.assert_allclose(b16, b32, rtol=0, atol=0.006 * np.abs(b32).max())
        np.testing.assert_allclose(s16, s32, rtol=0, atol=0.01)
        # and not trivially: the FP16 graph does differ from the FP32 one
        assert np.abs(b16 - b32).max() > 0


def test_fp16_copy_of_the_real_model_matches_fp32(tflite_model, tmp_path):
    from trtssd.models.resolve import onnx_for
    _compare(onnx_for(tflite_model), tmp_path, seeds=(0, 1), shape=(3, 3, 300, 300))


def test_fp16_copy_of_the_synthetic_model_matches_fp32(tmp_path):
    from trtssd.models.convert import synthetic_model
    path = str(tmp_path / "syn.onnx")
    synthetic_model(0).save(path)
    _compare(path, tmp_path, seeds=(2,), shape=(1, 3, 300, 300))


def test_resize_scales_stay_float32_and_an_fp16_graph_is_left_alone(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 5, 7])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 10, 14])
    inits = [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2]),
             helper.make_tensor("bias", TensorProto.FLOAT, [1], [0.25])]
    nodes = [helper.make_node("Resize", ["images", "", "scales"], ["r"], mode="nearest"),
             helper.make_node("Add", ["r", "bias"], ["out"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7        # what opset 13 needs; a newer onnx's default outruns older ORTs
    src = str(tmp_path / "r.onnx")
    onnx.save(model, src)
    out = fp16.write_fp16(src, str(tmp_path / "r16.onnx"))
    m = onnx.load(out)
    types = dict((t.name, t.data_type) for t in m.graph.initializer)
    assert types == {"scales": TensorProto.FLOAT, "bias": TensorProto.FLOAT16}
    a = np.random.RandomState(4).uniform(-1, 1, (1, 3, 5, 7)).astype(np.float32)
    np.testing.assert_allclose(_run(out, a)[0], _run(src, a)[0], atol=2e-3)
    # writing the copy of a copy changes nothing
    again = fp16.write_fp16(out, str(tmp_path / "r16b.onnx"))
    assert onnx.load(again).SerializeToString() == m.SerializeToString()


def test_import_loads_no_onnx():
    import subprocess
    import sys
    code = ("import sys, trtssd.backends.tensorrt.fp16, trtssd.backends.tensorrt.onnx_info; "
            "assert 'onnx' not in sys.modules")
    subprocess.check_call([sys.executable, "-c", code])
