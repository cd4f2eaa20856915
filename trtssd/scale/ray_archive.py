"""Archives of videos and pictures over a Ray cluster: one actor per GPU, a result file per input.

```python
from trtssd.scale.ray_archive import run_archive
summary = run_archive(["a.mp4", "b.mp4", "pictures/"], "results/", address="auto",
                      model="detect.tflite")
```
(``trtssd detect FILES... --ray [ADDRESS] -o results/`` from the command line.)

Each actor holds one ``trtssd.Detector`` (the model is loaded once per actor, on the GPU Ray
gave it: Ray sets ``CUDA_VISIBLE_DEVICES`` for the actor) and works through the files it is
handed one at a time: a video or picture file runs through the Detector's pipeline, a folder
is a picture set (its pictures in name order are frames 0, 1, ...). The driver keeps at most
``per_actor`` files in flight per actor (back-pressure: the rest wait on the driver, not in
the cluster's object store), tries a failed file again ``retries`` times (on a new actor when
the old one died) and then reports it. Results: ``OUT/<name>.jsonl`` per input (the JSON-lines
sink's records) or ``.parquet`` (``fmt="parquet"``, needs pyarrow on the actors), each written
under a temporary name and renamed when complete, so a file that is there is whole; and
``OUT/trtssd-summary.json``: files, frames, failures and throughput.

On a machine without GPUs the actors run on the CPU (one per two CPUs unless ``actors`` says
otherwise). Ray is an optional extra (``pip install trtssd[ray]``), imported when this runs;
every node of a cluster needs trtssd and the model file at the same path.
"""
import json
import os
import socket
import sys
import time

from ..core.errors import EnvironmentProblem, InputError
from ..io.sinks import Sink

SUMMARY_NAME = "trtssd-summary.json"
FORMATS = ("jsonl", "parquet")


def _ray():
    try:
        import ray
    except ImportError:
        raise EnvironmentProblem("--ray needs Ray: pip install ray (or pip install "
                                 "trtssd[ray]), here and on every node of the cluster")
    return ray


def expand_inputs(files, loop=1):
    """[(path, kind)] with kind ``video``, ``image`` or ``pictures`` (a folder's pictures);
    a missing file or a folder without pictures is an InputError now, before any cluster."""
    from ..io.sources import IMAGE_EXTENSIONS
    out = []
    for f in files:
        f = str(f)
        if os.path.isdir(f):
            if not picture_set(f):
                raise InputError("folder %r holds no pictures (%s); give video files, pictures "
                                 "or folders of pictures" % (f, " ".join(IMAGE_EXTENSIONS)))
            out.append((f, "pictures"))
        elif os.path.isfile(f):
            ext = os.path.splitext(f.lower())[1]
            out.append((f, "image" if ext in IMAGE_EXTENSIONS else "video"))
        else:
            raise InputError("input %r does not exist; --ray takes video files, pictures and "
                             "folders of pictures (cameras and streams run without --ray)" % f)
    if not out:
        raise InputError("no input files given")
    return out


def picture_set(folder):
    from ..io.sources import IMAGE_EXTENSIONS
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder))
            if os.path.splitext(n.lower())[1] in IMAGE_EXTENSIONS
            and os.path.isfile(os.path.join(folder, n))]


def output_paths(inputs, out_dir, fmt):
    """One result path per input, ``<name>.<fmt>``, made unique (``-2``, ``-3``...)."""
    taken, out = set([SUMMARY_NAME]), []
    for path, _ in inputs:
        base = os.path.basename(os.path.normpath(path)) or "input"
        stem = os.path.splitext(base)[0] if not os.path.isdir(path) else base
        name, n = "%s.%s" % (stem, fmt), 1
        while name in taken:
            n += 1
            name = "%s-%d.%s" % (stem, n, fmt)
        taken.add(name)
        out.append(os.path.join(out_dir, name))
    return out


