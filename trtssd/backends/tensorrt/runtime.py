"""TensorRT backend: one engine, several execution contexts, enqueue without synchronising.

Works with TensorRT 8.2 to 10.x through ``trtssd.backends.tensorrt.compat`` (bindings API before 8.5, the
tensor-name API from 8.5; chosen by what the module offers). ``model`` is an ``.onnx`` or
``.tflite`` (an engine is built or found in the cache, see ``trtssd.backends.tensorrt.build``) or an engine
file with its JSON sidecar; an engine whose sidecar names another TensorRT version, another
GPU or whose bytes changed is refused with the command that rebuilds it.

Safety: an engine file can carry plugin code, so loading an engine is running code. Load only
engines you built yourself or got from a source you trust.

CUDA graphs: with ``cuda_graph=True`` and NVIDIA's cuda-python importable (``cuda.bindings.
runtime`` or the older ``cuda.cudart``), each context captures its ``execute_async_v3`` once on
the caller's stream (after one plain run, which flushes TensorRT's deferred set-up) and replays
the graph afterwards. The legacy default stream (``stream=None``) cannot be captured, so it
always runs plainly; any capture failure falls back to plain enqueues for that context.
"""
import threading
import warnings

import numpy as np

from ...core.errors import EngineError, InputError
from ...gpu.cuda import device_buffer
from .compat import TENSORS, TrtApi, make_logger, stream_handle
from ..base import Backend, ExecutionContext

INPUT_NAME = "images"
OUTPUT_NAMES = ("box_encodings", "class_scores")


def _new_device_array(shape, dtype):
    """Device buffer for ``infer`` (tests replace this with host-backed fakes)."""
    from ...gpu.cuda import DeviceArray
    return DeviceArray(shape, dtype)


def _cudart():
    """NVIDIA cuda-python's runtime module, or None."""
    try:
        from cuda.bindings import runtime as cudart
        return cudart
    except ImportError:
        pass
    try:
        from cuda import cudart
        return cudart
    except ImportError:
        return None


_buffer_facts = device_buffer     # (pointer, shape, numpy dtype), checked


