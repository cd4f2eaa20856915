"""``async``: the seed's trt_ssd_async.py. A producer thread owns the device for its whole
life (the context is current in it) and does capture, preprocessing, inference and
postprocessing; the caller's thread draws and writes the newest result.

The hand-over holds one result. Live source: a newer result replaces one the consumer has
not taken yet (newest wins; the replaced one is counted as dropped). File source: the
producer waits until the consumer took the previous result, so every frame is shown.
"""
import threading
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
    pools = []
    setup = {}
    slot_made, go = threading.Event(), threading.Event()
    try:
        deliver = Delivery(sink, stats, options)

        def producer():
            try:
                with layer.activate():
                    slot = layer.make_slot()
                    try:
                        # the caller gives the source its buffers once the slot (its CUDA
                        # graph) is made: a source may start decoding on its own thread then,
                        # and no graph may be captured beside that
                        slot_made.set()
                        while not go.wait(0.25):
                            if crew.stop.is_set():
                                return
                        capture = setup["capture"]
                        clock.start()
                        if options.duration_s is not None:
                            # the duration counts from here, like the wall time: making the
                            # slot (a CUDA-graph capture) is setup
                            capture.deadline = time.perf_counter() + float(options.duration_s)
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
        while not slot_made.wait(0.25):
            if crew.stop.is_set():
                break
        if slot_made.is_set():
            with layer.activate():
                pools.append(frame_pool(layer, source, 4, crew.stop))
            setup["capture"] = start_capture(source, stats, options, pools[0], None)
            go.set()
        while True:
            try:
                r = handoff.get()
            except Closed:
                break
            deliver.timings(r.timings)
            deliver(r.frames[0], r.detections[0])
    finally:
        clock.stop()
        finish(crew, stats, dropped, layer, pools)
    crew.reraise()
