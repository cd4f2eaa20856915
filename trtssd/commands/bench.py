"""`trtssd bench` / `make bench`: every pipeline mode side by side, against the network's ceiling.

One run does, in this order:

1. **Prepares** what it needs: the model (``--model``, ``$TRTSSD_MODEL`` or the file in
   ``../shared/models``; when no file is found, the synthetic model with the same architecture
   and random weights, and every output says so), its ONNX conversion (cached), the backend.
2. **Measures the ceiling**: the network alone on the same backend, precision and batch:
   after a warm-up, CUDA events around groups of back-to-back enqueues on one stream (GPU), or
   host clocks around each call (CPU); median and spread. This figure is *network-only*.
3. **Runs each mode** (``sync``, ``async``, ``gpu``, ``pipelined`` at each depth, ``multi`` with
   N synthetic sources batched N at a time) for the same number of frames on the same source,
   after a short discarded warm-up run of the same mode (so one-time costs such as kernel
   compilation or CUDA-graph capture are not counted), and keeps the ``RunStats`` each returns.
   These figures are *end-to-end* (capture to result).
4. **Reports**: a table on stdout, a JSON file with every number and the environment, a PNG
   chart (``trtssd.commands.report``). Modes that cannot run here are listed as skipped, with the reason.

Without a GPU the CPU modes (``sync``, ``async``) run with ONNX Runtime and the run says so;
``--quick`` (for CI) uses few frames, a small synthetic source and a CPU backend unless
``--device``/``--backend`` say otherwise. No number in the outputs is invented or estimated:
a stage a mode did not time is shown as absent, not zero.
"""
import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import threading
import time

import numpy as np

from . import report
from ..core.env import gpu_unavailable_reason
from ..core.errors import EnvironmentProblem, InputError, ModelError, TrtssdError

ALL_MODES = ("sync", "async", "gpu", "pipelined", "multi")
BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
DEFAULT_SOURCE = "synthetic:1920x1080"
QUICK_SOURCE = "synthetic:640x360"
DEFAULT_OUT_DIR = "bench-out"


# ---------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------

def add_arguments(parser):
    """Add the bench's options to an argparse parser (``trtssd bench`` and ``main``)."""
    parser.add_argument("--source", default=None,
                        help="synthetic:WIDTHxHEIGHT (default %s; %s with --quick), a video "
                             "or image file, or a camera index" % (DEFAULT_SOURCE, QUICK_SOURCE))
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--frames", type=int, default=None,
                   help="frames per mode (default 1000 on a GPU, 100 on the CPU, 10 --quick)")
    g.add_argument("--seconds", type=float, default=None, help="seconds per mode instead")
    parser.add_argument("--modes", default=",".join(ALL_MODES),
                        help="comma-separated subset of %s" % ",".join(ALL_MODES))
    parser.add_argument("--depths", default="2,3,4",
                        help="depths of the pipelined mode, comma-separated (default 2,3,4)")
    parser.add_argument("--sources-count", type=int, default=8,
                        help="synthetic sources of the multi mode, batched together (default 8)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="auto = TensorRT if importable, else PyTorch on CUDA, else ONNX "
                             "Runtime on the CPU")
    parser.add_argument("--device", default=None, choices=("cuda", "cpu"),
                        help="default: cuda when a GPU is usable here (cpu with --quick)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16"))
    parser.add_argument("--batch", type=int, default=1,
                        help="frames per inference of the single-source modes (default 1)")
    parser.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false",
                        help="PyTorch backend: run eagerly instead of replaying a CUDA graph")
    parser.add_argument("--model", default=None,
                        help="model file (.tflite, .onnx or TensorRT engine), or 'synthetic'; "
                             "default $TRTSSD_MODEL or ../shared/models/detect.tflite, else "
                             "the synthetic model (timing only)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="frames of the discarded warm-up run before each mode "
                             "(default 50 on a GPU, 5 on the CPU, 2 --quick)")
    parser.add_argument("--threshold", type=float, default=0.3, help="score threshold")
    parser.add_argument("--draw", dest="draw", action="store_true", default=False,
                        help="draw the detections on each frame, timed as the draw stage: "
                             "gpu/pipelined/multi draw on the GPU into the device copy of "
                             "each synthetic frame and download it (+gpu in the draw "
                             "column); sync/async on a copy of the read-only frame; "
                             "default off")
    parser.add_argument("--no-draw", dest="draw", action="store_false",
                        help=argparse.SUPPRESS)      # the old spelling of the default
    parser.add_argument("--multi-depth", type=int, default=2,
                        help="rounds in flight of the multi mode (default 2)")
    parser.add_argument("--video", default=None, metavar="FILE|auto",
                        help="also run the modes on this video file (each --decode, and a "
                             "decode-only row per decoder as the source's own ceiling); "
                             "'auto' = a generated 1080p H.264 clip (PyAV, cached); "
                             "make bench passes auto")
    parser.add_argument("--decode", default="cpu,gpu",
                        help="decoders of the video runs (--video, or a --source file), "
                             "comma-separated from cpu (OpenCV), gpu (NVDEC through "
                             "PyNvVideoCodec; skipped with the reason where it cannot run); "
                             "default cpu,gpu")
    parser.add_argument("--quick", action="store_true",
                        help="for CI: few frames, small synthetic source, a CPU backend")
    parser.add_argument("--out-dir", default=DEFAULT_OUT_DIR,
                        help="where the JSON and PNG go (default %s/)" % DEFAULT_OUT_DIR)
    parser.add_argument("--json", default=None, help="JSON path (default OUT_DIR/bench.json)")
    parser.add_argument("--chart", default=None, help="PNG path (default OUT_DIR/bench.png)")
    parser.add_argument("--no-chart", dest="no_chart", action="store_true",
                        help="do not write the PNG chart")
    from ..scale.gpus import add_bench_arguments
    add_bench_arguments(parser)
    return parser


