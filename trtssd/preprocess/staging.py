"""The GPU preprocessing's buffers: pinned staging slots, the device frames they upload to, and
the ring of descriptor tables of mixed-size batches. Made and closed with the context current.
"""
import numpy as np

from ..gpu import cuda


class Staging(object):
    """``max_batch`` page-locked slots of ``slot_bytes`` each, and (unless ``mapped``) the device
    buffer of the same size that a slot's bytes are uploaded to; ``mapped`` (Jetson): the slots
    are mapped into the device and read in place (``device_base`` is their device address).

    ``slot_event[i]`` is the event of the last call that read slot i (None before any): a slot
    is written again only after it.
    """

    def __init__(self, max_batch, slot_bytes, mapped):
        self.max_batch, self.slot_bytes, self.mapped = int(max_batch), int(slot_bytes), mapped
        self.device = None
        self.host = cuda.pinned_empty((self.max_batch, self.slot_bytes), np.uint8, mapped=mapped)
        try:
            self.host_base = self.host.ctypes.data
            if mapped:
                self.device_base = self.host.device_ptr
            else:
                self.device = cuda.DeviceArray((self.max_batch, self.slot_bytes), np.uint8)
                self.device_base = self.device.ptr
        except Exception:
            self.close()
            raise
        self.slot_event = [None] * self.max_batch

    def slot(self, i, shape):
        """Slot ``i`` as an array of ``shape``, once the last call that read it has finished."""
        ev = self.slot_event[i]
        if ev is not None:
            ev.synchronize()
        return self.host[i].reshape(shape)

    def flat(self, start, end):
        """Bytes [start, end) of the whole staging (several slots when they are adjacent)."""
        return self.host.reshape(-1)[start:end]

    def slot_of(self, addr):
        """The slot a host address lies in and its offset into the staging, or (None, None)."""
        off = addr - self.host_base
        if 0 <= off < self.host.nbytes:
            return off // self.slot_bytes, off
        return None, None

    def close(self):
        if self.device is not None:
            self.device.close()
            self.device = None
        self.host.close()
        self.slot_event = [None] * self.max_batch


class DescriptorTables(object):
    """``ring`` tables of ``max_batch`` records of ``dtype`` in pinned memory and their copies on
    the device: call k of a mixed-size batch writes table k % ring and uploads it on its stream.
    The caller waits for the call that last used the table before ``put``."""

    def __init__(self, ring, max_batch, dtype):
        self.ring = int(ring)
        self.table_bytes = int(max_batch) * dtype.itemsize
        self.host = cuda.pinned_empty((self.ring, int(max_batch)), dtype)
        try:
            self.device = cuda.DeviceArray((self.ring, self.table_bytes), np.uint8)
        except Exception:
            self.host.close()
            raise
        self.device_base = self.device.ptr

    def put(self, k, records, stream, drv):
        """Copy ``records`` into table ``k`` and enqueue its upload; returns its device address."""
        n = len(records)
        tab = self.host[k][:n]
        tab[...] = records
        ptr = self.device_base + k * self.table_bytes
        drv.memcpy_htod_async(ptr, tab, stream)
        return ptr

    def close(self):
        self.device.close()
        self.host.close()
