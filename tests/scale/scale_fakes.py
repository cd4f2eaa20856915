"""Sources for the several-GPU tests, importable by the spawned worker processes (the
tests' folder is on the path they inherit)."""
import os

import numpy as np

from trtssd.io.sources import Source, SourceError


class CountingSource(Source):
    """``frames`` pictures (``image``, or random ones seeded by ``seed``), then the end."""

    def __init__(self, name, frames, image=None, seed=0, fail_after=None, crash_after=None):
        Source.__init__(self)
        self.source_id = name
        self.description = name
        self._frames, self._fail, self._crash = frames, fail_after, crash_after
        if image is None:
            image = np.random.RandomState(seed).randint(0, 256, (120, 160, 3), dtype=np.uint8)
        self._image = image
        self.height, self.width = image.shape[:2]

    def read(self, out=None):
        i = self._next_index
        if self._fail is not None and i >= self._fail:
            raise SourceError("%s stopped giving frames after %d (unplugged)" % (self.source_id, i))
        if self._crash is not None and i >= self._crash:
            os._exit(3)         # a worker dying without a word, as in a native crash
        if self._closed or i >= self._frames:
            return None
        return self._frame(self._image.copy(), None)


class Opener(object):
    """A picklable source factory: ``CountingSource(*args, **kw)`` made in the worker."""

    def __init__(self, *args, **kw):
        self.args, self.kw = args, kw
        self.description = args[0]

    def __call__(self):
        return CountingSource(*self.args, **self.kw)
