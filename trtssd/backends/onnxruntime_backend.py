"""ONNX Runtime backend: the reference, and the backend of machines without a GPU.

On the CPU (``device='cpu'``, the CPUExecutionProvider) ``enqueue`` runs at once on the bound
numpy arrays. With ``device='cuda'`` (needs the onnxruntime-gpu package, which provides the
CUDAExecutionProvider) the bound device buffers are used in place through IO binding. ONNX
Runtime runs on its own CUDA stream and cannot be put on the caller's: ``enqueue`` therefore
synchronises the caller's stream first (so the images are written) and then runs synchronously
(ONNX Runtime waits for its stream before returning). It is correct in every mode, but it
overlaps nothing: use the torch or tensorrt backend where overlap matters.
"""
import numpy as np

from ..core.errors import EnvironmentProblem, InputError
from .base import Backend, ExecutionContext, bind_host_or_cuda


def _import_ort():
    try:
        import onnxruntime
        return onnxruntime
    except ImportError:
        raise EnvironmentProblem("the onnxruntime backend needs ONNX Runtime: pip install "
                                 "onnxruntime (or onnxruntime-gpu for device='cuda')")


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, onnx_path, device="cpu", max_batch=1, precision="fp32", threads=None):
        ort = _import_ort()
        if precision != "fp32":
            raise InputError("the onnxruntime backend runs precision 'fp32' only, not %r; use "
                             "the torch or tensorrt backend for fp16" % (precision,))
        if device not in ("cpu", "cuda"):
            raise InputError("device must be 'cuda' or 'cpu', got %r" % (device,))
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EnvironmentProblem("device='cuda' needs onnxruntime-gpu (this onnxruntime "
                                         "%s offers %s); pip install onnxruntime-gpu, or use "
                                         "device='cpu'" % (ort.__version__,
                                                           ort.get_available_providers()))
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self.load_model(onnx_path, device, max_batch, precision)
        self.input_dtype = np.dtype(np.float32)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(self.onnx_path, sess_options=opts,
                                            providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def create_context(self, images, box_encodings, class_scores):
        return bind_host_or_cuda(self, _CpuContext, _CudaContext,
                                 images, box_encodings, class_scores)

    def infer(self, images):
        images = self.host_images(images)
        boxes, scores = self.session.run(self.output_names, {self.input_name: images})
        return boxes, scores

    def close(self):
        self.session = None


class _CpuContext(ExecutionContext):
    def __init__(self, backend, images, boxes, scores):
        self.backend, self.images, self.boxes, self.scores = backend, images, boxes, scores

    def enqueue(self, stream=None):
        be = self.backend
        boxes, scores = be.session.run(be.output_names, {be.input_name: self.images})
        np.copyto(self.boxes, boxes)
        np.copyto(self.scores, scores)


def _ptr(obj):
    return int(obj.__cuda_array_interface__["data"][0])


class _CudaContext(ExecutionContext):
    def __init__(self, backend, images, boxes, scores):
        self.backend = backend
        s = backend.session
        self.binding = s.io_binding()
        self.binding.bind_input(backend.input_name, "cuda", 0, np.float32,
                                list(images.__cuda_array_interface__["shape"]), _ptr(images))
        for name, buf in zip(backend.output_names, (boxes, scores)):
            self.binding.bind_output(name, "cuda", 0, np.float32,
                                     list(buf.__cuda_array_interface__["shape"]), _ptr(buf))
        self._keep = (images, boxes, scores)

    def enqueue(self, stream=None):
        """Synchronous (see the module's docstring): waits for ``stream``, then runs."""
        if stream is None:
            import pycuda.driver as drv
            drv.Context.synchronize()
        else:
            stream.synchronize()
        self.backend.session.run_with_iobinding(self.binding)

    def close(self):
        self.binding = None
        self._keep = None
