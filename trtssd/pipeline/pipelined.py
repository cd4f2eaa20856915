"""``pipelined``: several frames in flight (``depth`` slots; 2 = double buffering).

Threads:
- capture: reads the source into pooled (pinned) buffers, or takes the source's own pinned
  buffers (a synthetic source's ring), and queues the frames; on a live source a full queue
  drops its oldest frame (counted), on a file it waits;
- driver: takes ``batch`` frames, waits until slot ``n % depth`` is free (the only slot it
  must reuse: the completion stage has taken its result), and enqueues everything for them on
  that slot's stream (upload straight from the frame's pinned buffer, preprocess, infer,
  postprocess into mapped pinned memory, an event); it never waits on the GPU;
- completion (the caller's thread): takes the slots in submission order, waits for each one's
  event, reads its result, frees the slot and hands the frames to the sink. Results therefore
  come out in frame order. A frame's buffer goes back to its pool or ring only then, after
  the slot's event: the upload read it in place until that point.

Slots and buffers are made and closed in the caller's thread, under the device's context;
each thread makes the device's context current for its whole life.

``run_slots`` is that driver + completion schedule, shared with ``multi`` (whose batches are
rounds over several sources).
"""
import threading

from .base import (Delivery, Dropped, Result, RunClock, feed, finish, frame_pool,
                   start_capture)
from .threads import Closed, Crew, Timeout, discard


def run_slots(crew, layer, slots, take_batch, deliver):
    """Drive ``slots`` round robin with the batches ``take_batch()`` returns (an empty list
    ends the stream) from a driver thread, and complete them in submission order in the
    calling thread, delivering each frame's result. Returns when the stream ended or the
    crew stopped; the driver's errors reach ``crew``."""
    depth = len(slots)
    inflight = crew.channel(depth)
    free = [threading.Event() for _ in range(depth)]
    for ev in free:
        ev.set()
    stop = crew.stop

    def driver_main():
        n = 0
        try:
            with layer.activate():
                while True:
                    frames = take_batch()
                    if not frames:
                        break
                    i = n % depth
                    ev = free[i]
                    try:
                        if not ev.is_set():
                            while not ev.wait(0.25):
                                if stop.is_set():
                                    raise Closed()
                        ev.clear()
                        slots[i].submit(frames)
                    except BaseException:
                        discard(frames)
                        raise
                    n += 1
                    r = Result(frames, slot=i)
                    try:
                        inflight.put(r)
                    except Closed:
                        discard(r)
                        raise
        finally:
            inflight.close()

    crew.spawn("driver", driver_main)
    timings = deliver.timings
    with layer.activate():
        while True:
            try:
                r = inflight.get()
            except Closed:
                break
            frames = r.frames
            try:
                slot = slots[r.slot]
                slot.wait()
                dets, t = slot.result()
            except BaseException:
                discard(r)
                raise
            free[r.slot].set()
            timings(t)
            for k, frame in enumerate(frames):
                try:
                    deliver(frame, dets[k])
                except BaseException:
                    discard(frames[k + 1:])
                    raise


def run(sources, layer, sink, options, stats, clock=None):
    clock = clock or RunClock()
    source = sources[0]
    depth, batch = int(options.depth), int(options.batch)
    live = bool(source.live)
    crew = Crew()
    queue = crew.channel(batch if live else depth * batch, drop_oldest=live)
    dropped = Dropped()
    slots = []
    pool = None
    try:
        with layer.activate():
            pool = frame_pool(layer, source, queue.capacity + (depth + 2) * batch + 2,
                              crew.stop)
            for _ in range(depth):
                slots.append(layer.make_slot())
                # a short last batch needs its own contexts: made here, before the threads
                # start, since making one may capture a CUDA graph
                slots[-1].prepare(range(1, batch))
        capture = start_capture(source, stats, options, pool, None)
        deliver = Delivery(sink, stats, options)


        def take_batch():
            try:
                frames = [queue.get()]
            except Closed:
                return []
            while len(frames) < batch:
                try:   # a live source does not wait for a full batch; a file does
                    frames.append(queue.get(timeout=0 if live else None))
                except (Closed, Timeout):
                    break
            return frames

        clock.start()
        crew.spawn("capture", feed, capture, queue, crew.stop, dropped)
        run_slots(crew, layer, slots, take_batch, deliver)
    finally:
        clock.stop()
        finish(crew, stats, dropped, layer, slots + [pool])
    crew.reraise()
