"""Time SSD decode + NMS: the GPU kernels one by one (CUDA events) and the NumPy path.

    python benchmarks/bench_postprocess.py [--iters 500] [--batches 1,8] [--json out.json]
                                           [--cases worst,realistic,all] [--cpu-only]
                                           [--layout tflite|pytorch-ssd]
    python benchmarks/bench_postprocess.py --python-overhead     # CPU only, no GPU

Inputs are shaped like the COCO SSD's outputs (1917 anchors, 91 score columns): sigmoid of
random logits, low everywhere except some high-scoring anchors per frame. Cases:
- worst: 300 hot anchors, threshold 0.3: ~250 candidates, 100 boxes kept (round 1's case);
- realistic: 30 hot anchors, threshold 0.3: ~25 candidates, as on a real picture;
- all: threshold 1e-8 (TFLite's own): all 1917 anchors are candidates.
``--layout pytorch-ssd``: pytorch-ssd's mb1-ssd outputs instead (3000 decoded x1,y1,x2,y2 boxes,
21 softmaxed score columns, per-class NMS at IoU 0.45 with its predictor's semantics); "all"
is then threshold 0.01 (its predictor's filter threshold).
The GPU result is checked against NumPy before timing. GPU times: a 256 MiB memset (a filler,
~100 us) is queued first so the whole enqueue reaches the stream before the GPU gets to it;
events between the launches then give each kernel's time (with its launch gap) and the total
without host latency. "idle" is the interval of events around one enqueue on an idle stream
(round 1's number: it includes the host's submission time when that is longer); "host" is
the back-to-back host time per enqueue. Medians and 10th/90th percentiles. NumPy time is
wall-clock per call. Kernels a layout does not need (pytorch-ssd: no ssd_best_class) show
the ~0 us between two back-to-back events.
``--python-overhead``: the Python part of one ``enqueue`` with a no-op
driver (CPU only; the GPU driver's own launch/copy/record calls come on top). Nothing here
runs at import.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def coco_like(seed=0, num_anchors=1917, num_classes=91):
    from trtssd.core.spec import BoxCoder, ModelSpec, NmsParams
    rng = np.random.default_rng(seed)
    # Anchors on a grid of centres with several shapes each, like SSD's (6 layers, 1917).
    yx = rng.uniform(0.02, 0.98, size=(num_anchors, 2))
    hw = rng.uniform(0.05, 0.9, size=(num_anchors, 2))
    anchors = np.concatenate([yx, hw], 1).astype(np.float32)
    return ModelSpec("coco-like (synthetic outputs)", 300, 300, (128.,) * 3, (1 / 128.,) * 3,
                     "RGB", num_classes, anchors, BoxCoder(10., 10., 5., 5.),
                     NmsParams(1e-8, 0.6, 10, 1, 100, False))


def pytorch_ssd_like(seed=0):
    """pytorch-ssd's mb1-ssd output layout: 3000 boxes, 21 columns (VOC), its predictor's NMS."""
    from trtssd.models.onnx_models import pytorch_ssd_spec
    return pytorch_ssd_spec("mb1-ssd-like (synthetic outputs)", 300, 300, 21, 3000)


def outputs(spec, batch, seed=1, hot=300):
    rng = np.random.default_rng(seed)
    a, c = spec.num_anchors, spec.num_classes
    if spec.outputs.kind == "decoded":
        # corners around clustered centres, softmaxed scores with `hot` confident anchors
        ctr = rng.uniform(0.1, 0.9, size=(batch, a, 2))
        wh = rng.uniform(0.05, 0.5, size=(batch, a, 2))
        boxes = np.concatenate([ctr - wh / 2, ctr + wh / 2], axis=2).astype(np.float32)
        logits = rng.normal(0, 1, size=(batch, a, c))
        logits[:, :, 0] += 4.0
        for f in range(batch):
            idx = rng.choice(a, size=hot, replace=False)
            logits[f, idx, rng.integers(1, c, size=hot)] += rng.uniform(3, 9, size=hot)
        e = np.exp(logits - logits.max(axis=2, keepdims=True))
        return boxes, (e / e.sum(axis=2, keepdims=True)).astype(np.float32)
    enc = rng.normal(0, 1, size=(batch, a, 4)).astype(np.float32)
    logits = rng.normal(-8, 1.5, size=(batch, a, c))
    for f in range(batch):
        idx = rng.choice(a, size=hot, replace=False)
        logits[f, idx, rng.integers(1, c, size=hot)] = rng.uniform(-2, 4, size=hot)
    return enc, (1 / (1 + np.exp(-logits))).astype(np.float32)


def stats_ms(samples):
    s = np.asarray(samples, dtype=np.float64)
    return {"median_ms": float(np.median(s)), "p10_ms": float(np.percentile(s, 10)),
            "p90_ms": float(np.percentile(s, 90)), "n": int(len(s))}


def bench_numpy(spec, enc, scores, threshold, iters):
    from trtssd.postprocess import postprocess_cpu
    for _ in range(3):
        postprocess_cpu(enc, scores, spec, None, threshold, max_detections=100)
    t = []
    for _ in range(iters):
        t0 = time.perf_counter()
        postprocess_cpu(enc, scores, spec, None, threshold, max_detections=100)
        t.append((time.perf_counter() - t0) * 1e3)
    return stats_ms(t)


# no copy step: the kernels write the kept rows into mapped pinned memory
STEPS = ("best_class", "sort", "nms")
FILLER_BYTES = 256 << 20     # a memset of 256 MiB keeps an H100 busy ~100 us
CASES = {"worst": (300, None), "realistic": (30, None), "all": (300, 1e-8)}


def bench_gpu(spec, enc, scores, threshold, iters, warmup_s=0.3):
    from trtssd.gpu.cuda import DeviceArray, driver
    from trtssd.postprocess import GpuPostprocessor, select_frame
    drv = driver()
    batch = enc.shape[0]
    stream = drv.Stream()
    with DeviceArray(enc.shape, np.float32) as e, DeviceArray(scores.shape, np.float32) as s, \
            DeviceArray((FILLER_BYTES,), np.uint8) as filler, \
            GpuPostprocessor(spec, max_batch=batch, score_threshold=threshold,
                             max_detections=100) as post:
        e.copy_from_host(enc)
        s.copy_from_host(scores)
        post.enqueue(e, s, batch, stream)
        rows = post.raw_results()
        kept, cands = [], []
        for f in range(batch):   # correctness first
            idx, cls = select_frame(enc[f], scores[f], spec, threshold, 100)[:2]
            if (rows[f][:, 6].astype(np.int64).tolist() != idx.tolist()
                    or rows[f][:, 5].astype(np.int64).tolist() != cls.tolist()):
                raise SystemExit("GPU result differs from NumPy at frame %d: not timing" % f)
            kept.append(len(idx))
            cands.append(int(post._out_host[f, 1]))
        t_end = time.perf_counter() + warmup_s
        while time.perf_counter() < t_end:
            post.enqueue(e, s, batch, stream)
            post.wait()
        ev = [drv.Event() for _ in range(len(STEPS) + 1)]
        steps = dict((k, []) for k in STEPS)
        total = []
        for _ in range(iters):
            filler.fill_bytes(0, stream)
            post.enqueue(e, s, batch, stream, events=ev)
            ev[-1].synchronize()
            for k, name in enumerate(STEPS):
                steps[name].append(ev[k + 1].time_since(ev[k]))
            total.append(ev[-1].time_since(ev[0]))
        # Events around one enqueue on an idle stream (round 1's measurement).
        a, b = drv.Event(), drv.Event()
        idle = []
        for _ in range(iters):
            a.record(stream)
            post.enqueue(e, s, batch, stream)
            b.record(stream)
            b.synchronize()
            idle.append(b.time_since(a))
        # Back-to-back throughput from the host's view (includes Python launch overhead).
        stream.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            post.enqueue(e, s, batch, stream)
        stream.synchronize()
        host_ms = (time.perf_counter() - t0) * 1e3 / iters
    out = {"total": stats_ms(total), "idle": stats_ms(idle), "host_ms_per_call": host_ms,
           "kept_per_frame": kept, "candidates_per_frame": cands}
    for name in STEPS:
        out[name] = stats_ms(steps[name])
    return out


def python_overhead(reps=20000):
    """us of Python per GpuPostprocessor.enqueue() with a no-op driver (CPU only): batch 1
    and 8, buffers given as DeviceArray and as a torch-like __cuda_array_interface__ object,
    on a stream."""
    import trtssd.gpu.cuda as tcuda
    from trtssd.postprocess import GpuPostprocessor
    from benchmarks._overhead import noop_driver, print_us, time_cases

    class Iface(object):   # what a torch tensor offers: only the interface
        def __init__(self, arr):
            self.__cuda_array_interface__ = dict(arr.__cuda_array_interface__)

    res = {}
    with noop_driver() as drv:
        spec = coco_like()
        stream = drv.Stream()
        for n in (1, 8):
            post = GpuPostprocessor(spec, max_batch=n, score_threshold=0.3, max_detections=100)
            e = tcuda.DeviceArray((n, spec.num_anchors, 4), np.float32)
            s = tcuda.DeviceArray((n, spec.num_anchors, spec.num_classes), np.float32)
            ie, is_ = Iface(e), Iface(s)
            cases = [("devicearray", lambda: post.enqueue(e, s, n, stream)),
                     ("interface", lambda: post.enqueue(ie, is_, n, stream))]
            time_cases(res, cases, n, lambda name: reps)
            post.close()
    print_us(res, "enqueue (Python only, no-op driver)")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--threshold", type=float, default=0.3,
                    help="score threshold of the worst and realistic cases")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--cases", default="worst,realistic,all",
                    help="comma-separated, from: " + ", ".join(sorted(CASES)))
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--cpu-only", action="store_true", help="NumPy path only")
    ap.add_argument("--layout", default="tflite", choices=("tflite", "pytorch-ssd"),
                    help="the COCO SSD's outputs (default) or pytorch-ssd's mb1-ssd's")
    ap.add_argument("--python-overhead", action="store_true",
                    help="CPU only: the Python cost of one enqueue() with a no-op driver")
    args = ap.parse_args(argv)
    if args.python_overhead:
        res = python_overhead()
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"python_overhead_us": res, "python": sys.version.split()[0]}, f,
                          indent=1)
        return res
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            ap.error("unknown case %r; choose from %s" % (c, ", ".join(sorted(CASES))))
    if args.layout == "pytorch-ssd":
        spec = pytorch_ssd_like()
        what = ("pytorch-ssd layout: 3000 decoded boxes x 21 classes, per-class NMS, max 100 "
                "detections (synthetic outputs)")
    else:
        spec = coco_like()
        what = ("SSD decode + NMS, 1917 anchors x 91 classes, max 100 detections "
                "(synthetic outputs)")
    results = {"what": what, "layout": args.layout, "rows": []}
    ctx = None
    gpu_reason = None
    if not args.cpu_only:
        try:
            from trtssd.gpu.cuda import CudaContext
            ctx = CudaContext(0)
            results["device"] = ctx.name
        except Exception as e:   # no pycuda / no GPU: say so and time NumPy only
            gpu_reason = "%s: %s" % (type(e).__name__, e)
            results["gpu_skipped"] = gpu_reason
    try:
        for case in cases:
            hot, thr = CASES[case]
            thr = args.threshold if thr is None else thr
            if args.layout == "pytorch-ssd" and case == "all":
                thr = 0.01
            for b in [int(x) for x in args.batches.split(",")]:
                enc, scores = outputs(spec, b, hot=hot)
                np_iters = max(5, args.iters // (50 if case == "all" else 10))
                row = {"case": case, "threshold": thr, "batch": b,
                       "numpy": bench_numpy(spec, enc, scores, thr, np_iters)}
                if ctx is not None:
                    with ctx.active():
                        row["gpu"] = bench_gpu(spec, enc, scores, thr, args.iters)
                results["rows"].append(row)
    finally:
        if ctx is not None:
            ctx.close()
    print_table(results, gpu_reason)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


def print_table(results, gpu_reason=None):
    print(results["what"] + (" on " + results["device"] if "device" in results else ""))
    if gpu_reason:
        print("GPU skipped: " + gpu_reason)
    cols = ("case", "batch", "cand", "kept") + STEPS + ("total", "us/frame", "idle", "host",
                                                        "NumPy ms")
    print("GPU columns: median us (events); idle: events around one enqueue on an idle "
          "stream; host: us per enqueue back to back")
    print(" | ".join("%9s" % c for c in cols))
    for r in results["rows"]:
        g = r.get("gpu")
        cells = [r["case"], "%d" % r["batch"]]
        if g is None:
            cells += ["-"] * (len(cols) - 3)
        else:
            cells += ["%.0f" % np.mean(g["candidates_per_frame"]),
                      "%.0f" % np.mean(g["kept_per_frame"])]
            cells += ["%.1f" % (g[k]["median_ms"] * 1e3) for k in STEPS]
            cells += ["%.1f" % (g["total"]["median_ms"] * 1e3),
                      "%.1f" % (g["total"]["median_ms"] * 1e3 / r["batch"]),
                      "%.1f" % (g["idle"]["median_ms"] * 1e3),
                      "%.1f" % (g["host_ms_per_call"] * 1e3)]
        cells.append("%.3f" % r["numpy"]["median_ms"])
        print(" | ".join("%9s" % c for c in cells))


if __name__ == "__main__":
    main()
