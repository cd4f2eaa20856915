"""What the TensorRT tests share beyond the fakes: calibration pictures, a CPU stand-in for the
calibrator's GPU preprocessing, a fake cuda-python runtime for graph capture, and ``exercise``:
every build and run path of trtssd against one fake, for the conformance test's recorder."""
import types

import numpy as np

from .devmem import FakeCudaContext, HostDeviceArray
from . import GPU
from .models import A, C, H, W, write_onnx


def calib_images(folder, count):
    """``count`` random PNG pictures of an odd size in ``folder`` (a pathlib.Path)."""
    import cv2
    folder.mkdir()
    rng = np.random.RandomState(11)
    for i in range(count):
        cv2.imwrite(str(folder / ("%03d.png" % i)), rng.randint(0, 256, (37, 53, 3), np.uint8))
    return str(folder)


def cpu_feed_preprocess(seen):
    """Stand-in for GpuPreprocessor in CI: resize+normalise on the CPU into a host buffer."""
    import cv2

    def run(frames):
        out = HostDeviceArray((len(frames), 3, H, W), np.float32)
        for i, f in enumerate(frames):
            rgb = cv2.resize(f, (W, H))[:, :, ::-1].astype(np.float32)
            out.host[i] = ((rgb - 128.0) / 128.0).transpose(2, 0, 1)
        seen.append(out)
        return out
    return run


class FakeCudart(object):
    """Records the cuda-python runtime calls of graph capture (API of cuda.bindings.runtime)."""

    class cudaError_t(object):
        cudaSuccess = 0

    class cudaStreamCaptureMode(object):
        cudaStreamCaptureModeThreadLocal = 2

    def __init__(self, trt):
        self.trt, self.calls, self.capturing = trt, [], False

    def cudaStreamBeginCapture(self, stream, mode):
        self.calls.append(("begin", stream))
        self.capturing = True
        self.mark = len(self.trt.calls)
        return (0,)

    def cudaStreamEndCapture(self, stream):
        self.calls.append(("end", stream))
        self.capturing = False
        self.captured = [c[0] for c in self.trt.calls[self.mark:]]
        return (0, "graph")

    def cudaGraphInstantiateWithFlags(self, graph, flags):
        self.calls.append(("instantiate", graph))
        return (0, "exec")

    def cudaGraphLaunch(self, exe, stream):
        self.calls.append(("launch", exe, stream))
        return (0,)

    def cudaGraphExecDestroy(self, exe):
        self.calls.append(("destroy_exec",))
        return (0,)

    def cudaGraphDestroy(self, g):
        self.calls.append(("destroy_graph",))
        return (0,)


def _buffers(n, seed=0):
    rng = np.random.RandomState(seed)
    img = HostDeviceArray((n, 3, H, W), np.float32)
    img.host[...] = rng.uniform(-1, 1, img.host.shape)
    return img, HostDeviceArray((n, A, 4), np.float32), HostDeviceArray((n, A, C), np.float32)


def exercise(trt, tmp_path, monkeypatch, run_trt=None):
    """Every build and run path of trtssd on ``trt`` (a fake, or a Recorder around one).

    Builds: each precision the version offers (fp16, fp32, INT8 from Q/DQ and, where the
    version has a calibrator, INT8 calibrated with static and dynamic shapes), a dynamic batch
    with several profiles, the timing cache (written then reused), the progress monitor where
    there is one, a version-compatible engine where the version has the flag, a parser error.
    Runs: several
    contexts on a static engine, profiles on a dynamic one, CUDA-graph capture and replay,
    ``infer``. ``run_trt`` (default ``trt``) is the module the engines are run with (the lean
    runtime runs what the full one built). Returns the engines built, by name.
    """
    from trtssd.backends.tensorrt import build as eb
    from trtssd.backends.tensorrt import runtime as tb
    run_trt = run_trt if run_trt is not None else trt
    monkeypatch.setattr(tb, "_new_device_array", lambda shape, dtype: HostDeviceArray(shape,
                                                                                       dtype))
    monkeypatch.setattr(tb, "_cudart", lambda: FakeCudart(_raw(run_trt)))
    model = write_onnx(str(tmp_path / "tiny.onnx"))
    qdq = write_onnx(str(tmp_path / "tiny-qdq.onnx"), qdq=True)
    cache = str(tmp_path / "cache")
    timing = str(tmp_path / "timing.cache")
    lean = "lean" in _raw(run_trt).FEATURES
    engines = {}

    def build(name, path, **kw):
        kw.setdefault("timing_cache", timing)
        if lean:
            kw["version_compatible"] = True
        engines[name], _ = eb.ensure_engine(path, eb.BuildOptions(**kw), cache_dir=cache, trt=trt,
                                            gpu=GPU, echo=lambda text: None)

    build("fp16", model, max_batch=2)
    build("fp16-again", model, max_batch=2, force=True)       # timing cache read back
    build("dynamic", model, max_batch=4, dynamic_batch=True, opt_batch=2, profiles=2)
    if not lean:
        build("fp32", model, precision="fp32")
        build("int8-qdq", qdq, precision="int8")
        if eb.TrtApi(trt).has_calibrator:
            images = calib_images(tmp_path / "calib", 4)
            for dynamic in (False, True):
                opts = eb.BuildOptions(precision="int8", calib_images=images, calib_batch=2,
                                       dynamic_batch=dynamic, max_batch=2)
                out = str(tmp_path / ("int8-cal-%d.engine" % dynamic))
                eb.build_engine(model, out, opts, trt=trt, gpu=GPU, echo=None,
                                preprocess=cpu_feed_preprocess([]))
        if eb.TrtApi(trt).has_version_compatible:
            build("portable", model, version_compatible=True)

        # the parser's error report: node, operator and description of each error
        from trtssd.core.errors import ModelError
        bad = write_onnx(str(tmp_path / "bad.onnx"), extra_ops=["NoSuchOp"])
        try:
            build("bad", bad)
        except ModelError as e:
            assert "NoSuchOp" in str(e), e
        else:
            raise AssertionError("the parser accepted an unknown operator")

    stream = types.SimpleNamespace(handle=77)
    be = tb.TensorRTBackend(engines["fp16"], trt=run_trt, gpu=GPU, echo=None,
                            cuda_context=FakeCudaContext(), cuda_graph=True)
    ctxs = [be.create_context(*_buffers(2, seed=s)) for s in range(2)]
    for ctx in ctxs:
        ctx.enqueue(stream)          # plain run, then capture
        ctx.enqueue(stream)          # replay
        ctx.enqueue(None)            # legacy default stream: plain
    be.infer(np.zeros((1, 3, H, W), np.float32))
    be.close()
    be = tb.TensorRTBackend(engines["dynamic"], trt=run_trt, gpu=GPU, echo=None,
                            cuda_context=FakeCudaContext())
    ctxs = [be.create_context(*_buffers(n)) for n in (1, 3)]     # a profile each
    for ctx in ctxs:
        ctx.enqueue(stream)
        ctx.close()
    be.infer(np.zeros((2, 3, H, W), np.float32))
    be.close()
    return engines


def _raw(trt):
    """The fake module behind a Recorder (or the module itself)."""
    return getattr(trt, "_fake", trt)
