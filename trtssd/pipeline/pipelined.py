"""``pipelined``: several frames in flight (``depth`` slots; 2 = double buffering).

Threads:
- capture: reads the source into pooled (pinned) buffers, or takes the source's own pinned
  buffers (a synthetic source's ring), and queues the frames; on a live source a full queue
  drops its oldest frame (counted), on a file it waits;
- the caller's thread, which both submits and completes (``run_slots``), as the network's
  ceiling is driven: it gives every free slot a batch as soon as one is queued and enqueues
  everything for it on that slot's stream (upload straight from the frame's pinned buffer,
  preprocess, infer, postprocess into mapped pinned memory, an event), then takes the slots'
  results in submission order; while every slot is busy, the next batch is staged on the
  oldest one (``Slot.stage``: its upload enqueued beside that slot's network) before the
  thread waits for it; a slot whose result was taken gets its next batch before the
  result is converted and handed to the sink, so nothing crosses threads between a slot's
  end and its next start. Results come out in frame order. A frame's buffer goes back to its
  pool or ring only after its slot's event: the upload read it in place until that point.

Slots and buffers are made and closed in the caller's thread, under the device's context,
which is current in that thread for the whole schedule.

``run_slots`` is that schedule, shared with ``multi`` (whose batches are rounds over several
sources).
"""
import collections

from .base import Delivery, Dropped, RunClock, feed, finish, frame_pool, start_capture
from .threads import Closed, Crew, Timeout, discard


POLL_S = 0.0005     # how long one look for frames waits while a slot could complete


def run_slots(layer, slots, take_batch, deliver):
    """Drive ``slots`` round robin with the batches ``take_batch(timeout)`` gives (a list of
    frames; ``[]`` ends the stream; None: none within ``timeout`` seconds, None blocks) and
    complete them in submission order, delivering each frame's result, all in the calling
    thread: every free slot gets a batch as soon as one is ready (the thread waits for frames
    only while no slot is in flight; otherwise it looks for frames and at the oldest slot's
    event in turns); while every slot is in flight, a ready batch is staged on the oldest
    slot (``stage``) before its result is awaited; a slot whose result was taken gets its
    next batch (the one staged on it, if any) before that result is converted and delivered,
    so the GPU restarts it while the host delivers. Returns when
    the stream ended and every slot was delivered, or raises; frames not delivered are given
    back."""
    depth = len(slots)
    free = collections.deque(range(depth))
    inflight = collections.deque()          # (slot index, frames), in submission order
    ended = False
    staged = None                           # a batch staged on the oldest slot (Slot.stage)
    timings = deliver.timings

    def submit(frames):
        i = free.popleft()
        try:
            slots[i].submit(frames)
        except BaseException:
            free.appendleft(i)
            discard(frames)
            raise
        inflight.append((i, frames))

    with layer.activate():
        try:
            while True:
                while free and not ended:
                    if not inflight:
                        frames = take_batch(None)
                    else:
                        frames = take_batch(0)
                        if frames is None:
                            if slots[inflight[0][0]].ready():
                                break
                            frames = take_batch(POLL_S)
                            if frames is None:
                                continue
                    if not frames:
                        ended = True
                    else:
                        submit(frames)
                if not inflight:
                    break
                i, frames = inflight[0]
                if not free and not ended and not slots[i].ready():
                    # every slot busy: the next batch goes to the oldest one's upload now,
                    # beside its network, and is submitted to it as soon as it is free
                    staged = take_batch(0)
                    if staged is not None:
                        if staged:
                            try:
                                slots[i].stage(staged)
                            except BaseException:
                                discard(staged)
                                staged = None
                                raise
                        else:
                            ended = True
                            staged = None
                inflight.popleft()
                try:
                    finish = slots[i].collect()
                except BaseException:
                    discard(frames)
                    raise
                free.append(i)
                if staged:
                    # staged only while no slot was free: slot i is the one free now
                    nxt, staged = staged, None
                    submit(nxt)
                elif not ended:
                    nxt = take_batch(0)
                    if nxt is not None:
                        if nxt:
                            submit(nxt)
                        else:
                            ended = True
                try:
                    dets, t = finish()
                except BaseException:
                    discard(frames)
                    raise
                timings(t)
                for k, frame in enumerate(frames):
                    try:
                        deliver(frame, dets[k])
                    except BaseException:
                        discard(frames[k + 1:])
                        raise
        except BaseException:
            for _, frames in inflight:
                discard(frames)
            inflight.clear()
            if staged:
                discard(staged)
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


        def take_batch(timeout):
            try:
                frames = [queue.get(timeout=timeout)]
            except Closed:
                return []
            except Timeout:
                return None
            while len(frames) < batch:
                try:   # a live source does not wait for a full batch; a file does
                    frames.append(queue.get(timeout=0 if live else None))
                except (Closed, Timeout):
                    break
            return frames

        clock.start()
        crew.spawn("capture", feed, capture, queue, crew.stop, dropped)
        run_slots(layer, slots, take_batch, deliver)
    finally:
        clock.stop()
        finish(crew, stats, dropped, layer, slots + [pool])
    crew.reraise()