def _parse_list(text, what, allowed=None, cast=str):
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise InputError("%s is empty; give a comma-separated list, e.g. %s"
                         % (what, ",".join(allowed) if allowed else "2,3,4"))
    out = []
    for t in items:
        if allowed is not None and t not in allowed:
            raise InputError("%s: unknown value %r; choose from %s" % (what, t, ",".join(allowed)))
        try:
            v = cast(t)
        except ValueError:
            raise InputError("%s: %r is not a number; give e.g. 2,3,4" % (what, t))
        if v not in out:
            out.append(v)
    return out


def parse_synthetic(text):
    """``synthetic:1920x1080[@FPS]`` -> (1920, 1080, fps or None); None for other sources.
    The sources module parses it (trtssd.io.sources.open_source), with its errors."""
    if not str(text).strip().lower().startswith("synthetic"):
        return None
    from ..io import sources as srcmod
    src = srcmod.open_source(str(text).strip(), frames=0)
    try:
        return int(src.width), int(src.height), (float(src.fps) if src.live else None)
    finally:
        src.close()


class BenchPlan(object):
    """The validated options of one bench run (made before anything is loaded)."""

    def __init__(self, args, gpu_reason):
        self.args = args
        self.quick = bool(getattr(args, "quick", False))
        self.gpu_reason = gpu_reason
        self.modes = _parse_list(args.modes, "--modes", ALL_MODES)
        self.depths = _parse_list(args.depths, "--depths", cast=int)
        if any(d < 1 for d in self.depths):
            raise InputError("--depths %s: every depth must be 1 or more (2 = double "
                             "buffering)" % args.depths)
        if args.batch < 1:
            raise InputError("--batch %d: must be 1 or more" % args.batch)
        if args.multi_depth < 1:
            raise InputError("--multi-depth %d: must be 1 or more (2 = double buffering)"
                             % args.multi_depth)
        if args.sources_count < 1:
            raise InputError("--sources-count %d: must be 1 or more" % args.sources_count)
        if args.frames is not None and args.frames < 1:
            raise InputError("--frames %d: must be 1 or more" % args.frames)
        if args.seconds is not None and not args.seconds > 0:
            raise InputError("--seconds %s: must be more than 0" % args.seconds)
        if args.warmup is not None and args.warmup < 0:
            raise InputError("--warmup %d: must be 0 or more" % args.warmup)
        self.notes = []
        # device
        if args.device:
            self.device = args.device
        elif args.backend == "onnxruntime" or self.quick:
            self.device = "cpu"
        else:
            self.device = "cpu" if gpu_reason else "cuda"
            if gpu_reason:
                self.notes.append("no usable CUDA GPU here (%s): running on the CPU with "
                                  "ONNX Runtime; the gpu mode is skipped" % gpu_reason)
        if self.device == "cuda" and gpu_reason:
            raise EnvironmentProblem("--device cuda, but there is no usable CUDA GPU here (%s); "
                                     "run without --device to benchmark the CPU modes"
                                     % gpu_reason)
        # backend
        self.backend = args.backend
        if self.backend == "auto" and self.device == "cpu":
            self.backend = _first_importable(("onnxruntime", "torch"))
            if self.backend is None:
                raise EnvironmentProblem("no CPU backend: neither onnxruntime nor torch can be "
                                         "imported; `pip install onnxruntime`")
        # source
        self.source = args.source or (QUICK_SOURCE if self.quick else DEFAULT_SOURCE)
        self.synthetic_size = parse_synthetic(self.source)
        if self.synthetic_size is not None and min(self.synthetic_size[:2]) < 16:
            raise InputError("--source %s: synthetic frames must be at least 16x16"
                             % self.source)
        # amount
        self.seconds = args.seconds
        if args.frames is not None:
            self.frames = args.frames
        elif args.seconds is not None:
            self.frames = None
        else:
            self.frames = 10 if self.quick else (1000 if self.device == "cuda" else 100)
        if args.warmup is not None:
            self.warmup = args.warmup
        else:
            self.warmup = 2 if self.quick else (50 if self.device == "cuda" else 5)
        # ceiling repetitions: groups of `inner` enqueues between two CUDA events on a GPU
        if self.device == "cuda":
            self.ceiling_reps, self.ceiling_inner = (10, 5) if self.quick else (50, 20)
            self.ceiling_warmup_s = 0.2 if self.quick else 1.0
        else:
            self.ceiling_reps, self.ceiling_inner = (5, 1) if self.quick else (30, 1)
            self.ceiling_warmup_s = 0.0
        self.decodes = _parse_list(getattr(args, "decode", "cpu"), "--decode", ("cpu", "gpu"))
        self.video = getattr(args, "video", None)
        if self.video is not None and self.video != "auto" and not os.path.isfile(self.video):
            raise InputError("--video %s: no such file; give a video file or 'auto' (a "
                             "generated 1080p H.264 clip)" % self.video)
        self.out_dir = args.out_dir or DEFAULT_OUT_DIR
        self.json_path = args.json or os.path.join(self.out_dir, "bench.json")
        self.chart_path = None if getattr(args, "no_chart", False) else (
            args.chart or os.path.join(self.out_dir, "bench.png"))

    def source_sets(self, video_path=None):
        """The sources the runs go over, as (tag, source text, decode): the bench's source
        (tag '', OpenCV decode for a file), then for a file source the other decoders, then
        ``video_path`` (``--video``) with each decoder."""
        sets = [("", self.source, "cpu")]
        if self.synthetic_size is None:
            sets += [(" [%s decode]" % d, self.source, d) for d in self.decodes if d != "cpu"]
            sets[0] = (" [cpu decode]" if len(sets) > 1 else "", self.source, "cpu")
        if video_path:
            name = "h264" if self.video == "auto" else os.path.basename(video_path)
            sets += [(" [%s %s decode]" % (name, d), video_path, d) for d in self.decodes]
        return sets

    def runs(self):
        """(name, mode, depth, batch, sources) of every requested run, in order."""
        out = []
        for m in self.modes:
            if m == "pipelined":
                for d in self.depths:
                    out.append(("pipelined-d%d" % d, m, d, self.args.batch, 1))
            elif m == "multi":
                n = self.args.sources_count
                out.append(("multi-x%d" % n, m, self.args.multi_depth, n, n))
            else:            # sync, async and gpu infer one frame at a time
                out.append((m, m, None, 1, 1))
        return out


