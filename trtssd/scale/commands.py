"""``trtssd detect --gpus ...`` and ``trtssd detect --ray ...``: the options and their runs.

The detect command adds these options with :func:`add_detect_arguments` and hands a run that
names one of them to :func:`run_from_args`, which returns the exit code.
"""
import json
import os
import sys


def add_detect_arguments(parser):
    """``--gpus``, ``--ray`` and the Ray run's options, for ``trtssd detect``."""
    g = parser.add_argument_group("several GPUs, or a Ray cluster")
    g.add_argument("--gpus", default=None, metavar="all|0,1,...",
                   help="shard the sources over these GPUs, one process each, results merged "
                        "into the outputs in frame order (with --device cpu: that many CPU "
                        "worker processes, for testing)")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="spread the FILES (videos, pictures, folders of pictures) over a Ray "
                        "cluster's GPUs, one actor per GPU; ADDRESS: auto, ray://HOST:PORT or "
                        "HOST:PORT (default: a cluster on this machine); -o names the folder "
                        "of results, one per file. Write it after the files, or as --ray=ADDR")
    g.add_argument("--ray-actors", type=int, default=None, metavar="N",
                   help="Ray: actors (default: one per GPU of the cluster; without GPUs, one "
                        "per 2 CPUs)")
    g.add_argument("--ray-retries", type=int, default=1, metavar="N",
                   help="Ray: times a failed file is tried again before it is reported (1)")
    g.add_argument("--ray-format", default="jsonl", choices=("jsonl", "parquet"),
                   help="Ray: result files as JSON lines (default) or Parquet (needs pyarrow)")


def _looks_like_address(text):
    t = str(text)
    if t in ("local", "auto") or t.startswith("ray://"):
        return True
    host, sep, port = t.rpartition(":")
    return bool(sep and host and port.isdigit() and not os.path.exists(t))


def run_from_args(args):
    """Run ``trtssd detect`` with ``--gpus`` or ``--ray``; returns the exit code."""
    from ..core.errors import InputError
    if args.gpus is not None and args.ray is not None:
        raise InputError("--gpus and --ray are two ways to spread the work; give one (a Ray "
                         "cluster picks its GPUs itself)")
    if args.ray is not None:
        return _run_ray(args)
    return _run_gpus(args)


def _detector_kwargs(args):
    return dict(model=args.model, backend=args.backend, device=args.device,
                precision=args.precision, mode=args.mode, depth=args.depth, batch=args.batch,
                threshold=args.threshold, max_detections=args.max_detections)


def _write_stats(args, summary):
    if getattr(args, "stats", None):
        with open(args.stats, "w") as f:
            json.dump(summary, f, indent=1, default=str)


def _run_gpus(args):
    from ..commands.cli import _is_image
    from ..core.errors import InputError
    from .gpus import parse_devices, run_on_gpus, shard
    devices = parse_devices(args.gpus, cpu=args.device == "cpu")
    if args.mode and args.mode != "multi":
        crowded = [(g, len(items)) for g, items in shard(args.sources, devices)
                   if len(items) > 1]
        if crowded:
            raise InputError("--mode %s with --gpus: GPU %d gets %d sources, and several "
                             "sources on one GPU run only in --mode multi; use --mode multi, "
                             "or as many GPUs as sources" % ((args.mode,) + crowded[0]))
    sources = [(t, {"loop": args.loop}) if _is_image(t) else t for t in args.sources]
    outputs = list(args.output or [])
    if args.display:
        outputs.append("window")
    stats = run_on_gpus(sources, outputs, devices=devices, labels=args.labels,
                        max_frames=args.max_frames, duration_s=args.duration,
                        **_detector_kwargs(args))
    summary = stats.summary()
    _write_stats(args, summary)
    if not args.quiet:
        lat = summary["latency_ms"]
        sys.stderr.write("trtssd: %s over GPU %s: %d frames in %.2f s (%.1f FPS), %d dropped, "
                         "latency p50 %s ms\n"
                         % (stats.mode, ",".join(map(str, devices)), stats.frames, stats.wall_s,
                            stats.fps, stats.dropped,
                            ("%.1f" % lat["p50"]) if lat.get("n") else "n/a"))
        for n in stats.notes:
            if n.startswith(("GPU ", "interrupted")):
                sys.stderr.write("trtssd:   %s\n" % n)
    return 0


def _run_ray(args):
    from ..core.errors import InputError
    from .ray_archive import run_archive
    address, files = args.ray, list(args.sources)
    if not _looks_like_address(address):
        files.insert(0, address)      # `--ray a.mp4 b.mp4`: the first file is not an address
        address = "local"
    outs = list(args.output or [])
    if len(outs) != 1 or os.path.splitext(outs[0])[1]:
        raise InputError("--ray writes one result file per input into a folder: give it as "
                         "-o FOLDER (got %s)" % (", ".join(outs) or "no -o"))
    if args.display:
        raise InputError("--display shows one machine's frames; a Ray run writes files "
                         "(leave out --display)")
    summary = run_archive(files, outs[0], address=None if address == "local" else address,
                          labels=args.labels, actors=args.ray_actors, retries=args.ray_retries,
                          fmt=args.ray_format, loop=args.loop,
                          log=None if args.quiet else _log, **_detector_kwargs(args))
    _write_stats(args, summary)
    if not args.quiet:
        sys.stderr.write("trtssd: ray: %d of %d files, %d frames in %.2f s (%.1f FPS) on %d "
                         "actor%s; %d failed%s\n"
                         % (summary["files_done"], summary["files"], summary["frames"],
                            summary["wall_s"], summary["fps"], summary["actors"],
                            "" if summary["actors"] == 1 else "s", len(summary["failures"]),
                            "".join("\ntrtssd:   %s: %s" % (f["file"], f["error"])
                                    for f in summary["failures"])))
    return 1 if summary["failures"] else 0


def _log(line):
    sys.stderr.write("trtssd: ray: %s\n" % line)
