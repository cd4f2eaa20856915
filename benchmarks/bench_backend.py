#!/usr/bin/env python3
"""The network alone on the torch backend: batch x precision x (eager | CUDA graph).

Each configuration: a correctness check against the ONNX Runtime CPU reference first (the same
check as tests/test_backends_gpu.py, loose), then warm-up by time, then every repetition timed
with CUDA events around ``ctx.enqueue(stream)``; reports the median with the 10th-90th
percentile spread and images per second.

    python benchmarks/bench_backend.py [--model detect.tflite|model.onnx|synthetic]
        [--batch 1 8 32] [--precision fp32 fp16] [--mode graph eager] [--streams 1 2 3 4]
        [--json out.json]

Targets on an H100 (not asserted): batch 1 graph <= 0.65 ms fp32, <= 0.55 ms fp16; batch 8
fp16 >= 8,000 images/s.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def _bench_one(torch, backend, batch, warmup_s, reps):
    dev = torch.device(backend.device)
    tdtype = torch.float16 if backend.input_dtype == np.float16 else torch.float32
    images = torch.randn((batch, 3, backend.spec.input_height, backend.spec.input_width),
                         device=dev).clamp_(-1, 1).to(tdtype)
    b_shape, s_shape = backend.output_shapes(batch)
    if backend.device == "cpu":
        images = images.numpy()
        boxes, scores = np.empty(b_shape, np.float32), np.empty(s_shape, np.float32)
    else:
        boxes = torch.empty(b_shape, device=dev)
        scores = torch.empty(s_shape, device=dev)
    ctx = backend.create_context(images, boxes, scores)
    times = []
    if backend.device == "cpu":
        t_end = time.perf_counter() + warmup_s
        while time.perf_counter() < t_end:
            ctx.enqueue()
        for _ in range(reps):
            t0 = time.perf_counter()
            ctx.enqueue()
            times.append((time.perf_counter() - t0) * 1e3)
    else:
        stream = torch.cuda.Stream()
        t_end = time.perf_counter() + warmup_s
        while time.perf_counter() < t_end:
            ctx.enqueue(stream)
            stream.synchronize()
        for _ in range(reps):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record(stream)
            ctx.enqueue(stream)
            e1.record(stream)
            e1.synchronize()
            times.append(e0.elapsed_time(e1))
    ctx.close()
    t = np.array(times)
    med = float(np.median(t))
    return {"batch": batch, "median_ms": med, "p10_ms": float(np.percentile(t, 10)),
            "p90_ms": float(np.percentile(t, 90)), "images_per_s": batch * 1e3 / med,
            "reps": reps}


def _bench_streams(torch, backend, batch, streams, warmup_s, reps):
    """``streams`` batches in flight, one context and stream each, one thread enqueuing round
    robin and waiting, before it re-enqueues on a stream, for that stream's previous batch:
    the concurrency of the pipelined schedule (trtssd bench holds pipelined-dD to this figure
    at D streams). Host wall clock over ``reps`` rounds after the warm-up."""
    dev = torch.device(backend.device)
    tdtype = torch.float16 if backend.input_dtype == np.float16 else torch.float32
    b_shape, s_shape = backend.output_shapes(batch)
    lanes = []
    for _ in range(streams):
        images = torch.randn((batch, 3, backend.spec.input_height, backend.spec.input_width),
                             device=dev).clamp_(-1, 1).to(tdtype)
        ctx = backend.create_context(images, torch.empty(b_shape, device=dev),
                                     torch.empty(s_shape, device=dev))
        lanes.append((ctx, torch.cuda.Stream(), torch.cuda.Event()))

    from trtssd.commands.bench import enqueue_rounds

    def rounds(n):
        enqueue_rounds(lanes, n)
    for _, stream, done in lanes:
        done.record(stream)
    t_end = time.perf_counter() + warmup_s
    while time.perf_counter() < t_end:
        rounds(10)
    t0 = time.perf_counter()
    rounds(reps)
    for _, _, done in lanes:
        done.synchronize()
    wall = time.perf_counter() - t0
    for ctx, _, _ in lanes:
        ctx.close()
    ms = wall * 1e3 / (reps * streams)
    return {"batch": batch, "streams": streams, "median_ms": ms, "p10_ms": None,
            "p90_ms": None, "images_per_s": batch * 1e3 / ms, "reps": reps}


def main(argv=None):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="default: trtssd's model lookup, else "
                   "'synthetic' (random weights, timing only)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--precision", nargs="+", default=["fp32", "fp16"])
    p.add_argument("--mode", nargs="+", default=["graph", "eager"], choices=("graph", "eager"))
    p.add_argument("--channels-last", dest="channels_last", action="store_true", default=None,
                   help="NHWC activations (the backend's default on CUDA)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="NCHW activations")
    p.add_argument("--streams", type=int, nargs="+", default=[1],
                   help="batches in flight (graph mode on CUDA): 1 = back to back on one "
                        "stream, CUDA events; N > 1 = N streams enqueued round robin by one "
                        "thread, host clock (the ceilings trtssd bench holds pipelined and "
                        "multi to)")
    p.add_argument("--warmup-s", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--no-check", action="store_true", help="skip the correctness check")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)

    import torch
    from trtssd.models import resolve as models
    from trtssd.backends.torch_backend import TorchBackend
    from trtssd.core.errors import ModelError
    model = a.model
    if model is None:
        try:
            model = models.resolve_model()
        except ModelError:
            model = models.SYNTHETIC
    onnx_path = models.onnx_for(model)
    spec = models.load_spec(onnx_path)
    if spec.synthetic:
        print("NOTE: synthetic model (random weights): timings only")
    if a.device == "cpu":
        a.precision = ["fp32"]
        a.mode = ["eager"]

    ref = None
    if not a.no_check:
        import onnxruntime as ort
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        x = np.random.RandomState(0).uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)
        ref = (x, sess.run(None, {"images": x}))

    rows = []
    for precision in a.precision:
        for mode in a.mode:
            be = TorchBackend(onnx_path, device=a.device, precision=precision,
                              max_batch=max(a.batch), cuda_graph=(mode == "graph"),
                              channels_last=a.channels_last)
            if ref is not None:
                b, s = be.infer(ref[0].astype(be.input_dtype))
                err = max(float(np.abs(b - ref[1][0]).max()), float(np.abs(s - ref[1][1]).max()))
                if err > 0.5:
                    print("CHECK FAILED: %s %s differs from ONNX Runtime by %.3g" % (precision,
                                                                                    mode, err))
                    return 1
            for batch in a.batch:
                r = _bench_one(torch, be, batch, a.warmup_s, a.reps)
                r.update(precision=precision, mode=mode, device=a.device,
                         channels_last=be.channels_last, streams=1)
                rows.append(r)
                print("%-5s %-5s %-4s batch %3d: %8.3f ms median (p10 %.3f, p90 %.3f)  %9.0f img/s"
                      % (precision, mode, "NHWC" if be.channels_last else "NCHW", batch,
                         r["median_ms"], r["p10_ms"], r["p90_ms"], r["images_per_s"]))
                for n in [k for k in a.streams if k > 1] if a.device == "cuda" else []:
                    r = _bench_streams(torch, be, batch, n, a.warmup_s, a.reps)
                    r.update(precision=precision, mode=mode, device=a.device,
                             channels_last=be.channels_last)
                    rows.append(r)
                    print("%-5s %-5s %-4s batch %3d x %d streams: %8.3f ms per enqueue  "
                          "%9.0f img/s" % (precision, mode, "NHWC" if be.channels_last else
                                           "NCHW", batch, n, r["median_ms"],
                                           r["images_per_s"]))
            be.close()
    if a.json:
        meta = {"model": os.path.basename(str(model)), "synthetic": spec.synthetic,
                "torch": torch.__version__, "python": platform.python_version(),
                "gpu": torch.cuda.get_device_name(0) if a.device == "cuda" else None}
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
