"""Host-memory stand-ins for device buffers and the CUDA context, so fakes can run in CI.

``HostDeviceArray`` has the parts of trtssd.gpu.cuda.DeviceArray the TensorRT code uses, with a
``__cuda_array_interface__`` whose pointer is a host address (fake engines write through it).
"""
import contextlib

import numpy as np


class HostDeviceArray(object):
    def __init__(self, shape, dtype, fill=np.nan):
        self.host = np.empty(shape, dtype)
        if self.host.dtype.kind == "f":
            self.host[...] = fill
        self.shape, self.dtype = self.host.shape, self.host.dtype
        self.closed = False

    @property
    def ptr(self):
        return self.host.ctypes.data

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.host.shape, "typestr": self.host.dtype.str,
                "data": (self.host.ctypes.data, False), "strides": None, "version": 2}

    def copy_from_host(self, arr, stream=None):
        self.host[...] = arr

    def copy_to_host(self, out=None, stream=None):
        if out is None:
            return self.host.copy()
        out[...] = self.host
        return out

    def close(self):
        self.closed = True


class FakeCudaContext(object):
    """Counts pushes; checks that every push is popped."""

    def __init__(self):
        self.depth = 0
        self.pushes = 0
        self.closed = False

    @contextlib.contextmanager
    def active(self):
        self.depth += 1
        self.pushes += 1
        try:
            yield self
        finally:
            self.depth -= 1

    def close(self):
        self.closed = True
