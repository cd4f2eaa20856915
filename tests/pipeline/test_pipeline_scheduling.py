"""The modes' scheduling on the CPU with a fake device layer: order, depth, drop policy,
shutdown from every state, error propagation, context ownership, memory flatness.

The fake slot takes a configurable time to "compute", identifies each frame by the index the
test source wrote into its pixels, and checks the rules the real GPU layer relies on: a slot
is never resubmitted before its result was taken, and every device call happens in a thread
that made the device active.
"""
import threading
import time
import traceback
import tracemalloc

import numpy as np
import pytest

from trtssd.pipeline import PipelineOptions, run
from trtssd.pipeline.slots import DeviceLayer, Slot
from trtssd.io.sources import Source

RUN_TIMEOUT = 30.0          # generous: a run that has not ended by then has hung


class Boom(Exception):
    pass


class CountingSource(Source):
    """Frame i carries i in its first pixels, so a result can be matched to its frame and a
    reused buffer is detected. ``fail_at``: raise Boom when reading frame i; ``delay``:
    seconds per read; ``gate``: an Event each read waits for."""

    def __init__(self, n, live=False, fail_at=None, delay=0.0, shape=(6, 8), name="src",
                 gate=None):
        Source.__init__(self)
        self.n, self.live, self.fail_at, self.delay = n, live, fail_at, delay
        self.height, self.width = shape
        self.source_id = name
        self.gate = gate
        self.closed = False

    def read(self, out=None):
        i = self._next_index
        if i >= self.n:
            return None
        if self.gate is not None:
            self.gate.wait(RUN_TIMEOUT)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_at is not None and i == self.fail_at:
            raise Boom("source broke at frame %d" % i)
        img = out if out is not None else np.empty((self.height, self.width, 3), np.uint8)
        img[...] = 0
        img[0, 0, 0], img[0, 0, 1] = i % 256, i // 256
        return self._frame(img, time.perf_counter())

    def close(self):
        self.closed = True


def frame_number(image):
    return int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])


class FakeDetections(object):
    def __init__(self, source_id, index):
        self.source_id, self.index = source_id, index


class FakeSlot(Slot):
    def __init__(self, layer, k):
        self.layer, self.k = layer, k
        self.pending = None
        self.held = []
        self.ready_at = 0.0
        self.closed = False
        self.thread = threading.current_thread()
        self.staged = None

    def stage(self, frames):
        # the next batch's upload beside this slot's batch in flight: only on a busy slot,
        # once per batch, and the next submit must be of exactly these frames
        L = self.layer
        L.check_active("stage")
        if self.pending is None:
            L.violations.append("slot %d staged while free" % self.k)
        if self.staged is not None:
            L.violations.append("slot %d staged twice" % self.k)
        with L.lock:
            L.stages += 1
            if L.fail_stage_at is not None and L.stages - 1 == L.fail_stage_at:
                raise Boom("device failed at stage %d" % (L.stages - 1))
        self.staged = [(f.source_id, frame_number(f.image)) for f in frames]

    def submit(self, frames):
        L = self.layer
        L.check_active("submit")
        if self.pending is not None:
            raise AssertionError("slot %d resubmitted before its result was taken" % self.k)
        if self.staged is not None:
            if self.staged != [(f.source_id, frame_number(f.image)) for f in frames]:
                L.violations.append("slot %d staged %s but was submitted %s" % (
                    self.k, self.staged, [(f.source_id, f.index) for f in frames]))
            self.staged = None
        if len(frames) > L.max_batch:
            raise AssertionError("batch %d > max_batch %d" % (len(frames), L.max_batch))
        with L.lock:
            L.submits += 1
            if L.fail_submit_at is not None and L.submits - 1 == L.fail_submit_at:
                raise Boom("device failed at submit %d" % (L.submits - 1))
            L.inflight += 1
            L.max_inflight = max(L.max_inflight, L.inflight)
            if len(L.batches) < 1000:          # bounded: the memory test runs 10,000
                L.batches.append(len(frames))
        # what the device "reads" now: the pixels of each frame
        self.pending = [(f.source_id, frame_number(f.image)) for f in frames]
        # pooled/ring frames: the device reads their buffers until the result (a direct
        # upload from pinned memory), so they must not be given back before
        self.held = [f for f in frames if f.release is not None]
        now = time.perf_counter()
        if L.serial:            # one batch at a time, as one GPU runs them: staggered slots
            with L.lock:
                self.ready_at = L.busy_until = max(now, L.busy_until) + L.latency
        else:
            self.ready_at = now + L.latency

    def ready(self):
        return time.perf_counter() >= self.ready_at

    def wait(self):
        self.layer.check_active("wait")
        dt = self.ready_at - time.perf_counter()
        if dt > 0:
            time.sleep(dt)

    def result(self):
        L = self.layer
        L.check_active("result")
        self.wait()
        if self.pending is None:
            raise AssertionError("result() of slot %d without a submit" % self.k)
        with L.lock:
            L.results += 1
            L.inflight -= 1
            if L.fail_result_at is not None and L.results - 1 == L.fail_result_at:
                self.pending = None
                raise Boom("device failed at result %d" % (L.results - 1))
        for f in self.held:
            if f.release is None:
                L.violations.append("frame %s#%d given back before its slot's result"
                                    % (f.source_id, f.index))
        self.held = []
        out = [FakeDetections(s, i) for s, i in self.pending]
        self.pending = None
        return out, [("inference", 1.0, "fake")]

    def close(self):
        # pycuda objects must be freed with the context current in the thread that made
        # them ("... in out-of-thread context could not be cleaned up")
        self.layer.check_active("close")
        if threading.current_thread() is not self.thread:
            self.layer.violations.append("slot %d made in %s, closed in %s"
                                         % (self.k, self.thread.name,
                                            threading.current_thread().name))
        self.closed = True


