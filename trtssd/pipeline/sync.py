"""``sync`` and ``gpu``: one thread does everything, one frame at a time (the seed's
trt_ssd.py). Which device work runs is the device layer's business: CPU preprocessing for
``sync``, GPU preprocessing and postprocessing for ``gpu``."""
import threading

from .base import Delivery, close_all, frame_pool, start_capture


def run(sources, layer, sink, options, stats):
    source = sources[0]
    stop = threading.Event()
    slot = pool = None
    try:
        with layer.activate():
            pool = frame_pool(layer, source, 1)
            slot = layer.make_slot()
            capture = start_capture(source, stats, options, pool, None)
            deliver = Delivery(sink, stats, options)
            while True:
                frame = capture.read(stop)
                if frame is None:
                    break
                try:
                    slot.submit([frame])
                    dets, timings = slot.result()
                except BaseException:
                    frame.done()
                    raise
                deliver.timings(timings)
                deliver(frame, dets[0])
    finally:
        close_all(layer, [slot, pool])
