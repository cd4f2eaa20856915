"""Several GPUs on one host: sources sharded over the GPUs, one worker process per GPU.

```python
stats = run_on_gpus(["cam0.mp4", "cam1.mp4", "cam2.mp4"], "dets.jsonl", devices=[0, 1],
                    model="detect.tflite")          # or Detector(devices=[0, 1]).run(...)
```

Source ``i`` goes to GPU ``devices[i % len(devices)]``. Each GPU gets a process of its own,
started with ``spawn`` (nothing of the parent's state, CUDA least of all, is inherited), with
``CUDA_VISIBLE_DEVICES`` set to that one GPU before anything CUDA is imported, so its CUDA
context, backend and buffers are its own. It makes a ``trtssd.Detector`` and runs its sources
in its mode (``sync`` for one source, ``multi`` batching several). Results cross back as plain
data (source id, frame index, box/score/class arrays, label names; the picture only when a
sink in the parent draws) and the parent writes them into the sinks from its own thread, each
source's frames in frame order (they come from one process, which delivers them in order; the
parent checks). A worker that fails reports its GPU, its sources and the error; the parent then
asks the others to stop (they finish the frame in hand and close cleanly; one that does not
within ``grace_s`` is terminated, and the report says so) and raises the error.

The run's clock starts when every worker has loaded its model (and run ``warmup_frames``), so
the throughput is that of the GPUs, not of process start-up and model loading.
"""
import os
import sys
import time
import traceback

from ..detector import Detector
from ..io.sinks import Sink
from ..core.errors import (EngineError, EnvironmentProblem, InputError, ModelError,
                           TrtssdError)

# what a worker's Detector is made with (the names of trtssd.Detector's arguments)
DETECTOR_ARGS = ("model", "labels", "backend", "device", "precision", "mode", "depth", "batch",
                 "threshold", "max_detections")
_ERRORS = {c.__name__: c for c in (InputError, ModelError, EngineError, EnvironmentProblem)}
_BATCH = 16          # frames per message from a worker
_FLUSH_S = 0.005     # a batch goes out when its first frame is this old (at the next frame)


class GpuWorkerError(TrtssdError):
    """A GPU's worker process failed; ``gpu``, ``sources`` and ``details`` (its traceback)."""

    def __init__(self, message, gpu=None, sources=(), details=None):
        TrtssdError.__init__(self, message)
        self.gpu, self.sources, self.details = gpu, list(sources), details


def _worker_failure(kind, message, gpu, sources, details):
    """The error the parent raises: the worker's own class where it is one of trtssd's (so the
    command keeps its exit code), with the GPU and sources in front of the message."""
    cls = _ERRORS.get(kind)
    if cls is None and kind:
        message = "%s: %s" % (kind, message)
    text = "GPU %s (%s): %s" % (gpu, ", ".join(repr(s) for s in sources) or "no source",
                               message)
    if cls is None:
        return GpuWorkerError(text, gpu, sources, details)
    err = cls(text)
    err.gpu, err.sources, err.details = gpu, list(sources), details
    return err


# ---------------------------------------------------------------------------------------------
# which GPUs
# ---------------------------------------------------------------------------------------------

def _nvml_count():
    """GPUs the NVIDIA driver sees, through NVML (no CUDA context is made), or None."""
    try:
        import ctypes
        lib = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    try:
        if lib.nvmlInit_v2() != 0:
            return None
        n = ctypes.c_uint(0)
        rc = lib.nvmlDeviceGetCount_v2(ctypes.byref(n))
        lib.nvmlShutdown()
        return int(n.value) if rc == 0 else None
    except AttributeError:
        return None


