"""The `trtssd` command (also `python -m trtssd`).

    trtssd detect SOURCE [SOURCE ...] [-o OUTPUT ...] [--model PATH] [--mode MODE] ...
    trtssd info
    trtssd bench ...
    trtssd build-engine ...

``detect`` is built on ``trtssd.Detector`` (its ``run``), so the command and the Python API
share one path. Picture files, folders and globs are one stream of pictures; several videos,
cameras or streams run in the multi mode.

Exit codes: 0 when every frame was processed and written; 1 for an error trtssd names (a bad
flag, a missing file, a write that failed, a source that ended in error or damaged frames),
with one line on stderr; 2 for a missing GPU, library or tool; 130 on Ctrl-C (SIGINT) and 143
on SIGTERM, after closing the sources and finalising every output. Nothing is imported or
parsed at import time.

Other modules extend the command in one line each: ``DETECT_ARGUMENTS`` (functions that add
flags to ``detect``'s parser), ``DETECTOR_OPTIONS`` (functions ``args -> dict`` of extra
``Detector`` keywords) and ``SUBCOMMANDS`` ((name, module, help): a module with
``add_arguments(parser)`` and ``run(args)``).
"""
import argparse
import json
import os
import signal
import sys

MODE_CHOICES = ("sync", "async", "gpu", "pipelined", "multi")

EXAMPLES = """examples:
  trtssd detect photos/ -o annotated/             every picture in a folder, boxes drawn
  trtssd detect 'shots/*.jpg' -o dets.jsonl       a glob (quoted): one JSON line per picture
  trtssd detect a.jpg b.png --classes person,dog  several pictures, only people and dogs
  trtssd detect video.mp4 -o out.mp4 -o -         annotated video, and JSON lines on stdout
  trtssd detect 0 --display --mode pipelined      USB camera, window with FPS
  trtssd detect rtsp://cam/stream -o dets.jsonl   RTSP, reconnecting when the stream drops
  trtssd detect rtsp://c1/s rtsp://c2/s -o d.jsonl   several streams: the multi mode
  trtssd detect csi://0 -o out.mp4                Jetson CSI camera (nvarguscamerasrc)

outputs (-o, repeatable): x.jsonl (detections, one JSON line a frame), - (the same on
stdout), x.mp4/x.avi/x.mkv (annotated video), a folder (annotated pictures, named after
their input), window (same as --display). Without -o, pictures are listed on the console
and nothing is saved."""


# -- the detect command's flags: one function per group; other modules append theirs ------

def _model_arguments(p):
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, metavar="PATH",
                   help="detect.tflite, an .onnx or a TensorRT engine (default: $TRTSSD_MODEL, "
                        "or ../shared/models/detect.tflite from a checkout; 'synthetic': "
                        "random weights, timing only)")
    g.add_argument("--labels", default=None, metavar="PATH",
                   help="label file, one name a line (default: $TRTSSD_LABELS or the one "
                        "beside the model)")
    g.add_argument("--backend", default="auto",
                   choices=("auto", "tensorrt", "torch", "onnxruntime"),
                   help="auto = TensorRT if importable, else PyTorch on CUDA, else ONNX Runtime "
                        "on the CPU")
    g.add_argument("--device", default=None, choices=("cuda", "cpu"),
                   help="where the network runs (default: the backend's choice)")
    g.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"),
                   help="network precision (fp16/int8 with TensorRT) (default: fp32)")


