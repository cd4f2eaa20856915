"""Thread plumbing of the modes, with no device work in it (tested on the CPU with fakes).

``Channel`` (a bounded queue that can drop its oldest item, be closed at the end of a stream
or aborted on a stop), ``Crew`` (threads whose first exception stops everything and is
re-raised in the caller), ``FramePool`` (reused frame buffers from a device layer's
allocator), ``Capture`` (one source read into pooled buffers, timed), ``discard`` and
``record``.
"""
import collections
import functools
import threading
import time

from ..core.errors import InputError
from ..core.freelist import FreeList


class Closed(Exception):
    """The channel was closed (end of stream) and is empty, or aborted."""


class Timeout(Exception):
    """Nothing arrived in time."""


def discard(item):
    """Give back the frame buffers an item holds (a Frame, a list of them, or an object with a
    ``frames`` attribute)."""
    if item is None:
        return
    frames = getattr(item, "frames", None)
    if frames is None:
        frames = item if isinstance(item, (list, tuple)) else [item]
    for f in frames:
        done = getattr(f, "done", None)
        if done is not None:
            done()


class Channel(object):
    """A bounded FIFO between two threads.

    ``put`` blocks while full, or with ``drop_oldest`` removes and returns the oldest item
    (the caller counts it and discards it). ``close()`` marks the end of the stream: the
    consumer drains what is left, then ``get`` raises Closed. ``abort()`` empties it,
    discarding the items, and wakes everyone; later calls raise Closed.
    """

    def __init__(self, capacity, drop_oldest=False):
        if capacity < 1:
            raise InputError("a channel needs capacity >= 1, got %d" % capacity)
        self.capacity = int(capacity)
        self.drop_oldest = bool(drop_oldest)
        self._items = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._aborted = False

    def put(self, item, timeout=None):
        """Append ``item``; returns the dropped oldest item or None."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        with self._cond:
            while True:
                if self._closed or self._aborted:
                    raise Closed()
                if len(self._items) < self.capacity:
                    self._items.append(item)
                    self._cond.notify_all()
                    return None
                if self.drop_oldest:
                    dropped = self._items.popleft()
                    self._items.append(item)
                    self._cond.notify_all()
                    return dropped
                wait = 0.25 if deadline is None else min(0.25, deadline - time.perf_counter())
                if wait <= 0:
                    raise Timeout()
                self._cond.wait(wait)

    def get(self, timeout=None):
        deadline = None if timeout is None else time.perf_counter() + timeout
        with self._cond:
            while True:
                if self._aborted:
                    raise Closed()
                if self._items:
                    item = self._items.popleft()
                    self._cond.notify_all()
                    return item
                if self._closed:
                    raise Closed()
                wait = 0.25 if deadline is None else min(0.25, deadline - time.perf_counter())
                if wait <= 0:
                    raise Timeout()
                self._cond.wait(wait)

    def wait_empty(self, stop, timeout=None):
        """Block until the consumer took everything (or ``stop`` is set / aborted)."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        with self._cond:
            while self._items and not self._aborted and not stop.is_set():
                wait = 0.25 if deadline is None else min(0.25, deadline - time.perf_counter())
                if wait <= 0:
                    raise Timeout()
                self._cond.wait(wait)
            if self._aborted:
                raise Closed()

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def abort(self):
        with self._cond:
            self._aborted = True
            items = list(self._items)
            self._items.clear()
            self._cond.notify_all()
        for it in items:
            discard(it)

    def __len__(self):
        with self._cond:
            return len(self._items)