def visible_gpus():
    """(list of GPU indexes this process may use, why none when empty). Honours
    ``CUDA_VISIBLE_DEVICES`` (indexes into it are what ``--gpus`` names)."""
    count = _nvml_count()
    if count is None:
        try:
            import pycuda.driver as drv
            drv.init()                    # cuInit only: no context
            count = drv.Device.count()
        except ImportError:
            return [], "neither NVML (the NVIDIA driver) nor pycuda is here"
        except Exception as e:
            return [], "no usable CUDA driver (%s)" % e
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        listed = [t.strip() for t in env.split(",") if t.strip()]
        if not listed or listed[0].startswith("-"):
            return [], "CUDA_VISIBLE_DEVICES=%r hides every GPU" % env
        count = min(count, len(listed))
    if count < 1:
        return [], "the NVIDIA driver sees no GPU"
    return list(range(count)), None


def parse_devices(devices, flag="--gpus", cpu=False):
    """``"all"``, ``"0,1"``, an int or a list of ints -> a list of distinct GPU indexes.

    ``cpu``: the workers run on the CPU (tests, and machines without a GPU): the indexes are
    then labels of worker processes, not checked against a driver, and ``all`` means two."""
    if isinstance(devices, str):
        text = devices.strip().lower()
        if text == "all":
            if cpu:
                return [0, 1]
            found, why = visible_gpus()
            if not found:
                raise EnvironmentProblem("%s all: there is no GPU to run on here (%s); on the "
                                         "CPU run without %s" % (flag, why, flag))
            return found
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            devices = [int(t) for t in items]
        except ValueError:
            raise InputError("%s %s: give 'all' or GPU indexes separated by commas, e.g. "
                             "%s 0,1" % (flag, devices, flag))
    elif isinstance(devices, int) and not isinstance(devices, bool):
        devices = [devices]
    out = []
    for d in devices or []:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise InputError("%s: %r is not a GPU index (0, 1, ...); e.g. %s 0,1"
                             % (flag, d, flag))
        if d not in out:
            out.append(int(d))
    if not out:
        raise InputError("%s is empty; give 'all' or GPU indexes, e.g. %s 0,1" % (flag, flag))
    if not cpu:
        found, why = visible_gpus()
        if not found:
            raise EnvironmentProblem("%s %s: there is no GPU here (%s); on the CPU run without "
                                     "%s" % (flag, ",".join(map(str, out)), why, flag))
        missing = [d for d in out if d not in found]
        if missing:
            raise InputError("%s %s: there is no GPU %s here (%d visible); use %s all, or "
                             "indexes from 0 to %d" % (flag, ",".join(map(str, out)),
                                                       ",".join(map(str, missing)), len(found),
                                                       flag, len(found) - 1))
    return out


def shard(sources, devices):
    """[(gpu, [(position, source), ...]), ...]: source ``i`` on ``devices[i % n]``; GPUs left
    without a source are left out."""
    plan = [(d, []) for d in devices]
    for i, s in enumerate(sources):
        plan[i % len(devices)][1].append((i, s))
    return [(d, items) for d, items in plan if items]


def _describe(source):
    if isinstance(source, (tuple, list)) and len(source) == 2 and isinstance(source[1], dict):
        source = source[0]
    if isinstance(source, (str, int)):
        return str(source)
    return getattr(source, "description", None) or repr(source)


# ---------------------------------------------------------------------------------------------
# the worker process
# ---------------------------------------------------------------------------------------------

class _Stopped(KeyboardInterrupt):
    """Raised in a worker's sink when the parent asks it to stop: the pipeline takes a
    KeyboardInterrupt as a clean stop and returns the results up to then."""


def _open(source):
    """A worker's source: text (``open_source``), (text, keywords), or a picklable callable
    returning a Source (opened in the worker)."""
    from ..io.sources import open_source
    if isinstance(source, (tuple, list)) and len(source) == 2 and isinstance(source[1], dict):
        return open_source(source[0], **source[1])
    if callable(source):
        return source()
    return open_source(source)


