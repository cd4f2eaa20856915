"""PacedWait (trtssd/gpu/waits.py) on a simulated clock: a fake event completes at a set time,
a fake sleep advances the clock by what was asked plus a wake-up delay, and a spin
(``synchronize``) ends at the event's completion. No GPU."""
import pytest

from trtssd.gpu import waits as W


class Clock(object):
    def __init__(self, wake_late=0.0):
        self.t = 0.0
        self.wake_late = wake_late        # how much later than asked each sleep ends
        self.naps = []
        self.spun = 0.0                   # time spent in synchronize

    def __call__(self):
        return self.t

    def sleep(self, s):
        assert s > 0
        self.naps.append(s)
        self.t += s + self.wake_late


class Event(object):
    def __init__(self, clock, done_at):
        self.clock, self.done_at = clock, done_at
        self.synced = 0

    def query(self):
        return self.clock.t >= self.done_at

    def synchronize(self):
        self.synced += 1
        if self.clock.t < self.done_at:
            self.clock.spun += self.done_at - self.clock.t
            self.clock.t = self.done_at


def submit(clock, latency):
    return clock.t, Event(clock, clock.t + latency)


def test_the_first_wait_spins_and_learns_the_latency():
    c = Clock()
    w = W.PacedWait(clock=c, sleep=c.sleep)
    since, ev = submit(c, 1e-3)
    w.wait(ev, since)
    assert c.naps == [] and ev.synced == 1 and c.t == pytest.approx(1e-3)


def test_a_steady_wait_sleeps_until_its_margin_then_spins():
    c = Clock(wake_late=3e-5)
    w = W.PacedWait(clock=c, sleep=c.sleep)
    since, ev = submit(c, 1e-3)
    w.wait(ev, since)
    c.t += 1e-4                              # the host's own work before the next wait
    since, ev = submit(c, 1e-3)
    c.t += 2e-4
    w.wait(ev, since)
    # slept from 0.2 ms after the submit until 1 ms - the margin, then spun to the event
    assert c.naps == [pytest.approx(1e-3 - W.START_MARGIN_S - 2e-4)]
    assert ev.synced == 1 and c.t == pytest.approx(ev.done_at)
    assert w.late == 0 and w.margin == pytest.approx(W.START_MARGIN_S * W.SHRINK)


def test_a_wake_up_after_the_event_widens_the_margin():
    c = Clock(wake_late=5e-4)                # later than the starting margin
    w = W.PacedWait(clock=c, sleep=c.sleep)
    since, ev = submit(c, 1e-3)
    w.wait(ev, since)
    since, ev = submit(c, 1e-3)
    w.wait(ev, since)
    assert len(c.naps) == 1 and ev.synced == 0 and ev.query()
    assert w.late == 1 and w.margin == pytest.approx(W.START_MARGIN_S * W.GROW)


def test_no_nap_when_the_event_is_done_or_due_too_soon():
    c = Clock()
    w = W.PacedWait(clock=c, sleep=c.sleep)
    since, ev = submit(c, 1e-3)
    w.wait(ev, since)
    since, ev = submit(c, 1e-3)
    c.t = ev.done_at                         # done before the wait
    w.wait(ev, since)
    assert c.naps == [] and ev.synced == 0
    since, ev = submit(c, 1e-3)
    c.t += 1e-3 - W.START_MARGIN_S - W.MIN_SLEEP_S / 2     # less than MIN_SLEEP_S left to sleep
    w.wait(ev, since)
    assert c.naps == [] and ev.synced == 1


def test_the_latency_is_the_shortest_recent_wait():
    c = Clock()
    w = W.PacedWait(clock=c, sleep=c.sleep)
    for lat in (2e-3, 3e-3):                 # the second sleeps 1.8 ms and spins the rest
        since, ev = submit(c, lat)
        w.wait(ev, since)
    since, ev = submit(c, 3e-3)
    w.wait(ev, since)
    assert c.naps[-1] == pytest.approx(2e-3 - w.margin / W.SHRINK)


def test_a_latency_that_falls_is_learned_from_the_late_wake_ups():
    c = Clock(wake_late=3e-5)
    w = W.PacedWait(clock=c, sleep=c.sleep)
    since, ev = submit(c, 2e-3)
    w.wait(ev, since)
    late = []
    for _ in range(12):
        since, ev = submit(c, 1e-3)
        w.wait(ev, since)
        late.append(ev.synced == 0)
    assert late[0] and not any(late[6:])     # woke late a few times, then in time again
    assert min(w._latency) == pytest.approx(1e-3)


@pytest.mark.parametrize("wake_late", [2e-5, 8e-5, 1.5e-4])
def test_a_steady_run_sleeps_most_of_its_waits_and_rarely_wakes_late(wake_late):
    c = Clock(wake_late=wake_late)
    w = W.PacedWait(clock=c, sleep=c.sleep)
    waited = lost = 0.0
    n = 2000
    for _ in range(n):
        since, ev = submit(c, 1e-3)
        c.t += 1e-4                          # host work
        start = c.t
        w.wait(ev, since)
        waited += ev.done_at - start
        lost += c.t - ev.done_at             # how long after the event the wait returned
    # spinning alone would spin for all of `waited`; the margin settles near the wake-up delay
    assert c.spun < 0.35 * waited
    assert w.late < 0.1 * n
    assert lost / n < 0.25 * wake_late + 1e-6