class FakeLayer(DeviceLayer):
    def __init__(self, latency=0.0, max_batch=1, fail_submit_at=None, fail_result_at=None,
                 fail_stage_at=None, serial=False):
        self.latency = latency
        self.serial, self.busy_until = serial, 0.0
        self.max_batch = max_batch
        self.fail_submit_at, self.fail_result_at = fail_submit_at, fail_result_at
        self.fail_stage_at = fail_stage_at
        self.stages = 0
        self.lock = threading.Lock()
        self.local = threading.local()
        self.slots = []
        self.submits = self.results = self.inflight = self.max_inflight = 0
        self.batches = []
        self.allocated = []
        self.freed = []
        self.buffer_threads = {}
        self.violations = []

    def check_active(self, what):
        if getattr(self.local, "depth", 0) < 1:
            self.violations.append("%s outside activate() in %s"
                                   % (what, threading.current_thread().name))

    def activate(self):
        layer = self

        class _Active(object):
            def __enter__(self):
                layer.local.depth = getattr(layer.local, "depth", 0) + 1

            def __exit__(self, *exc):
                layer.local.depth -= 1
                return False
        return _Active()

    def make_slot(self):
        self.check_active("make_slot")
        s = FakeSlot(self, len(self.slots))
        self.slots.append(s)
        return s

    def frame_buffer(self, shape):
        self.check_active("frame_buffer")
        b = np.full(shape, 0xFF, np.uint8)
        self.allocated.append(id(b))
        self.buffer_threads[id(b)] = threading.current_thread()
        return b

    def free_frame_buffer(self, buf):
        self.check_active("free_frame_buffer")
        made_in = self.buffer_threads.pop(id(buf), None)
        if made_in is not threading.current_thread():
            self.violations.append("frame buffer made in %s, freed in %s"
                                   % (getattr(made_in, "name", None),
                                      threading.current_thread().name))
        self.freed.append(id(buf))


class ListSink(object):
    """Keeps (source, index, detection) per frame; checks the frame's pixels still show its
    own index (its buffer was not reused while in flight); ``action(n)`` may raise."""
    draws = False

    def __init__(self, action=None, delay=0.0):
        self.got = []
        self.action = action
        self.delay = delay
        self.bad = []

    def write(self, frame, det):
        if frame_number(frame.image) != frame.index:
            self.bad.append("frame %d's buffer shows frame %d" % (frame.index,
                                                                  frame_number(frame.image)))
        if (det.source_id, det.index) != (frame.source_id, frame.index):
            self.bad.append("frame %s#%d got the result of %s#%d"
                            % (frame.source_id, frame.index, det.source_id, det.index))
        if self.delay:
            time.sleep(self.delay)
        if self.action is not None:
            self.action(len(self.got))
        self.got.append((frame.source_id, frame.index))

    def close(self):
        pass


