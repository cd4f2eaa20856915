"""Time SSD decode + NMS: the GPU kernels (CUDA events) and the NumPy path, batch 1 and 8.

    python benchmarks/bench_postprocess.py [--iters 500] [--json out.json] [--cpu-only]

Inputs are shaped like the COCO SSD's outputs (1917 anchors, 91 score columns): sigmoid of
random logits, low everywhere except a few hundred high-scoring anchors per frame, so the
threshold (0.3) passes a few hundred candidates as on real pictures. The GPU result is
checked against NumPy before timing. GPU time is the kernels and the copy of the kept rows,
measured by events on one stream around each repetition (median and 10th/90th percentiles);
NumPy time is wall-clock per call. Nothing here runs at import.
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
    from trtssd.spec import BoxCoder, ModelSpec, NmsParams
    rng = np.random.default_rng(seed)
    # Anchors on a grid of centres with several shapes each, like SSD's (6 layers, 1917).
    yx = rng.uniform(0.02, 0.98, size=(num_anchors, 2))
    hw = rng.uniform(0.05, 0.9, size=(num_anchors, 2))
    anchors = np.concatenate([yx, hw], 1).astype(np.float32)
    return ModelSpec("coco-like (synthetic outputs)", 300, 300, (128.,) * 3, (1 / 128.,) * 3,
                     "RGB", num_classes, anchors, BoxCoder(10., 10., 5., 5.),
                     NmsParams(1e-8, 0.6, 10, 1, 100, False))


def outputs(spec, batch, seed=1, hot=300):
    rng = np.random.default_rng(seed)
    a, c = spec.num_anchors, spec.num_classes
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


def bench_gpu(spec, enc, scores, threshold, iters, warmup_s=0.3):
    from trtssd.cuda import DeviceArray, EventTimer, driver
    from trtssd.postprocess import GpuPostprocessor, select_frame
    batch = enc.shape[0]
    stream = driver().Stream()
    with DeviceArray(enc.shape, np.float32) as e, DeviceArray(scores.shape, np.float32) as s, \
            GpuPostprocessor(spec, max_batch=batch, score_threshold=threshold,
                             max_detections=100) as post:
        e.copy_from_host(enc)
        s.copy_from_host(scores)
        post.enqueue(e, s, batch, stream)
        rows = post.raw_results()
        kept = []
        for f in range(batch):   # correctness first
            idx = select_frame(enc[f], scores[f], spec, threshold, 100)[0]
            if rows[f][:, 6].astype(np.int64).tolist() != idx.tolist():
                raise SystemExit("GPU result differs from NumPy at frame %d: not timing" % f)
            kept.append(len(idx))
        t_end = time.perf_counter() + warmup_s
        while time.perf_counter() < t_end:
            post.enqueue(e, s, batch, stream)
            post.wait()
        timer = EventTimer(stream)
        samples = []
        for _ in range(iters):
            timer.start()
            post.enqueue(e, s, batch, stream)
            timer.stop()
            samples.append(timer.elapsed_ms())
        # Back-to-back throughput from the host's view (includes Python launch overhead).
        stream.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            post.enqueue(e, s, batch, stream)
        stream.synchronize()
        host_ms = (time.perf_counter() - t0) * 1e3 / iters
    out = stats_ms(samples)
    out["host_ms_per_call"] = host_ms
    out["kept_per_frame"] = kept
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--threshold", type=float, default=0.3)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--cpu-only", action="store_true", help="NumPy path only")
    args = ap.parse_args(argv)
    spec = coco_like()
    results = {"what": "SSD decode + NMS, 1917 anchors x 91 classes, threshold %.2f, "
                       "max 100 detections (synthetic outputs)" % args.threshold,
               "rows": []}
    ctx = None
    gpu_reason = None
    if not args.cpu_only:
        try:
            from trtssd.cuda import CudaContext
            ctx = CudaContext(0)
            results["device"] = ctx.name
        except Exception as e:   # no pycuda / no GPU: say so and time NumPy only
            gpu_reason = "%s: %s" % (type(e).__name__, e)
            results["gpu_skipped"] = gpu_reason
    try:
        for b in [int(x) for x in args.batches.split(",")]:
            enc, scores = outputs(spec, b)
            row = {"batch": b,
                   "numpy": bench_numpy(spec, enc, scores, args.threshold,
                                        max(10, args.iters // 10))}
            if ctx is not None:
                with ctx.active():
                    row["gpu"] = bench_gpu(spec, enc, scores, args.threshold, args.iters)
            results["rows"].append(row)
    finally:
        if ctx is not None:
            ctx.close()
    print(results["what"] + ("" if ctx is None else " on " + results["device"]))
    if gpu_reason:
        print("GPU skipped: " + gpu_reason)
    print("%5s | %-31s | %-31s | %s" % ("batch", "GPU events ms median [p10,p90]",
                                        "NumPy ms median [p10,p90]", "GPU us/frame"))
    for r in results["rows"]:
        n = r["numpy"]
        g = r.get("gpu")
        gtxt = "-" if g is None else "%.4f [%.4f, %.4f]" % (g["median_ms"], g["p10_ms"],
                                                          g["p90_ms"])
        per = "-" if g is None else "%.1f" % (g["median_ms"] * 1e3 / r["batch"])
        print("%5d | %-31s | %-31s | %s" % (r["batch"], gtxt, "%.3f [%.3f, %.3f]" % (
            n["median_ms"], n["p10_ms"], n["p90_ms"]), per))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