class _PipeSink(Sink):
    """A worker's sink: frames' detections, as plain data, in batches to the parent."""

    def __init__(self, conn, gpu, stop, send_images):
        self.conn, self.gpu, self.stop, self.send_images = conn, gpu, stop, send_images
        self._batch, self._t_first = [], None

    def write(self, frame, dets):
        import numpy as np
        if self.stop.is_set():
            raise _Stopped("stopped by the parent")
        image = None
        if self.send_images:
            image = np.array(frame.annotated if frame.annotated is not None else frame.image)
        self._batch.append((frame.source_id, int(frame.index), np.asarray(dets.boxes),
                            np.asarray(dets.scores), np.asarray(dets.class_ids),
                            None if dets.labels is None else list(dets.labels), image))
        now = time.perf_counter()
        if self._t_first is None:
            self._t_first = now
        if len(self._batch) >= _BATCH or now - self._t_first >= _FLUSH_S or image is not None:
            self.flush()

    def flush(self):
        if self._batch:
            _put(self.conn, ("frames", self.gpu, self._batch))
        self._batch, self._t_first = [], None

    def close(self):
        self.flush()


def _put(conn, msg):
    """Send ``msg`` to the parent on this worker's own pipe (one writer, no shared lock a dying
    process could keep); blocks while the pipe is full (back-pressure). False once the parent
    has gone."""
    try:
        conn.send(msg)
        return True
    except (OSError, EOFError, ValueError):
        return False


def _worker(gpu, items, detector_kwargs, run_kwargs, conn, stop, go, send_images,
            warmup_frames):
    """One GPU's process (spawned): its own CUDA context on GPU ``gpu`` alone."""
    if detector_kwargs.get("device") != "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)     # before anything CUDA is imported
    names = [_describe(s) for _, s in items]
    current = list(names)
    det, sources, stats = None, [], None
    try:
        from ..detector import Detector
        from ..pipeline.base import close_each
        det = Detector(**detector_kwargs)
        if warmup_frames:
            warm = [_open(s) for _, s in items]
            try:
                det.run(warm, None, max_frames=warmup_frames * len(warm))
            finally:
                close_each(warm)
        for i, (_, s) in enumerate(items):
            current = [names[i]]       # an open failure names that one source
            sources.append(_open(s))
            names[i] = str(getattr(sources[-1], "source_id", None) or names[i])
        current = list(names)
        _put(conn, ("ready", gpu, names))
        while not go.wait(0.2):
            if stop.is_set():
                raise _Stopped("stopped before the start")
        sink = _PipeSink(conn, gpu, stop, send_images)
        try:
            stats = det.run(sources, sink, **run_kwargs)
        finally:
            sink.close()
        _put(conn, ("done", gpu, stats))
    except _Stopped:
        from ..core.stats import RunStats
        stats = stats or RunStats(mode="stopped")
        _put(conn, ("done", gpu, stats))
    except BaseException as e:
        kind = type(e).__name__
        _put(conn, ("error", gpu, (kind, str(e) or kind, current, traceback.format_exc())))
    finally:
        for s in sources:
            try:
                s.close()
            except Exception:
                pass
        if det is not None:
            try:
                det.close()
            except Exception:
                pass
        conn.close()


# ---------------------------------------------------------------------------------------------
# the parent
# ---------------------------------------------------------------------------------------------

def _sink_frame(source_id, index, image):
    from ..io.sources import Frame
    return Frame(index, image, source_id)