def run_bounded(*args, **kw):
    """run() in a helper thread with a deadline, so a hang fails the test instead of CI."""
    box = {}

    def target():
        try:
            box["stats"] = run(*args, **kw)
        except BaseException as e:   # noqa: B902 - handed to the test
            box["error"] = e
    t = threading.Thread(target=target)
    t.daemon = True
    t.start()
    t.join(RUN_TIMEOUT)
    assert not t.is_alive(), "the pipeline hung (still running after %.0f s)" % RUN_TIMEOUT
    if "error" in box:
        raise box["error"]
    return box["stats"]


def pipeline_threads():
    return [t.name for t in threading.enumerate() if t.name.startswith("trtssd-")]


def assert_clean(layer):
    assert pipeline_threads() == [], "threads left running: %s" % pipeline_threads()
    assert layer.violations == [], layer.violations
    assert all(s.closed for s in layer.slots), "a slot was not closed"
    assert sorted(layer.freed) == sorted(layer.allocated), "frame buffers leaked"


SINGLE = [("sync", 1, 1), ("gpu", 1, 1), ("async", 1, 1), ("pipelined", 1, 1),
          ("pipelined", 2, 1), ("pipelined", 3, 1), ("pipelined", 2, 3)]
IDS = ["%s-d%d-b%d" % m for m in SINGLE]


def opts(mode, depth=2, batch=1, **kw):
    return PipelineOptions(mode=mode, depth=depth, batch=batch, **kw)


@pytest.mark.parametrize("mode,depth,batch", SINGLE, ids=IDS)
def test_file_source_every_frame_in_order(mode, depth, batch):
    layer = FakeLayer(latency=0.01, max_batch=batch)
    sink = ListSink()
    stats = run_bounded(CountingSource(40), None, sink, opts(mode, depth, batch), device=layer)
    assert sink.bad == []
    assert sink.got == [("src", i) for i in range(40)]
    assert stats.frames == 40 and stats.dropped == 0
    assert len(stats.latency_ms) == 40 and len(stats.stage_ms["capture"]) == 40
    assert layer.max_inflight <= (depth if mode == "pipelined" else 1)
    assert_clean(layer)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_pipelined_keeps_depth_slots_in_flight(depth):
    # the device takes 50 ms per slot and frames are ready at once, so the driver must have
    # filled every slot (and never more) while the first was still computing
    layer = FakeLayer(latency=0.05)
    stats = run_bounded(CountingSource(3 * depth), None, ListSink(), opts("pipelined", depth),
                        device=layer)
    assert layer.max_inflight == depth
    assert len(layer.slots) == depth
    assert stats.frames == 3 * depth
    assert_clean(layer)


@pytest.mark.parametrize("mode,depth", [("pipelined", 2), ("pipelined", 3), ("multi", 2)])
def test_a_slot_is_refilled_before_its_result_is_delivered(mode, depth):
    # frames are queued ahead (a file, a slow device): while a result is being delivered every
    # slot is in flight again, the freed one included, so the GPU never waits for the sink
    layer = FakeLayer(latency=0.01, max_batch=2 if mode == "multi" else 1)
    seen = []
    sink = ListSink(action=lambda n: seen.append(layer.inflight))
    n = 12 * depth
    srcs = [CountingSource(n, name="a"), CountingSource(n, name="b")] if mode == "multi" \
        else CountingSource(n)
    run_bounded(srcs, None, sink, opts(mode, depth), device=layer)
    per_round = 2 if mode == "multi" else 1
    # the last depth rounds have no batch left to refill their slot with
    body = seen[:len(seen) - depth * per_round]
    assert body and all(k == depth for k in body), seen
    assert_clean(layer)


@pytest.mark.parametrize("mode,depth,batch", [("pipelined", 2, 1), ("pipelined", 3, 2),
                                              ("multi", 2, 2)])    # multi: a round of 2
