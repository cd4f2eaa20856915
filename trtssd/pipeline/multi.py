"""``multi``: several sources, one inference per round.

A capture thread per source keeps that source's newest frame (live: a newer frame replaces
one not yet taken, counted as dropped; file: the thread waits until the frame was taken).
Each round waits at most ``source_timeout_ms`` in all for the sources' frames, batches those
that came into one inference (batch <= number of sources) and hands each frame's detections
to the sink, per source, in each source's frame order. The run ends when every source ended.
"""
import threading
import time

from .base import Budget, Delivery, Dropped, close_all, frame_pool, start_capture
from .stages import Closed, Crew, Timeout, discard


def run(sources, layer, sink, options, stats):
    crew = Crew()
    lock = threading.Lock()
    chans = [crew.channel(1, drop_oldest=bool(s.live)) for s in sources]
    dropped = Dropped()
    budget = Budget(options.max_frames)
    deadline = (time.perf_counter() + float(options.duration_s)
                if options.duration_s is not None else None)
    pools = []
    slot = None
    timeout = float(options.source_timeout_ms) / 1e3
    try:
        with layer.activate():
            for s in sources:
                pools.append(frame_pool(layer, s, 4))
            slot = layer.make_slot()
        deliver = Delivery(sink, stats, options, lock=lock)

        def capture_main(source, pool, chan):
            capture = start_capture(source, stats, options, pool, lock, budget, deadline)
            try:
                while True:
                    frame = capture.read(crew.stop)
                    if frame is None:
                        break
                    try:
                        dropped.add(chan.put(frame))
                    except Closed:
                        frame.done()
                        raise
            finally:
                chan.close()

        for k, s in enumerate(sources):
            crew.spawn("capture-%d" % k, capture_main, s, pools[k], chans[k])
        open_ = list(range(len(sources)))
        with layer.activate():
            while open_:
                t_end = time.perf_counter() + timeout
                frames = []
                for k in list(open_):
                    try:
                        frames.append(chans[k].get(timeout=max(0.0, t_end - time.perf_counter())))
                    except Timeout:
                        pass
                    except Closed:
                        if crew.stop.is_set():
                            discard(frames)
                            frames = []
                            open_ = []
                            break
                        open_.remove(k)
                if not frames:
                    continue
                try:
                    slot.submit(frames)
                    dets, timings = slot.result()
                except BaseException:
                    discard(frames)
                    raise
                deliver.timings(timings)
                for k, frame in enumerate(frames):
                    try:
                        deliver(frame, dets[k])
                    except BaseException:
                        discard(frames[k + 1:])
                        raise
    finally:
        crew.halt()
        alive = crew.join()
        stats.dropped += dropped.n
        if alive:
            stats.notes.append("threads %s were still blocked when the run ended (in a source "
                               "read?); their buffers were left to the process's exit"
                               % ", ".join(alive))
        else:
            close_all(layer, [slot] + pools)
    crew.reraise()
