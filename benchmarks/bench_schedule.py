"""Host time per frame of a whole GPU schedule, with every driver call a no-op (CPU only, no
GPU): what trtssd's own Python costs per frame in the gpu, pipelined and multi modes.

    python benchmarks/bench_schedule.py [--modes gpu,pipelined,multi] [--depth 3]
                                        [--frames 6000] [--runs 3] [--json out.json]

Each run is ``trtssd.pipeline.run`` of synthetic 1080p sources (one; eight for multi, at batch
8) through bench_host.py's ``noop_layer`` (a GpuLayer whose backend enqueues nothing and whose
postprocessor's result memory holds 10 kept boxes a frame) into a NullSink. Its figures are
the RunClock's span (from the end of the setup to the last result): wall and process CPU
microseconds per frame, median (min) over ``--runs``. The real model's spec:
$TRTSSD_MODEL, or ../shared/models/detect.tflite beside a checkout.
"""
import argparse
import json
import os
import platform
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks._overhead import noop_driver  # noqa: E402
from benchmarks.bench_host import KEPT, noop_layer  # noqa: E402,F401 (KEPT: for its test)


def run_once(spec, mode, depth, frames):
    from trtssd.io.sinks import NullSink
    from trtssd.io.sources import SyntheticSource
    from trtssd.pipeline import PipelineOptions, run
    n = 8 if mode == "multi" else 1
    layer = noop_layer(spec, n)
    srcs = [SyntheticSource(1920, 1080, frames=frames // n, seed=i, source_id="s%d" % i)
            for i in range(n)]
    st = run(srcs if mode == "multi" else srcs[0], None, NullSink(),
             PipelineOptions(mode=mode, depth=depth, source_timeout_ms=200), device=layer)
    return st.wall_s / st.frames * 1e6, st.cpu_s / st.frames * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modes", default="gpu,pipelined,multi")
    p.add_argument("--depth", type=int, default=3, help="pipelined depth (multi runs at 2)")
    p.add_argument("--frames", type=int, default=6000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    from trtssd.models.resolve import load_spec, onnx_for, resolve_model
    spec = load_spec(onnx_for(resolve_model(None)))
    res = {}
    with noop_driver():
        for mode in args.modes.split(","):
            depth = args.depth if mode == "pipelined" else 2
            w, c = zip(*[run_once(spec, mode, depth, args.frames) for _ in range(args.runs)])
            name = "%s-d%d" % (mode, depth) if mode == "pipelined" else mode
            res[name] = {"wall_us_per_frame": float(np.median(w)), "wall_min": float(min(w)),
                         "cpu_us_per_frame": float(np.median(c)), "cpu_min": float(min(c)),
                         "runs": len(w)}
    print("host us per frame, no-op driver, Python %s on %s: wall / CPU, median (min)"
          % (platform.python_version(), platform.machine()))
    for name, r in res.items():
        print("%-14s %7.1f / %7.1f  (%.1f / %.1f)" % (name, r["wall_us_per_frame"],
                                                      r["cpu_us_per_frame"], r["wall_min"],
                                                      r["cpu_min"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"host_us_per_frame": res, "python": platform.python_version()}, f,
                      indent=1)


if __name__ == "__main__":
    main()
