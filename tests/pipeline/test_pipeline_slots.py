"""The host slots' shared parts: one execution context per batch size, made up front by
``prepare`` (a CUDA-graph capture must not overlap other threads' CUDA calls), and batches
outside 1..max_batch refused before any work."""
import numpy as np
import pytest

from trtssd.core.errors import InputError
from trtssd.pipeline.stages import CpuSlot, GpuSlot, CudaHostSlot, _Contexts
from trtssd.preprocess import PreprocessOptions


class _Ctx(object):
    def __init__(self, bound):
        self.bound = bound
        self.closed = False

    def enqueue(self, stream=None):
        pass

    def close(self):
        self.closed = True


class _Backend(object):
    """Records the buffers each context binds; CPU, float32."""
    input_dtype = np.dtype(np.float32)

    def __init__(self):
        self.made = []

    def input_shape(self, n):
        return (n, 3, 8, 8)

    def output_shapes(self, n):
        return (n, 5, 4), (n, 5, 3)

    def create_context(self, images, boxes, scores):
        self.made.append((images.shape[0], boxes.shape[0], scores.shape[0]))
        return _Ctx((images, boxes, scores))

    spec = None


def test_every_slot_kind_prepares_with_the_shared_context_cache():
    for cls in (CpuSlot, CudaHostSlot, GpuSlot):
        assert cls.prepare is _Contexts.prepare, cls.__name__


def test_prepare_makes_one_context_per_batch_size_on_matching_rows():
    be = _Backend()
    slot = CpuSlot(be, PreprocessOptions(width=8, height=8), 3, 0.3, None, None)
    slot.prepare([1, 3, 2, 3])
    assert be.made == [(1, 1, 1), (3, 3, 3), (2, 2, 2)]
    ctx = slot._context(2)
    assert be.made[-1] == (2, 2, 2) and len(be.made) == 3      # cached, not made again
    assert np.shares_memory(ctx.bound[0], slot.images)
    slot.close()
    assert ctx.closed


def test_batch_outside_the_slot_is_refused_before_any_work():
    be = _Backend()
    slot = CpuSlot(be, PreprocessOptions(width=8, height=8), 2, 0.3, None, None)
    with pytest.raises(InputError, match="a batch of 3 frames for a slot of 2"):
        slot.submit([object()] * 3)
    with pytest.raises(InputError, match="a batch of 0 frames"):
        slot.submit([])
    assert be.made == []
