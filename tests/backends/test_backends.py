"""Backends on the CPU: torch (float32) against ONNX Runtime, the contract, create_backend."""
import numpy as np
import pytest

from trtssd.core.errors import InputError

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    """The real model where it is here, else the synthetic one (same graph, random weights)."""
    from conftest import SHARED_MODELS
    import os
    from trtssd.models.convert import convert_tflite, synthetic_model
    d = tmp_path_factory.mktemp("m")
    real = os.path.join(os.environ.get("TRTSSD_MODEL_DIR", SHARED_MODELS), "detect.tflite")
    res = convert_tflite(real) if os.path.isfile(real) else synthetic_model(0)
    return res.save(str(d / "model.onnx"))


def _images(n, seed):
    return np.random.RandomState(seed).uniform(-1, 1, (n, 3, 300, 300)).astype(np.float32)


def test_ort_backend_contract(onnx_path):
    from trtssd.backends.onnxruntime_backend import OnnxRuntimeBackend
    be = OnnxRuntimeBackend(onnx_path, max_batch=2)
    assert be.device == "cpu" and be.spec.num_anchors == 1917 and be.input_dtype == np.float32
    x = _images(2, 1)
    boxes = np.full((2, 1917, 4), np.nan, np.float32)
    scores = np.full((2, 1917, 91), np.nan, np.float32)
    ctx = be.create_context(x, boxes, scores)
    ctx.enqueue()
    ref = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(
        None, {"images": x})
    np.testing.assert_array_equal(boxes, ref[0])    # same runtime, same graph: bit-equal
    np.testing.assert_array_equal(scores, ref[1])
    ctx.close()
    be.close()


def test_torch_cpu_matches_onnxruntime(onnx_path):
    pytest.importorskip("torch")
    from trtssd.backends.torch_backend import TorchBackend
    from trtssd.backends.onnxruntime_backend import OnnxRuntimeBackend
    tb = TorchBackend(onnx_path, device="cpu", max_batch=3)
    ob = OnnxRuntimeBackend(onnx_path, max_batch=3)
    for n, seed in ((1, 11), (3, 12)):
        x = _images(n, seed)
        ref_b, ref_s = ob.infer(x)
        boxes = np.full((n, 1917, 4), np.nan, np.float32)
        scores = np.full((n, 1917, 91), np.nan, np.float32)
        tb.create_context(x, boxes, scores).enqueue()
        # float32 both; the two libraries sum the 3x3/1x1 convolutions in different orders
        # (oneDNN vs MLAS), ~1e-6 relative per layer over ~30 layers. Box encodings reach ~10,
        # so 1e-4 absolute; scores are sigmoid outputs in [0, 1]: 1e-5.
        np.testing.assert_allclose(boxes, ref_b, atol=1e-4, rtol=0)
        np.testing.assert_allclose(scores, ref_s, atol=1e-5, rtol=0)
        b2, s2 = tb.infer(x)
        np.testing.assert_array_equal(b2, boxes)
        np.testing.assert_array_equal(s2, scores)


def test_torch_module_has_the_onnx_weights(onnx_path):
    torch = pytest.importorskip("torch")
    import onnx
    from onnx import numpy_helper
    from trtssd.backends.torch_backend import build_module
    m = onnx.load(onnx_path)
    net = build_module(m, torch)
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    steps = [s for s in net.steps if s[0] == "Conv"]
    assert len(steps) == len(convs)
    for node, (_, _, _, p) in zip(convs, steps):
        np.testing.assert_array_equal(getattr(net, p["w"]).numpy(), inits[node.input[1]])


