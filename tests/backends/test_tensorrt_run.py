"""The TensorRT backend against a fake tensorrt per API generation (8.2, 8.4, 8.5, 8.6, 10, 11)
and the lean runtime (tensorrt_lean 11).

Device buffers are host-backed stand-ins (fake_tensorrt.devmem) whose
__cuda_array_interface__ carries a host pointer: the fake engine reads the images and writes
outputs through it, so these tests check that trtssd binds the right buffer to the right
tensor, in each generation's documented way. Not a run of real TensorRT.
"""
import json
import os
import sys
import types

import numpy as np
import pytest

from support.fake_tensorrt import GPU, LEAN, installed, make
from support.fake_tensorrt._base import FakeTensorRTError, reference_outputs
from support.fake_tensorrt.devmem import FakeCudaContext, HostDeviceArray
from support.fake_tensorrt.models import A, C, H, W, write_onnx
from support.fake_tensorrt.scenarios import FakeCudart

from trtssd.backends.tensorrt import build as eb
from trtssd.backends.tensorrt import runtime as tb
from trtssd.core.errors import EngineError, InputError

BINDING_CALLS = ("get_binding", "binding_is_input", "set_binding_shape", "execute_async_v2",
                 "get_profile_shape", "max_workspace_size", "active_optimization_profile=")


@pytest.fixture(autouse=True)
def host_buffers(monkeypatch):
    made = []

    def alloc(shape, dtype):
        a = HostDeviceArray(shape, dtype)
        made.append(a)
        return a
    monkeypatch.setattr(tb, "_new_device_array", alloc)
    return made


def backend(trt, model, tmp_path, **kw):
    kw.setdefault("echo", None)
    return tb.TensorRTBackend(model, engine_cache=str(tmp_path / "cache"), trt=trt, gpu=GPU,
                              cuda_context=kw.pop("cuda_context", FakeCudaContext()), **kw)


def buffers(n, dtype=np.float32, seed=0):
    rng = np.random.RandomState(seed)
    img = HostDeviceArray((n, 3, H, W), dtype)
    img.host[...] = rng.uniform(-1, 1, img.host.shape)
    return img, HostDeviceArray((n, A, 4), np.float32), HostDeviceArray((n, A, C), np.float32)


def check_outputs(img, box, cls):
    want_b, want_c = reference_outputs(img.host, A, C)
    # the fake computes in float64 and stores float32: exact equality with the same cast
    np.testing.assert_array_equal(box.host, want_b)
    np.testing.assert_array_equal(cls.host, want_c)


def names(trt):
    return [c[0] for c in trt.calls]


def assert_generation_calls(trt):
    n = names(trt)
    if "tensors" in trt.FEATURES:
        assert not [x for x in n if any(b in x for b in BINDING_CALLS)], n
        assert trt.deprecated == []
    else:
        assert "IExecutionContext.execute_async_v3" not in n


def test_static_engine_several_contexts(trt, onnx_path, tmp_path):
    cuda = FakeCudaContext()
    be = backend(trt, onnx_path, tmp_path, max_batch=2, cuda_context=cuda)
    assert (be.name, be.device, be.max_batch, be.dynamic_batch) == ("tensorrt", "cuda", 2, False)
    assert be.input_dtype == np.float32 and be.spec.num_anchors == A
    bufs = [buffers(2, seed=s) for s in range(3)]
    ctxs = [be.create_context(*b) for b in bufs]      # one per frame in flight
    for ctx in reversed(ctxs):
        ctx.enqueue(None)
    for b in bufs:
        check_outputs(*b)
    n = names(trt)
    assert n.count("ICudaEngine.create_execution_context") == 3
    if "tensors" in trt.FEATURES:
        # addresses set once per context, then execute_async_v3 on the stream handle
        assert n.count("IExecutionContext.set_tensor_address") == 9
        assert n.count("IExecutionContext.execute_async_v3") == 3
        assert n.index("IExecutionContext.set_tensor_address") < \
            n.index("IExecutionContext.execute_async_v3")
    else:
        assert n.count("IExecutionContext.execute_async_v2") == 3
    assert_generation_calls(trt)
    # enqueue again after the inputs change: buffers stay bound, no new address calls
    before = n.count("IExecutionContext.set_tensor_address")
    bufs[0][0].host[...] = 0.25
    ctxs[0].enqueue(types.SimpleNamespace(handle=1234))
    check_outputs(*bufs[0])
    assert names(trt).count("IExecutionContext.set_tensor_address") == before
    last = [c for c in trt.calls if c[0].startswith("IExecutionContext.execute_async")][-1]
    assert last[1][-1] == 1234
    assert cuda.depth == 0 and cuda.pushes > 0
    be.close()
    assert cuda.depth == 0 and not cuda.closed   # a context given by the caller stays open
    assert be.engine is None and be.runtime is None


