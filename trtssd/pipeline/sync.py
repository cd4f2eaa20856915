"""``sync`` and ``gpu``: one thread does everything, one frame at a time (the seed's
trt_ssd.py). Which device work runs is the device layer's business: CPU preprocessing for
``sync``, GPU preprocessing and postprocessing for ``gpu``."""
import threading

from .base import Delivery, RunClock, close_all, detect_one, frame_pool, start_capture
from .slots import frame_shape
from .threads import FramePool


def _slot_pool(layer, slot, source):
    """The slot's own input buffer as the one frame buffer, where it has the frame's size."""
    h, w = int(getattr(source, "height", 0) or 0), int(getattr(source, "width", 0) or 0)
    if h <= 0 or w <= 0:
        return None
    shape = frame_shape(getattr(source, "pixel_format", None), h, w)
    buf = slot.frame_buffer(shape)
    return None if buf is None else FramePool(layer, shape, 1, buffers=[buf])


def run(sources, layer, sink, options, stats, clock=None):
    clock = clock or RunClock()
    source = sources[0]
    stop = threading.Event()
    slot = pool = None
    try:
        with layer.activate():
            slot = layer.make_slot()
            # the source's own (pinned) buffers, else decoding into the slot's input buffer,
            # else into a pooled buffer; one frame is held at a time
            pool = (frame_pool(layer, source, 1, stop, own_only=True)
                    or _slot_pool(layer, slot, source) or frame_pool(layer, source, 1, stop))
            capture = start_capture(source, stats, options, pool, None)
            deliver = Delivery(sink, stats, options)
            clock.start()
            while True:
                frame = capture.read(stop)
                if frame is None:
                    break
                det, timings = detect_one(slot, frame)
                deliver.timings(timings)
                deliver(frame, det)
    finally:
        clock.stop()
        close_all(layer, [slot, pool])
