"""The fakes themselves: each generation offers only its documented API, and rejects misuse.

A fake that accepted anything would prove nothing about trtssd's TensorRT code, so these
tests show each fake fails the way the real library does (AttributeError for a call the
version lacks; FakeTensorRTError for a wrong argument type or order).
"""
import pytest

from support.fake_tensorrt import GENERATIONS, LEAN, make
from support.fake_tensorrt._base import FakeTensorRTError

from trtssd.backends.tensorrt import compat as trt_compat
from trtssd.core.errors import EnvironmentProblem


def test_generation_surfaces():
    f = dict((g, make(g)) for g in GENERATIONS)
    # bindings API: 8.2-8.6, gone in 10
    for g in ("8.2", "8.4", "8.5", "8.6"):
        assert hasattr(f[g].ICudaEngine, "num_bindings")
        assert hasattr(f[g].IExecutionContext, "execute_async_v2")
    assert not hasattr(f["10"].ICudaEngine, "num_bindings")
    assert not hasattr(f["10"].ICudaEngine, "get_binding_shape")
    assert not hasattr(f["10"].IExecutionContext, "execute_async_v2")
    assert not hasattr(f["10"].IBuilderConfig, "max_workspace_size")
    # tensor-name API from 8.5
    for g in ("8.2", "8.4"):
        assert not hasattr(f[g].ICudaEngine, "num_io_tensors")
        assert not hasattr(f[g].IExecutionContext, "execute_async_v3")
        assert not hasattr(f[g], "TensorIOMode")
    # memory pools from 8.4 (8.3 in fact), progress monitor in 10 only
    assert not hasattr(f["8.2"].IBuilderConfig, "set_memory_pool_limit")
    assert not hasattr(f["8.2"], "MemoryPoolType")
    assert all(not hasattr(f[g], "IProgressMonitor") for g in GENERATIONS if g < "10")
    assert hasattr(f["10"].IBuilderConfig, "progress_monitor")
    # 11: strongly typed only; no precision flags, no calibrator, no EXPLICIT_BATCH
    assert not hasattr(f["11"].BuilderFlag, "FP16") and not hasattr(f["11"].BuilderFlag, "INT8")
    assert not hasattr(f["11"], "IInt8EntropyCalibrator2")
    assert not hasattr(f["11"].IBuilderConfig, "int8_calibrator")
    assert not hasattr(f["11"].NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
    assert hasattr(f["11"].NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    assert all(hasattr(f[g].BuilderFlag, "FP16") for g in GENERATIONS if g != "11")
    # the lean runtime: runs, cannot build
    lean = make(LEAN)
    assert lean.__name__ == "tensorrt_lean"
    assert hasattr(lean, "Runtime") and hasattr(lean.ICudaEngine, "num_io_tensors")
    assert not hasattr(lean, "Builder") and not hasattr(lean, "OnnxParser")


@pytest.mark.parametrize("generation,expect", [("8.2", "bindings"), ("8.4", "bindings"),
                                               ("8.5", "tensors"), ("8.6", "tensors"),
                                               ("10", "tensors"), ("11", "tensors"),
                                               (LEAN, "tensors")])
def test_compat_detects_the_generation(generation, expect):
    api = trt_compat.TrtApi(make(generation))
    assert api.generation == expect
    old = generation.startswith("8.")
    assert api.network_flags() == (1 if old else 0)
    if generation in ("10", "11"):
        assert api.network_flags(strongly_typed=True) == 2
    assert api.has_memory_pool == (generation not in ("8.2", LEAN))   # lean: no builder config
    assert api.has_progress_monitor == (generation in ("10", "11"))
    assert api.strongly_typed_only == (generation == "11")
    assert api.has_calibrator == (generation not in ("11", LEAN))
    assert api.has_version_compatible == (generation in ("8.6", "10", "11"))
    assert api.can_build == (generation != LEAN) and api.is_lean == (generation == LEAN)


def test_detection_follows_features_not_the_version_string():
    fake = make("10")
    fake.__version__ = "8.2.1"          # a misleading string: the API decides
    assert trt_compat.TrtApi(fake).generation == "tensors"


def test_a_stub_module_is_refused():
    import types
    stub = types.ModuleType("tensorrt")
    stub.__version__ = "10.0.0"
    with pytest.raises(EnvironmentProblem, match="stub"):
        trt_compat.TrtApi(stub)


def test_parse_version():
    assert trt_compat.parse_version("8.2.5.1") == (8, 2, 5, 1)
    assert trt_compat.parse_version("10.3.0.post1") == (10, 3, 0, 0)
    assert trt_compat.parse_version("10") == (10, 0, 0)


def test_stream_handle():
    import types
    from trtssd.core.errors import InputError
    assert trt_compat.stream_handle(None) == 0
    assert trt_compat.stream_handle(types.SimpleNamespace(handle=99)) == 99
    assert trt_compat.stream_handle(7) == 7
    with pytest.raises(InputError):
        trt_compat.stream_handle("stream")


@pytest.mark.parametrize("generation", GENERATIONS)
def test_fakes_reject_misuse(generation):
    trt = make(generation)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    config = builder.create_builder_config()
    with pytest.raises(FakeTensorRTError):
        config.set_flag("FP16")                        # needs the enum member
    with pytest.raises(FakeTensorRTError):
        builder.create_network("1")
    with pytest.raises(FakeTensorRTError):
        trt.Builder(object())                          # not an ILogger

    class NoInit(trt.ILogger):
        def __init__(self):
            pass

        def log(self, s, m):
            pass
    with pytest.raises(FakeTensorRTError, match="ILogger.__init__"):
        trt.Runtime(NoInit())
    # another version's engine bytes: logged error and None, as TensorRT does
    runtime = trt.Runtime(logger)
    assert runtime.deserialize_cuda_engine(b"FAKETRT\x00{\"version\": \"1.0\"}") is None
    assert "expecting library version" in logger.messages[-1][1]
    assert runtime.deserialize_cuda_engine(b"\x00" * 64) is None


@pytest.mark.parametrize("generation", ["8.2", "8.5"])
def test_implicit_batch_network_fails_to_parse_before_10(generation, tmp_path):
    from support.fake_tensorrt.models import write_onnx
    trt = make(generation)
    logger = trt.Logger()
    network = trt.Builder(logger).create_network(0)
    parser = trt.OnnxParser(network, logger)
    with open(write_onnx(str(tmp_path / "m.onnx")), "rb") as f:
        assert not parser.parse(f.read())
    assert "explicit batch" in parser.get_error(0).desc()


def test_execute_async_v2_needs_a_list_of_ints():
    trt = make("8.2")
    engine = trt.ICudaEngine({"version": trt.__version__, "profiles": [], "io": [
        {"name": "images", "input": True, "shape": [1, 3, 4, 4], "dtype": 0},
        {"name": "box_encodings", "input": False, "shape": [1, 2, 4], "dtype": 0},
        {"name": "class_scores", "input": False, "shape": [1, 2, 3], "dtype": 0}]})
    ctx = engine.create_execution_context()
    with pytest.raises(FakeTensorRTError, match="list of int"):
        ctx.execute_async_v2((1, 2, 3), 0)
    with pytest.raises(FakeTensorRTError, match="stream_handle"):
        ctx.execute_async_v2([1, 2, 3], object())
    with pytest.raises(FakeTensorRTError, match="all 3 bindings"):
        ctx.execute_async_v2([1, 2], 0)


def test_logger_capture_keeps_errors():
    trt = make("10")
    msgs = []
    logger = trt_compat.make_logger(trt, echo=msgs.append)
    logger.log(trt.ILogger.Severity.ERROR, "boom")
    logger.log(trt.ILogger.Severity.INFO, "chatter")
    assert logger.errors() == ["boom"]
    assert msgs == ["[TensorRT ERROR] boom"]