def test_the_next_batch_is_staged_on_the_oldest_busy_slot(mode, depth, batch):
    # frames queued ahead and every slot busy: the thread hands the next batch to the slot
    # it waits for (its upload beside that slot's network) and submits it to that slot as
    # soon as it is free (FakeSlot checks both); every frame still arrives once, in order
    layer = FakeLayer(latency=0.005, max_batch=batch, serial=True)
    sink = ListSink()
    n = 10 * depth * batch
    srcs = [CountingSource(n, name="a"), CountingSource(n, name="b")] if mode == "multi" \
        else CountingSource(n)
    run_bounded(srcs, None, sink, opts(mode, depth, batch), device=layer)
    assert sink.bad == []
    names = ["a", "b"] if mode == "multi" else ["src"]
    for name in names:
        assert [i for s, i in sink.got if s == name] == list(range(n))
    # all but the first depth batches and the last could be staged: most of them were
    assert layer.stages >= len(layer.batches) // 2, (layer.stages, len(layer.batches))
    assert_clean(layer)


@pytest.mark.parametrize("mode,depth", [("pipelined", 2), ("pipelined", 3), ("multi", 2)])
def test_an_error_in_staging_reaches_the_caller(mode, depth):
    layer = FakeLayer(latency=0.005, max_batch=2, fail_stage_at=2, serial=True)
    srcs = [CountingSource(40, name="a"), CountingSource(40, name="b")] if mode == "multi" \
        else CountingSource(40)
    with pytest.raises(Boom) as info:
        run_bounded(srcs, None, ListSink(), opts(mode, depth), device=layer)
    assert "stage" in [fr.name for fr in traceback.extract_tb(info.value.__traceback__)]
    assert_clean(layer)           # the staged frames were given back, no buffer leaked


def test_pipelined_batches_full_on_a_file():
    layer = FakeLayer(latency=0.005, max_batch=4)
    sink = ListSink()
    run_bounded(CountingSource(10), None, sink, opts("pipelined", 2, 4), device=layer)
    assert layer.batches == [4, 4, 2]          # a file waits for full batches; the tail is short
    assert sink.got == [("src", i) for i in range(10)]


def test_multi_every_source_in_order_batched():
    layer = FakeLayer(latency=0.005, max_batch=3)
    sink = ListSink()
    srcs = [CountingSource(n, name="s%d" % k) for k, n in enumerate((5, 9, 2))]
    stats = run_bounded(srcs, None, sink, opts("multi", source_timeout_ms=200), device=layer)
    assert sink.bad == []
    for k, n in enumerate((5, 9, 2)):
        assert [i for s, i in sink.got if s == "s%d" % k] == list(range(n))
    assert stats.frames == 16 and stats.dropped == 0
    assert max(layer.batches) == 3 and all(1 <= b <= 3 for b in layer.batches)
    assert_clean(layer)


@pytest.mark.parametrize("depth", [2, 3])
def test_multi_file_sources_run_ahead_of_a_slow_one(depth):
    """A round waits for every file source; while one is stalled, another reads ahead until
    max(4, 2 x depth) of its frames are queued (and one more waits to be queued), then
    waits; once the stalled one goes on, every frame of both arrives in order."""
    from trtssd.pipeline.multi import FILE_QUEUE
    gate = threading.Event()
    layer = FakeLayer(latency=0.002, max_batch=2)
    sink = ListSink()
    slow, fast = CountingSource(12, name="slow", gate=gate), CountingSource(12, name="fast")
    box = {}
    t = threading.Thread(target=lambda: box.update(stats=run_bounded(
        [slow, fast], None, sink, opts("multi", depth, source_timeout_ms=20000),
        device=layer)))
    t.start()
    ahead = max(FILE_QUEUE, 2 * depth) + 1
    deadline = time.perf_counter() + 10
    while fast.frames_read < ahead and time.perf_counter() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)                        # it stays there: the queue is full
    try:
        assert fast.frames_read == ahead and slow.frames_read == 0
    finally:
        gate.set()
        t.join(RUN_TIMEOUT)
    assert box["stats"].frames == 24 and sink.bad == []
    for name in ("slow", "fast"):
        assert [i for s, i in sink.got if s == name] == list(range(12))
    assert_clean(layer)