def test_dynamic_engine_profiles_per_context(trt, onnx_path, tmp_path):
    opts = eb.BuildOptions(max_batch=4, dynamic_batch=True, opt_batch=2, profiles=2)
    be = backend(trt, onnx_path, tmp_path, build_options=opts)
    assert be.dynamic_batch and be.max_batch == 4
    b1, b3 = buffers(1, seed=1), buffers(3, seed=3)
    c1 = be.create_context(*b1)
    c3 = be.create_context(*b3)
    c1.enqueue()
    c3.enqueue()
    check_outputs(*b1)
    check_outputs(*b3)
    with pytest.raises(EngineError, match="--profiles 3"):
        be.create_context(*buffers(2))
    c1.close()
    c2 = be.create_context(*buffers(2))                # profile 0 free again
    if "tensors" in trt.FEATURES:
        shapes = [c[1] for c in trt.calls if c[0] == "IExecutionContext.set_input_shape"]
        assert shapes == [("images", (1, 3, H, W)), ("images", (3, 3, H, W)),
                          ("images", (2, 3, H, W))]
    else:
        shapes = [c[1] for c in trt.calls if c[0] == "IExecutionContext.set_binding_shape"]
        # profile 1's input binding is number 3 (3 bindings per profile)
        assert shapes == [(0, (1, 3, H, W)), (3, (3, 3, H, W)), (0, (2, 3, H, W))]
    profiles = [c[1][0] for c in trt.calls
                if c[0] == "IExecutionContext.set_optimization_profile_async"]
    assert profiles == [1]
    assert_generation_calls(trt)
    c2.close()
    c3.close()
    be.close()


def test_infer_convenience(trt, onnx_path, tmp_path, host_buffers):
    be = backend(trt, onnx_path, tmp_path, max_batch=3)
    x = np.random.RandomState(5).uniform(-1, 1, (2, 3, H, W)).astype(np.float32)
    boxes, scores = be.infer(x)                         # padded to the static batch of 3
    want_b, want_c = reference_outputs(np.concatenate([x, np.zeros((1, 3, H, W))]), A, C)
    np.testing.assert_array_equal(boxes, want_b[:2])
    np.testing.assert_array_equal(scores, want_c[:2])
    be.infer(x)
    assert len(host_buffers) == 3                       # buffers reused across calls
    be.close()
    assert all(b.closed for b in host_buffers)
    with pytest.raises(InputError):
        backend(trt, onnx_path, tmp_path, max_batch=3).infer(np.zeros((2, 3, H + 1, W)))


def test_wrong_buffers_are_refused_before_any_launch(trt, onnx_path, tmp_path):
    be = backend(trt, onnx_path, tmp_path, max_batch=2)
    img, box, cls = buffers(2)
    bad = [((HostDeviceArray((2, 3, H, W + 1), np.float32), box, cls), "images"),
           ((HostDeviceArray((2, 3, H, W), np.float16), box, cls), "images"),
           ((img, HostDeviceArray((2, A, 5), np.float32), cls), "box_encodings"),
           ((img, box, HostDeviceArray((2, A + 1, C), np.float32)), "class_scores"),
           ((img.host, box, cls), "device buffer"),
           (buffers(1), "fixed batch of 2"),
           (buffers(3), "1..2")]
    for args, match in bad:
        with pytest.raises(InputError, match=match):
            be.create_context(*args)
    assert "ICudaEngine.create_execution_context" not in names(trt)
    assert not [c for c in names(trt) if "execute" in c]
    np.testing.assert_array_equal(np.isnan(box.host), True)   # nothing written


def _engine(trt, onnx_path, tmp_path):
    path, _ = eb.ensure_engine(onnx_path, eb.BuildOptions(), cache_dir=str(tmp_path / "cache"),
                               trt=trt, gpu=GPU, echo=None)
    return path


def test_engine_file_with_sidecar_loads(trt, onnx_path, tmp_path):
    path = _engine(trt, onnx_path, tmp_path)
    be = backend(trt, path, tmp_path)
    b = buffers(1)
    be.create_context(*b).enqueue()
    check_outputs(*b)
    be.close()