def _merge(per_gpu, wall_s, notes):
    """One RunStats from the workers' (frames, drops, latency, stages summed; the wall time is
    the parent's, from the common start to the last result)."""
    from ..core.stats import RunStats
    merged = RunStats(mode="gpus-x%d" % len(per_gpu))
    merged.wall_s = wall_s
    merged.notes.extend(notes)
    seen = set(merged.notes)
    for gpu in sorted(per_gpu):
        st, n_src = per_gpu[gpu]
        if st is None:
            continue
        merged.frames += st.frames
        merged.dropped += st.dropped
        merged.cpu_s += st.cpu_s
        merged.latency_ms.extend(st.latency_ms)
        for stage, values in st.stage_ms.items():
            merged.stage_ms.setdefault(stage, []).extend(values)
        merged.stage_clock.update(st.stage_clock)
        merged.notes.append("GPU %d: %d source%s in %s, %d frames, %.1f FPS on its own clock"
                            % (gpu, n_src, "" if n_src == 1 else "s", st.mode, st.frames,
                               st.fps))
        for n in st.notes:
            if n not in seen:
                seen.add(n)
                merged.notes.append(n)
    merged.notes.append("wall time counts from the moment every GPU had its model loaded to "
                        "the last result; CPU time is the workers' sum")
    return merged


def _wind_down(procs, conns, grace_s, terminated):
    """Wait up to ``grace_s`` for the workers to exit (reading their last messages so none
    blocks on a full pipe), then terminate what is left, noting it in ``terminated``."""
    from multiprocessing.connection import wait
    t_end = time.monotonic() + grace_s
    while any(p.is_alive() for p in procs.values()) and time.monotonic() < t_end:
        for r in wait([c for c in conns.values() if not c.closed], timeout=0.05):
            try:
                r.recv()
            except (EOFError, OSError):
                r.close()
        for p in procs.values():
            p.join(0.01)
    for gpu, p in procs.items():
        if p.is_alive():
            p.terminate()
            p.join(5.0)
            if gpu not in terminated:
                terminated.append(gpu)
    for c in conns.values():
        c.close()


