"""What every pipeline mode measures, in one record the bench turns into tables and charts.

Durations are milliseconds. Host stages are timed with ``time.perf_counter``; GPU stages with
CUDA events (``trtssd.gpu.cuda.EventTimer``) where the mode has them, and the record says which.
"""
import time

import numpy as np
from dataclasses import dataclass, field

STAGES = ("capture", "preprocess", "upload", "inference", "download", "postprocess", "draw")


def summarize(values):
    """Median and spread of a list of numbers, as the bench reports them."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    p = np.percentile(a, [5, 50, 95, 99])
    return {"n": int(a.size), "mean": float(a.mean()), "p5": float(p[0]), "p50": float(p[1]),
            "p95": float(p[2]), "p99": float(p[3]), "min": float(a.min()), "max": float(a.max())}


@dataclass
class RunStats:
    """One mode's run: throughput, latency, per-stage time and drops."""
    mode: str
    frames: int = 0
    dropped: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    gpu_busy: float = None            # fraction of wall time the GPU had work, or None if unknown
    stage_ms: dict = field(default_factory=lambda: {s: [] for s in STAGES})
    stage_clock: dict = field(default_factory=dict)   # stage -> 'cuda-event' | 'host'
    latency_ms: list = field(default_factory=list)    # capture -> result, per frame
    notes: list = field(default_factory=list)

    def add(self, stage, ms, clock="host"):
        self.stage_ms.setdefault(stage, []).append(float(ms))
        self.stage_clock.setdefault(stage, clock)

    @property
    def fps(self):
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self):
        return {
            "mode": self.mode, "frames": self.frames, "dropped": self.dropped,
            "wall_s": self.wall_s, "fps": self.fps, "cpu_s": self.cpu_s,
            "cpu_util": (self.cpu_s / self.wall_s) if self.wall_s > 0 else None,
            "gpu_busy": self.gpu_busy,
            "latency_ms": summarize(self.latency_ms),
            "stages": {s: dict(summarize(v), clock=self.stage_clock.get(s, "host"))
                       for s, v in self.stage_ms.items() if v},
            "notes": list(self.notes),
        }


class Stopwatch(object):
    """Wall and process CPU time of a run: ``with Stopwatch() as sw: ...; sw.wall_s``."""

    def __enter__(self):
        self._t0 = time.perf_counter()
        self._c0 = time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall_s = time.perf_counter() - self._t0
        self.cpu_s = time.process_time() - self._c0
        return False