class Crew(object):
    """The threads of one run. The first exception in any of them (or ``halt()``) sets
    ``stop`` and aborts the registered channels, so every thread wakes and ends;
    ``join()`` waits for all, and ``reraise()`` raises that exception in the caller with its
    original traceback."""

    def __init__(self):
        self.stop = threading.Event()
        self.errors = []
        self.threads = []
        self.channels = []
        self._lock = threading.Lock()

    def channel(self, capacity, drop_oldest=False):
        ch = Channel(capacity, drop_oldest)
        self.channels.append(ch)
        return ch

    def spawn(self, name, fn, *args):
        t = threading.Thread(target=self._main, args=(fn, args), name="trtssd-" + name)
        t.daemon = True
        self.threads.append(t)
        t.start()
        return t

    def _main(self, fn, args):
        try:
            fn(*args)
        except Closed:
            pass                          # woken by a stop: not an error of its own
        except BaseException as e:        # noqa: B902 - everything must reach the caller
            self.fail(e)

    def fail(self, exc):
        with self._lock:
            if not self.errors:
                self.errors.append(exc)
        self.halt()

    def halt(self):
        self.stop.set()
        for ch in self.channels:
            ch.abort()

    def join(self, timeout=30.0):
        """Wait for every thread (at most ``timeout`` s in all); the names of those still
        running (e.g. blocked inside a camera driver's read), which the caller must not pull
        the device buffers from under."""
        deadline = time.perf_counter() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.perf_counter()))
        return [t.name for t in self.threads if t.is_alive()]

    def reraise(self):
        if self.errors:
            e = self.errors[0]
            raise e.with_traceback(e.__traceback__)


class FramePool(object):
    """``count`` frame buffers of one shape from the device layer (pinned on CUDA), handed out
    and given back; allocated up front in the caller's thread. ``releaser(buf)`` is the
    callable that gives ``buf`` back (made once per buffer, not per frame)."""

    def __init__(self, layer, shape, count, buffers=None):
        self.layer = layer
        self.shape = tuple(int(v) for v in shape)
        self._borrowed = buffers is not None
        self._all = (list(buffers) if buffers is not None
                     else [layer.frame_buffer(self.shape) for _ in range(int(count))])
        self._free = FreeList(self._all)
        self._releasers = dict((id(b), functools.partial(self.put, b)) for b in self._all)

    def get(self, stop):
        buf = self._free.take(stop=stop)
        if buf is None:
            raise Closed()
        return buf

    def put(self, buf):
        self._free.put(buf)

    def releaser(self, buf):
        return self._releasers[id(buf)]

    @property
    def free(self):
        return len(self._free)

    def close(self):
        bufs, self._all = self._all, []
        self._free.clear()
        self._releasers = {}
        if self._borrowed:
            return
        for b in bufs:
            self.layer.free_frame_buffer(b)


class Capture(object):
    """Reads one source for a run: into pooled buffers when the size is known (or the
    source's own buffers, when ``pool`` says it keeps them), timing the read, stopping at
    ``max_frames`` reads or the deadline. Only this capture's thread appends to the stats'
    'capture' list (no lock: one writer per list)."""

    def __init__(self, source, stats, pool=None, max_frames=None, deadline=None, lock=None):
        self.source = source
        self.stats = stats
        own = getattr(pool, "owned_by_source", False)
        self.pool = None if own else pool
        self.max_frames = max_frames
        self.deadline = deadline
        self.count = 0
        self.ended = False

    def read(self, stop):
        if self.ended or stop.is_set():
            return None
        if self.max_frames is not None and self.count >= self.max_frames:
            self.ended = True
            return None
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.ended = True
            return None
        pool = self.pool
        if pool is None:
            t0 = time.perf_counter()
            frame = self.source.read()
            ms = (time.perf_counter() - t0) * 1e3
            if frame is None:
                self.ended = True
                return None
        else:
            buf = pool.get(stop)
            t0 = time.perf_counter()
            try:
                frame = self.source.read(out=buf)
            except BaseException:
                pool.put(buf)
                raise
            ms = (time.perf_counter() - t0) * 1e3
            if frame is None:
                pool.put(buf)
                self.ended = True
                return None
            if frame.image is buf:
                frame.release = pool.releaser(buf)
            else:
                pool.put(buf)
        self.count += 1
        self.stats.add("capture", ms)
        return frame


def record(stats, stage, ms, clock="host", lock=None):
    if lock is None:
        stats.add(stage, ms, clock)
    else:
        with lock:
            stats.add(stage, ms, clock)