def test_foreign_engines_are_refused_with_the_rebuild_command(onnx_path, tmp_path):
    path = _engine(make("8.2"), onnx_path, tmp_path)
    with pytest.raises(EngineError) as e:
        backend(make("10"), path, tmp_path)
    msg = str(e.value)
    assert "TensorRT 8.2.5.1" in msg and "TensorRT 10.3.0.26" in msg
    assert "trtssd build-engine" in msg and "--force" in msg
    other_gpu = {"name": "NVIDIA Jetson Nano", "compute_capability": "5.3"}
    with pytest.raises(EngineError, match="this GPU is NVIDIA Jetson Nano"):
        tb.TensorRTBackend(path, trt=make("8.2"), gpu=other_gpu, cuda_context=FakeCudaContext())


def test_engine_without_sidecar_is_refused(trt, onnx_path, tmp_path):
    path = _engine(trt, onnx_path, tmp_path)
    os.remove(path + ".json")
    with pytest.raises(EngineError, match="no sidecar.*--force"):
        backend(trt, path, tmp_path)
    assert "Runtime.deserialize_cuda_engine" not in names(trt)


def test_corrupt_or_truncated_engine(trt, onnx_path, tmp_path):
    path = _engine(trt, onnx_path, tmp_path)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(EngineError, match="truncated or corrupt"):
        backend(trt, path, tmp_path)
    assert "Runtime.deserialize_cuda_engine" not in names(trt)   # never handed to TensorRT
    # a file that matches its sidecar but that TensorRT rejects: deserialize returns None
    bad = b"garbage" + data[7:]
    with open(path, "wb") as f:
        f.write(bad)
    side = json.load(open(path + ".json"))
    side["engine_bytes"], side["engine_sha256"] = len(bad), eb.hashlib.sha256(bad).hexdigest()
    json.dump(side, open(path + ".json", "w"))
    cuda = FakeCudaContext()
    with pytest.raises(EngineError) as e:
        backend(trt, path, tmp_path, cuda_context=cuda)
    assert "Magic tag does not match" in str(e.value) and "--force" in str(e.value)
    assert cuda.depth == 0


def test_engine_io_checked_against_the_spec(trt, tmp_path):
    path = write_onnx(str(tmp_path / "odd.onnx"), out_names=("boxes", "class_scores"))
    with pytest.raises(Exception) as e:     # the builder refuses it already
        backend(trt, path, tmp_path)
    assert "box_encodings" in str(e.value)
    # an engine whose spec (sidecar) disagrees with its tensors is refused by the runner
    good = _engine(trt, write_onnx(str(tmp_path / "t.onnx")), tmp_path)
    side = json.load(open(good + ".json"))
    side["spec"]["num_classes"] = C + 1
    json.dump(side, open(good + ".json", "w"))
    with pytest.raises(EngineError, match="class_scores.*rebuild"):
        backend(trt, good, tmp_path)


def test_max_batch_larger_than_the_engine(trt, onnx_path, tmp_path):
    path = _engine(trt, onnx_path, tmp_path)
    with pytest.raises(EngineError, match="--max-batch 4"):
        backend(trt, path, tmp_path, max_batch=4)


def test_tensorrt_imported_from_sys_modules(onnx_path, tmp_path):
    with installed("8.5") as fake:
        be = tb.TensorRTBackend(onnx_path, engine_cache=str(tmp_path / "c"), gpu=GPU,
                                cuda_context=FakeCudaContext(), echo=None)
        assert be.api.trt is fake and be.api.generation == "tensors"
        be.close()


def test_fake_catches_a_wrong_call_order():
    """The fakes can fail: execute_async_v3 before set_tensor_address is caught."""
    trt = make("10")
    header = {"version": trt.__version__, "profiles": [], "io": [
        {"name": "images", "input": True, "shape": [1, 3, H, W], "dtype": 0},
        {"name": "box_encodings", "input": False, "shape": [1, A, 4], "dtype": 0},
        {"name": "class_scores", "input": False, "shape": [1, A, C], "dtype": 0}]}
    engine = trt.ICudaEngine(header)
    ctx = engine.create_execution_context()
    with pytest.raises(FakeTensorRTError, match="set_tensor_address was not called"):
        ctx.execute_async_v3(0)
    with pytest.raises(FakeTensorRTError, match="int"):
        ctx.set_tensor_address("images", 1.5)


