"""The modes that turn frames into detections, all on the one backend contract.

```python
opts = PipelineOptions(mode='pipelined', depth=2)
stats = run(source, backend, sink=None, options=opts)      # -> trtssd.core.stats.RunStats
```

- ``sync``: one thread: capture, CPU preprocessing, (CUDA: pinned copy, upload, enqueue,
  download, synchronise), CPU postprocessing, sink (the seed's trt_ssd.py).
- ``async``: a producer thread owns the device and does capture, preprocessing, inference and
  postprocessing; the caller's thread draws and writes the newest result (trt_ssd_async.py).
- ``gpu``: like sync, with GPU preprocessing from pinned frames and GPU postprocessing.
- ``pipelined``: ``depth`` slots in flight (2 = double buffering), each with its own pinned
  and device buffers, stream, events and execution context; a capture thread, and the
  caller's thread, which enqueues each free slot's batch and hands results to the sink in
  frame order (a slot gets its next batch before its result is delivered).
- ``multi``: several sources, a frame of each batched into one inference per round,
  ``depth`` rounds in flight on the ``pipelined`` schedule.

Back-pressure: a live source drops the oldest waiting frame (async: shows only the newest
result) and counts it in ``RunStats.dropped``; a file never drops. ``run`` returns when the
sources end, ``max_frames``/``duration_s`` is reached or on Ctrl-C (with a note in the stats);
an exception in any thread stops the run and is raised in the caller with its traceback.
Sinks are called from the caller's thread only; a sink that keeps ``frame.image`` after
``write`` must copy it (frame buffers are reused: pooled pinned buffers a source decodes into,
or a source's own read-only ring, e.g. SyntheticSource). A frame's buffer goes back to its pool
or ring only after its slot's completion event (the GPU uploads it in place until then).
"""
import numpy as np
from dataclasses import dataclass

from ..core.errors import InputError

MODES = ("sync", "async", "gpu", "pipelined", "multi")
GPU_ONLY_MODES = ("gpu",)