def _run_arguments(p):
    g = p.add_argument_group("run")
    g.add_argument("--mode", default=None, choices=MODE_CHOICES,
                   help="sync (default for one source), async, gpu, pipelined, multi (default "
                        "for several sources)")
    g.add_argument("--depth", type=int, default=2, metavar="N",
                   help="frames in flight in the pipelined and multi modes (2 = double "
                        "buffering)")
    g.add_argument("--batch", type=int, default=1, metavar="N",
                   help="frames per inference in the pipelined mode (default: 1)")
    g.add_argument("--threshold", type=float, default=0.3, metavar="SCORE",
                   help="keep detections scoring at least this, 0 to 1 (default: 0.3)")
    g.add_argument("--max-detections", type=int, default=None, metavar="N",
                   help="keep at most N detections a frame (default: the model's, 100)")
    g.add_argument("--classes", default=None, metavar="NAMES",
                   help="keep only these classes: names or ids, comma-separated "
                        "(e.g. person,car or 1,3)")
    g.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="stop after N frames")
    g.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds")
    g.add_argument("--loop", type=int, default=1, metavar="N",
                   help="give the pictures N times (default: once)")
    g.add_argument("--source-timeout-ms", type=float, default=50.0, metavar="MS",
                   help="multi: how long a round waits for each source's frame (default: 50)")
    g.add_argument("--reconnect", dest="reconnect", action="store_true", default=None,
                   help="reopen a live source (camera, RTSP) that stops giving frames, with "
                        "back-off (the default for live sources)")
    g.add_argument("--no-reconnect", dest="reconnect", action="store_false",
                   help="end with an error when a live source stops giving frames")


def _output_arguments(p):
    g = p.add_argument_group("output")
    g.add_argument("--output", "-o", action="append", default=None, metavar="OUTPUT",
                   help="x.jsonl, - (JSON lines on stdout), x.mp4/x.avi, a folder, or window; "
                        "repeatable (see outputs below)")
    g.add_argument("--display", action="store_true", help="show a window (q or Esc stops)")
    g.add_argument("--overlay", default="box,labels,conf", metavar="WHAT",
                   help="what annotated outputs draw: any of box,labels,conf, or none "
                        "(default: box,labels,conf)")
    g.add_argument("--stats", default=None, metavar="PATH",
                   help="write the run's statistics (RunStats summary) as JSON")
    g.add_argument("--quiet", "-q", action="store_true",
                   help="no per-picture lines, progress bar or summary on stderr")


def _scale_arguments(p):
    from ..scale.commands import add_detect_arguments       # --gpus, --ray
    add_detect_arguments(p)


def _spec_arguments(p):
    from ..models.sidecar import add_spec_arguments         # --spec, --input-blob, ...
    add_spec_arguments(p)


DETECT_ARGUMENTS = [_model_arguments, _run_arguments, _output_arguments, _scale_arguments,
                    _spec_arguments]
DETECTOR_OPTIONS = []
SUBCOMMANDS = [("bench", "commands.bench", "every pipeline mode side by side"),
               ("build-engine", "backends.tensorrt.build",
                "build a TensorRT engine from the model")]

# Python parameter -> the flag a user typed (for errors raised below the command)
FLAG_OF = {"score_threshold": "--threshold", "threshold": "--threshold", "depth": "--depth",
           "batch": "--batch", "max_detections": "--max-detections",
           "max_frames": "--max-frames", "duration_s": "--duration",
           "source_timeout_ms": "--source-timeout-ms", "loop": "--loop", "mode": "--mode",
           "max_batch": "--batch", "precision": "--precision", "backend": "--backend",
           "device": "--device", "classes": "--classes"}