def _first_importable(names):
    import importlib
    for n in names:
        try:
            importlib.import_module(n)
            return n
        except ImportError:
            continue
    return None


# ---------------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------------


def _module_version(name):
    import importlib
    try:
        m = importlib.import_module(name)
    except Exception:
        return None
    return str(getattr(m, "__version__", getattr(m, "VERSION", "unknown")))


def _backend_module(backend_name):
    n = str(backend_name).lower()
    if "tensorrt" in n or n == "trt":
        return "tensorrt"
    if "onnx" in n:
        return "onnxruntime"
    if "torch" in n:
        return "torch"
    return None


def _nvidia_driver():
    try:
        with open("/proc/driver/nvidia/version") as f:
            first = f.readline()
        for tok in first.split():
            if tok.count(".") >= 1 and tok.replace(".", "").isdigit():
                return tok
    except (IOError, OSError):
        pass
    try:
        out = subprocess.check_output(["nvidia-smi", "--query-gpu=driver_version",
                                       "--format=csv,noheader"], stderr=subprocess.STDOUT,
                                      timeout=10)
        return out.decode("ascii", "replace").strip().splitlines()[0]
    except Exception:
        return None


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except (IOError, OSError):
        pass
    return platform.processor() or None


def command_line(argv=None):
    """The exact command as the user typed it (as near as argv tells)."""
    if argv is not None:
        return "trtssd bench " + " ".join(shlex.quote(a) for a in argv)
    a = list(sys.argv)
    if a and a[0].endswith("__main__.py"):
        head = "python -m trtssd"
    elif a:
        head = os.path.basename(a[0])
    else:
        head = "trtssd"
    return " ".join([head] + [shlex.quote(x) for x in a[1:]])


def collect_environment(plan, backend, gpu_reason, argv=None):
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        .isoformat().replace("+00:00", "Z"),
        "command": command_line(argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "opencv": _module_version("cv2"),
        "trtssd": _module_version("trtssd"),
        "backend": getattr(backend, "name", plan.backend),
        "backend_device": getattr(backend, "device", plan.device),
        "backend_version": None,
        "gpu_name": None, "gpu_compute_capability": None, "gpu_memory_gib": None,
        "driver_version": None, "cuda_driver_api": None, "cuda_runtime": None,
        "pycuda": None, "gpu_unavailable_reason": gpu_reason,
    }
    mod = _backend_module(env["backend"]) or _backend_module(plan.backend)
    if mod:
        env["backend_version"] = _module_version(mod)
    if not gpu_reason:
        try:
            import pycuda
            import pycuda.driver as drv
            drv.init()
            dev = drv.Device(0)
            env["gpu_name"] = dev.name()
            env["gpu_compute_capability"] = "%d.%d" % dev.compute_capability()
            env["gpu_memory_gib"] = round(dev.total_memory() / 2.0 ** 30, 1)
            v = drv.get_driver_version()
            env["cuda_driver_api"] = "%d.%d" % (v // 1000, (v % 1000) // 10)
            env["pycuda"] = getattr(pycuda, "VERSION_TEXT", None) or _module_version("pycuda")
        except Exception as e:
            env["gpu_query_error"] = str(e)
        env["driver_version"] = _nvidia_driver()
    if mod == "torch" or plan.backend == "torch":
        try:
            import torch
            env["cuda_runtime"] = torch.version.cuda
            env["torch"] = torch.__version__
        except Exception:
            pass
    return env


# ---------------------------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------------------------

class Progress(object):
    """Log lines to stderr always; a live updating line only when stderr is a terminal."""

    def __init__(self, stream=None, live=None):
        self.stream = stream if stream is not None else sys.stderr
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty and isatty())
        self.live = live
        self._lock = threading.Lock()
        self._width = 0

    def log(self, msg):
        with self._lock:
            self._clear()
            self.stream.write(msg + "\n")
            self.stream.flush()

    def _clear(self):
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0

    def _show(self, text):
        with self._lock:
            self._clear()
            self.stream.write(text)
            self.stream.flush()
            self._width = len(text)

    def track(self, label, count, total=None, seconds=None, sampler=None):
        """Context manager: shows ``label count/total elapsed`` until the block ends (drawn
        by ``sampler``'s thread when given, else by one of its own)."""
        return _Tracker(self, label, count, total, seconds, sampler)


class Sampler(object):
    """The bench's one background thread: calls each registered ``fn`` every ``period_s``
    (``every(period_s, fn)``) while the ``with`` block runs, e.g. the live progress line and
    the NVML utilisation reading of one run. Without registrations no thread starts."""

    def __init__(self, tick_s=0.05):
        self.tick_s = tick_s
        self._jobs = []
        self._stop = threading.Event()
        self._thread = None

    def every(self, period_s, fn):
        self._jobs.append([float(period_s), fn, None])
        return self

    def _loop(self):
        while not self._stop.wait(self.tick_s):
            now = time.perf_counter()
            for job in self._jobs:
                if job[2] is None or now - job[2] >= job[0]:
                    job[2] = now
                    try:
                        job[1]()
                    except Exception:          # a failing sample must not stop the run
                        pass

    def __enter__(self):
        if self._jobs:
            self._thread = threading.Thread(target=self._loop, name="trtssd-bench-sampler")
            self._thread.daemon = True
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        return False