def run_on_gpus(sources, sinks=None, devices="all", labels=None, max_frames=None,
                duration_s=None, draw=False, warmup_frames=0, grace_s=10.0, log=None,
                **detector_kwargs):
    """Run ``sources`` sharded over ``devices`` (see the module docstring) into ``sinks``
    (an output name, a Sink, or a list; opened and written in this process) and return the
    merged RunStats. ``detector_kwargs`` are trtssd.Detector's (model, backend, device,
    precision, mode, threshold, ...); ``labels`` is also the label file the sinks name classes
    with. A source is text as ``trtssd detect`` takes it, (text, open_source keywords), or a
    picklable callable that opens one in the worker. ``max_frames``/``duration_s`` bound each
    GPU's run (``max_frames``: frames in all, shared out by sources). ``log``: a function
    taking one line (default: stderr)."""
    import multiprocessing
    from multiprocessing.connection import wait
    from ..core.detections import Detections, LabelMap
    from ..io.sinks import open_sink
    from ..models import resolve
    log = log or (lambda line: sys.stderr.write("trtssd: %s\n" % line))
    bad = set(detector_kwargs) - set(DETECTOR_ARGS)
    if bad:
        raise InputError("run_on_gpus: unknown argument %s; the workers' Detector takes %s"
                         % (", ".join(sorted(bad)), ", ".join(DETECTOR_ARGS)))
    srcs = list(sources) if isinstance(sources, (list, tuple)) and not (
        len(sources) == 2 and isinstance(sources[1], dict)) else [sources]
    if not srcs:
        raise InputError("no source given; pass one or more sources")
    cpu = detector_kwargs.get("device") == "cpu"
    gpus = parse_devices(devices, cpu=cpu)
    notes = []
    if not cpu and len(gpus) == 1:
        notes.append("one GPU (%d) runs every source%s" % (
            gpus[0], "" if devices not in ("all", "ALL") else ": it is the only one here"))
        log(notes[-1])
    if cpu:
        notes.append("workers on the CPU: GPU indexes %s label processes only"
                     % ",".join(map(str, gpus)))
    plan = shard(srcs, gpus)
    if len(plan) < len(gpus):
        notes.append("%d sources for %d GPUs: GPU %s left idle" % (
            len(srcs), len(gpus), ",".join(str(d) for d in gpus[len(plan):])))
        log(notes[-1])
    detector_kwargs = dict(detector_kwargs)
    detector_kwargs["model"] = resolve.resolve_model(detector_kwargs.get("model"))
    label_path = resolve.resolve_labels(labels if labels is not None
                                        else detector_kwargs.get("labels"),
                                        detector_kwargs["model"])
    detector_kwargs["labels"] = label_path
    label_map = LabelMap.from_file(label_path) if label_path else None

    opened = []
    outs = sinks if isinstance(sinks, (list, tuple)) else ([sinks] if sinks else [])
    sink = open_sink(list(outs) if len(outs) > 1 else (outs[0] if outs else None),
                     labels=label_map)
    if not any(sink is s for s in outs):
        opened.append(sink)
    send_images = bool(getattr(sink, "draws", False) or draw)

    ctx = multiprocessing.get_context("spawn")
    conns = {}
    stop, go = ctx.Event(), ctx.Event()
    procs = {}
    per_gpu = {}
    error, interrupted, terminated = None, False, []
    last = {}
    try:
        for gpu, items in plan:
            run_kwargs = {"draw": bool(draw), "duration_s": duration_s}
            if max_frames is not None:
                run_kwargs["max_frames"] = -(-int(max_frames) * len(items) // len(srcs))
            reader, writer = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_worker, name="trtssd-gpu%d" % gpu,
                            args=(gpu, items, detector_kwargs, run_kwargs, writer, stop, go,
                                  send_images, int(warmup_frames or 0)))
            p.daemon = True
            conns[gpu] = reader
            p.start()
            writer.close()            # the worker's end: EOF here once the worker is gone
            procs[gpu] = p
            per_gpu[gpu] = (None, len(items))
        sources_of = {gpu: [_describe(s) for _, s in items] for gpu, items in plan}
        waiting_ready = set(procs)
        running = set(procs)
        t0 = t_last = None
        t_stop = None
        while running:
            try:
                readable = wait([conns[g] for g in running if not conns[g].closed],
                                timeout=0.2)
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
                t_stop = t_stop or time.monotonic()
                continue
            msgs = []
            for r in readable:
                try:
                    msgs.append(r.recv())
                except (EOFError, OSError):
                    r.close()          # the worker is gone: its exit code tells the rest
            if not msgs:
                for gpu in list(running):
                    code = procs[gpu].exitcode
                    if code is None and conns[gpu].closed:
                        procs[gpu].join(1.0)
                        code = procs[gpu].exitcode
                    if code is not None:
                        running.discard(gpu)
                        waiting_ready.discard(gpu)
                        if error is None and not stop.is_set():
                            error = _worker_failure(
                                None, "its worker process ended with exit code %s without a "
                                "report (killed, or crashed in native code)" % code, gpu,
                                sources_of[gpu], None)
                            log("GPU %d failed; stopping the other GPUs" % gpu)
                            stop.set()
                            t_stop = time.monotonic()
                if t_stop is not None and time.monotonic() - t_stop > grace_s:
                    for gpu in list(running):
                        procs[gpu].terminate()
                        terminated.append(gpu)
                        running.discard(gpu)
                continue
            for msg in msgs:
                kind, gpu, body = msg
                if kind == "ready":
                    sources_of[gpu] = body
                    waiting_ready.discard(gpu)
                    if not waiting_ready and not stop.is_set():
                        t0 = time.perf_counter()
                        go.set()
                elif kind == "frames":
                    for source_id, index, boxes, scores, class_ids, names, image in body:
                        key = (gpu, source_id)
                        if key in last and index <= last[key]:
                            raise RuntimeError("GPU %d gave frame %d of %r after frame %d: results "
                                               "out of order" % (gpu, index, source_id, last[key]))
                        last[key] = index
                        sink.write(_sink_frame(source_id, index, image),
                                   Detections(boxes, scores, class_ids, names))
                    t_last = time.perf_counter()
                elif kind == "done":
                    per_gpu[gpu] = (body, per_gpu[gpu][1])
                    running.discard(gpu)
                    waiting_ready.discard(gpu)
                    if not waiting_ready and not go.is_set() and not stop.is_set():
                        t0 = time.perf_counter()
                        go.set()
                elif kind == "error":
                    running.discard(gpu)
                    waiting_ready.discard(gpu)
                    exc_kind, message, names, details = body
                    if exc_kind == "KeyboardInterrupt":       # Ctrl-C reaches every process
                        interrupted = True
                        stop.set()
                        t_stop = t_stop or time.monotonic()
                    elif error is None:
                        error = _worker_failure(exc_kind, message, gpu, names, details)
                        log("GPU %d failed; stopping the other GPUs" % gpu)
                        stop.set()
                        t_stop = time.monotonic()
        wall = (t_last - t0) if (t0 is not None and t_last is not None) else 0.0
    finally:
        stop.set()
        _wind_down(procs, conns, grace_s, terminated)
        err = None
        for s in opened:
            try:
                s.close()
            except Exception as e:
                err = err or e
    if terminated:
        notes.append("GPU %s did not stop within %.0f s and was terminated"
                     % (",".join(map(str, sorted(terminated))), grace_s))
    if error is not None:
        if terminated:
            error.args = (error.args[0] + "; " + notes[-1],)
        raise error
    if err is not None:
        raise err
    stats = _merge(per_gpu, wall, notes)
    if interrupted:
        stats.notes.append("interrupted (Ctrl-C): results up to then")
    return stats


