"""``multi``: several sources, one inference per round, ``depth`` rounds in flight.

A capture thread per source reads that source (into pooled pinned buffers, or the source's
own pinned ring) and queues its frames (live: a newer frame replaces one not yet taken,
counted as dropped; file: the thread waits while ``FILE_QUEUE`` frames, or ``2 x depth``
when more, are queued: a decoder's time per frame varies, and each round waits for its slowest
source, so the faster ones run ahead by a few frames instead of waiting too). Each round
waits at most ``source_timeout_ms`` in all for the sources' frames and batches those that came
(batch <= number of sources); the batches run on ``depth`` slots with the ``pipelined``
schedule (pipelined.run_slots: submission and completion in the caller's thread), so the
upload of one round overlaps the network of the previous one.
The frames of a batch are uploaded straight from each source's pinned buffer (different
pointers: the GPU preprocessor's descriptor-table path, one launch). Each frame's detections
reach the sink per source in that source's frame order. The run ends when every source ended.
"""
import time

from .base import Budget, Delivery, Dropped, RunClock, feed, finish, frame_pool, start_capture
from .pipelined import run_slots
from .threads import Closed, Crew, Timeout, discard

FILE_QUEUE = 4


def run(sources, layer, sink, options, stats, clock=None):
    clock = clock or RunClock()
    crew = Crew()
    depth = int(options.depth)
    file_queue = max(FILE_QUEUE, 2 * depth)
    chans = [crew.channel(1 if s.live else file_queue, drop_oldest=bool(s.live))
             for s in sources]
    dropped = Dropped()
    budget = Budget(options.max_frames)
    deadline = None
    pools = []
    slots = []
    timeout = float(options.source_timeout_ms) / 1e3
    nsrc = len(sources)
    try:
        with layer.activate():
            for s, ch in zip(sources, chans):
                # queued + one per round in flight + the round being gathered, the frame
                # being read and the one being delivered
                pools.append(frame_pool(layer, s, ch.capacity + depth + 3, crew.stop))
            for _ in range(depth):
                slots.append(layer.make_slot())
                # a round with fewer frames than sources needs its own contexts: made here,
                # before the threads start (making one may capture a CUDA graph)
                slots[-1].prepare(range(1, min(nsrc, int(layer.max_batch))))
        deliver = Delivery(sink, stats, options)

        def capture_main(source, pool, chan):
            feed(start_capture(source, stats, options, pool, None, budget, deadline), chan,
                 crew.stop, dropped)

        open_ = list(range(nsrc))

        def take_batch(timeout):
            # a round goes out at once only when every open source has a frame queued (a
            # partial round would shrink the batch); otherwise the frames are waited for,
            # source_timeout_ms at most a round, when no slot is in flight (timeout None)
            if timeout is not None:
                if open_ and all(len(chans[k]) for k in open_):
                    return gather()
                if timeout > 0:
                    time.sleep(timeout)
                return None
            return gather()

        def gather():
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
                            del open_[:]
                            return []
                        open_.remove(k)
                if frames:
                    return frames
            return []

        clock.start()
        # the duration counts from here, like the run's wall time: making the slots above
        # (graph captures) is setup
        if options.duration_s is not None:
            deadline = time.perf_counter() + float(options.duration_s)
        for k, s in enumerate(sources):
            crew.spawn("capture-%d" % k, capture_main, s, pools[k], chans[k])
        run_slots(layer, slots, take_batch, deliver)
    finally:
        clock.stop()
        finish(crew, stats, dropped, layer, slots + pools)
    crew.reraise()