class _Tracker(object):
    """The live ``label count/total elapsed`` line of one run, drawn by a Sampler (its own,
    or ``sampler`` when given, so the run's other samples share the thread)."""

    def __init__(self, progress, label, count, total, seconds, sampler=None):
        self.p, self.label, self.count, self.total, self.seconds = (
            progress, label, count, total, seconds)
        self._sampler = sampler
        self._own = None

    def _line(self):
        el = time.perf_counter() - self._t0
        n = self.count()
        if self.total:
            frac = min(1.0, float(n) / self.total)
            bar = "#" * int(20 * frac)
            return "  %s [%-20s] %d/%d frames  %.1f s" % (self.label, bar, n, self.total, el)
        if self.seconds:
            frac = min(1.0, el / self.seconds)
            bar = "#" * int(20 * frac)
            return "  %s [%-20s] %d frames  %.1f/%.0f s" % (self.label, bar, n, el, self.seconds)
        return "  %s %d  %.1f s" % (self.label, n, el)

    def _show(self):
        self.p._show(self._line())

    def __enter__(self):
        self._t0 = time.perf_counter()
        if self.p.live:
            if self._sampler is None:
                self._own = Sampler().every(0.2, self._show)
                self._own.__enter__()
            else:
                self._sampler.every(0.2, self._show)
        return self

    def __exit__(self, *exc):
        if self._own is not None:
            self._own.__exit__(*exc)
        if self.p.live:
            with self.p._lock:
                self.p._clear()
        return False


class GpuUtilSampler(object):
    """GPU busy fraction sampled from NVML while a run goes on, for modes that do not report one.

    NVML's utilization is the share of its last sample period (1/6 s to 1 s, by product) in
    which one or more kernels ran: coarse, and it counts any process's kernels. Read through
    ctypes from the driver's ``libnvidia-ml.so.1`` (no extra package). ``fraction()`` is None
    when NVML is missing or nothing was sampled. Sampled by a Sampler (``attach``).
    """

    def __init__(self, pci_bus_id=None, period_s=0.1):
        self.samples = []
        self._nvml = None
        self._handle = None
        self.period_s = period_s
        try:
            import ctypes
            lib = ctypes.CDLL("libnvidia-ml.so.1")
            if lib.nvmlInit_v2() != 0:
                return
            handle = ctypes.c_void_p()
            if pci_bus_id:
                rc = lib.nvmlDeviceGetHandleByPciBusId_v2(pci_bus_id.encode("ascii"),
                                                          ctypes.byref(handle))
            else:
                rc = lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(handle))
            if rc != 0:
                lib.nvmlShutdown()
                return
            self._nvml, self._handle, self._ct = lib, handle, ctypes
        except (OSError, AttributeError):
            self._nvml = None

    def _read(self):
        ct = self._ct

        class Util(ct.Structure):
            _fields_ = [("gpu", ct.c_uint), ("memory", ct.c_uint)]
        u = Util()
        if self._nvml.nvmlDeviceGetUtilizationRates(self._handle, ct.byref(u)) == 0:
            self.samples.append(u.gpu / 100.0)

    def attach(self, sampler):
        if self._nvml is not None:
            sampler.every(self.period_s, self._read)
        return self

    def close(self):
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = None

    def fraction(self):
        return float(np.mean(self.samples)) if self.samples else None


def _pci_bus_id():
    try:
        import pycuda.driver as drv
        drv.init()
        return drv.Device(0).pci_bus_id()
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------
# model, backend, sources
# ---------------------------------------------------------------------------------------------

def prepare_model(plan, progress):
    """(model path for create_backend, model info dict). Falls back to the synthetic model."""
    from ..models import resolve as models
    args = plan.args
    synthetic = args.model == models.SYNTHETIC
    path = None
    if not synthetic:
        try:
            path = models.resolve_model(args.model)
        except ModelError as e:
            if args.model:
                raise                    # the user named a file: do not bench something else
            progress.log("model: %s" % e)
            synthetic = True
    if synthetic:
        progress.log("model: using the SYNTHETIC model (same architecture, random weights): "
                     "timing only, detections are meaningless")
        path = models.onnx_for(models.SYNTHETIC)
        return path, {"path": models.SYNTHETIC, "onnx": path, "synthetic": True,
                      "name": "synthetic SSD-MobileNet-v1 (random weights)"}
    model_path = path
    onnx_path = None
    if str(path).lower().endswith(".tflite"):
        t0 = time.perf_counter()
        onnx_path = models.onnx_for(path)
        progress.log("model: %s -> %s (%.1f s)" % (path, onnx_path, time.perf_counter() - t0))
        model_path = onnx_path
    elif str(path).lower().endswith(".onnx"):
        onnx_path = path
    info = {"path": str(path), "onnx": str(onnx_path) if onnx_path else None,
            "synthetic": False, "name": os.path.basename(str(path))}
    return model_path, info


def make_backend(plan, model_path, max_batch):
    from ..backends import create_backend
    return create_backend(plan.backend, model=model_path, device=plan.device,
                          precision=plan.args.precision, max_batch=max_batch,
                          cuda_graph=plan.args.cuda_graph)


def open_sources(plan, count, text=None, decode="cpu"):
    """Fresh sources for one run: ``text`` (default the bench's source) decoded by
    ``decode``; for ``count`` > 1 (multi) ``count`` of them, each with its own decoder for a
    file, or ``count`` synthetic sources (seeded apart) for a synthetic one."""
    from ..io import sources as srcmod
    text = plan.source if text is None else text
    synthetic = parse_synthetic(text)
    if synthetic is None:
        return [srcmod.open_source(text, decode=decode) for _ in range(count)]
    if count == 1:
        return [srcmod.open_source(text)]
    w, h, fps = synthetic
    return [srcmod.SyntheticSource(width=w, height=h, frames=None, live=bool(fps), fps=fps,
                                   seed=i, source_id="synthetic-%d:%dx%d" % (i, w, h))
            for i in range(count)]