# ---------------------------------------------------------------------------------------------
# trtssd.Detector(devices=...)
# ---------------------------------------------------------------------------------------------

class MultiGpuDetector(Detector):
    """What ``trtssd.Detector(..., devices=[0, 1] or "all")`` makes: ``run(sources, sinks)``
    shards the sources over those GPUs (see :func:`run_on_gpus`); nothing is loaded in this
    process. Frames one at a time (``det(frame)``, ``det.batch``) belong to a Detector made
    without ``devices``."""

    def __init__(self, model=None, labels=None, backend="auto", device=None, precision="fp32",
                 mode=None, depth=2, batch=1, threshold=0.3, max_detections=None, max_batch=8,
                 max_frame_shape=(1080, 1920, 3), devices="all"):
        from ..pipeline import PipelineOptions
        PipelineOptions(mode=mode or "sync", depth=depth, batch=batch, score_threshold=threshold,
                        max_detections=max_detections)          # fails now, not in a worker
        self.devices = parse_devices(devices, flag="devices", cpu=device == "cpu")
        self.labels = labels
        self.kwargs = dict(model=model, labels=labels, backend=backend, device=device,
                           precision=precision, mode=mode, depth=depth, batch=batch,
                           threshold=threshold, max_detections=max_detections)
        self.closed = False

    def __call__(self, frame):
        raise InputError("a Detector with devices= runs whole sources over several GPUs "
                         "(det.run(sources, sinks)); for single frames make one without "
                         "devices=")

    batch = __call__

    def run(self, sources, sinks=None, max_frames=None, duration_s=None, draw=False,
            warmup_frames=0):
        """Like Detector.run, with the sources sharded over this Detector's GPUs."""
        if self.closed:
            raise InputError("this Detector was closed; make a new one")
        return run_on_gpus(sources, sinks, devices=self.devices, max_frames=max_frames,
                           duration_s=duration_s, draw=draw, warmup_frames=warmup_frames,
                           **self.kwargs)

    def close(self):
        self.closed = True

    def __repr__(self):
        return "Detector(%r, devices=%s)" % (self.kwargs["model"], self.devices)


# ---------------------------------------------------------------------------------------------
# trtssd bench --gpus COUNTS
# ---------------------------------------------------------------------------------------------

