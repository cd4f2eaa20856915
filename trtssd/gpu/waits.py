"""``PacedWait``: a host thread's wait for work it submitted to the GPU, asleep for most of it.

A thread waiting in the driver for an event spins (``host_wait_event``: no ``BLOCKING_SYNC``,
whose wake-up costs more frame rate than the CPU it saves; benchmarks/NOTES_pipeline.md,
round 5), one core for as long as it waits. A slot of the pipelined schedule takes about the
same time from its submit to its event from one batch to the next, so its wait can sleep
until shortly before the event is due and spin only the rest: ``wait`` sleeps until
``since + latency - margin``, where ``latency`` is the shortest of the last waits (one that
ended spinning saw the event within microseconds of its completion; one that woke after it,
an upper bound), then spins.
``margin`` is what the sleep's wake-up may be late by (the kernel's timer slack and the
scheduler; ~50-100 us on Linux): it grows by half whenever a sleep woke after the event
(that wait was late by an unknown amount) and shrinks by 3% after each sleep that woke in
time, so about one wait in twenty wakes late. Until a first spun wait, and where less than
``MIN_SLEEP_S`` is left, it spins. One thread's object: its state is not locked.
"""
import collections
import time

MIN_SLEEP_S = 1e-4          # shorter naps are not worth a wake-up
START_MARGIN_S = 2e-4
MIN_MARGIN_S = 5e-5
MAX_MARGIN_S = 2e-3
GROW, SHRINK = 1.5, 0.97
HISTORY = 16                # spun waits the latency is taken from


class PacedWait(object):
    """The waits of one thread for events of work that takes a steady time (module docstring).
    ``clock`` and ``sleep`` are time.perf_counter and time.sleep unless given."""

    def __init__(self, clock=None, sleep=None):
        self._clock = clock or time.perf_counter
        self._sleep = sleep or time.sleep
        self._latency = collections.deque(maxlen=HISTORY)
        self.margin = START_MARGIN_S
        self.sleeps = 0             # waits that slept
        self.late = 0               # of those, woken after the event

    def now(self):
        """The clock ``wait``'s ``since`` is read on."""
        return self._clock()

    def wait(self, event, since):
        """Return once ``event`` has completed; ``since``: ``now()`` when the work it marks was
        submitted (its record)."""
        if event.query():
            return
        latency = self._latency
        if latency:
            nap = since + min(latency) - self.margin - self._clock()
            if nap >= MIN_SLEEP_S:
                self._sleep(nap)
                self.sleeps += 1
                if event.query():
                    self.late += 1
                    self.margin = min(MAX_MARGIN_S, self.margin * GROW)
                    # at most this long: what lets a latency that fell be learned
                    latency.append(self._clock() - since)
                    return
                self.margin = max(MIN_MARGIN_S, self.margin * SHRINK)
        event.synchronize()
        latency.append(self._clock() - since)