@pytest.mark.parametrize("generation", ["8.5", "10", "11"])
def test_cuda_graph_capture_once_then_replay(generation, onnx_path, tmp_path, monkeypatch):
    trt = make(generation)
    rt = FakeCudart(trt)
    monkeypatch.setattr(tb, "_cudart", lambda: rt)
    be = backend(trt, onnx_path, tmp_path, cuda_graph=True)
    b = buffers(1)
    ctx = be.create_context(*b)
    stream = types.SimpleNamespace(handle=77)
    ctx.enqueue(stream)        # runs plainly (the real work), then captures
    check_outputs(*b)
    assert [c[0] for c in rt.calls] == ["begin", "end", "instantiate"]
    assert rt.captured == ["IExecutionContext.execute_async_v3"]
    n_exec = names(trt).count("IExecutionContext.execute_async_v3")
    ctx.enqueue(stream)
    ctx.enqueue(types.SimpleNamespace(handle=78))
    assert rt.calls[-2:] == [("launch", "exec", 77), ("launch", "exec", 78)]
    assert names(trt).count("IExecutionContext.execute_async_v3") == n_exec
    ctx.enqueue(None)          # the legacy default stream is never captured: plain run
    assert names(trt).count("IExecutionContext.execute_async_v3") == n_exec + 1
    ctx.close()
    assert ("destroy_exec",) in rt.calls and ("destroy_graph",) in rt.calls
    be.close()


def test_no_cuda_graph_on_the_bindings_api(onnx_path, tmp_path, monkeypatch):
    trt = make("8.2")
    rt = FakeCudart(trt)
    monkeypatch.setattr(tb, "_cudart", lambda: rt)
    be = backend(trt, onnx_path, tmp_path, cuda_graph=True)
    be.create_context(*buffers(1)).enqueue(types.SimpleNamespace(handle=5))
    assert rt.calls == []
    be.close()


def test_import_needs_nothing_but_numpy():
    import subprocess
    code = ("import sys, trtssd.backends.tensorrt.runtime, trtssd.backends.tensorrt.build, "
            "trtssd.backends.tensorrt.compat; bad = [m for m in ('tensorrt', 'pycuda', 'cv2', 'onnx', 'torch',"
            " 'cuda') if m in sys.modules]; assert not bad, bad")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.check_call([sys.executable, "-c", code], cwd=repo)


# ---------------------------------------------------------------------- the lean runtime
def _portable_engine(onnx_path, tmp_path, **kw):
    """An engine built by full TensorRT 11 for the lean runtime (version-compatible)."""
    opts = eb.BuildOptions(version_compatible=True, **kw)
    path, side = eb.ensure_engine(onnx_path, opts, cache_dir=str(tmp_path / "cache"),
                                  trt=make("11"), gpu=GPU, echo=None)
    return path, side


def test_version_compatible_engine_runs_on_the_lean_runtime_alone(onnx_path, tmp_path):
    path, side = _portable_engine(onnx_path, tmp_path, max_batch=2)
    assert side["version_compatible"] and "-fp16-vc-b2-" in os.path.basename(path)
    assert "--version-compatible" in side["rebuild_command"]
    with installed(LEAN) as lean:            # `import tensorrt` fails, tensorrt_lean is there
        be = tb.TensorRTBackend(path, gpu=GPU, cuda_context=FakeCudaContext(), echo=None)
        assert be.api.trt is lean and be.api.is_lean
        b = buffers(2)
        be.create_context(*b).enqueue()
        check_outputs(*b)
        be.close()
    assert ("Runtime.engine_host_code_allowed=", (True,)) in lean.calls


def test_lean_runtime_refuses_what_it_cannot_run(onnx_path, tmp_path):
    plain = _engine(make("11"), onnx_path, tmp_path)
    with installed(LEAN) as lean:
        with pytest.raises(EngineError) as e:
            tb.TensorRTBackend(plain, gpu=GPU, cuda_context=FakeCudaContext(), echo=None)
        msg = str(e.value)
        assert "built without --version-compatible" in msg and "--version-compatible`" in msg
        assert "Runtime.deserialize_cuda_engine" not in [c[0] for c in lean.calls]
        # an ONNX needs a builder, which the lean runtime has not
        from trtssd.core.errors import EnvironmentProblem
        with pytest.raises(EnvironmentProblem, match="runtime only.*--version-compatible"):
            tb.TensorRTBackend(onnx_path, gpu=GPU, cuda_context=FakeCudaContext(), echo=None)


def test_without_tensorrt_or_lean_the_error_names_both(monkeypatch):
    from trtssd.backends.tensorrt import compat
    from trtssd.core.errors import EnvironmentProblem
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt_lean", None)
    with pytest.raises(EnvironmentProblem, match="tensorrt-lean-cu13"):
        compat.import_tensorrt(lean_ok=True)
    with pytest.raises(EnvironmentProblem) as e:
        compat.import_tensorrt()
    assert "lean" not in str(e.value)         # building needs full TensorRT
