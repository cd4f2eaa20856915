"""Inference backends behind one contract (see base.py and docs/DESIGN.md).

``create_backend(kind='auto')`` picks TensorRT where ``import tensorrt`` works, else PyTorch on
CUDA where ``torch.cuda.is_available()``, else ONNX Runtime on the CPU. Nothing is imported
until a backend is asked for.
"""
import numpy as np

from ..core.errors import EnvironmentProblem, InputError

KINDS = ("auto", "tensorrt", "torch", "onnxruntime")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def _try_import(name):
    try:
        return __import__(name), ""
    except ImportError as e:
        return None, "%s is not installed (%s)" % (name, e)
    except Exception as e:   # a broken install raises other things (e.g. a missing libcudart)
        return None, "import %s failed: %s: %s" % (name, type(e).__name__, e)


def _torch_cuda():
    torch, why = _try_import("torch")
    if torch is None:
        return False, why
    try:
        if torch.cuda.is_available():
            return True, "torch %s, CUDA %s, %s" % (torch.__version__, torch.version.cuda,
                                                  torch.cuda.get_device_name(0))
        return False, "torch %s sees no CUDA device" % torch.__version__
    except Exception as e:
        return False, "torch.cuda failed: %s" % e


def available_backends():
    """{name: (ok, reason)} for `trtssd info`: which backends can run here, and why not."""
    out = {}
    trt, why = _try_import("tensorrt")
    out["tensorrt"] = (trt is not None,
                       "tensorrt %s" % getattr(trt, "__version__", "?") if trt else why)
    ok, why = _torch_cuda()
    out["torch-cuda"] = (ok, why)
    torch, why = _try_import("torch")
    out["torch-cpu"] = (torch is not None, "torch %s" % torch.__version__ if torch else why)
    ort, why = _try_import("onnxruntime")
    if ort is None:
        out["onnxruntime-cpu"] = (False, why)
        out["onnxruntime-cuda"] = (False, why)
    else:
        prov = ort.get_available_providers()
        out["onnxruntime-cpu"] = ("CPUExecutionProvider" in prov,
                                  "onnxruntime %s" % ort.__version__)
        out["onnxruntime-cuda"] = ("CUDAExecutionProvider" in prov,
                                   "providers: %s" % ", ".join(prov))
    return out


def create_backend(kind="auto", model=None, device=None, precision="fp32", max_batch=1,
                   cuda_graph=True, **kw):
    """One backend for ``model`` (.tflite, .onnx, an engine, 'synthetic' or None = the default
    model from trtssd.models.resolve.resolve_model). See docs/DESIGN.md for the contract."""
    from ..models import resolve as models
    if kind not in KINDS:
        raise InputError("unknown backend %r; choose one of %s" % (kind, ", ".join(KINDS)))
    if device not in (None, "cuda", "cpu"):
        raise InputError("device must be 'cuda' or 'cpu', got %r" % (device,))
    if model is None:
        model = models.resolve_model()
    is_engine = isinstance(model, str) and model.lower().endswith(ENGINE_SUFFIXES)

    if kind == "auto":
        if device != "cpu" and _try_import("tensorrt")[0] is not None:
            kind = "tensorrt"
        elif device != "cpu" and _torch_cuda()[0]:
            kind = "torch"
        elif device == "cuda":
            raise EnvironmentProblem("device='cuda' but neither TensorRT nor PyTorch with CUDA "
                                     "is usable here (%s); install one, or use device='cpu'"
                                     % _torch_cuda()[1])
        else:
            kind = "onnxruntime"
    if is_engine and kind != "tensorrt":
        raise InputError("%s is a TensorRT engine; only the tensorrt backend runs it (give the "
                         ".tflite or .onnx for the %s backend)" % (model, kind))

    if kind == "tensorrt":
        if device == "cpu":
            raise InputError("the tensorrt backend runs on CUDA only; use kind='onnxruntime' "
                             "or 'torch' for device='cpu'")
        from .tensorrt.runtime import TensorRTBackend
        src = model if is_engine else models.onnx_for(model)
        return TensorRTBackend(src, precision=precision, max_batch=max_batch, **kw)
    if kind == "torch":
        from .torch_backend import TorchBackend
        if device is None:
            device = "cuda" if _torch_cuda()[0] else "cpu"
        return TorchBackend(models.onnx_for(model), device=device, precision=precision,
                            max_batch=max_batch, cuda_graph=cuda_graph, **kw)
    from .onnxruntime_backend import OnnxRuntimeBackend
    return OnnxRuntimeBackend(models.onnx_for(model), device=device or "cpu",
                              precision=precision, max_batch=max_batch, **kw)