def test_bad_bindings_are_input_errors(onnx_path):
    from trtssd.backends.onnxruntime_backend import OnnxRuntimeBackend
    be = OnnxRuntimeBackend(onnx_path, max_batch=2)
    ok_b = np.zeros((1, 1917, 4), np.float32)
    ok_s = np.zeros((1, 1917, 91), np.float32)
    with pytest.raises(InputError, match="batch of 3 frames.*max_batch=3"):
        be.create_context(_images(3, 0), np.zeros((3, 1917, 4), np.float32),
                          np.zeros((3, 1917, 91), np.float32))
    with pytest.raises(InputError, match="images is .*float64"):
        be.create_context(_images(1, 0).astype(np.float64), ok_b, ok_s)
    with pytest.raises(InputError, match="class_scores is"):
        be.create_context(_images(1, 0), ok_b, np.zeros((1, 1917, 90), np.float32))
    with pytest.raises(InputError, match="C-contiguous"):
        be.create_context(np.asfortranarray(_images(1, 0)), ok_b, ok_s)
    with pytest.raises(InputError, match="neither a numpy array"):
        be.create_context([1, 2], ok_b, ok_s)
    with pytest.raises(InputError, match="precision 'fp32' only"):
        OnnxRuntimeBackend(onnx_path, precision="fp16")


def test_torch_backend_option_errors(onnx_path):
    torch = pytest.importorskip("torch")
    from trtssd.core.errors import EnvironmentProblem
    from trtssd.backends.torch_backend import TorchBackend
    with pytest.raises(InputError, match="int8 needs the tensorrt"):
        TorchBackend(onnx_path, device="cpu", precision="int8")
    with pytest.raises(InputError, match="fp16 is for device='cuda'"):
        TorchBackend(onnx_path, device="cpu", precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(EnvironmentProblem, match="torch.cuda.is_available"):
            TorchBackend(onnx_path, device="cuda")


@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
def test_batch_and_infer_input_errors(onnx_path, kind):
    # Backend.load_model and Backend.host_images, which both backends use
    if kind == "torch":
        pytest.importorskip("torch")
    from trtssd.backends import create_backend
    with pytest.raises(InputError, match="max_batch must be >= 1, got 0"):
        create_backend(kind, model=onnx_path, device="cpu", max_batch=0)
    with create_backend(kind, model=onnx_path, device="cpu", max_batch=2) as be:
        assert be.max_batch == 2 and be.precision == "fp32" and be.onnx_path == onnx_path
        with pytest.raises(InputError,
                           match=r"images must be \[n, 3, 300, 300\], got \[1, 3, 300, 299\]"):
            be.infer(np.zeros((1, 3, 300, 299), np.float32))
        with pytest.raises(InputError, match="batch of 3 frames"):
            be.infer(_images(3, 0))


def test_create_backend_choices(onnx_path, monkeypatch):
    import trtssd.backends as backends
    av = backends.available_backends()
    assert set(av) >= {"tensorrt", "torch-cuda", "onnxruntime-cpu"}
    assert all(isinstance(ok, bool) and isinstance(why, str) for ok, why in av.values())
    be = backends.create_backend("onnxruntime", model=onnx_path)
    assert be.name == "onnxruntime" and be.device == "cpu"
    be = backends.create_backend("auto", model=onnx_path, device="cpu")
    assert be.name == "onnxruntime"
    # auto without TensorRT or CUDA falls to ONNX Runtime on the CPU
    monkeypatch.setattr(backends, "_try_import",
                        lambda n: (None, "absent") if n == "tensorrt" else (__import__(n), ""))
    monkeypatch.setattr(backends, "_torch_cuda", lambda: (False, "no GPU"))
    assert backends.create_backend(model=onnx_path).name == "onnxruntime"
    with pytest.raises(InputError, match="unknown backend"):
        backends.create_backend("tflite", model=onnx_path)
    with pytest.raises(InputError, match="only the tensorrt backend"):
        backends.create_backend("torch", model="model.engine")


def test_importing_backends_loads_nothing_heavy():
    import subprocess
    import sys
    code = ("import sys, trtssd.backends, trtssd.backends.torch_backend, "
            "trtssd.backends.onnxruntime_backend, trtssd.models.resolve, trtssd.models.convert; "
            "bad = [m for m in ('torch', 'onnxruntime', 'onnx', 'tflite', 'pycuda', 'cv2') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.call([sys.executable, "-c", code])
    assert r == 0
