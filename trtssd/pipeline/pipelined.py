"""``pipelined``: several frames in flight (``depth`` slots; 2 = double buffering).

Threads:
- capture: reads the source into pooled (pinned) buffers and queues the frames; on a live
  source a full queue drops its oldest frame (counted), on a file it waits;
- driver: takes ``batch`` frames, waits until slot ``n % depth`` is free (the only slot it
  must reuse: the completion stage has taken its result), and enqueues everything for them on
  that slot's stream (upload, preprocess, infer, postprocess, download of the kept boxes, an
  event); it never waits on the GPU;
- completion (the caller's thread): takes the slots in submission order, waits for each one's
  event, reads its result, frees the slot and hands the frames to the sink. Results therefore
  come out in frame order.

Slots and buffers are made and closed in the caller's thread; each thread makes the device's
context current for its whole life.
"""
import threading

from .base import Delivery, Dropped, Result, close_all, frame_pool, start_capture
from .stages import Closed, Crew, Timeout, discard


def run(sources, layer, sink, options, stats):
    source = sources[0]
    depth, batch = int(options.depth), int(options.batch)
    live = bool(source.live)
    crew = Crew()
    lock = threading.Lock()
    queue = crew.channel(batch if live else depth * batch, drop_oldest=live)
    inflight = crew.channel(depth)
    free = [threading.Event() for _ in range(depth)]
    for ev in free:
        ev.set()
    dropped = Dropped()
    slots = []
    pool = None
    try:
        with layer.activate():
            pool = frame_pool(layer, source, queue.capacity + (depth + 2) * batch + 2)
            for _ in range(depth):
                slots.append(layer.make_slot())
                # a short last batch needs its own contexts: made here, before the threads
                # start, since making one may capture a CUDA graph
                slots[-1].prepare(range(1, batch))
        capture = start_capture(source, stats, options, pool, lock)
        deliver = Delivery(sink, stats, options, lock=lock)

        def capture_main():
            try:
                while True:
                    frame = capture.read(crew.stop)
                    if frame is None:
                        break
                    try:
                        dropped.add(queue.put(frame))
                    except Closed:
                        frame.done()
                        raise
            finally:
                queue.close()

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

        def driver_main():
            n = 0
            try:
                with layer.activate():
                    while True:
                        frames = take_batch()
                        if not frames:
                            break
                        i = n % depth
                        try:
                            while not free[i].wait(0.25):
                                if crew.stop.is_set():
                                    raise Closed()
                            free[i].clear()
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

        crew.spawn("capture", capture_main)
        crew.spawn("driver", driver_main)
        with layer.activate():
            while True:
                try:
                    r = inflight.get()
                except Closed:
                    break
                try:
                    slot = slots[r.slot]
                    slot.wait()
                    dets, timings = slot.result()
                except BaseException:
                    discard(r)
                    raise
                free[r.slot].set()
                deliver.timings(timings)
                for k, frame in enumerate(r.frames):
                    try:
                        deliver(frame, dets[k])
                    except BaseException:
                        discard(r.frames[k + 1:])
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
            close_all(layer, slots + [pool])
    crew.reraise()