@dataclass
class PipelineOptions:
    """How to run: the mode, slots in flight (``depth``), frames per inference (``batch``, for
    ``pipelined``), score threshold, detections kept per frame, whether to draw even when the
    sink does not, and when to stop (``max_frames`` in all, ``duration_s``).
    ``source_timeout_ms``: how long ``multi`` waits for a source's frame each round."""
    mode: str = "sync"
    depth: int = 2
    batch: int = 1
    score_threshold: float = 0.3
    max_detections: int = None
    draw: bool = False
    max_frames: int = None
    duration_s: float = None
    source_timeout_ms: float = 50.0

    def __post_init__(self):
        self.validate()

    def validate(self):
        if self.mode not in MODES:
            raise InputError("mode %r: choose one of %s" % (self.mode, ", ".join(MODES)))
        for name in ("depth", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError("%s=%r: must be a whole number >= 1%s" % (
                    name, v, " (depth 2 is double buffering)" if name == "depth" else ""))
        if not 0.0 <= float(self.score_threshold) <= 1.0:
            raise InputError("score_threshold=%r: must be between 0 and 1 (e.g. 0.3)"
                             % (self.score_threshold,))
        if self.max_detections is not None and int(self.max_detections) < 1:
            raise InputError("max_detections=%r: must be >= 1 or None (the model's own)"
                             % (self.max_detections,))
        if self.max_frames is not None and int(self.max_frames) < 0:
            raise InputError("max_frames=%r: must be >= 0 or None" % (self.max_frames,))
        if self.duration_s is not None and float(self.duration_s) <= 0:
            raise InputError("duration_s=%r: must be > 0 or None" % (self.duration_s,))
        if float(self.source_timeout_ms) < 0:
            raise InputError("source_timeout_ms=%r: must be >= 0" % (self.source_timeout_ms,))
        return self


def default_mode(n_sources):
    """The mode a run takes when none is named: ``multi`` for several sources, else ``sync``."""
    return "multi" if n_sources > 1 else "sync"


def batch_for(mode, n_sources, batch=1):
    """Frames per inference of a mode: one per source in ``multi``, ``batch`` in
    ``pipelined``, else 1 (``mode`` None: the default mode for ``n_sources``)."""
    mode = mode or default_mode(n_sources)
    if mode == "multi":
        return max(1, n_sources)
    return batch if mode == "pipelined" else 1


def make_layer(mode, backend, options, labels=None, sources=(), max_batch=None,
               max_frame_shape=None):
    """The device layer a mode runs on for ``backend`` (see trtssd.pipeline.slots);
    ``max_batch``, ``max_frame_shape`` and the frames' pixel format default to what the mode
    and ``sources`` need."""
    from .slots import YUV420_FORMATS, YUV422_FORMATS, GpuLayer, HostPrepLayer
    batch = max_batch or batch_for(mode, len(sources), options.batch)
    args = dict(score_threshold=options.score_threshold, max_detections=options.max_detections,
                labels=labels, max_batch=batch, pixel_format=pixel_format_of(sources))
    use_gpu = mode == "gpu" or (mode in ("pipelined", "multi") and backend.device == "cuda")
    if not use_gpu:
        return HostPrepLayer(backend, **args)
    if max_frame_shape is None:
        h = max([int(getattr(s, "height", 0) or 0) for s in sources] + [0])
        w = max([int(getattr(s, "width", 0) or 0) for s in sources] + [0])
        h, w = (h, w) if h > 0 and w > 0 else (1080, 1920)
        # the preprocessor's largest frame: (H, W, 3) for BGR, (H, W) pixels for YUV
        yuv = args["pixel_format"] in YUV420_FORMATS + YUV422_FORMATS
        max_frame_shape = (h, w) if yuv else (h, w, 3)
    return GpuLayer(backend, max_frame_shape=max_frame_shape, **args)


def pixel_format_of(sources):
    """The pixel format the frames of ``sources`` come in (a source's ``pixel_format``,
    "BGR" when it has none); sources batched together must agree."""
    fmts = sorted(set(str(getattr(s, "pixel_format", None) or "BGR").upper() for s in sources))
    if len(fmts) > 1:
        raise InputError("the sources deliver frames in different pixel formats (%s); run "
                         "them in one format (e.g. the same --decode for every source)"
                         % ", ".join(fmts))
    return fmts[0] if fmts else "BGR"


def run(sources, backend, sink=None, options=None, labels=None, device=None):
    """Run ``sources`` (one source, or a list for ``multi``) through ``backend`` into ``sink``
    (None: nowhere) and return the RunStats. ``labels`` (a LabelMap or list) names classes in
    the detections. ``device``: a device layer to use instead of the one made for
    ``backend`` (tests pass a fake; the caller keeps ownership of it)."""
    from ..io.sinks import NullSink
    from ..core.stats import RunStats, Stopwatch
    from . import async_
    from . import multi
    from . import pipelined
    from . import sync
    from .base import RunClock
    options = (options or PipelineOptions()).validate()
    srcs = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    if not srcs:
        raise InputError("no source given; pass a source (trtssd.io.sources.open_source)")
    if options.mode != "multi" and len(srcs) != 1:
        raise InputError("mode %r takes one source, %d were given; use mode 'multi' for "
                         "several" % (options.mode, len(srcs)))
    if backend is None and device is None:
        raise InputError("no backend given; create one with trtssd.backends.create_backend")
    sink = sink if sink is not None else NullSink()
    stats = RunStats(mode=options.mode if options.mode != "pipelined"
                     else "pipelined-d%d" % options.depth)
    layer = device if device is not None else make_layer(options.mode, backend, options,
                                                         labels, srcs)
    fn = {"sync": sync.run, "gpu": sync.run, "async": async_.run,
          "pipelined": pipelined.run, "multi": multi.run}[options.mode]
    if getattr(layer, "draw_on_device", None) is not None:
        from .base import draw_style
        layer.draw_on_device(draw_style(sink, options))
    stats.notes.extend(getattr(layer, "notes", ()) or ())
    for note in sorted(set(getattr(s, "decode_note", None) for s in srcs) - set([None])):
        stats.notes.append(note)
    clock = RunClock()
    try:
        with Stopwatch() as sw:
            try:
                fn(srcs, layer, sink, options, stats, clock=clock)
            except KeyboardInterrupt:
                stats.notes.append("interrupted (Ctrl-C): results up to then")
        spans = clock.spans()
        stats.wall_s, stats.cpu_s = spans if spans is not None else (sw.wall_s, sw.cpu_s)
        if spans is not None:
            stats.notes.append("wall and CPU time count from the end of the run's setup "
                               "(slots, buffers, execution contexts) to its last result")
    finally:
        if device is None:
            layer.close()
    stats.dropped += sum(int(getattr(s, "skipped", 0) or 0) for s in srcs)
    return stats
