"""trtssd: real-time SSD detection on NVIDIA GPUs, fast outside the network too.

    import trtssd
    with trtssd.Detector("detect.tflite") as det:
        print(det(frame))

Everything a user needs is a name of this package (``__all__``). Importing trtssd does no work:
the names are resolved on first use, so no CUDA context, compilation, model loading or import
of pycuda, torch or OpenCV happens until something is called.

Where things live (one subpackage a concern): ``core`` (errors, model spec, detections, run
statistics), ``gpu`` (context, buffers, events, kernel loading), ``preprocess`` and
``postprocess`` (CPU reference and GPU kernel side by side), ``models`` (finding and converting
model files), ``backends`` (TensorRT, PyTorch, ONNX Runtime), ``pipeline`` (the modes), ``io``
(sources, sinks, drawing), ``commands`` (the ``trtssd`` command, info, bench).
"""
import importlib
import sys
import types

__version__ = "0.1.0"

# public name -> module it comes from (relative to this package)
_EXPORTS = {
    "Detector": ".detector",
    "Detections": ".core.detections",
    "LabelMap": ".core.detections",
    "ModelSpec": ".core.spec",
    "RunStats": ".core.stats",
    "TrtssdError": ".core.errors",
    "InputError": ".core.errors",
    "ModelError": ".core.errors",
    "EngineError": ".core.errors",
    "EnvironmentProblem": ".core.errors",
    "PreprocessOptions": ".preprocess",
    "FrameGeometry": ".preprocess",
    "cpu_preprocess": ".preprocess",
    "GpuPreprocessor": ".preprocess",
    "GpuPostprocessor": ".postprocess",
    "postprocess_cpu": ".postprocess",
    "CudaContext": ".gpu.cuda",
    "DeviceArray": ".gpu.cuda",
    "create_backend": ".backends",
    "open_source": ".io.sources",
    "open_sink": ".io.sinks",
    "PipelineOptions": ".pipeline",
    "run": ".pipeline",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


class _LazyModule(types.ModuleType):
    """This package's module type: an exported name is imported on first access (Python 3.6
    has no module-level ``__getattr__``, so the module's class provides it)."""

    def __getattr__(self, name):
        where = _EXPORTS.get(name)
        if where is None:
            raise AttributeError("module 'trtssd' has no attribute %r" % name)
        value = getattr(importlib.import_module(where, __name__), name)
        setattr(self, name, value)
        return value

    def __dir__(self):
        return sorted(set(types.ModuleType.__dir__(self)) | set(_EXPORTS))


sys.modules[__name__].__class__ = _LazyModule
