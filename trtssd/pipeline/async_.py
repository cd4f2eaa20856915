"""``async``: the seed's trt_ssd_async.py. A producer thread owns the device for its whole
life (the context is current in it) and does capture, preprocessing, inference and
postprocessing; the caller's thread draws and writes the newest result.

The hand-over holds one result. Live source: a newer result replaces one the consumer has
not taken yet (newest wins; the replaced one is counted as dropped). File source: the
producer waits until the consumer took the previous result, so every frame is shown.
"""
import time

from .base import (Delivery, Dropped, Result, RunClock, detect_one, finish, frame_pool,
                   start_capture)
from .threads import Closed, Crew


def run(sources, layer, sink, options, stats, clock=None):
    clock = clock or RunClock()
    source = sources[0]
    crew = Crew()
    handoff = crew.channel(1, drop_oldest=bool(source.live))
    dropped = Dropped()
    pool = None
    try:
        with layer.activate():
            pool = frame_pool(layer, source, 4, crew.stop)
        capture = start_capture(source, stats, options, pool, None)
        deliver = Delivery(sink, stats, options)

        def producer():
            try:
                with layer.activate():
                    slot = layer.make_slot()
                    clock.start()
                    if options.duration_s is not None:
                        # the duration counts from here, like the wall time: making the
                        # slot (a CUDA-graph capture) is setup
                        capture.deadline = time.perf_counter() + float(options.duration_s)
                    try:
                        while True:
                            frame = capture.read(crew.stop)
                            if frame is None:
                                break
                            det, timings = detect_one(slot, frame)
                            r = Result([frame], [det], timings)
                            try:
                                dropped.add(handoff.put(r))
                            except Closed:
                                frame.done()
                                raise
                    finally:
                        slot.close()
            finally:
                handoff.close()

        crew.spawn("producer", producer)
        while True:
            try:
                r = handoff.get()
            except Closed:
                break
            deliver.timings(r.timings)
            deliver(r.frames[0], r.detections[0])
    finally:
        clock.stop()
        finish(crew, stats, dropped, layer, [pool])
    crew.reraise()
