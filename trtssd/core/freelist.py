"""A thread-safe free list: items taken by one thread and given back from any other."""
import collections
import threading


class FreeList(object):
    """Items handed out and given back (``put``) from any thread; ``take`` waits for one."""

    def __init__(self, items=()):
        self._free = collections.deque(items)
        self._cond = threading.Condition()

    def take(self, wait=True, stop=None):
        """A free item. While none is free: waits (``wait`` True) until one is given back,
        checking the threading.Event ``stop`` every quarter second; returns None at once when
        ``wait`` is False or ``stop`` is set."""
        with self._cond:
            while not self._free:
                if not wait or (stop is not None and stop.is_set()):
                    return None
                self._cond.wait(0.25)
            return self._free.popleft()

    def put(self, item):
        with self._cond:
            self._free.append(item)
            self._cond.notify()

    def __len__(self):
        """How many items are free now (so an empty free list is falsy, like a deque)."""
        with self._cond:
            return len(self._free)

    def clear(self):
        with self._cond:
            self._free.clear()