@pytest.mark.parametrize("mode", ["async", "pipelined", "multi"])
def test_live_source_drops_oldest_and_counts(mode):
    # a live source much faster than the device and the sink (async drops results the sink
    # had no time for): frames must be dropped, counted, and what is shown stays in
    # increasing order; shown + dropped = read
    layer = FakeLayer(latency=0.01, max_batch=1)
    sink = ListSink(delay=0.02)
    src = CountingSource(60, live=True, delay=0.001)
    stats = run_bounded([src] if mode == "multi" else src, None, sink, opts(mode, 2),
                        device=layer)
    shown = [i for _, i in sink.got]
    assert sink.bad == []
    assert stats.dropped > 0
    assert shown == sorted(set(shown))
    assert stats.frames + stats.dropped == src.frames_read == 60
    assert shown[-1] == 59                      # the newest frame is never the one dropped
    assert_clean(layer)


@pytest.mark.parametrize("mode,depth,batch", SINGLE + [("multi", 2, 1)],
                         ids=IDS + ["multi"])
@pytest.mark.parametrize("where", ["source", "submit", "result", "sink"])
def test_error_in_any_stage_reaches_the_caller(mode, depth, batch, where):
    layer = FakeLayer(latency=0.002, max_batch=batch,
                      fail_submit_at=3 if where == "submit" else None,
                      fail_result_at=3 if where == "result" else None)

    def sink_action(n):
        if where == "sink" and n == 5:
            raise Boom("sink broke at frame 5")
    src = CountingSource(50, fail_at=7 if where == "source" else None)
    with pytest.raises(Boom) as info:
        run_bounded([src] if mode == "multi" else src, None, ListSink(sink_action),
                    opts(mode, depth, batch), device=layer)
    # the original traceback: it still names the function that raised
    names = [fr.name for fr in traceback.extract_tb(info.value.__traceback__)]
    expected = {"source": "read", "submit": "submit", "result": "result",
                "sink": "sink_action"}[where]
    assert expected in names, names
    assert_clean(layer)


@pytest.mark.parametrize("mode,depth,batch", SINGLE + [("multi", 2, 1)],
                         ids=IDS + ["multi"])
@pytest.mark.parametrize("at", [0, 4])
def test_ctrl_c_stops_cleanly(mode, depth, batch, at):
    layer = FakeLayer(latency=0.002, max_batch=batch)

    def action(n):
        if n == at:
            raise KeyboardInterrupt()
    sink = ListSink(action)
    src = CountingSource(1000)
    stats = run_bounded([src] if mode == "multi" else src, None, sink,
                        opts(mode, depth, batch), device=layer)
    assert any("interrupted" in n for n in stats.notes)
    assert stats.frames == at and len(sink.got) == at
    assert_clean(layer)


@pytest.mark.parametrize("mode,depth,batch", SINGLE + [("multi", 2, 1)],
                         ids=IDS + ["multi"])
def test_empty_source_and_zero_frames(mode, depth, batch):
    for src, o in ((CountingSource(0), opts(mode, depth, batch)),
                   (CountingSource(10), opts(mode, depth, batch, max_frames=0))):
        layer = FakeLayer(max_batch=batch)
        sink = ListSink()
        stats = run_bounded([src] if mode == "multi" else src, None, sink, o, device=layer)
        assert stats.frames == 0 and sink.got == []
        assert_clean(layer)


@pytest.mark.parametrize("mode,depth,batch", SINGLE + [("multi", 2, 1)],
                         ids=IDS + ["multi"])
def test_max_frames_stops_mid_stream(mode, depth, batch):
    layer = FakeLayer(latency=0.002, max_batch=batch)
    sink = ListSink()
    src = CountingSource(100)
    stats = run_bounded([src] if mode == "multi" else src, None, sink,
                        opts(mode, depth, batch, max_frames=7), device=layer)
    assert stats.frames == 7 and sink.got == [("src", i) for i in range(7)]
    assert_clean(layer)


@pytest.mark.parametrize("mode", ["async", "pipelined", "multi"])
def test_error_while_capture_blocked_on_a_full_queue(mode):
    # a slow sink lets the file source fill every queue, so the capture thread is blocked on
    # a full queue when the sink fails: the run must still end, with the sink's error
    layer = FakeLayer()

    def action(n):
        if n == 3:
            raise Boom("sink failed while the queues were full")
    sink = ListSink(action, delay=0.05)
    src = CountingSource(1000)
    with pytest.raises(Boom):
        run_bounded([src] if mode == "multi" else src, None, sink, opts(mode, 2), device=layer)
    assert src.frames_read < 1000                # capture was held back, not run to the end
    assert_clean(layer)


