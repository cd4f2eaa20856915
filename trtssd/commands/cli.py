"""The `trtssd` command (also `python -m trtssd`).

    trtssd detect SOURCE [SOURCE ...] [--model PATH] [--backend auto|tensorrt|torch|onnxruntime]
                  [--device cuda|cpu] [--mode sync|async|gpu|pipelined|multi] [--depth N]
                  [--threshold 0.3] [--output PATH] [--display] [--max-frames N]
    trtssd info
    trtssd bench ...
    trtssd build-engine ...

Errors that trtssd raises on purpose print as one line (``trtssd: error: ...``) and exit 1;
a missing GPU, library or tool exits 2. Nothing is imported or parsed at import time.
"""
import argparse
import json
import sys

MODE_CHOICES = ("sync", "async", "gpu", "pipelined", "multi")


def _add_detect(sub):
    p = sub.add_parser("detect", help="run the detector on images, videos, cameras or streams",
                       description="Detect objects in SOURCE: an image or video file, a camera "
                                   "index (0) or /dev/videoN, rtsp://..., csi://N (Jetson), "
                                   "gst:PIPELINE, or synthetic:WxH[@FPS]. Several sources run "
                                   "in the multi mode, batched together.")
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("--model", default=None,
                   help="detect.tflite, an .onnx or a TensorRT engine (default: $TRTSSD_MODEL, "
                        "or ../shared/models/detect.tflite from a checkout)")
    p.add_argument("--labels", default=None,
                   help="label file, one name a line (default: $TRTSSD_LABELS or the one "
                        "beside the model)")
    p.add_argument("--backend", default="auto",
                   choices=("auto", "tensorrt", "torch", "onnxruntime"),
                   help="auto = TensorRT if importable, else PyTorch on CUDA, else ONNX Runtime "
                        "on the CPU")
    p.add_argument("--device", default=None, choices=("cuda", "cpu"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    p.add_argument("--mode", default=None, choices=MODE_CHOICES,
                   help="sync (default for one source), async, gpu, pipelined, multi (default "
                        "for several sources)")
    p.add_argument("--depth", type=int, default=2,
                   help="frames in flight in the pipelined mode (2 = double buffering)")
    p.add_argument("--batch", type=int, default=1, help="frames per inference (pipelined)")
    p.add_argument("--threshold", type=float, default=0.3, help="score threshold (0.3)")
    p.add_argument("--max-detections", type=int, default=None)
    p.add_argument("--output", "-o", action="append", default=None, metavar="PATH",
                   help="x.jsonl: one JSON line of detections per frame; x.mp4/x.avi: annotated "
                        "video; a folder: annotated images (repeatable)")
    p.add_argument("--display", action="store_true", help="show a window (q or Esc stops)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--loop", type=int, default=1, help="give an image source N times")
    p.add_argument("--source-timeout-ms", type=float, default=50.0,
                   help="multi: how long a round waits for each source's frame")
    p.add_argument("--stats", default=None, metavar="PATH",
                   help="write the run's statistics (RunStats summary) as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")
    from ..scale.commands import add_detect_arguments
    add_detect_arguments(p)
    __import__("trtssd.models.sidecar").models.sidecar.add_spec_arguments(p)
    p.set_defaults(func=cmd_detect)


def _add_info(sub):
    p = sub.add_parser("info", help="GPU, driver, CUDA, and which backends and modes work here")
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.add_argument("model", nargs="?", default=None,
                   help="a model file: print how trtssd reads it (family, input, outputs, "
                        "classes, anchors, NMS)")
    p.add_argument("--labels", default=None, help="label file (default: beside the model)")
    __import__("trtssd.models.sidecar").models.sidecar.add_spec_arguments(p)
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
    for name, module, text in (("bench", "commands.bench", "every pipeline mode side by side"),
                               ("build-engine", "backends.tensorrt.build",
                                "build a TensorRT engine from the model")):
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


def cmd_detect(args):
    from ..models import resolve as models
    from ..backends import create_backend
    from ..core.detections import LabelMap
    from ..core.errors import InputError
    from ..pipeline import PipelineOptions, batch_for, default_mode, run
    from ..io.sinks import open_sink
    from ..io.sources import open_source

    if args.gpus is not None or args.ray is not None:
        from ..scale.commands import run_from_args
        return run_from_args(args)
    mode = args.mode or default_mode(len(args.sources))
    if len(args.sources) > 1 and mode != "multi":
        raise InputError("%d sources were given with --mode %s; several sources run only in "
                         "--mode multi" % (len(args.sources), mode))
    args.mode = mode
    _check_gpu_needs(args)
    model = models.resolve_model(args.model)
    label_path = models.resolve_labels(args.labels, model)
    from ..models.sidecar import model_for_args
    model = model_for_args(model, args)
    options = PipelineOptions(mode=mode, depth=args.depth, batch=args.batch,
                              score_threshold=args.threshold,
                              max_detections=args.max_detections, max_frames=args.max_frames,
                              duration_s=args.duration, source_timeout_ms=args.source_timeout_ms)
    sources, sink, backend = [], None, None
    try:
        for text in args.sources:
            kw = {"loop": args.loop} if _is_image(text) else {}
            sources.append(open_source(text, **kw))
        max_batch = batch_for(mode, len(sources), args.batch)
        backend = create_backend(args.backend, model=model, device=args.device,
                                 precision=args.precision, max_batch=max_batch)
        if mode == "gpu" and backend.device != "cuda":
            raise GpuNeeded("--mode gpu needs a CUDA backend, but the %s backend chosen runs "
                            "on the CPU; pass --device cuda on a machine with a GPU, or use "
                            "--mode sync" % backend.name)
        labels = (LabelMap.from_file(label_path, backend.spec.num_classes)
                  if label_path else None)
        outputs = list(args.output or [])
        if args.display:
            outputs.append("window")
        fps = getattr(sources[0], "fps", None) or 30.0
        sink = open_sink(outputs if len(outputs) > 1 else (outputs[0] if outputs else None),
                         labels=labels, fps=fps)
        stats = run(sources, backend, sink=sink,
                    options=options, labels=labels)
    finally:
        _close_quietly([sink, backend] + sources)
    summary = stats.summary()
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump(summary, f, indent=1, default=str)
    if not args.quiet:
        lat = summary["latency_ms"]
        sys.stderr.write("trtssd: %s on %s: %d frames in %.2f s (%.1f FPS), %d dropped, latency "
                         "p50 %s ms%s\n"
                         % (mode, backend.name, stats.frames, stats.wall_s, stats.fps,
                            stats.dropped, ("%.1f" % lat["p50"]) if lat.get("n") else "n/a",
                            "".join("; " + n for n in stats.notes if "interrupted" in n)))
    return 0


def _is_image(text):
    import os
    from ..io.sources import IMAGE_EXTENSIONS
    return os.path.splitext(str(text).lower())[1] in IMAGE_EXTENSIONS


def _close_quietly(things):
    from ..pipeline.base import close_each
    err = close_each(things)
    if err is not None and sys.exc_info()[0] is None:
        raise err


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
    130 interrupted)."""
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