# ---------------------------------------------------------------------------------------------
# what an actor does
# ---------------------------------------------------------------------------------------------

class _ParquetSink(Sink):
    """The JSON-lines records of a file, as one Parquet table written at ``close``."""

    def __init__(self, path, labels=None):
        try:
            import pyarrow.parquet  # noqa: F401  (checked now, used at close)
        except ImportError:
            raise EnvironmentProblem("--ray-format parquet needs pyarrow on every node: pip "
                                     "install pyarrow (or use --ray-format jsonl)")
        self.path, self.labels, self.rows = path, labels, []

    def write(self, frame, detections):
        from ..io.sinks import frame_record
        self.rows.append(frame_record(frame, detections, self.labels))

    def close(self):
        import pyarrow as pa
        import pyarrow.parquet as pq
        det = pa.struct([("box", pa.list_(pa.float64())), ("score", pa.float64()),
                         ("class_id", pa.int32()), ("label", pa.string())])
        schema = pa.schema([("source", pa.string()), ("frame", pa.int64()),
                            ("detections", pa.list_(det))])
        pq.write_table(pa.Table.from_pylist(self.rows, schema=schema), self.path)


class ArchiveWorker(object):
    """A Ray actor's state: one Detector, and the files it is given."""

    def __init__(self, detector_kwargs):
        from ..detector import Detector
        self.det = Detector(**detector_kwargs)
        self.where = "%s pid %d" % (socket.gethostname(), os.getpid())

    def ready(self):
        return self.where

    def process(self, path, kind, out_path, fmt, loop=1):
        """Detect every frame of one input into ``out_path``; returns what was done."""
        from ..io.sinks import JsonLinesSink
        from ..io.sources import Frame, open_source
        t0 = time.perf_counter()
        tmp = "%s.part-%d" % (out_path, os.getpid())
        sink = (_ParquetSink if fmt == "parquet" else JsonLinesSink)(tmp, self.det.labels)
        frames = 0
        try:
            if kind == "pictures":
                import cv2
                pictures = picture_set(path)
                for start in range(0, len(pictures), self.det.max_batch):
                    group = pictures[start:start + self.det.max_batch]
                    images = []
                    for p in group:
                        im = cv2.imread(p, cv2.IMREAD_COLOR)
                        if im is None:
                            raise InputError("OpenCV cannot decode %r as a picture" % p)
                        images.append(im)
                    for i, (p, dets) in enumerate(zip(group, self.det.batch(images))):
                        sink.write(Frame(start + i, None, p), dets)
                        frames += 1
            else:
                src = open_source(path, **({"loop": loop} if kind == "image" else {}))
                try:
                    frames = self.det.run(src, sink).frames
                finally:
                    src.close()
            sink.close()
            sink = None
            os.replace(tmp, out_path)
        finally:
            if sink is not None:
                try:
                    sink.close()
                except Exception:
                    pass
            if os.path.exists(tmp):
                os.remove(tmp)
        return {"file": path, "out": out_path, "frames": frames,
                "seconds": time.perf_counter() - t0, "actor": self.where}

    def close(self):
        self.det.close()


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------

def _error_text(e):
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        e = cause
    text = str(e).strip().splitlines()
    return "%s: %s" % (type(e).__name__, text[-1] if text else "")


def _load_failed(who, e, model):
    return EnvironmentProblem("%s could not load the detector (%s); check that trtssd and the "
                              "model %s are on every node" % (who, _error_text(e), model))


def _kill(ray, actor):
    try:
        ray.kill(actor, no_restart=True)
    except Exception:       # already gone
        pass


