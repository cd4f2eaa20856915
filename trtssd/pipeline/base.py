"""What the modes share: delivering results to the sink, frame budgets, drop counts."""
import threading
import time

import numpy as np

from .threads import Capture, Closed, FramePool, record


class Result(object):
    """Frames with their detections and stage timings, on their way to the sink."""
    __slots__ = ("frames", "detections", "timings", "slot")

    def __init__(self, frames, detections=None, timings=(), slot=None):
        self.frames = frames
        self.detections = detections
        self.timings = timings
        self.slot = slot


class Budget(object):
    """How many frames may still be read, shared by the capture threads of a run."""

    def __init__(self, total):
        self.left = total
        self._lock = threading.Lock()

    def take(self):
        if self.left is None:
            return True
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class Dropped(object):
    """A thread-safe count of dropped frames; discards what it counts."""

    def __init__(self):
        self.n = 0
        self._lock = threading.Lock()

    def add(self, item):
        from .threads import discard
        if item is None:
            return
        frames = getattr(item, "frames", None)
        with self._lock:
            self.n += len(frames) if frames is not None else 1
        discard(item)


class BudgetedCapture(Capture):
    """A Capture whose frame limit is a shared Budget and whose end is a shared deadline."""

    def __init__(self, source, stats, pool, budget, deadline, lock):
        Capture.__init__(self, source, stats, pool, None, deadline, lock)
        self.budget = budget

    def read(self, stop):
        if self.ended or stop.is_set():
            return None
        if not self.budget.take():
            self.ended = True
            return None
        f = Capture.read(self, stop)
        if f is None and self.budget.left is not None:
            with self.budget._lock:
                self.budget.left += 1     # the frame was not there: give its place back
        return f


class RunClock(object):
    """Wall and CPU clocks of the part of a run in which frames flow: ``start()`` once a mode's
    slots and buffers are made, ``stop()`` before they are freed. A run's wall and CPU time
    count only this part: making slots may capture CUDA graphs (every run makes its own, so
    the bench's warm-up run does not absorb it), and that is setup, not frames."""

    def __init__(self):
        self.started = self.stopped = None

    def start(self):
        self.started = (time.perf_counter(), time.process_time())

    def stop(self):
        if self.started is not None and self.stopped is None:
            self.stopped = (time.perf_counter(), time.process_time())

    def spans(self):
        """(wall s, CPU s) between start and stop, or None if it never started."""
        if self.started is None or self.stopped is None:
            return None
        return (self.stopped[0] - self.started[0], self.stopped[1] - self.started[1])


def start_capture(source, stats, options, pool, lock, budget=None, deadline=None):
    budget = budget if budget is not None else Budget(options.max_frames)
    if deadline is None and options.duration_s is not None:
        deadline = time.perf_counter() + float(options.duration_s)
    return BudgetedCapture(source, stats, pool, budget, deadline, lock)


def frame_pool(layer, source, count, stop=None, own_only=False):
    """Frame buffers for ``source``, at least ``count`` (the frames the run may hold at once):
    the source's own ring from the layer's allocator (pinned on CUDA) when the source keeps
    buffers of its own (``Source.provide_buffers``, e.g. SyntheticSource), else reused buffers
    it decodes into (a FramePool; None when its frame size is unknown, or with ``own_only``).
    The returned object's
    ``close()`` frees them; call it under ``layer.activate()`` after every frame came back."""
    if getattr(source, "device_frames", None) is not None:
        # a source that can keep its frames on the GPU (NVDEC) does so for a layer that
        # reads device frames, and downloads them for one that preprocesses on the CPU
        source.device_frames = bool(getattr(layer, "reads_device_frames", False))
    provide = getattr(source, "provide_buffers", None)
    if provide is not None and provide(layer.frame_buffer, layer.free_frame_buffer, count, stop):
        return SourceBuffers(source)
    if own_only:
        return None
    h, w = int(getattr(source, "height", 0) or 0), int(getattr(source, "width", 0) or 0)
    if h <= 0 or w <= 0:
        return None
    from .slots import frame_shape
    return FramePool(layer, frame_shape(getattr(source, "pixel_format", None), h, w), count)


class SourceBuffers(object):
    """The buffers a source keeps itself (see frame_pool); the Capture reads without ``out``."""
    owned_by_source = True

    def __init__(self, source):
        self.source = source

    def close(self):
        self.source.release_buffers()


def draw_style(sink, options):
    """How the frames' annotated pictures are to be drawn (a trtssd.pipeline.slots.DrawStyle),
    or None when nothing draws: the first sink that draws decides (its labels and overlay,
    behind the class filter of a SelectSink it sits in); else ``options.draw`` draws with the
    defaults, as Delivery does."""
    from .slots import DrawStyle
    found = _drawing_sink(sink, None)
    if found is not None:
        s, class_ids = found
        return DrawStyle(getattr(s, "labels", None), getattr(s, "overlay", None), class_ids)
    return DrawStyle() if getattr(options, "draw", False) else None