def add_bench_arguments(parser):
    """``--gpus COUNTS`` for ``trtssd bench``."""
    parser.add_argument("--gpus", default=None, metavar="COUNTS",
                        help="also run the multi mode's sources sharded over 1, 2, ... GPUs, "
                             "one process each: GPU counts, comma-separated, or 'all' (1 up "
                             "to every GPU here); a row per count")


def parse_counts(text, available):
    """``"1,2"`` or ``"all"`` -> GPU counts (``available``: how many GPUs there are)."""
    t = str(text).strip().lower()
    if t == "all":
        return list(range(1, max(1, available) + 1))
    try:
        counts = sorted(set(int(v) for v in t.split(",") if v.strip()))
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise InputError("--gpus %s: give GPU counts (1 or more), comma-separated, e.g. "
                         "--gpus 1,2, or 'all'" % text)
    return counts


def bench_rows(plan, model_path, progress):
    """One bench entry (trtssd.commands.report) per GPU count of ``plan.args.gpus``: the
    ``--sources-count`` sources of the multi mode sharded over the first N GPUs, each GPU a
    process of its own, after a warm-up in each; ``--frames`` (or ``--seconds``) in all."""
    import functools
    from ..commands import report
    from ..io.sources import SyntheticSource, open_source
    cpu = plan.device == "cpu"
    found, why = ([0, 1], None) if cpu else visible_gpus()
    counts = parse_counts(plan.args.gpus, len(found))
    n = plan.args.sources_count
    w, h = plan.resolution
    fps = plan.synthetic_size[2] if plan.synthetic_size else None
    if plan.synthetic_size is not None:
        sources = [functools.partial(SyntheticSource, width=w, height=h, frames=None,
                                     live=bool(fps), fps=fps, seed=i,
                                     source_id="synthetic-%d:%dx%d" % (i, w, h))
                   for i in range(n)]
    else:
        sources = [functools.partial(open_source, plan.source) for _ in range(n)]
    rows = []
    for k in counts:
        name = "gpus-x%d" % k
        per_gpu = -(-n // k)
        if k > len(found) and not cpu:
            rows.append(report.skipped_mode(name, "multi", "needs %d GPUs; %s" % (
                k, "%d here" % len(found) if found else why), plan.args.multi_depth,
                per_gpu, n))
            progress.log("%s: skipped: %s" % (name, rows[-1]["reason"]))
            continue
        progress.log("%s: %d sources over GPU %s, one process each..."
                     % (name, n, ",".join(map(str, found[:k]))))
        try:
            stats = run_on_gpus(sources, None, devices=found[:k], max_frames=plan.frames,
                                duration_s=plan.seconds if plan.frames is None else None,
                                warmup_frames=plan.warmup, log=progress.log, model=model_path,
                                backend=plan.backend, device=plan.device,
                                precision=plan.args.precision, depth=plan.args.multi_depth,
                                threshold=plan.args.threshold)
        except KeyboardInterrupt:
            rows.append(report.skipped_mode(name, "multi", "interrupted (Ctrl-C)",
                                            plan.args.multi_depth, per_gpu, n))
            break
        except Exception as e:      # the other rows still run; this one is reported failed
            rows.append(report.failed_mode(name, "multi", "%s: %s" % (type(e).__name__, e),
                                           plan.args.multi_depth, per_gpu, n))
            progress.log("%s: FAILED: %s" % (name, rows[-1]["reason"]))
            continue
        stats.notes.append("%d GPU%s, %d sources: up to %d per GPU batched in one inference; "
                           "no network-only ceiling for several processes"
                           % (k, "" if k == 1 else "s", n, per_gpu))
        entry = report.mode_result(name, stats, None, plan.args.multi_depth, per_gpu, n)
        rows.append(entry)
        progress.log("%s: %.1f FPS end-to-end over %d GPU%s, %d frames"
                     % (name, entry["fps"], k, "" if k == 1 else "s", entry["frames"]))
    return rows