def _check_replacements(ray, starting, timeout_s, model, log):
    """Forget the replacement actors that are up; one that failed to load the detector, or is
    not up ``timeout_s`` after it was asked for (the cluster has no room for it), ends the run
    with an EnvironmentProblem instead of waiting for ever on the files queued on it."""
    for slot, (ref, since) in list(starting.items()):
        if ray.wait([ref], timeout=0)[0]:
            del starting[slot]
            try:
                log("actor restarted: %s" % ray.get(ref))
            except Exception as e:
                raise _load_failed("a replacement Ray actor", e, model)
        elif time.perf_counter() - since > timeout_s:
            raise EnvironmentProblem(
                "a replacement Ray actor did not start within %.0f s (the cluster has no free "
                "CPU or GPU for it?); `ray status` shows what is held" % timeout_s)


def run_archive(files, out_dir, address=None, actors=None, retries=1, per_actor=2,
                fmt="jsonl", loop=1, labels=None, setup_timeout_s=900.0, log=None,
                **detector_kwargs):
    """Detect objects in ``files`` over a Ray cluster (see the module docstring) and return
    the summary dict (also written to ``OUT/trtssd-summary.json``). ``address``: None to join
    the cluster this process already joined, else start one on this machine; ``"auto"``,
    ``"ray://HOST:PORT"`` or ``"HOST:PORT"`` to join one. ``detector_kwargs`` are
    trtssd.Detector's. A file that failed ``retries + 1`` times is listed in ``failures``;
    the run goes on with the others. An actor that died is replaced once per death; an actor
    (first or replacement) not up within ``setup_timeout_s`` ends the run with an
    EnvironmentProblem."""
    from .gpus import DETECTOR_ARGS
    from ..models import resolve
    log = log or (lambda line: None)
    if fmt == "auto":
        fmt = "jsonl"
    if fmt not in FORMATS:
        raise InputError("result format %r: choose jsonl or parquet" % (fmt,))
    bad = set(detector_kwargs) - set(DETECTOR_ARGS)
    if bad:
        raise InputError("run_archive: unknown argument %s" % ", ".join(sorted(bad)))
    if retries < 0 or per_actor < 1 or (actors is not None and actors < 1):
        raise InputError("--ray-retries must be >= 0 and --ray-actors >= 1")
    inputs = expand_inputs(files)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError("-o %s exists and is not a folder; --ray writes a folder of results"
                         % out_dir)
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    outs = output_paths(inputs, out_dir, fmt)
    kw = dict(detector_kwargs)
    kw["model"] = os.path.abspath(resolve.resolve_model(kw.get("model")))
    label_path = resolve.resolve_labels(labels, kw["model"])
    kw["labels"] = os.path.abspath(label_path) if label_path else None

    ray = _ray()
    started = False
    if not ray.is_initialized():
        import logging
        init = {"include_dashboard": False, "log_to_driver": False,
                "logging_level": logging.WARNING}
        if address:
            init["address"] = address
        try:
            ray.init(**init)
        except ConnectionError as e:
            raise EnvironmentProblem("cannot join the Ray cluster at %s (%s); start it with "
                                     "`ray start --head`, or leave out the address to run on "
                                     "this machine" % (address, e))
        started = True
    resources = ray.cluster_resources()
    n_gpu = int(resources.get("GPU", 0))
    n_cpu = max(1, int(resources.get("CPU", 1)))
    use_gpu = n_gpu > 0 and kw.get("device") != "cpu"
    if actors is None:
        actors = n_gpu if use_gpu else max(1, n_cpu // 2)
    opts = {"num_gpus": 1} if use_gpu else {"num_cpus": max(1, n_cpu // actors)}
    if use_gpu and actors > n_gpu:
        raise InputError("--ray-actors %d: the cluster has %d GPUs, one actor each"
                         % (actors, n_gpu))
    log("%d actor%s on %s (cluster: %d CPUs, %d GPUs), %d inputs"
        % (actors, "" if actors == 1 else "s", "GPUs" if use_gpu else "CPUs", n_cpu, n_gpu,
           len(inputs)))
    Actor = ray.remote(ArchiveWorker).options(max_concurrency=1, **opts)
    pool = []
    summary = {"files": len(inputs), "files_done": 0, "frames": 0, "failures": [],
               "wall_s": 0.0, "fps": 0.0, "actors": actors, "format": fmt,
               "cluster": {"CPU": n_cpu, "GPU": n_gpu}, "address": address or "local",
               "per_file": [], "actor_restarts": 0}
    try:
        pool = [Actor.remote(kw) for _ in range(actors)]
        try:
            where = ray.get([a.ready.remote() for a in pool], timeout=setup_timeout_s)
        except Exception as e:
            raise _load_failed("the Ray actors", e, kw["model"])
        log("actors ready: %s" % ", ".join(where))
        todo = list(range(len(inputs)))          # indexes into inputs, in order
        attempts = [0] * len(inputs)
        inflight = {}                             # ref -> (index, slot, the actor it went to)
        starting = {}                             # slot -> (its replacement's ready ref, since)
        load = [0] * len(pool)
        t0 = time.perf_counter()
        while todo or inflight:
            while todo:
                slot = min(range(len(pool)), key=lambda s: load[s])
                if load[slot] >= per_actor:
                    break
                i = todo.pop(0)
                attempts[i] += 1
                path, kind = inputs[i]
                ref = pool[slot].process.remote(path, kind, outs[i], fmt, loop)
                inflight[ref] = (i, slot, pool[slot])
                load[slot] += 1
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in done:
                i, slot, actor = inflight.pop(ref)
                load[slot] -= 1
                try:
                    res = ray.get(ref)
                except Exception as e:
                    # the file's own error comes as a RayTaskError and leaves the actor as it
                    # was; any other Ray error (the actor died or is unreachable, its worker
                    # crashed) retires it
                    dead = (isinstance(e, ray.exceptions.RayError)
                            and not isinstance(e, ray.exceptions.RayTaskError))
                    if dead and pool[slot] is actor:     # once per death: its queued files fail too
                        summary["actor_restarts"] += 1
                        if summary["actor_restarts"] > len(inputs) * (retries + 1):
                            raise EnvironmentProblem(
                                "the Ray actors keep dying (%d restarts; last: %s); look at "
                                "the actors' logs under /tmp/ray/session_latest/logs"
                                % (summary["actor_restarts"] - 1, _error_text(e)))
                        _kill(ray, actor)
                        pool[slot] = Actor.remote(kw)
                        starting[slot] = (pool[slot].ready.remote(), time.perf_counter())
                    text = _error_text(e)
                    if attempts[i] <= retries:
                        log("%s failed (%s); trying again" % (inputs[i][0], text))
                        todo.insert(0, i)
                    else:
                        summary["failures"].append({"file": inputs[i][0], "error": text,
                                                    "attempts": attempts[i]})
                        log("%s failed %d times: %s" % (inputs[i][0], attempts[i], text))
                    continue
                summary["files_done"] += 1
                summary["frames"] += int(res["frames"])
                summary["per_file"].append(res)
                log("%s: %d frames in %.2f s (%s)" % (res["file"], res["frames"],
                                                      res["seconds"], res["actor"]))
            _check_replacements(ray, starting, setup_timeout_s, kw["model"], log)
        summary["wall_s"] = time.perf_counter() - t0
        summary["fps"] = summary["frames"] / summary["wall_s"] if summary["wall_s"] else 0.0
    finally:
        for a in pool:
            _kill(ray, a)
        if started:
            ray.shutdown()
    order = {p: n for n, (p, _) in enumerate(inputs)}
    summary["per_file"].sort(key=lambda r: order.get(r["file"], 0))
    summary["failures"].sort(key=lambda r: order.get(r["file"], 0))
    summary["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    summary["command"] = " ".join(sys.argv)
    with open(os.path.join(out_dir, SUMMARY_NAME), "w") as f:
        json.dump(summary, f, indent=1)
    return summary