def test_error_while_driver_waits_for_a_slot():
    # the device is slow and the source fails while the driver waits for a slot to free
    layer = FakeLayer(latency=0.2)
    with pytest.raises(Boom):
        run_bounded(CountingSource(50, fail_at=4), None, ListSink(), opts("pipelined", 2),
                    device=layer)
    assert_clean(layer)


def test_stop_while_source_blocks_before_the_first_frame():
    # the first read blocks until released; a duration limit passes meanwhile: the run ends
    # after the read returns, with nothing half done
    gate = threading.Event()
    layer = FakeLayer()
    src = CountingSource(5, gate=gate)
    timer = threading.Timer(0.3, gate.set)
    timer.start()
    stats = run_bounded(src, None, ListSink(), opts("pipelined", 2, duration_s=0.1),
                        device=layer)
    timer.join()
    assert stats.frames <= 1
    assert_clean(layer)


def test_options_are_validated():
    from trtssd.core.errors import InputError
    for bad in (dict(mode="turbo"), dict(depth=0), dict(batch=0), dict(score_threshold=2),
                dict(max_frames=-1), dict(duration_s=0), dict(depth=True)):
        with pytest.raises(InputError):
            PipelineOptions(**bad)
    with pytest.raises(InputError):
        run([CountingSource(1), CountingSource(1)], None, options=opts("sync"),
            device=FakeLayer())


class _Forgetful(list):
    def append(self, value):
        pass


def test_ten_thousand_frames_leave_host_memory_flat(monkeypatch):
    # traced Python allocations between frame 1,000 and frame 9,999 of one pipelined run.
    # RunStats' per-frame lists grow by design (one float per stage per frame), so the run
    # gets a RunStats that forgets them, and the sink keeps nothing. Anything kept per frame
    # (frames, buffers, results, queue items, timers) would grow by >= ~50 bytes per frame,
    # i.e. > 450 KB over 9,000 frames; the bound is 128 KB (one-time allocations: caches,
    # thread state).
    import dataclasses
    import trtssd.core.stats

    @dataclasses.dataclass
    class FlatStats(trtssd.core.stats.RunStats):
        def __post_init__(self):
            self.latency_ms = _Forgetful()

        def add(self, stage, ms, clock="host"):
            pass
    monkeypatch.setattr(trtssd.core.stats, "RunStats", FlatStats)
    layer = FakeLayer()
    marks = {}
    count = [0]

    class CountingSink(object):
        draws = False

        def write(self, frame, det):
            n = count[0]
            assert det.index == frame.index == n
            if n in (1000, 9999):
                marks[n] = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__)])
            count[0] += 1
    tracemalloc.start()
    try:
        stats = run_bounded(CountingSource(10000), None, CountingSink(),
                            opts("pipelined", 3), device=layer)
    finally:
        tracemalloc.stop()
    assert stats.frames == 10000 and count[0] == 10000
    growth = sum(d.size_diff for d in marks[9999].compare_to(marks[1000], "filename"))
    assert growth < 128 * 1024, "host memory grew by %d bytes over 9,000 frames" % growth
    assert len(layer.allocated) == len(layer.freed) and len(layer.allocated) < 20
    assert_clean(layer)


class RingCheckSink(object):
    """Checks each synthetic frame against the source's own rendering of frame i."""
    draws = False

    def __init__(self, refs):
        self.refs = refs
        self.got = []
        self.bad = []

    def write(self, frame, det):
        if (det.source_id, det.index) != (frame.source_id, frame.index):
            self.bad.append("frame %s#%d got the result of %s#%d"
                            % (frame.source_id, frame.index, det.source_id, det.index))
        if frame.image.flags.writeable:
            self.bad.append("frame %d is writable: not a ring view" % frame.index)
        if not np.array_equal(frame.image, self.refs[frame.source_id][frame.index]):
            self.bad.append("frame %s#%d shows another picture" % (frame.source_id, frame.index))
        self.got.append((frame.source_id, frame.index))


