"""The contract every inference backend keeps (TensorRT, PyTorch, ONNX Runtime).

A backend holds one network's weights on one device. Buffers are bound once per execution
context, one context per frame in flight, and ``enqueue`` only enqueues: on CUDA it puts the
work on the caller's stream and returns without synchronising; on the CPU it runs at once.
"""
import abc

import numpy as np

from ..core.closeable import Closeable
from ..core.errors import InputError


class ExecutionContext(Closeable, abc.ABC):
    """One set of bound input/output buffers on one backend."""

    @abc.abstractmethod
    def enqueue(self, stream=None):
        """Run the network on the bound buffers (async on ``stream`` for CUDA)."""

    def close(self):
        """Release what this context owns (never the buffers it was given)."""



class Backend(Closeable, abc.ABC):
    """One network on one device. Subclasses set the attributes below in ``__init__``."""
    name = "abstract"
    device = "cpu"          # 'cuda' or 'cpu'
    spec = None             # trtssd.core.spec.ModelSpec
    max_batch = 1
    precision = "fp32"
    input_dtype = np.dtype(np.float32)

    @abc.abstractmethod
    def create_context(self, images, box_encodings, class_scores):
        """Bind buffers: images [n,3,H,W] input_dtype; outputs [n,A,4] and [n,A,C] float32.

        On 'cuda' the buffers are objects with ``__cuda_array_interface__``; on 'cpu' numpy
        arrays. ``n`` may be smaller than ``max_batch``.
        """

    def load_model(self, model, device, max_batch, precision):
        """For ``__init__``: checks ``max_batch``, sets ``onnx_path`` (``model`` converted to
        ONNX when it is not), ``spec`` (checked against ``max_batch``), ``device``, ``precision``
        and ``max_batch``."""
        from ..models.resolve import load_spec, onnx_for
        from . import check_model_batch
        if int(max_batch) < 1:
            raise InputError("max_batch must be >= 1, got %r" % (max_batch,))
        self.onnx_path = onnx_for(model)
        self.spec = load_spec(self.onnx_path)
        check_model_batch(self.spec, max_batch, self.onnx_path)
        self.device = device
        self.precision = precision
        self.max_batch = int(max_batch)

    def output_shapes(self, batch):
        a, c = self.spec.num_anchors, self.spec.num_classes
        return (batch, a, 4), (batch, a, c)

    def input_shape(self, batch):
        return (batch, 3, self.spec.input_height, self.spec.input_width)

    def check_batch(self, batch):
        if not 1 <= batch <= self.max_batch:
            raise InputError("batch of %d frames, but this %s backend was made for 1..%d; "
                             "create it with max_batch=%d" % (batch, self.name, self.max_batch,
                                                              batch))

    def infer(self, images):
        """Convenience for tests and scripts: host array in, host arrays out, synchronous."""
        raise NotImplementedError

    def host_images(self, images):
        """``infer``'s input as a C-contiguous [n,3,H,W] array of ``input_dtype``, its shape
        and batch size checked."""
        images = np.ascontiguousarray(images, dtype=self.input_dtype)
        if images.ndim != 4 or images.shape[1:] != self.input_shape(1)[1:]:
            raise InputError("images must be [n, %d, %d, %d], got %s"
                             % (self.input_shape(1)[1:] + (list(images.shape),)))
        self.check_batch(images.shape[0])
        return images

    def close(self):
        """Release weights and device memory."""


def bind_host_or_cuda(backend, cpu_context, cuda_context, images, box_encodings, class_scores):
    """``create_context`` for a backend with one context class per device: the buffers
    checked, then bound in ``cpu_context`` on 'cpu' and ``cuda_context`` on 'cuda'."""
    from . import check_bindings
    check_bindings(backend, images, box_encodings, class_scores, backend.device)
    cls = cpu_context if backend.device == "cpu" else cuda_context
    return cls(backend, images, box_encodings, class_scores)
