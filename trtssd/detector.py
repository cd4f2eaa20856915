"""``trtssd.Detector``: one object from a model file to detections, for Python users.

```python
import trtssd

with trtssd.Detector("detect.tflite") as det:
    dets = det(frame)                       # numpy BGR (H, W, 3) or a device array -> Detections
    print(dets.labels, dets.boxes)          # boxes in the frame's pixels, label names attached
    many = det.batch([f1, f2, f3])          # a list of Detections, one per frame
    stats = det.run("video.mp4", "detections.jsonl")   # a whole source through a mode -> RunStats
```

The defaults are the command's (``trtssd detect``): backend ``auto`` (TensorRT if importable,
else PyTorch on CUDA, else ONNX Runtime on the CPU), fp32, score threshold 0.3, mode ``sync``
for one source and ``multi`` for several. The backend (and so the model) is loaded once, when
the Detector is made; GPU buffers for ``det(frame)`` are made on the first call and reused.
``close()`` (or leaving the ``with`` block) releases everything.
"""
from .core.closeable import Closeable
from .core.errors import InputError


class Detector(Closeable):
    """A model on a backend, with the labels that name its classes.

    ``model``: a .tflite, an .onnx, a TensorRT engine, ``"synthetic"`` (random weights, timing
    only) or None (``$TRTSSD_MODEL``, else the checkout's ``../shared/models/detect.tflite``).
    ``labels``: a label file (default: ``$TRTSSD_LABELS`` or the one beside the model).
    ``backend``: auto, tensorrt, torch or onnxruntime; ``device``: None (the backend's
    choice), ``"cuda"`` or ``"cpu"``; ``precision``: fp32, fp16 or int8.
    ``mode``, ``depth``, ``batch``: how ``run`` runs (see trtssd.pipeline); ``threshold`` and
    ``max_detections``: what is kept; ``classes``: keep only these classes (names from the
    label file, or class ids; None keeps all). ``max_batch``: the most frames one ``batch()``
    call sends through the network at once (larger lists are split).
    ``devices``: GPU indexes or ``"all"``: ``run`` shards sources over them, one process each
    (trtssd.scale.gpus.MultiGpuDetector).
    """

    def __new__(cls, *args, **kwargs):
        if cls is Detector and kwargs.get("devices") is not None:
            from .scale.gpus import MultiGpuDetector as cls
        return object.__new__(cls)

    def __init__(self, model=None, labels=None, backend="auto", device=None, precision="fp32",
                 mode=None, depth=2, batch=1, threshold=0.3, max_detections=None, max_batch=8,
                 max_frame_shape=(1080, 1920, 3), classes=None, devices=None):
        from .backends import create_backend
        from .core.detections import LabelMap
        from .models import resolve
        from .pipeline import PipelineOptions
        # validated now, so a bad setting fails before a model is loaded
        self.options = PipelineOptions(mode=mode or "sync", depth=depth, batch=batch,
                                       score_threshold=threshold,
                                       max_detections=max_detections)
        self.mode = mode
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise InputError("max_batch=%r: must be a whole number >= 1" % (max_batch,))
        self.max_batch = max_batch
        self.max_frame_shape = tuple(max_frame_shape)
        self.model = resolve.resolve_model(model)
        self.backend = create_backend(backend, model=self.model, device=device,
                                      precision=precision,
                                      max_batch=max(max_batch, self._run_batch(1)))
        try:
            path = resolve.resolve_labels(labels, self.model)
            self.labels = (LabelMap.from_file(path, self.backend.spec.num_classes)
                           if path else None)
            self.class_ids = _class_ids(classes, self.labels)
        except BaseException:
            self.backend.close()
            raise
        self._layer = self._slot = None
        self._frames = 0

    # -- one frame, or a list of them, now -----------------------------------------------

    def __call__(self, frame):
        """Detections of one frame (numpy uint8 (H, W, 3) BGR, or a device array with
        ``__cuda_array_interface__`` when the backend runs on CUDA)."""
        return self.batch([frame])[0]

    def batch(self, frames):
        """A list of Detections, one per frame, in order; at most ``max_batch`` frames go
        through the network at once."""
        frames = list(frames)
        out = []
        for start in range(0, len(frames), self.max_batch):
            out.extend(self._detect(frames[start:start + self.max_batch]))
        return out

    def _detect(self, images):
        from .io.sources import Frame
        from .pipeline.base import detect_many
        self._check_open()
        layer = self._device_layer(images)
        wrapped = []
        for im in images:
            wrapped.append(Frame(self._frames, im, "detector"))
            self._frames += 1
        with layer.activate():
            if self._slot is None:
                self._slot = layer.make_slot()
            dets, _ = detect_many(self._slot, wrapped)
        if self.class_ids is not None:
            import numpy as np
            keep = np.asarray(sorted(self.class_ids))
            dets = [d[np.isin(np.asarray(d.class_ids), keep)] for d in dets]
        return dets

    def _device_layer(self, images):
        """The layer (and slot) ``batch`` uses: GPU pre- and postprocessing on a CUDA backend,
        else CPU preprocessing; remade larger if a frame exceeds the size it was made for."""
        from .pipeline import make_layer
        shape = self.max_frame_shape
        for im in images:
            s = getattr(im, "shape", None)
            if s is None or len(s) < 2:
                raise InputError("frame of type %s has no (height, width[, channels]) shape; "
                                 "pass a numpy array or a device array"
                                 % type(im).__name__)
            if s[0] > shape[0] or s[1] > shape[1]:
                shape = (max(shape[0], int(s[0])), max(shape[1], int(s[1])), shape[2])
        if self._layer is not None and shape != self.max_frame_shape:
            self._release_layer()
        self.max_frame_shape = shape
        if self._layer is None:
            mode = "gpu" if self.backend.device == "cuda" else "sync"
            self._layer = make_layer(mode, self.backend, self.options, self.labels,
                                     max_batch=self.max_batch, max_frame_shape=shape)
        return self._layer

    # -- a whole source ------------------------------------------------------------------

    def _run_batch(self, n_sources):
        from .pipeline import batch_for
        return batch_for(self.options.mode if self.mode else None, n_sources,
                         self.options.batch)

    def run(self, sources, sinks=None, max_frames=None, duration_s=None, draw=False,
            source_timeout_ms=50.0):
        """Run ``sources`` (one source or a list: text as ``trtssd detect`` takes it, or Source
        objects) into ``sinks`` (None, an output name such as ``"dets.jsonl"``, a Sink, or a
        list of them) in this Detector's mode; returns the RunStats. What this call opens it
        also closes; Source and Sink objects passed in stay the caller's."""
        from .io.sinks import open_sink
        from .io.sources import open_source
        from .pipeline import PipelineOptions, default_mode
        from .pipeline import run as run_pipeline
        from .pipeline.base import close_each
        self._check_open()
        texts = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        mode = self.mode or default_mode(len(texts))
        o = self.options
        options = PipelineOptions(mode=mode, depth=o.depth, batch=o.batch,
                                  score_threshold=o.score_threshold,
                                  max_detections=o.max_detections, draw=draw,
                                  max_frames=max_frames, duration_s=duration_s,
                                  source_timeout_ms=source_timeout_ms)
        opened, srcs, sink = [], [], None
        try:
            for s in texts:
                src = open_source(s)
                if src is not s:
                    opened.append(src)
                srcs.append(src)
            fps = getattr(srcs[0], "fps", None) or 30.0
            outs = sinks if isinstance(sinks, (list, tuple)) else ([sinks] if sinks else [])
            sink = open_sink(list(outs) if len(outs) > 1 else (outs[0] if outs else None),
                             labels=self.labels, fps=fps)
            if not any(sink is s for s in outs):
                opened.append(sink)
            if self.class_ids is not None:
                from .io.sinks import SelectSink
                sink = SelectSink(sink, self.class_ids)
            self._release_layer()     # the run makes its own slots
            return run_pipeline(srcs, self.backend, sink=sink,
                                options=options, labels=self.labels)
        finally:
            err = close_each(opened)
            if err is not None:
                raise err

    # -- ownership -----------------------------------------------------------------------

    def _check_open(self):
        if self.backend is None:
            raise InputError("this Detector was closed; make a new one")

    def _release_layer(self):
        layer, slot, self._layer, self._slot = self._layer, self._slot, None, None
        if layer is None:
            return
        try:
            if slot is not None:
                with layer.activate():
                    slot.close()
        finally:
            layer.close()

    def close(self):
        """Free the GPU buffers, the backend and its model; safe to call twice."""
        try:
            self._release_layer()
        finally:
            backend, self.backend = self.backend, None
            if backend is not None:
                backend.close()


    def __repr__(self):
        return "Detector(%r, backend=%s)" % (
            self.model, getattr(self.backend, "name", "closed"))


def _class_ids(classes, labels):
    """The class ids ``classes`` names (a comma-separated text or a list of names / ids,
    names through ``labels``), or None for all."""
    if classes is None:
        return None
    parts = ([p.strip() for p in classes.split(",")] if isinstance(classes, str)
             else [str(c).strip() for c in classes])
    parts = [p for p in parts if p]
    names = {}
    for i, n in enumerate(labels.names if labels is not None else []):
        names.setdefault(n.lower(), i)
    keep = set()
    for p in parts:
        if p.isdigit():
            keep.add(int(p))
        elif p.lower() in names:
            keep.add(names[p.lower()])
        else:
            raise InputError("classes=%s: %r is not a class of this model; use names from the "
                             "label file (e.g. person, car) or class ids"
                             % (",".join(parts), p))
    if not keep:
        raise InputError("classes=%r: name at least one class (e.g. person,car)" % (classes,))
    return keep