def _ring_source(name, n, seed=0):
    from trtssd.io.sources import SyntheticSource
    # pictures whose first pixel is 0: the fake device reads "frame number" 0 from all
    pics = [np.zeros((6, 8, 3), np.uint8) for _ in range(3)]
    for k, p in enumerate(pics):
        p[1:, :, :] = 10 * k + seed
    src = SyntheticSource(8, 6, frames=n, images=pics, source_id=name)
    ref = [pics[i % 3] for i in range(n)]
    return src, ref


@pytest.mark.parametrize("mode,depth,batch", SINGLE + [("multi", 2, 3), ("multi", 3, 3)],
                         ids=IDS + ["multi-d2", "multi-d3"])
def test_synthetic_ring_frames_from_the_layer_given_back_after_the_result(mode, depth, batch):
    # the synthetic source renders into buffers from the layer's allocator (pinned on CUDA)
    # and hands them out without a copy; each goes back to the ring only after its slot's
    # result (FakeSlot checks), every buffer is freed in the thread that made it, under the
    # layer's context, and every frame shows its own picture
    nsrc = 3 if mode == "multi" else 1
    pairs = [_ring_source("s%d" % k, 25 + 7 * k, seed=k) for k in range(nsrc)]
    srcs = [p[0] for p in pairs]
    layer = FakeLayer(latency=0.003, max_batch=batch)
    sink = RingCheckSink(dict((p[0].source_id, p[1]) for p in pairs))
    # ring frames share buffers, so the fake slot cannot read a frame number from the
    # pixels: it names the frames it was given instead (the sink checks the pixels)
    orig = FakeSlot.submit

    def submit(self, frames):
        orig(self, frames)
        self.pending = [(f.source_id, f.index) for f in frames]
    FakeSlot.submit = submit
    try:
        stats = run_bounded(srcs if mode == "multi" else srcs[0], None, sink,
                            opts(mode, depth, batch, source_timeout_ms=200), device=layer)
    finally:
        FakeSlot.submit = orig
    assert sink.bad == []
    for s in srcs:
        assert [i for sid, i in sink.got if sid == s.source_id] == list(range(s.frames))
        assert s.ring_size == 0                       # the run gave the ring back
    assert stats.frames == sum(s.frames for s in srcs) and stats.dropped == 0
    assert len(layer.allocated) >= 3 * nsrc           # the rings came from the layer
    assert_clean(layer)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_multi_keeps_depth_rounds_in_flight(depth):
    # a slow device and sources whose frames are ready at once: the driver must fill every
    # slot (and never more) while the first round still computes, as in pipelined
    layer = FakeLayer(latency=0.05, max_batch=3)
    srcs = [CountingSource(4 * depth, name="s%d" % k) for k in range(3)]
    sink = ListSink()
    stats = run_bounded(srcs, None, sink, opts("multi", depth, source_timeout_ms=500),
                        device=layer)
    assert sink.bad == []
    assert layer.max_inflight == depth and len(layer.slots) == depth
    assert stats.frames == 12 * depth
    assert_clean(layer)


def test_async_slot_closed_in_the_thread_that_made_it():
    # async makes its slot in the producer thread: it must close it there, under the context
    layer = FakeLayer(latency=0.001)
    run_bounded(CountingSource(10), None, ListSink(), opts("async"), device=layer)
    assert len(layer.slots) == 1 and layer.slots[0].thread.name == "trtssd-producer"
    assert_clean(layer)


@pytest.mark.parametrize("mode", ["sync", "async", "pipelined", "multi"])
def test_wall_time_counts_from_the_end_of_setup(mode):
    # making a slot may capture CUDA graphs (every run makes its own slots, so a warm-up run
    # does not absorb it): a run's wall time starts once its slots exist. Here making a slot
    # takes 1 s and the 5 frames take next to nothing.
    class SlowSetup(FakeLayer):
        def make_slot(self):
            time.sleep(1.0)
            return FakeLayer.make_slot(self)
    layer = SlowSetup()
    src = CountingSource(5)
    t0 = time.perf_counter()
    stats = run_bounded([src] if mode == "multi" else src, None, ListSink(),
                        opts(mode, 2), device=layer)
    assert time.perf_counter() - t0 >= 1.0
    assert stats.frames == 5 and 0 < stats.wall_s < 0.9, stats.wall_s
    assert any("end of the run's setup" in n for n in stats.notes)
    assert_clean(layer)