class _GraphReplay(object):
    """Capture one context's enqueue into a CUDA graph once, then replay it."""

    def __init__(self, cudart):
        self.rt = cudart
        self.graph = None
        self.exec = None
        self.failed = False

    def _ok(self, result, what):
        err = result[0] if isinstance(result, tuple) else result
        if err != self.rt.cudaError_t.cudaSuccess:
            raise RuntimeError("%s failed: %s" % (what, err))
        return result[1] if isinstance(result, tuple) and len(result) > 1 else None

    def capture(self, run, handle):
        rt = self.rt
        capturing = False
        try:
            self._ok(rt.cudaStreamBeginCapture(
                handle, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
                "cudaStreamBeginCapture")
            capturing = True
            run()
            capturing = False
            self.graph = self._ok(rt.cudaStreamEndCapture(handle), "cudaStreamEndCapture")
            if hasattr(rt, "cudaGraphInstantiateWithFlags"):
                self.exec = self._ok(rt.cudaGraphInstantiateWithFlags(self.graph, 0),
                                     "cudaGraphInstantiateWithFlags")
            else:
                self.exec = self._ok(rt.cudaGraphInstantiate(self.graph, 0),
                                     "cudaGraphInstantiate")
        except Exception as e:  # any failure: plain enqueues from now on
            if capturing:
                try:
                    rt.cudaStreamEndCapture(handle)
                except Exception:
                    pass
            self.failed = True
            self.close()
            warnings.warn("CUDA graph capture of the TensorRT enqueue failed (%s); this context "
                          "runs without a graph" % e)

    def launch(self, handle):
        self._ok(self.rt.cudaGraphLaunch(self.exec, handle), "cudaGraphLaunch")

    def close(self):
        if self.exec is not None:
            self.rt.cudaGraphExecDestroy(self.exec)
            self.exec = None
        if self.graph is not None:
            self.rt.cudaGraphDestroy(self.graph)
            self.graph = None


class TensorRTContext(ExecutionContext):
    """One IExecutionContext with its buffers bound once."""

    def __init__(self, backend, images, box_encodings, class_scores):
        self.backend = backend
        self._context = None
        self._graph = None
        self._profile = None
        b = backend
        ptr_i, shape_i, dt_i = _buffer_facts(images, "images")
        if len(shape_i) != 4:
            raise InputError("images buffer has shape %s, expected [n,3,%d,%d]"
                             % (shape_i, b.spec.input_height, b.spec.input_width))
        n = shape_i[0]
        b.check_batch(n)
        if not b.dynamic_batch and n != b.max_batch:
            raise InputError("this engine was built for a fixed batch of %d, the images buffer "
                             "holds %d; pass %d frames, or build with --dynamic-batch "
                             "--max-batch %d" % (b.max_batch, n, b.max_batch, b.max_batch))
        want = {"images": (b.input_shape(n), b.input_dtype)}
        sb, ss = b.output_shapes(n)
        want["box_encodings"] = (sb, np.dtype(np.float32))
        want["class_scores"] = (ss, np.dtype(np.float32))
        facts = {"images": (ptr_i, shape_i, dt_i),
                 "box_encodings": _buffer_facts(box_encodings, "box_encodings"),
                 "class_scores": _buffer_facts(class_scores, "class_scores")}
        for name, (shape, dtype) in want.items():
            got_shape, got_dtype = facts[name][1], facts[name][2]
            if tuple(got_shape) != tuple(shape) or got_dtype != dtype:
                raise InputError("%s buffer is %s %s, the engine needs %s %s"
                                 % (name, list(got_shape), got_dtype, list(shape), dtype))
        api = b.api
        with b.cuda.active():
            if b.dynamic_batch:
                self._profile = b._acquire_profile()
            try:
                self._context = api.create_context(b.engine)
                profile = self._profile or 0
                api.select_profile(b.engine, self._context, profile)
                if b.dynamic_batch:
                    api.set_input_shape(b.engine, self._context, b.io["images"], (n,) +
                                        tuple(b.input_shape(n)[1:]), profile)
                self._bindings = api.bind(b.engine, self._context,
                                          [(b.io[k], facts[k][0]) for k in
                                           ("images",) + OUTPUT_NAMES], profile)
            except Exception:
                self.close()
                raise
        self.batch = n
        if b.cuda_graph and api.generation == TENSORS:
            rt = _cudart()
            if rt is not None:
                self._graph = _GraphReplay(rt)

    def _run(self, handle):
        self.backend.api.enqueue(self._context, self._bindings, handle)

    def enqueue(self, stream=None):
        if self._context is None:
            raise InputError("this TensorRT context is closed; create a new one")
        handle = stream_handle(stream)
        with self.backend.cuda.active():
            g = self._graph
            if g is None or g.failed or handle == 0:
                self._run(handle)
            elif g.exec is not None:
                g.launch(handle)
            else:
                self._run(handle)   # the real work, and flushes TensorRT's deferred set-up
                g.capture(lambda: self._run(handle), handle)

    def close(self):
        b = self.backend
        if self._graph is not None:
            with b.cuda.active():
                self._graph.close()
            self._graph = None
        if self._context is not None:
            with b.cuda.active():
                self._context = None
        if self._profile is not None:
            b._release_profile(self._profile)
            self._profile = None
        b._forget(self)


class TensorRTBackend(Backend):
    """A TensorRT engine on one GPU (``device``), shared by every context it creates."""
    name = "tensorrt"
    device = "cuda"

    def __init__(self, model, precision="fp16", max_batch=1, engine_cache=None, device=0,
                 cuda_graph=False, dynamic_batch=False, build_options=None, echo=print,
                 trt=None, gpu=None, cuda_context=None):
        from . import build as eb
        self.api = TrtApi(trt)
        trt = self.api.trt
        self.cuda_graph = bool(cuda_graph)
        self._lock = threading.Lock()
        self._contexts = []
        self._infer_cache = {}
        self.engine = self.runtime = None
        self.cuda = None
        self._own_cuda = False
        gpu = gpu or eb.gpu_identity(device)
        path = str(model)
        if path.lower().endswith((".onnx", ".tflite")) or path == "synthetic":
            options = build_options or eb.BuildOptions(precision=precision, max_batch=max_batch,
                                                       dynamic_batch=dynamic_batch,
                                                       device=device)
            path, _ = eb.ensure_engine(path, options, cache_dir=engine_cache, trt=trt, gpu=gpu,
                                       echo=echo)
        data, sidecar, spec = eb.load_checked_engine(path, self.api.version, gpu)
        self.engine_path = path
        self.sidecar = sidecar
        self.spec = spec
        self.precision = sidecar.get("precision", precision)
        rebuild = sidecar.get("rebuild_command", "python engines/build_engine.py MODEL.onnx")

        if cuda_context is None:
            from ...gpu.cuda import CudaContext
            cuda_context = CudaContext(device)
            self._own_cuda = True
        self.cuda = cuda_context
        try:
            with self.cuda.active():
                self.logger = make_logger(trt)
                if hasattr(trt, "init_libnvinfer_plugins"):
                    trt.init_libnvinfer_plugins(self.logger, "")
                self.runtime = trt.Runtime(self.logger)
                self.engine = self.runtime.deserialize_cuda_engine(data)
                if self.engine is None:
                    raise EngineError(
                        "TensorRT %s could not load engine %s (%s): it was built by another "
                        "TensorRT version or for another GPU, or the file is corrupt. Rebuild it "
                        "with `%s`" % (self.api.version, path,
                                       "; ".join(self.logger.errors()) or "no message", rebuild))
                self._check_io(path, rebuild, max_batch)
        except Exception:
            self.close()
            raise
        self._free_profiles = (list(range(self.api.num_profiles(self.engine)))
                               if self.dynamic_batch else [])

    # ------------------------------------------------------------------ checks
    def _check_io(self, path, rebuild, requested_batch):
        infos = self.api.io_tensors(self.engine)
        self.io = dict((t.name, t) for t in infos)
        names = sorted(self.io)
        expected = sorted((INPUT_NAME,) + OUTPUT_NAMES)
        if names != expected:
            raise EngineError("engine %s has tensors %s, trtssd needs %s; it was not built from "
                              "trtssd's ONNX. Rebuild it with `%s`" % (path, names, expected,
                                                                       rebuild))
        img = self.io[INPUT_NAME]
        if not img.is_input or any(self.io[o].is_input for o in OUTPUT_NAMES):
            raise EngineError("engine %s: %r must be its only input; rebuild with `%s`"
                              % (path, INPUT_NAME, rebuild))
        s = self.spec
        if len(img.shape) != 4 or img.shape[1:] != (3, s.input_height, s.input_width):
            raise EngineError("engine %s: input shape %s does not match the model's [N,3,%d,%d];"
                              " rebuild with `%s`" % (path, img.shape, s.input_height,
                                                      s.input_width, rebuild))
        if img.dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
            raise EngineError("engine %s: input dtype %s, expected float32 or float16; rebuild "
                              "with `%s`" % (path, img.dtype, rebuild))
        self.input_dtype = img.dtype
        self.dynamic_batch = img.shape[0] < 0
        if self.dynamic_batch:
            mins, _, maxs = self.api.profile_shape(self.engine, img, 0)
            if mins[0] != 1:
                raise EngineError("engine %s: its profile starts at batch %d, trtssd needs 1; "
                                  "rebuild with `%s`" % (path, mins[0], rebuild))
            self.max_batch = int(maxs[0])
        else:
            self.max_batch = int(img.shape[0])
        if requested_batch and int(requested_batch) > self.max_batch:
            raise EngineError("engine %s takes at most %d frames, %d were asked for; rebuild with "
                              "--max-batch %d" % (path, self.max_batch, requested_batch,
                                                  requested_batch))
        for name, last in zip(OUTPUT_NAMES, (4, s.num_classes)):
            t = self.io[name]
            want = (s.num_anchors, last)
            if len(t.shape) != 3 or t.shape[1:] != want or \
                    (t.shape[0] >= 0 and t.shape[0] != self.max_batch):
                raise EngineError("engine %s: output %r has shape %s, the model's contract is "
                                  "[N,%d,%d]; rebuild with `%s`" % (path, name, t.shape, want[0],
                                                                    want[1], rebuild))
            if t.dtype != np.dtype(np.float32):
                raise EngineError("engine %s: output %r is %s, trtssd needs float32; rebuild with"
                                  " `%s`" % (path, name, t.dtype, rebuild))

    # ------------------------------------------------------------------ profiles
    def _acquire_profile(self):
        with self._lock:
            if not self._free_profiles:
                n = self.api.num_profiles(self.engine)
                raise EngineError(
                    "all %d optimisation profiles of this dynamic-batch engine are used by open "
                    "contexts (TensorRT needs one per context running at once); close a context "
                    "or rebuild with --profiles %d" % (n, n + 1))
            return self._free_profiles.pop(0)

    def _release_profile(self, p):
        with self._lock:
            self._free_profiles.append(p)
            self._free_profiles.sort()

    def _forget(self, ctx):
        with self._lock:
            if ctx in self._contexts:
                self._contexts.remove(ctx)

    # ------------------------------------------------------------------ contract
    def create_context(self, images, box_encodings, class_scores):
        if self.engine is None:
            raise InputError("this TensorRT backend is closed")
        ctx = TensorRTContext(self, images, box_encodings, class_scores)
        with self._lock:
            self._contexts.append(ctx)
        return ctx

    def infer(self, images):
        images = np.asarray(images)
        s = self.spec
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1:] != (3, s.input_height, s.input_width):
            raise InputError("images of shape %s, expected [n,3,%d,%d] (preprocessed, NCHW)"
                             % (images.shape, s.input_height, s.input_width))
        n = images.shape[0]
        self.check_batch(n)
        run_n = n if self.dynamic_batch else self.max_batch
        host = np.zeros(self.input_shape(run_n), self.input_dtype)
        host[:n] = images
        entry = self._infer_cache.get(run_n)
        if entry is None:
            sb, ss = self.output_shapes(run_n)
            bufs = (_new_device_array(self.input_shape(run_n), self.input_dtype),
                    _new_device_array(sb, np.float32), _new_device_array(ss, np.float32))
            entry = (self.create_context(*bufs), bufs)
            self._infer_cache[run_n] = entry
        ctx, (d_img, d_box, d_cls) = entry
        with self.cuda.active():
            d_img.copy_from_host(host)
            ctx.enqueue(None)
            boxes = d_box.copy_to_host()
            scores = d_cls.copy_to_host()
        return boxes[:n], scores[:n]

    def close(self):
        for ctx, bufs in list(self._infer_cache.values()):
            ctx.close()
            for buf in bufs:
                buf.close()
        self._infer_cache = {}
        for ctx in list(self._contexts):
            ctx.close()
        if self.cuda is not None:
            with self.cuda.active():
                self.engine = None       # contexts first, then the engine, then the runtime
                self.runtime = None
            if self._own_cuda:
                self.cuda.close()
            self.cuda = None
