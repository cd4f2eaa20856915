"""The pieces every mode is built from, by one name: the thread plumbing
(trtssd.pipeline.threads) and the device slots and layers (trtssd.pipeline.slots)."""
from .slots import (CpuSlot, CudaHostSlot, DeviceLayer, GpuLayer, GpuSlot, HostPrepLayer,  # noqa: F401
                    Slot, _Contexts, _preprocess_options, _rows, frame_shape, free_pinned)
from .threads import (Capture, Channel, Closed, Crew, FramePool, Timeout, discard,  # noqa: F401
                      record)