# ---- helpers the backends share --------------------------------------------------------------
def check_model_batch(spec, max_batch, path):
    """InputError when a graph with a fixed batch size (``spec.batch``) is asked for more."""
    if spec.batch and int(max_batch) > spec.batch:
        raise InputError(
            "%s was exported with a fixed batch of %d, but %d frames per inference were asked "
            "for (--batch, or --mode multi with several sources); use --batch %d, or re-export "
            "it with a dynamic batch (torch.onnx.export(..., dynamic_axes={'input_0': {0: "
            "'batch'}, 'scores': {0: 'batch'}, 'boxes': {0: 'batch'}}))"
            % (spec.source.get("path", path), spec.batch, int(max_batch), spec.batch))


def describe_buffer(obj):
    """(shape, numpy dtype, kind) of a bound buffer: kind 'cuda' (has
    __cuda_array_interface__), 'torch' (a torch tensor) or 'host' (numpy)."""
    if hasattr(obj, "__cuda_array_interface__"):
        cai = obj.__cuda_array_interface__
        return tuple(cai["shape"]), np.dtype(cai["typestr"]), "cuda"
    if isinstance(obj, np.ndarray):
        return obj.shape, obj.dtype, "host"
    if type(obj).__module__.startswith("torch"):
        return tuple(obj.shape), np.dtype(str(obj.dtype).replace("torch.", "")), "torch"
    raise InputError("buffer of type %s is neither a numpy array nor a device array with "
                     "__cuda_array_interface__; bind trtssd.gpu.cuda.DeviceArray buffers on 'cuda' "
                     "and numpy arrays on 'cpu'" % type(obj).__name__)


def check_bindings(backend, images, box_encodings, class_scores, device):
    """Validate the three buffers of create_context; returns the batch size."""
    shapes = []
    for what, obj in (("images", images), ("box_encodings", box_encodings),
                      ("class_scores", class_scores)):
        shape, dtype, kind = describe_buffer(obj)
        if device == "cpu" and kind != "host":
            raise InputError("%s: the %s backend on the CPU takes numpy arrays, got a %s buffer"
                             % (what, backend.name, kind))
        if device == "cuda" and kind == "host":
            raise InputError("%s: the %s backend on CUDA takes device buffers (e.g. "
                             "trtssd.gpu.cuda.DeviceArray), got a numpy array; copy it to the GPU "
                             "or use backend.infer()" % (what, backend.name))
        if kind == "host" and not obj.flags.c_contiguous:
            raise InputError("%s must be C-contiguous; pass np.ascontiguousarray(...)" % what)
        shapes.append((what, shape, dtype))
    batch = shapes[0][1][0] if len(shapes[0][1]) == 4 else -1
    if batch < 1:
        raise InputError("images must be [n, 3, %d, %d], got shape %s"
                         % (backend.spec.input_height, backend.spec.input_width,
                            list(shapes[0][1])))
    backend.check_batch(batch)
    box_shape, score_shape = backend.output_shapes(batch)
    want = ((backend.input_shape(batch), backend.input_dtype), (box_shape, np.dtype(np.float32)),
            (score_shape, np.dtype(np.float32)))
    for (what, shape, dtype), (wshape, wdtype) in zip(shapes, want):
        if tuple(shape) != tuple(wshape) or dtype != wdtype:
            raise InputError("%s is %s %s; this %s backend needs %s %s for a batch of %d"
                             % (what, list(shape), dtype, backend.name, list(wshape), wdtype,
                                batch))
    return batch