def _source_size(plan):
    if plan.synthetic_size is not None:
        return plan.synthetic_size[:2]
    src = open_sources(plan, 1)[0]
    try:
        return int(src.width), int(src.height)
    finally:
        src.close()


# ---------------------------------------------------------------------------------------------
# the ceiling: the network alone
def ceiling_streams(plan, mode, depth):
    """Batches in flight of a mode's run, the concurrency its ceiling is measured at: the
    slots of ``pipelined`` and ``multi`` (``depth``) on a GPU; 1 for the one-at-a-time modes,
    and on the CPU, whose backends run one enqueue at a time to completion."""
    if plan.device != "cuda" or mode not in ("pipelined", "multi"):
        return 1
    return max(1, int(depth or 1))


def enqueue_rounds(lanes, n):
    """``n`` round-robin rounds over ``lanes`` of (execution context, stream, done event): each
    lane waits for its previous batch, enqueues the next on its stream and records its event."""
    for _ in range(n):
        for ec, stream, done in lanes:
            done.synchronize()
            ec.enqueue(stream)
            done.record(stream)


def measure_ceiling_in_flight(backend, batch, streams, plan, progress):
    """Network-only with ``streams`` batches in flight, as the pipelined schedule keeps them:
    one execution context, input and outputs per stream, one Python thread enqueuing round
    robin and waiting, before it re-enqueues on a stream, for that stream's previous batch
    (its event). Timed on the host clock between groups of rounds in the steady state (no
    drain between groups); returns a ceiling dict (``streams`` set)."""
    import pycuda.driver as drv
    from ..gpu.cuda import CudaContext, DeviceArray
    rng = np.random.RandomState(1234)
    host_in = rng.uniform(-1.0, 1.0, size=backend.input_shape(batch)).astype(backend.input_dtype)
    box_shape, cls_shape = backend.output_shapes(batch)
    label = "network-only batch %d x %d streams" % (batch, streams)
    cc = CudaContext(0)
    times = []
    outs = []
    try:
        with cc.active():
            lanes, arrays = [], []
            try:
                for _ in range(streams):
                    images = DeviceArray(host_in.shape, host_in.dtype)
                    boxes = DeviceArray(box_shape, np.float32)
                    scores = DeviceArray(cls_shape, np.float32)
                    arrays += [images, boxes, scores]
                    images.copy_from_host(host_in)
                    boxes.fill_bytes(0xFF)
                    scores.fill_bytes(0xFF)
                drv.Context.synchronize()
                for k in range(streams):
                    ec = backend.create_context(*arrays[3 * k:3 * k + 3])
                    lanes.append((ec, drv.Stream(), drv.Event(drv.event_flags.DISABLE_TIMING)))

                def rounds(n):
                    enqueue_rounds(lanes, n)
                for ec, stream, done in lanes:          # first use, then the warm-up
                    done.record(stream)
                rounds(1)
                t_end = time.perf_counter() + plan.ceiling_warmup_s
                while time.perf_counter() < t_end:
                    rounds(plan.ceiling_inner)
                inner = max(1, plan.ceiling_inner // streams) if streams > 1 else plan.ceiling_inner
                with progress.track(label, lambda: len(times), plan.ceiling_reps):
                    t0 = time.perf_counter()
                    for _ in range(plan.ceiling_reps):
                        rounds(inner)
                        t1 = time.perf_counter()
                        times.append((t1 - t0) * 1e3 / (inner * streams))
                        t0 = t1
                for ec, stream, done in lanes:
                    done.synchronize()
                outs = [(arrays[3 * k + 1].copy_to_host(), arrays[3 * k + 2].copy_to_host())
                        for k in range(streams)]
            finally:
                for ec, _, _ in lanes:
                    ec.close()
                drv.Context.synchronize()
                for a in arrays:
                    a.close()
                lanes = None
    finally:
        cc.close()
    for b, sc in outs:
        _check_outputs(np.asarray(b), np.asarray(sc))
    return report.ceiling_result(times, batch, "host", per="enqueue, %d streams in flight"
                                 % streams, streams=streams)


# ---------------------------------------------------------------------------------------------

def _check_outputs(boxes, scores):
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise TrtssdError("the network's outputs are not finite after the ceiling run: the "
                          "backend is broken here; check it with `trtssd info` and the backend "
                          "tests before trusting any timing")
    if scores.size and (scores.min() < -1e-3 or scores.max() > 1.0 + 1e-3):
        raise TrtssdError("class scores outside [0, 1] (%g..%g): the model is not the SSD "
                          "with sigmoid scores the bench expects" % (scores.min(), scores.max()))


def measure_ceiling(backend, batch, plan, progress):
    """Network-only: enqueue after enqueue on the bound buffers; returns a ceiling dict."""
    rng = np.random.RandomState(1234)
    in_shape = backend.input_shape(batch)
    box_shape, cls_shape = backend.output_shapes(batch)
    host_in = rng.uniform(-1.0, 1.0, size=in_shape).astype(backend.input_dtype)
    label = "network-only batch %d" % batch
    if backend.device != "cuda":
        boxes = np.full(box_shape, np.nan, np.float32)
        scores = np.full(cls_shape, np.nan, np.float32)
        ec = backend.create_context(host_in, boxes, scores)
        times = []
        try:
            ec.enqueue(None)                              # warm-up (allocations, caches)
            t_end = time.perf_counter() + plan.ceiling_warmup_s
            while time.perf_counter() < t_end:
                ec.enqueue(None)
            with progress.track(label, lambda: len(times), plan.ceiling_reps):
                for _ in range(plan.ceiling_reps):
                    t0 = time.perf_counter()
                    ec.enqueue(None)
                    times.append((time.perf_counter() - t0) * 1000.0)
        finally:
            ec.close()
        _check_outputs(boxes, scores)
        return report.ceiling_result(times, batch, "host")
    return _measure_ceiling_cuda(backend, batch, plan, progress, host_in, box_shape, cls_shape,
                                 label)


def _measure_ceiling_cuda(backend, batch, plan, progress, host_in, box_shape, cls_shape, label):
    import pycuda.driver as drv
    from ..gpu.cuda import CudaContext, DeviceArray, EventTimer
    cc = CudaContext(0)
    times = []
    try:
        with cc.active():
            stream = drv.Stream()
            images = DeviceArray(host_in.shape, host_in.dtype)
            boxes = DeviceArray(box_shape, np.float32)
            scores = DeviceArray(cls_shape, np.float32)
            try:
                # setup copies are synchronous (pageable host arrays); outputs poisoned with
                # NaN (0xFF bytes) so the check below sees whether the network wrote them
                images.copy_from_host(host_in)
                boxes.fill_bytes(0xFF)
                scores.fill_bytes(0xFF)
                drv.Context.synchronize()
                ec = backend.create_context(images, boxes, scores)
                try:
                    ec.enqueue(stream)
                    stream.synchronize()
                    t_end = time.perf_counter() + plan.ceiling_warmup_s
                    while time.perf_counter() < t_end:
                        for _ in range(plan.ceiling_inner):
                            ec.enqueue(stream)
                        stream.synchronize()
                    timer = EventTimer(stream)
                    with progress.track(label, lambda: len(times), plan.ceiling_reps):
                        for _ in range(plan.ceiling_reps):
                            timer.start()
                            for _ in range(plan.ceiling_inner):
                                ec.enqueue(stream)
                            timer.stop()
                            stream.synchronize()
                            times.append(timer.elapsed_ms() / plan.ceiling_inner)
                finally:
                    ec.close()
                stream.synchronize()
                h_boxes = boxes.copy_to_host()
                h_scores = scores.copy_to_host()
            finally:
                for a in (images, boxes, scores):
                    a.close()
    finally:
        cc.close()
    _check_outputs(np.asarray(h_boxes), np.asarray(h_scores))
    return report.ceiling_result(times, batch, "cuda-event")


# ---------------------------------------------------------------------------------------------
# the modes
# ---------------------------------------------------------------------------------------------

def skip_reason(plan, mode, backend):
    """Why ``mode`` cannot run in this bench, or None.

    The pipeline says which modes need a CUDA backend (``GPU_ONLY_MODES``: ``gpu``); the
    others also run on a CPU backend (``pipelined`` and ``multi`` then overlap host threads).
    """
    try:
        from ..pipeline import GPU_ONLY_MODES as gpu_only
    except ImportError:
        gpu_only = ("gpu",)
    if mode in gpu_only:
        if plan.gpu_reason:
            return "needs a CUDA GPU and pycuda: %s" % plan.gpu_reason
        if backend is not None and getattr(backend, "device", "cpu") != "cuda":
            return ("needs a CUDA backend; this run uses %s on the CPU (pass --device cuda)"
                    % getattr(backend, "name", plan.backend))
    return None


def run_mode(plan, backend, mode, depth, batch, nsources, progress, label, text=None,
             decode="cpu"):
    """Warm-up run (discarded), then the measured run; returns its RunStats. One sampler
    thread draws the progress line and reads NVML during the run."""
    from ..pipeline import PipelineOptions, run as run_pipeline
    sample_gpu = getattr(backend, "device", "cpu") == "cuda"

    def once(max_frames, duration_s, what):
        srcs = open_sources(plan, nsources, text, decode)
        nvml = None
        try:
            opts = PipelineOptions(mode=mode, depth=depth or 2, batch=batch,
                                   score_threshold=plan.args.threshold, draw=plan.args.draw,
                                   max_frames=max_frames, duration_s=duration_s)

            def count():
                return sum(int(getattr(s, "frames_read", 0) or 0) for s in srcs)
            total = max_frames if duration_s is None else None
            sampler = Sampler()
            if sample_gpu:
                nvml = GpuUtilSampler(_pci_bus_id()).attach(sampler)
            with progress.track(what, count, total, duration_s, sampler=sampler):
                with sampler:
                    st = run_pipeline(srcs, backend, sink=None, options=opts)
            if nvml is not None and st.gpu_busy is None and nvml.fraction() is not None:
                st.gpu_busy = nvml.fraction()
                st.notes.append("GPU busy: NVML utilization sampled every %.1f s (%d "
                                "samples; coarse, counts every process's kernels)"
                                % (nvml.period_s, len(nvml.samples)))
            return st
        finally:
            if nvml is not None:
                nvml.close()
            for s in srcs:
                try:
                    s.close()
                except Exception:
                    pass

    if plan.warmup > 0:
        once(plan.warmup, None, label + " (warm-up)")
    return once(plan.frames, plan.seconds if plan.frames is None else None, label)


# ---------------------------------------------------------------------------------------------
# the whole run: configuration, notes, the ceilings, the loop over the modes
# ---------------------------------------------------------------------------------------------

def bench_config(plan, backend):
    """The ``config`` of the result: what was asked and what ran."""
    return {
        "source": plan.source, "width": plan.resolution[0], "height": plan.resolution[1],
        "frames": plan.frames, "seconds": plan.seconds, "warmup_frames": plan.warmup,
        "modes": plan.modes, "depths": plan.depths, "sources_count": plan.args.sources_count,
        "backend": getattr(backend, "name", plan.backend), "backend_requested":
        plan.args.backend, "device": getattr(backend, "device", plan.device),
        "precision": plan.args.precision, "batch": plan.args.batch,
        "cuda_graph": bool(plan.args.cuda_graph), "draw": bool(plan.args.draw),
        "multi_depth": plan.args.multi_depth,
        "score_threshold": plan.args.threshold, "quick": plan.quick,
        "ceiling_reps": plan.ceiling_reps, "ceiling_enqueues_per_rep": plan.ceiling_inner,
        "video": getattr(plan, "video_path", None), "decodes": plan.decodes,
    }


def bench_notes(plan, model_info):
    """The notes every output carries: what the figures are and are not."""
    notes = list(plan.notes)
    if model_info["synthetic"]:
        notes.insert(0, "SYNTHETIC WEIGHTS: the model file was not found; these figures "
                        "are for timing only, detections are meaningless")
    if plan.args.batch > 1 and set(plan.modes) & set(("sync", "async", "gpu")):
        notes.append("--batch %d applies to pipelined; sync, async and gpu infer one "
                     "frame at a time (their ceiling is batch 1)" % plan.args.batch)
    if plan.synthetic_size is None and "multi" in plan.modes:
        notes.append("multi runs %d sources of the file %s, each with its own decoder"
                     % (plan.args.sources_count, plan.source))
    if plan.synthetic_size is not None:
        notes.append("synthetic frames are pre-rendered once (in pinned memory on a GPU) "
                     "in a ring of buffers handed out without a copy; the capture cost "
                     "models a DMA camera, not a decoder")
    notes.append("drawing %s" % (
        "on (--draw): detections drawn on each frame. gpu, pipelined and multi (BGR frames) "
        "draw on the GPU into the device copy of each read-only frame, one kernel, then one "
        "download to pinned memory ('+gpu' in the draw column: the slots' host ms per batch, "
        "waiting for the download included); writable frames (video) in place on the CPU; "
        "sync and async with OpenCV on a copy of each read-only frame ('draw'). Each mode's "
        "notes say which drawing ran" if plan.args.draw else
        "off (--draw turns it on): no draw stage"))
    notes.append("end-to-end = frames through the whole mode, capture to result, wall "
                 "clock; network-only = the network alone, %s"
                 % ("CUDA events around %d back-to-back enqueues, median of %d"
                    % (plan.ceiling_inner, plan.ceiling_reps) if plan.device == "cuda"
                    else "host clock around each call, median of %d" % plan.ceiling_reps))
    if plan.device == "cuda":
        notes.append("each mode is held to the network alone at its own concurrency: the "
                     "same batch with as many batches in flight as the mode keeps (pipelined "
                     "and multi: their depth, on their own streams, enqueued round robin by "
                     "one thread); the batch-1 one-stream figure is the reference row")
    else:
        notes.append("on the CPU every mode is held to the network alone at its batch: the "
                     "CPU backends run one enqueue at a time, so a mode's depth adds no "
                     "concurrency to the network")
    if getattr(plan, "source_sets_run", None) and len(plan.source_sets_run) > 1:
        notes.append("rows on a real video are held to the lower of the network-only "
                     "ceiling and the source's decode-only rate with as many decoders as "
                     "the mode has sources (the DECODE-ONLY rows)")
    return notes


def _plan_runs(plan, main_backend, sets):
    """Every run as (name, mode, depth, batch, sources, skip reason, set) over the source
    sets, and the (batch, streams) ceilings they need."""
    todo = []
    for tag, text, decode in sets:
        for name, mode, depth, batch, nsrc in plan.runs():
            why = skip_reason(plan, mode, main_backend)
            if why is None and decode == "gpu":
                why = plan.nvdec_reason
            todo.append((name + tag, mode, depth, batch, nsrc, why, (tag, text, decode)))
    return todo


def measure_ceilings(plan, backends, todo, result, progress):
    """The network-only figures, before any mode: the one-stream reference for every batch
    used, then each (batch, streams > 1) a mode keeps in flight."""
    for batch in sorted(set([plan.args.batch] + list(backends))):
        c = measure_ceiling(backends[batch], batch, plan, progress)
        result["ceilings"].append(c)
        progress.log("network-only batch %d: %.1f images/s (%.3f ms per enqueue p50, %s)"
                     % (batch, c["fps"], c["ms"].get("p50", float("nan")), c["clock"]))
    wanted = sorted(set((t[3], ceiling_streams(plan, t[1], t[2])) for t in todo
                        if t[5] is None))
    for batch, streams in wanted:
        if streams <= 1 or report.ceiling_for(result, batch, streams) is not None:
            continue
        c = measure_ceiling_in_flight(backends[batch], batch, streams, plan, progress)
        result["ceilings_in_flight"].append(c)
        progress.log("network-only batch %d x %d streams: %.1f images/s"
                     % (batch, streams, c["fps"]))


def measure_decoders(plan, todo, result, progress):
    """A decode-only row per real source set and number of sources used: the source's own
    ceiling. Returns {(source text, decode, sessions): fps}."""
    from . import bench_video
    rates = {}
    for tag, text, decode in sorted(set(t[6] for t in todo if t[5] is None),
                                    key=lambda x: x[0]):
        if parse_synthetic(text) is not None:
            continue
        for n in sorted(set(t[4] for t in todo if t[6][1:] == (text, decode) and t[5] is None)):
            name = "decode-only %s x%d%s" % (decode, n, tag)
            try:
                frames, wall, cpu = bench_video.decode_only(
                    lambda: open_sources(plan, 1, text, decode)[0], n,
                    plan.frames, plan.seconds if plan.frames is None else None)
            except (EnvironmentProblem, InputError) as e:
                progress.log("%s: skipped: %s" % (name, e))
                continue
            d = report.decode_result(name, frames, wall, cpu, n, decode, text)
            result["decode_only"].append(d)
            rates[(text, decode, n)] = d["fps"]
            progress.log("%s: %.1f FPS (%.3f ms CPU per frame)"
                         % (name, d["fps"], d["cpu_ms_per_frame"] or float("nan")))
    return rates


def run_modes(plan, backends, todo, rates, result, progress):
    """The loop over the modes: each run once (after its warm-up), its entry appended to the
    result with the ceiling it is held to; a failing or skipped run is reported and the
    others still run. Returns True when interrupted (Ctrl-C)."""
    interrupted = False
    for i, (name, mode, depth, batch, nsrc, why, sset) in enumerate(todo):
        label = "[%d/%d] %s" % (i + 1, len(todo), name)
        if interrupted:
            result["modes"].append(report.skipped_mode(name, mode, "interrupted (Ctrl-C)",
                                                       depth, batch, nsrc))
            continue
        if why:
            result["modes"].append(report.skipped_mode(name, mode, why, depth, batch, nsrc))
            progress.log("%s: skipped: %s" % (label, why))
            continue
        try:
            stats = run_mode(plan, backends[batch], mode, depth, batch, nsrc, progress, label,
                             sset[1], sset[2])
        except KeyboardInterrupt:
            interrupted = True
            result["modes"].append(report.skipped_mode(name, mode, "interrupted (Ctrl-C)",
                                                       depth, batch, nsrc))
            progress.log("%s: interrupted; writing what was measured" % label)
            continue
        except EnvironmentProblem as e:
            result["modes"].append(report.skipped_mode(name, mode, e, depth, batch, nsrc))
            progress.log("%s: skipped: %s" % (label, e))
            continue
        except Exception as e:    # keep benchmarking the other modes; reported as failed
            msg = "%s: %s" % (type(e).__name__, e)
            result["modes"].append(report.failed_mode(name, mode, msg, depth, batch, nsrc))
            progress.log("%s: FAILED: %s" % (label, msg))
            continue
        if stats.frames <= 0:
            result["modes"].append(report.failed_mode(
                name, mode, "no frame came through (did the source end at once?)",
                depth, batch, nsrc))
            continue
        ceiling = report.ceiling_for(result, batch, ceiling_streams(plan, mode, depth))
        ceiling = report.source_ceiling(rates.get((sset[1], sset[2], nsrc)), ceiling)
        entry = report.mode_result(name, stats, ceiling, depth, batch, nsrc)
        if sset[2] != "cpu" or parse_synthetic(sset[1]) is None:
            entry["decode"] = sset[2]
        result["modes"].append(entry)
        frac = entry.get("fraction_of_ceiling")
        progress.log("%s: %.1f FPS end-to-end%s, %d frames, latency p50 %.2f ms"
                     % (label, entry["fps"], "" if frac is None else
                        " (%.0f%% of %s)" % (100 * frac, entry["ceiling_name"]),
                        entry["frames"], entry["latency_ms"].get("p50", float("nan"))))
    return interrupted


def bench(plan, progress=None, argv=None):
    """Run everything the plan asks; returns the result dict (see trtssd.commands.report)."""
    progress = progress or Progress()
    for n in plan.notes:
        progress.log("bench: " + n)
    plan.resolution = _source_size(plan)
    plan.video_path = None
    if plan.video:
        from . import bench_video
        plan.video_path = bench_video.clip_for(plan.video, progress)
    sets = plan.source_sets(plan.video_path)
    plan.source_sets_run = sets
    plan.nvdec_reason = None
    if any(d == "gpu" for _, _, d in sets):
        from ..io import nvdec
        plan.nvdec_reason = (("needs a CUDA GPU: %s" % plan.gpu_reason) if plan.gpu_reason
                             else nvdec.unavailable_reason())
    model_path, model_info = prepare_model(plan, progress)
    backends = {}
    try:
        progress.log("backend: creating %s on %s (%s, batch %d)..."
                     % (plan.backend, plan.device, plan.args.precision, plan.args.batch))
        backends[plan.args.batch] = make_backend(plan, model_path, plan.args.batch)
        main_backend = backends[plan.args.batch]
        spec = getattr(main_backend, "spec", None)
        if spec is not None and getattr(spec, "synthetic", False):
            model_info["synthetic"] = True
        env = collect_environment(plan, main_backend, plan.gpu_reason, argv)
        result = report.new_result(env, bench_config(plan, main_backend), model_info,
                                   bench_notes(plan, model_info))
        todo = _plan_runs(plan, main_backend, sets)
        for batch in sorted(set(t[3] for t in todo if t[5] is None)):
            if batch not in backends:
                progress.log("backend: creating %s for batch %d" % (plan.backend, batch))
                backends[batch] = make_backend(plan, model_path, batch)
        measure_ceilings(plan, backends, todo, result, progress)
        rates = measure_decoders(plan, todo, result, progress)
        interrupted = run_modes(plan, backends, todo, rates, result, progress)
        if getattr(plan.args, "gpus", None) and not interrupted:
            from ..scale.gpus import bench_rows
            result["modes"].extend(bench_rows(plan, model_path, progress))
        result["interrupted"] = interrupted
        return result
    finally:
        for b in backends.values():
            try:
                b.close()
            except Exception:
                pass


def write_outputs(plan, result, progress, out=None):
    """Table to ``out`` (stdout), JSON and PNG files; returns {'json': path, 'chart': path}."""
    out = out if out is not None else sys.stdout
    out.write(report.format_table(result) + "\n")
    out.flush()
    written = {"json": report.write_json(result, plan.json_path), "chart": None}
    if plan.chart_path:
        path, why = report.write_chart(result, plan.chart_path)
        if why:
            progress.log("chart: " + why)
        written["chart"] = path
    progress.log("wrote %s%s" % (written["json"],
                                 (" and " + written["chart"]) if written["chart"] else ""))
    return written


def run(args, argv=None):
    """Run the bench for parsed ``args``; returns the exit code (0 ok, 1 a mode failed)."""
    progress = Progress()
    gpu_reason = gpu_unavailable_reason()
    plan = BenchPlan(args, gpu_reason)
    result = bench(plan, progress, argv)
    write_outputs(plan, result, progress)
    if result.get("interrupted"):
        return 130
    return 1 if any(m["status"] == "failed" for m in result["modes"]) else 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="trtssd bench",
        description="Every pipeline mode side by side (end-to-end) against the network alone "
                    "(network-only ceiling), on this machine.")
    add_arguments(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    try:
        return run(args, argv)
    except TrtssdError as e:
        sys.stderr.write("trtssd bench: error: %s\n" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
