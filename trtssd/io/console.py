"""What the command tells the person at the console while it runs (on stderr).

``ConsoleSink`` is a sink that draws nothing and writes nothing to files: for a stream of
pictures, one line per picture (``picture 3/320 cat.jpg: 1 cat, 2 person``); for videos,
cameras and streams, a progress bar with the frame rate and, where the length is known,
the time left (tqdm where it is installed, else one self-rewriting line). The command turns
it off with ``-q`` and shows the bar only when stderr is a terminal.
"""
import collections
import os
import sys
import time

from .sinks import Sink


def count_labels(detections, labels=None):
    """"2 person, 1 dog" for a frame's detections ("nothing" when there are none)."""
    if detections is None or len(detections) == 0:
        return "nothing"
    names = []
    for i in range(len(detections)):
        if detections.labels is not None:
            names.append(str(detections.labels[i]))
        else:
            cid = int(detections.class_ids[i])
            names.append(labels.name(cid) if labels is not None and hasattr(labels, "name")
                         else str(cid))
    c = collections.Counter(names)
    return ", ".join("%d %s" % (n, name) for name, n in sorted(c.items(), key=lambda kv: -kv[1]))


def _clock(seconds):
    seconds = int(max(0, seconds))
    return "%d:%02d:%02d" % (seconds // 3600, (seconds // 60) % 60, seconds % 60) \
        if seconds >= 3600 else "%d:%02d" % (seconds // 60, seconds % 60)


def _columns(stream):
    """The terminal's width (80 where it says 0 or cannot say, as a bare pty does; tqdm
    would draw nothing there: it hides bars below a 0-row screen, hence ``nrows`` too)."""
    try:
        cols = os.get_terminal_size(stream.fileno()).columns
    except Exception:
        cols = 0
    return cols if cols > 0 else 80


class _Line(object):
    """A minimal progress line (frames, FPS, ETA), rewritten in place with a carriage return."""

    def __init__(self, total, stream, desc):
        self.total, self.stream, self.desc = total, stream, desc
        self.n = 0
        self.t0 = time.perf_counter()
        self._last = 0.0

    def update(self, k=1):
        self.n += k
        now = time.perf_counter()
        if now - self._last < 0.2 and (self.total is None or self.n < self.total):
            return
        self._last = now
        dt = now - self.t0
        fps = self.n / dt if dt > 0 else 0.0
        if self.total:
            left = (self.total - self.n) / fps if fps > 0 else 0.0
            text = "%s: %d/%d frames, %.1f FPS, ETA %s" % (self.desc, self.n, self.total, fps,
                                                          _clock(left))
        else:
            text = "%s: %d frames, %.1f FPS, %s" % (self.desc, self.n, fps, _clock(dt))
        self.stream.write("\r" + text + "\033[K")
        self.stream.flush()

    def close(self):
        self.stream.write("\n")
        self.stream.flush()


class ConsoleSink(Sink):
    """Console feedback (see the module docstring). ``pictures``: one line per frame;
    otherwise ``progress`` shows a bar of ``total`` frames (None: unknown length)."""

    def __init__(self, pictures=False, progress=False, total=None, labels=None,
                 stream=None, desc="trtssd"):
        self.stream = stream if stream is not None else sys.stderr
        self.pictures = bool(pictures)
        self.labels = labels
        self.total = total
        self._bar = None
        if progress and not self.pictures:
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=total, file=self.stream, unit="frame", desc=desc,
                                 ncols=_columns(self.stream), nrows=24, smoothing=0.1)
            except (ImportError, TypeError):     # no tqdm, or one older than 4.59
                self._bar = _Line(total, self.stream, desc)
        self._t = time.perf_counter()

    def write(self, frame, detections):
        self.written += 1
        if self.pictures:
            now = time.perf_counter()
            ms = (now - self._t) * 1e3
            self._t = now
            of = ("/%d" % self.total) if self.total else ""
            self.stream.write("picture %d%s %s: %s (%.0f ms)\n"
                              % (self.written, of, frame.source_id,
                                 count_labels(detections, self.labels), ms))
            self.stream.flush()
        elif self._bar is not None:
            self._bar.update(1)

    def close(self):
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()