def _add_detect(sub):
    p = sub.add_parser("detect", help="run the detector on pictures, videos, cameras or streams",
                       description="Detect objects in SOURCE: picture files, a folder or a "
                                   "glob of pictures (one stream, one picture at a time), a "
                                   "video file, a camera index (0) or /dev/videoN, rtsp://..., "
                                   "csi://N (Jetson), gst:PIPELINE, or synthetic:WxH[@FPS]. "
                                   "Several videos, cameras or streams run in the multi mode, "
                                   "batched together.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="pictures, folders, globs, videos, cameras or stream URLs")
    for add in DETECT_ARGUMENTS:
        add(p)
    p.set_defaults(func=cmd_detect)


def _add_info(sub):
    p = sub.add_parser("info", help="GPU, driver, CUDA, and which backends and modes work here")
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.add_argument("model", nargs="?", default=None,
                   help="a model file: print how trtssd reads it (family, input, outputs, "
                        "classes, anchors, NMS)")
    p.add_argument("--labels", default=None, help="label file (default: beside the model)")
    _spec_arguments(p)
    p.set_defaults(func=cmd_info)


def _add_delegate(sub, name, module, help_text):
    mod = __import__("trtssd." + module, fromlist=["add_arguments"])
    p = sub.add_parser(name, help=help_text)
    mod.add_arguments(p)
    p.set_defaults(func=lambda args: mod.run(args))


def build_parser():
    parser = argparse.ArgumentParser(prog="trtssd",
                                     description="Real-time SSD object detection on NVIDIA GPUs")
    from .. import __version__
    parser.add_argument("--version", action="version", version="trtssd " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_detect(sub)
    _add_info(sub)
    from . import convert
    convert.add_parser(sub)
    for name, module, text in SUBCOMMANDS:
        try:
            _add_delegate(sub, name, module, text)
        except ImportError as e:
            p = sub.add_parser(name, help=text + " (unavailable: %s)" % e)
            p.set_defaults(func=_unavailable(name, e))
    return parser


def _unavailable(name, err):
    def fn(args):
        from ..core.errors import EnvironmentProblem
        raise EnvironmentProblem("`trtssd %s` is not available in this install (%s)"
                                 % (name, err))
    return fn


class GpuNeeded(Exception):
    """Exit code 2 with a plain message: this mode/device needs a GPU that is not here."""


def _check_gpu_needs(args):
    needs = []
    if args.device == "cuda":
        needs.append("--device cuda")
    if args.mode == "gpu":
        needs.append("--mode gpu")
    if args.backend == "tensorrt":
        needs.append("--backend tensorrt")
    if not needs:
        return
    if args.device == "cpu" and args.mode == "gpu":
        raise GpuNeeded("--mode gpu runs preprocessing and postprocessing on the GPU, so it "
                        "cannot use --device cpu; use --mode sync, async or pipelined on the "
                        "CPU")
    from .info import gpu_status
    ok, _, reason = gpu_status()
    if not ok:
        raise GpuNeeded("%s needs a CUDA GPU, and there is none usable here (%s); on the CPU "
                        "use --device cpu with --mode sync, async or pipelined"
                        % (" and ".join(needs), reason))


def _check_values(args):
    """Each numeric flag checked here, so its error names the flag as typed."""
    from ..core.errors import InputError
    checks = (("--depth", args.depth, lambda v: v >= 1, "must be a whole number >= 1 (2 is "
               "double buffering)"),
              ("--batch", args.batch, lambda v: v >= 1, "must be a whole number >= 1"),
              ("--threshold", args.threshold, lambda v: 0.0 <= v <= 1.0,
               "must be between 0 and 1 (e.g. 0.3)"),
              ("--max-detections", args.max_detections, lambda v: v >= 1, "must be >= 1"),
              ("--max-frames", args.max_frames, lambda v: v >= 0, "must be >= 0"),
              ("--duration", args.duration, lambda v: v > 0, "must be more than 0 seconds"),
              ("--loop", args.loop, lambda v: v >= 1, "must be >= 1"),
              ("--source-timeout-ms", args.source_timeout_ms, lambda v: v >= 0,
               "must be >= 0"))
    for flag, value, ok, why in checks:
        if value is not None and not ok(value):
            raise InputError("%s %s: %s" % (flag, value, why))


def translate(err):
    """An error raised below the command, its Python parameter names (``score_threshold=2.0``)
    replaced by the flags a user types (``--threshold 2.0``)."""
    import re
    text = str(err)

    def sub(m):
        flag = FLAG_OF.get(m.group(1))
        return "%s %s" % (flag, m.group(2)) if flag else m.group(0)
    new = re.sub(r"\b([a-z_]+)=([^\s:;,]+)", sub, text)
    return new


# -- sources -------------------------------------------------------------------------------

def open_sources(texts, loop=1, reconnect=None, warn=None):
    """The sources of ``detect``: every picture file, folder and glob among ``texts`` joined
    into one PictureSource (at the place of the first), each other text opened alone."""
    from ..io.pictures import PictureSource, expand_pictures
    from ..io.sources import open_source
    from ..pipeline.base import close_each
    pictures, order, opened = [], [], []
    for text in texts:
        found = expand_pictures(text)
        if found is not None:
            if not pictures:
                order.append(None)          # the picture stream's place
            pictures.extend(found)
        else:
            order.append(text)
    try:
        for text in order:
            if text is None:
                opened.append(PictureSource(pictures, loop=loop, warn=warn))
                continue
            low = text.lower()
            live = (text.isdigit() or low.startswith(("/dev/video", "rtsp", "http", "csi://",
                                                      "gst:")))
            kw = {}
            if live and reconnect is not None:
                kw["reconnect"] = reconnect
            if not low.startswith("synthetic"):
                kw["warn"] = warn
            opened.append(open_source(text, **kw))
    except BaseException:
        close_each(opened)
        raise
    return opened


# -- signals -------------------------------------------------------------------------------

class Interrupts(object):
    """SIGINT and SIGTERM while a run is in progress: the first one stops the sources
    (``interrupt()``) and raises KeyboardInterrupt in the main thread (the pipeline takes it
    as a clean stop); later ones, and any during ``finishing()``, are only recorded, so
    closing the sources and finalising the outputs is never cut short."""

    def __init__(self):
        self.signum = None
        self.sources = []
        self._finishing = False
        self._writing = False
        self._pending = False
        self._saved = {}

    def _handler(self, signum, frame):
        first = self.signum is None
        if first:
            self.signum = signum
        for s in self.sources:
            try:
                s.interrupt()
            except Exception:
                pass
        if first and not self._finishing:
            if self._writing:         # let the outputs take this frame whole, then stop
                self._pending = True
                return
            raise KeyboardInterrupt("signal %d" % signum)

    def guard(self, sink):
        """``sink`` whose writes are never cut by a signal (a frame reaches every output
        or none); the stop comes right after the write."""
        return _GuardedSink(sink, self)

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._saved[sig] = signal.signal(sig, self._handler)
            except (ValueError, OSError):     # not the main thread: leave them be
                pass
        return self

    def finishing(self):
        self._finishing = True

    def __exit__(self, *exc):
        for sig, old in self._saved.items():
            signal.signal(sig, old)
        return False

    @property
    def exit_code(self):
        return None if self.signum is None else 128 + int(self.signum)


def _guarded_sink_class():
    from ..io.sinks import Sink

    class GuardedSink(Sink):
        def __init__(self, sink, interrupts):
            self.sink, self.interrupts = sink, interrupts
            self.draws = sink.draws

        def write(self, frame, detections):
            it = self.interrupts
            it._writing = True
            try:
                self.sink.write(frame, detections)
            finally:
                it._writing = False
            self.written += 1
            if it._pending and not it._finishing:
                it._pending = False
                raise KeyboardInterrupt("signal %d" % it.signum)

        def close(self):
            self.sink.close()
    return GuardedSink


def _GuardedSink(sink, interrupts):
    return _guarded_sink_class()(sink, interrupts)


# -- detect ----------------------------------------------------------------------------------

def _summary_line(mode, backend_name, stats, sources, written):
    decoded = sum(int(getattr(s, "frames_read", 0) or 0) for s in sources)
    damaged = sum(int(getattr(s, "damaged", 0) or 0) for s in sources)
    gaps = sum(int(getattr(s, "gaps", 0) or 0) for s in sources)
    gap_s = sum(float(getattr(s, "gap_s", 0) or 0) for s in sources)
    lat = stats.summary()["latency_ms"]
    parts = ["%d frames decoded" % decoded]
    if damaged:
        parts.append("%d damaged (skipped)" % damaged)
    parts.append("%d written" % written)
    text = ("trtssd: %s on %s: %s in %.2f s (%.1f FPS), %d dropped, latency p50 %s ms"
            % (mode, backend_name, ", ".join(parts), stats.wall_s, stats.fps, stats.dropped,
               ("%.1f" % lat["p50"]) if lat.get("n") else "n/a"))
    if gaps:
        text += "; %d outage%s, %.1f s without frames" % (gaps, "" if gaps == 1 else "s", gap_s)
    return text


def cmd_detect(args):
    from ..core.errors import InputError, TrtssdError
    from ..detector import Detector
    from ..io.console import ConsoleSink
    from ..io.draw import parse_overlay
    from ..io.pictures import PictureSource
    from ..io.sinks import SinkError, open_sink
    from ..io.sources import ImageSource
    from ..pipeline import batch_for, default_mode
    from ..pipeline.base import close_each

    if args.gpus is not None or args.ray is not None:       # several GPUs, or Ray
        from ..scale.commands import run_from_args
        return run_from_args(args)
    _check_values(args)
    overlay = parse_overlay(args.overlay)
    warnings = []

    def warn(msg):
        warnings.append(msg)
        if not args.quiet:
            sys.stderr.write("trtssd: warning: %s\n" % msg)

    interrupts = Interrupts()
    sources, sinks, det, user_sink = [], [], None, None
    written = 0
    with interrupts:
        try:
            sources = open_sources(args.sources, loop=args.loop, reconnect=args.reconnect,
                                   warn=warn)
            interrupts.sources = sources
            mode = args.mode or default_mode(len(sources))
            if len(sources) > 1 and mode != "multi":
                raise InputError("%d sources were given with --mode %s; several videos, "
                                 "cameras or streams run only in --mode multi (pictures are "
                                 "one stream)" % (len(sources), mode))
            args.mode = mode
            _check_gpu_needs(args)
            extra = {}
            for fn in DETECTOR_OPTIONS:
                extra.update(fn(args) or {})
            from ..models import resolve
            from ..models.sidecar import model_for_args
            model = resolve.resolve_model(args.model)
            label_path = resolve.resolve_labels(args.labels, model)
            model = model_for_args(model, args)          # a foreign ONNX's spec flags
            try:
                det = Detector(model, labels=label_path, backend=args.backend,
                               device=args.device, precision=args.precision, mode=mode,
                               depth=args.depth, batch=args.batch, threshold=args.threshold,
                               max_detections=args.max_detections, classes=args.classes,
                               max_batch=batch_for(mode, len(sources), args.batch), **extra)
            except InputError as e:
                raise InputError(translate(e))
            backend_name = det.backend.name
            if mode == "gpu" and det.backend.device != "cuda":
                raise GpuNeeded("--mode gpu needs a CUDA backend, but the %s backend chosen "
                                "runs on the CPU; pass --device cuda on a machine with a GPU, "
                                "or use --mode sync" % det.backend.name)
            outputs = list(args.output or [])
            if args.display:
                outputs.append("window")
            fps = getattr(sources[0], "fps", None) or 30.0
            user_sink = open_sink(outputs, labels=det.labels, fps=fps, overlay=overlay)
            sinks.append(user_sink)
            pictures = all(isinstance(s, (PictureSource, ImageSource)) for s in sources)
            if not args.quiet:
                total = None
                if len(sources) == 1:
                    total = getattr(sources[0], "frame_count", None)
                    if isinstance(sources[0], ImageSource):
                        total = args.loop
                    if args.max_frames is not None and total:
                        total = min(total, args.max_frames)
                console = ConsoleSink(pictures=pictures,
                                      progress=not pictures and _is_tty(sys.stderr),
                                      total=total, labels=det.labels)
                sinks.append(console)
                if not outputs and not pictures:
                    sys.stderr.write("trtssd: no -o given: the detections are not saved (-o "
                                     "dets.jsonl, -o - for stdout, -o out.mp4 or -o "
                                     "folder/)\n")
            sink = open_sink(sinks) if len(sinks) > 1 else sinks[0]
            sink = interrupts.guard(sink)
            try:
                stats = det.run(sources, sink, max_frames=args.max_frames,
                                duration_s=args.duration,
                                source_timeout_ms=args.source_timeout_ms)
            except InputError as e:
                raise InputError(translate(e))
            written = user_sink.written
        except TrtssdError as e:
            interrupts.finishing()
            close_each(sinks + [det] + sources)   # the run's error is the one reported
            n = getattr(user_sink, "written", 0) if user_sink is not None else 0
            if isinstance(e, SinkError) and n:
                e = SinkError("%s (after %d frames; the incomplete output was removed)"
                              % (e, n))
            elif n and not isinstance(e, InputError):
                e = type(e)("%s (%d frames were written before; the outputs hold them)"
                            % (e, n))
            _quiet_stdout(args)
            raise e
        except KeyboardInterrupt:          # before or after the run proper
            interrupts.finishing()
            err = close_each(sinks + [det] + sources)
            n = getattr(user_sink, "written", 0) if user_sink is not None else 0
            if err is not None:
                sys.stderr.write("trtssd: error: %s\n" % err)
            sys.stderr.write("trtssd: interrupted%s after %d frames; the outputs are complete "
                             "up to there\n" % (" by signal %d" % interrupts.signum
                                                if interrupts.signum else "", n))
            return interrupts.exit_code or 130
        except BaseException:
            interrupts.finishing()
            close_each(sinks + [det] + sources)
            raise
        interrupts.finishing()
        err = close_each(sinks)
        if err is None:
            written = user_sink.written
        close_each([det] + sources)
        if err is not None:
            _quiet_stdout(args)
            if isinstance(err, SinkError) and user_sink.written:
                raise SinkError("%s (after %d frames; the incomplete output was removed)"
                                % (err, user_sink.written))
            raise err
    summary = stats.summary()
    summary["frames_decoded"] = sum(int(getattr(s, "frames_read", 0) or 0) for s in sources)
    summary["frames_damaged"] = sum(int(getattr(s, "damaged", 0) or 0) for s in sources)
    summary["frames_written"] = written
    summary["source_outages"] = sum(int(getattr(s, "gaps", 0) or 0) for s in sources)
    summary["source_outage_s"] = sum(float(getattr(s, "gap_s", 0) or 0) for s in sources)
    summary["warnings"] = warnings
    if args.stats:
        try:
            with open(args.stats, "w") as f:
                json.dump(summary, f, indent=1, default=str)
        except OSError as e:
            from ..io.sinks import describe_os_error
            raise describe_os_error(args.stats, e)
    if not args.quiet:
        sys.stderr.write(_summary_line(mode, backend_name, stats, sources, written) + "\n")
    if interrupts.exit_code is not None:
        sys.stderr.write("trtssd: interrupted by signal %d after %d frames; the outputs are "
                         "complete up to there\n" % (interrupts.signum, written))
        return interrupts.exit_code
    if summary["frames_damaged"]:
        sys.stderr.write("trtssd: %d damaged frame%s could not be processed (see the warnings "
                         "above)\n" % (summary["frames_damaged"],
                                       "" if summary["frames_damaged"] == 1 else "s"))
        return 1
    return 0


def _is_image(text):
    """True for a picture file's name (trtssd.scale shards sources by it)."""
    from ..io.pictures import is_picture
    return is_picture(text)


def _is_tty(stream):
    try:
        return stream.isatty()
    except Exception:
        return False


def _quiet_stdout(args):
    """After stdout's reader went away, point stdout at /dev/null so that the interpreter's
    last flush at exit does not print a second error."""
    if "-" not in (args.output or []):
        return
    try:
        sys.stdout.flush()
    except Exception:
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, sys.stdout.fileno())
            os.close(fd)
        except Exception:
            pass


def cmd_info(args):
    from .info import collect, format_info
    if args.model:
        from ..models.onnx_models import describe_model
        from ..models.sidecar import spec_overrides_from_args
        print(describe_model(args.model, spec_overrides_from_args(args), args.labels))
        return 0
    info = collect()
    if args.json:
        print(json.dumps(info, indent=1, default=str))
    else:
        print(format_info(info))
    return 0


def main(argv=None):
    """Entry point; returns the exit code (0 ok, 1 error, 2 missing GPU/library/tool,
    130 interrupted by Ctrl-C, 143 by SIGTERM)."""
    from ..core.errors import EnvironmentProblem, TrtssdError
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        rc = args.func(args)
    except GpuNeeded as e:
        sys.stderr.write("trtssd: %s\n" % e)
        return 2
    except EnvironmentProblem as e:
        sys.stderr.write("trtssd: error: %s\n" % e)
        return 2
    except TrtssdError as e:
        sys.stderr.write("trtssd: error: %s\n" % e)
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("trtssd: interrupted\n")
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