def _drawing_sink(sink, class_ids):
    if sink is None or not getattr(sink, "draws", False):
        return None
    if getattr(sink, "class_ids", None) is not None and hasattr(sink, "sink"):   # SelectSink
        ids = sink.class_ids if class_ids is None else sink.class_ids[
            np.isin(sink.class_ids, class_ids)]
        return _drawing_sink(sink.sink, ids)
    for child in getattr(sink, "sinks", None) or ():                            # TeeSink
        found = _drawing_sink(child, class_ids)
        if found is not None:
            return found
    if getattr(sink, "sinks", None):
        return None
    return sink, class_ids


class Delivery(object):
    """Hands one frame's result to the sink (in the caller's thread only) and keeps the books:
    stage timings, sink and draw time (stage 'draw', only when something draws), capture ->
    result latency, frames. Drawing (``options.draw`` with a sink that does not draw itself)
    happens on the frame in place, or on a copy when the frame is read-only (a shared
    buffer, e.g. a synthetic source's ring), unless a GPU slot drew it already
    (``frame.annotated``, trtssd.pipeline.slots.GpuSlot). The run's notes say once which
    drawing ran."""

    def __init__(self, sink, stats, options, labels=None, lock=None):
        self.sink = sink
        self.write = sink.write
        self.stats = stats
        sink_draws = bool(getattr(sink, "draws", False))
        self.draw = bool(options.draw) and not sink_draws
        self.timed = self.draw or sink_draws
        self.labels = labels
        self._paths = set()
        # one thread writes each list of the stats (this one: the stages of the results,
        # draw, latency, frames; a capture thread: capture), so no lock is needed
        self.stage_ms = stats.stage_ms
        self.latency = stats.latency_ms

    def timings(self, timings):
        add = self.stats.add
        for stage, ms, clock in timings:
            add(stage, ms, clock)

    def __call__(self, frame, detections):
        t_result = time.perf_counter()
        try:
            if self.timed:
                drawn_before = frame.annotated is not None
            self.write(frame, detections)
            if self.draw and frame.annotated is None and hasattr(frame.image, "flags"):
                from ..io.sinks import annotate          # host frames only
                annotate(frame, detections, self.labels)
            if self.timed:
                self._note_path(frame, drawn_before)
        finally:
            frame.done()
        if self.timed:
            self.stats.add("draw", (time.perf_counter() - t_result) * 1e3)
        self.latency.append((t_result - frame.t_capture) * 1e3)
        self.stats.frames += 1

    def _note_path(self, frame, drawn_before):
        if frame.annotated is None:
            path = "not drawn (a device frame in a format drawn only on the host)"
        elif drawn_before:
            path = "on the GPU into the device frame, then downloaded"
        elif frame.annotated is frame.image:
            path = "on the CPU in place"
        else:
            path = "on the CPU on a copy of the read-only frame"
        if path not in self._paths:
            self._paths.add(path)
            self.stats.notes.append("frames drawn %s" % path)


def close_each(things):
    """Close every one of ``things`` (None is skipped), whatever fails; return the first error
    or None."""
    err = None
    for t in things:
        if t is None:
            continue
        try:
            t.close()
        except Exception as e:
            err = err or e
    return err


def close_all(layer, things):
    """Close slots and pools in order under the device's context; the first error wins."""
    with layer.activate():
        err = close_each(things)
    if err is not None:
        raise err


def detect_many(slot, frames):
    """Run frames through a slot now: (list of detections, timings). The frames are released
    if that fails (their buffers go back to their pool or ring)."""
    try:
        slot.submit(frames)
        return slot.result()
    except BaseException:
        for f in frames:
            f.done()
        raise


def detect_one(slot, frame):
    """``detect_many`` of one frame: (detections, timings)."""
    dets, timings = detect_many(slot, [frame])
    return dets[0], timings


def feed(capture, chan, stop, dropped):
    """A capture thread's loop: read frames into ``chan`` until the source ends or the run
    stops, counting what a live channel drops; the channel is closed at the end."""
    try:
        while True:
            frame = capture.read(stop)
            if frame is None:
                break
            try:
                d = chan.put(frame)
            except Closed:
                frame.done()
                raise
            if d is not None:
                dropped.add(d)
    finally:
        chan.close()


def finish(crew, stats, dropped, layer, things):
    """The end of a threaded run: stop and join the threads, count drops, free what the run
    made (only when no thread is still inside a source read). The caller re-raises the first
    error of the run's threads (``crew.reraise()``)."""
    crew.halt()
    alive = crew.join()
    stats.dropped += dropped.n
    if alive:
        stats.notes.append("threads %s were still blocked when the run ended (in a source "
                           "read?); their buffers were left to the process's exit"
                           % ", ".join(alive))
    else:
        close_all(layer, things)


__all__ = ["Result", "Budget", "Dropped", "RunClock", "start_capture", "frame_pool", "SourceBuffers",
           "Delivery", "draw_style", "close_all", "record", "detect_many", "detect_one", "feed", "finish"]
