"""Preprocessing microbenchmark: frame -> 300x300 network input, our kernel vs OpenCV vs PyTorch.

    python -m benchmarks.bench_preprocess [--json out.json] [--reps 200] [--quick]
    compute-sanitizer --tool memcheck --error-exitcode 1 \
        python -m benchmarks.bench_preprocess --sanitize

Cases: 480p, 720p, 1080p, 4K frames in each --input-formats (default BGR; NV12, YUYV, ...:
camera-native YUV, converted in the same kernel) -> 300x300 RGB, x*2/255-1, float32 and
float16, batch 1 and 8. Every GPU result is first checked against cpu_preprocess (OpenCV).
Nsight Compute profiles one launch (``--launch-skip 20 --launch-count 1`` lands on the
warm-up launches of the first case).

What is measured (medians with p5/p95 over --reps repetitions):
- ``kernel_us``: GPU time of one launch, by CUDA events around it, with the GPU kept busy by a
  large memset enqueued just before, so the events, the kernel and the host's launch latency
  do not overlap: the kernel's own duration plus the event granularity (~1-2 us), not the
  launch rate. (Nsight Compute gives the pure kernel duration; see NOTES.md.)
- ``b2b_us``: per launch, events around --b2b launches back to back; when the kernel is
  shorter than the launch this is the launch rate, not the kernel.
- ``host_us``: wall time of one ``preprocess()`` call from Python (frames already on the
  device, or in the staging buffers for ``host_us_staging``, which adds the H2D enqueue).
- ``h2d_kernel_us``: GPU time of copy + kernel from pinned staging (what a discrete GPU pays).
- ``host_us_pinned`` / ``h2d_kernel_pinned_us``: the same from pooled PinnedArray frames
  (pinned_empty), uploaded from their own memory: the pipeline's case.
- ``host_us_own_views`` / ``host_us_torch`` / ``host_us_torch_new_views`` (BGR rows, with
  torch's CUDA): one call with frames and ``out=`` on a stream as DeviceArray views, torch
  tensors (the same objects), and new torch views of the same batch each call;
  ``host_us_torch_key``: the frames' plan-cache key alone (Planner.key of the torch list).
- ``python overhead`` (``--python-overhead``, CPU only, no GPU): the Python part of a call
  with a no-op driver.
- OpenCV: ``cpu_preprocess`` per call on this CPU (one thread, cv2.setNumThreads(1)).
- PyTorch: permute, float, interpolate(bilinear, align_corners=False, antialias=False),
  channel flip, normalise (and .half()), the same events-with-filler method and host cost.
Bytes: frame rows the bilinear filter reads (2 per output row, at most the frame; for 4:2:0
also their chroma rows) plus the output written; GB/s = bytes / kernel time.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (REPO, os.path.join(REPO, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from support.frames import tolerance  # noqa: E402  (the tests' helper: the same reasoning holds)

SIZES = {"480p": (480, 640), "720p": (720, 1280), "1080p": (1080, 1920), "4K": (2160, 3840)}
FILLER_BYTES = 256 << 20     # a memset of 256 MiB keeps an H100 busy ~100 us


def pct(samples):
    s = np.asarray(samples, np.float64)
    return {"median": float(np.median(s)), "p5": float(np.percentile(s, 5)),
            "p95": float(np.percentile(s, 95)), "n": int(len(s))}


def bytes_touched(h, w, n, out_bytes_per_frame, out_h=300, fmt="BGR"):
    rows = min(h, 2 * out_h)
    row_bytes = {"NV12": 2 * w, "NV21": 2 * w, "I420": 2 * w, "YV12": 2 * w,
                 "YUYV": 2 * w, "UYVY": 2 * w}.get(fmt, 3 * w)   # 4:2:0: Y row + a chroma row
    return n * (rows * row_bytes + out_bytes_per_frame)


def random_frames(rng, n, h, w, fmt):
    """n random uint8 frames of ``fmt`` as one [n, ...] array (any bytes are a valid frame)."""
    from trtssd.preprocess import PreprocessOptions
    return rng.integers(0, 256, (n,) + PreprocessOptions(input_format=fmt).buffer_shape(h, w),
                        dtype=np.uint8)


class Timer(object):
    """GPU duration of enqueued work, with a filler memset so that host latency is excluded."""

    def __init__(self, filler_ptr):
        from trtssd.gpu.cuda import driver
        self.drv = driver()
        self.filler = filler_ptr
        self.a, self.b = self.drv.Event(), self.drv.Event()

    def time_us(self, enqueue, filler=True):
        if filler:
            self.drv.memset_d8_async(self.filler, 0, FILLER_BYTES, None)
        self.a.record()
        enqueue()
        self.b.record()
        self.b.synchronize()
        return self.b.time_since(self.a) * 1000.0


def bench_ours(ctx, h, w, n, dtype, reps, b2b, timer, check=True, fmt="BGR"):
    from trtssd.gpu.cuda import DeviceArray, driver
    from trtssd.preprocess import GpuPreprocessor, PreprocessOptions, cpu_preprocess
    drv = driver()
    rng = np.random.default_rng(h + n)
    frames = random_frames(rng, n, h, w, fmt)
    o = PreprocessOptions(dtype=dtype, input_format=fmt)
    res = {}
    with GpuPreprocessor(o, max_batch=n, max_frame_shape=(h, w, 3)) as pre:
        dev = DeviceArray(frames.shape, np.uint8).copy_from_host(frames)
        if check:
            out, _ = pre.preprocess(dev)
            drv.Context.synchronize()
            ref, _ = cpu_preprocess(list(frames), o)
            got = out.get().astype(np.float32)
            res["max_abs_diff_vs_opencv"] = float(np.max(np.abs(got - ref.astype(np.float32))))
            atol, rtol = tolerance(o)
            res["check"] = bool(np.allclose(got, ref.astype(np.float32), atol=atol, rtol=rtol))
        for _ in range(20):
            pre.preprocess(dev)
        drv.Context.synchronize()
        res["kernel_us"] = pct([timer.time_us(lambda: pre.preprocess(dev)) for _ in range(reps)])

        def burst():
            for _ in range(b2b):
                pre.preprocess(dev)
        res["b2b_us"] = pct([timer.time_us(burst, filler=False) / b2b for _ in range(max(5, reps // 20))])
        host = []
        for i in range(reps * 5):
            t0 = time.perf_counter()
            pre.preprocess(dev)
            host.append((time.perf_counter() - t0) * 1e6)
            if i % 100 == 99:
                drv.Context.synchronize()
        drv.Context.synchronize()
        res["host_us"] = pct(host)
        # Frames in the pinned staging (decoded there): H2D + kernel.
        staged = [pre.staging(i)[:frames.shape[1], :frames.shape[2]] for i in range(n)]
        for i in range(n):
            staged[i][...] = frames[i]

        def h2d_and_host(src, kernel_key, host_key):
            """H2D + kernel on the GPU clock, then the host time of a call, synchronised."""
            res[kernel_key] = pct([timer.time_us(lambda: pre.preprocess(src))
                                   for _ in range(max(10, reps // 4))])
            host = []
            for _ in range(reps):
                t0 = time.perf_counter()
                pre.preprocess(src)
                host.append((time.perf_counter() - t0) * 1e6)
                drv.Context.synchronize()
            res[host_key] = pct(host)
        h2d_and_host(staged, "h2d_kernel_us", "host_us_staging")
        # Pooled pinned frames (the pipeline's): uploaded from their own memory, H2D + kernel.
        from trtssd.gpu.cuda import pinned_empty
        pinned = [pinned_empty(frames.shape[1:], np.uint8) for _ in range(n)]
        for i in range(n):
            pinned[i][...] = frames[i]
        h2d_and_host(pinned, "h2d_kernel_pinned_us", "host_us_pinned")
        for p in pinned:
            p.close()
        if fmt == "BGR":
            res.update(_foreign_host_cost(pre, dev, frames.shape[1:], n, o, reps))
        dev.close()
    return _with_bytes(res, h, w, n, dtype, fmt)


def _foreign_host_cost(pre, dev, frame_shape, n, o, reps):
    """Host cost of preprocess() with frames and out= on a stream given as trtssd's own
    DeviceArray views, as torch tensors (the same objects each call), and as new torch views
    of the same batch each call (issue 15's foreign-array case). {} without torch's CUDA."""
    try:
        import torch
        if not torch.cuda.is_available():
            return {}
    except ImportError:
        return {}
    from trtssd.gpu.cuda import DeviceArray, driver
    drv = driver()
    step = int(np.prod(frame_shape))
    own = [DeviceArray.view(dev.ptr + k * step, frame_shape, np.uint8, dev) for k in range(n)]
    own_out = DeviceArray(o.output_shape(n), o.np_dtype)
    tb = torch.empty((n,) + tuple(frame_shape), dtype=torch.uint8, device="cuda")
    tout = torch.empty(o.output_shape(n), dtype=getattr(torch, o.dtype), device="cuda")
    same = [tb[k] for k in range(n)]
    pool = [[tb[k] for k in range(n)] for _ in range(64)]
    stream = drv.Stream()
    res = {}
    for name, frames_of, out in (("host_us_own_views", lambda i: own, own_out),
                                 ("host_us_torch", lambda i: same, tout),
                                 ("host_us_torch_new_views", lambda i: pool[i % 64], tout)):
        for i in range(20):
            pre.preprocess(frames_of(i), out=out, stream=stream)
        host = []
        for i in range(reps):
            fr = frames_of(i)
            t0 = time.perf_counter()
            pre.preprocess(fr, out=out, stream=stream)
            host.append((time.perf_counter() - t0) * 1e6)
            if i % 50 == 49:
                stream.synchronize()
        stream.synchronize()
        res[name] = pct(host)
    # the part of the torch row that is the plan-cache key of the frames (one per tensor)
    key = pre._planner.key
    host = []
    for i in range(reps):
        t0 = time.perf_counter()
        key(same)
        host.append((time.perf_counter() - t0) * 1e6)
    res["host_us_torch_key"] = pct(host)
    own_out.close()
    print("   foreign arrays, host us per call (median): own views %.1f, torch %.1f, torch new "
          "views %.1f (of which the frames' plan key %.1f)"
          % tuple(res[k]["median"] for k in ("host_us_own_views", "host_us_torch",
                                             "host_us_torch_new_views", "host_us_torch_key")))
    return res


def _with_bytes(res, h, w, n, dtype, fmt):
    out_bytes = 3 * 300 * 300 * np.dtype(dtype).itemsize
    res["bytes"] = bytes_touched(h, w, n, out_bytes, fmt=fmt)
    res["GBps"] = res["bytes"] / (res["kernel_us"]["median"] * 1e-6) / 1e9
    return res


def bench_torch(h, w, n, dtype, reps, timer):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return {"skipped": "torch is not installed"}
    if not torch.cuda.is_available():
        return {"skipped": "torch has no CUDA"}
    rng = np.random.default_rng(h + n)
    x = torch.from_numpy(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)).cuda()
    half = dtype == "float16"

    def chain():
        t = x.permute(0, 3, 1, 2).float()
        t = F.interpolate(t, size=(300, 300), mode="bilinear", align_corners=False, antialias=False)
        t = t.flip(1)                          # BGR -> RGB
        t = (t - 127.5) * (1 / 127.5)
        return t.half() if half else t

    for _ in range(20):
        chain()
    torch.cuda.synchronize()
    res = {"kernel_us": pct([timer.time_us(chain) for _ in range(reps)])}
    host = []
    for i in range(reps):
        t0 = time.perf_counter()
        chain()
        host.append((time.perf_counter() - t0) * 1e6)
        if i % 50 == 49:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    res["host_us"] = pct(host)
    return res


def bench_opencv(h, w, n, dtype, reps):
    import cv2
    from trtssd.preprocess import PreprocessOptions, cpu_preprocess
    cv2.setNumThreads(1)
    rng = np.random.default_rng(h + n)
    frames = list(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8))
    o = PreprocessOptions(dtype=dtype)
    out = np.empty(o.output_shape(n), o.np_dtype)
    cpu_preprocess(frames, o, out=out)
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        cpu_preprocess(frames, o, out=out)
        t.append((time.perf_counter() - t0) * 1e6)
    return {"call_us": pct(t), "threads": 1}


def sanitize_run():
    """Each variant once at small odd sizes, checked: run this under compute-sanitizer."""
    import itertools
    from trtssd.gpu.cuda import DeviceArray, driver
    from trtssd.preprocess import (INPUT_FORMATS, GpuPreprocessor, PreprocessOptions,
                                   cpu_preprocess)
    drv = driver()
    rng = np.random.default_rng(0)
    failures = 0
    runs = 0
    for fmt, dtype, layout, interp, lb in itertools.product(
            sorted(INPUT_FORMATS), ["float32", "float16"], ["NCHW", "NHWC"],
            ["linear", "nearest"], [False, True]):
        c = INPUT_FORMATS[fmt][0]
        o = PreprocessOptions(width=67, height=45, dtype=dtype, layout=layout,
                              interpolation=interp, input_format=fmt, letterbox=lb, pad_value=3)
        frames = [rng.integers(0, 256, (h, w, c), dtype=np.uint8)
                  for h, w in ((97, 131), (1, 1), (45, 67))]
        with GpuPreprocessor(o, max_batch=3, max_frame_shape=(97, 131, c),
                             mapped=(fmt == "BGR" and dtype == "float32")) as pre:
            d = DeviceArray(frames[0].shape, np.uint8).copy_from_host(frames[0])
            for batch in ([frames[0]], frames, [d], [frames[0]] * 3):   # single, table, device, uniform
                pre._out.fill_bytes(0xFF)
                out, _ = pre.preprocess(batch)
                drv.Context.synchronize()
                got = out.get().astype(np.float32)
                ref = cpu_preprocess([frames[0] if b is d else b for b in batch], o)[0]
                atol, rtol = tolerance(o)
                ok = np.allclose(got, ref.astype(np.float32), atol=atol, rtol=rtol)
                runs += 1
                if not ok:
                    failures += 1
                    print("MISMATCH", o, [getattr(b, "shape", None) for b in batch])
            d.close()
    r, f = _sanitize_yuv()
    runs += r
    failures += f
    r, f = _sanitize_edges()
    runs += r
    failures += f
    print("sanitize run: %d launches, %d mismatches" % (runs, failures))
    return 1 if failures else 0


def _sanitize_yuv():
    """Every YUV format, matrix and range, bilinear and nearest, letterboxed or not: host
    buffers (single, table, uniform), a device buffer allocated at exactly its size, and a
    YuvFrame of device planes each allocated at exactly its size. Returns (launches,
    mismatches)."""
    import itertools
    from trtssd.gpu.cuda import DeviceArray, driver
    from trtssd.preprocess import (YUV_FORMATS, GpuPreprocessor, PreprocessOptions, YuvFrame,
                                   cpu_preprocess)
    drv = driver()
    rng = np.random.default_rng(2)
    runs = failures = 0
    for fmt, (mat, rg), interp, lb in itertools.product(
            sorted(YUV_FORMATS), [("BT601", "limited"), ("BT709", "full")],
            ["linear", "nearest"], [False, True]):
        o = PreprocessOptions(width=67, height=45, interpolation=interp, input_format=fmt,
                              letterbox=lb, pad_value=3, yuv_matrix=mat, yuv_range=rg,
                              dtype="float16" if lb else "float32")
        frames = [random_frames(rng, 1, h, w, fmt)[0] for h, w in ((96, 130), (2, 2), (44, 66))]
        owners = [DeviceArray(frames[0].shape, np.uint8).copy_from_host(frames[0])]
        cases = [[frames[0]], frames, [owners[0]], [frames[0]] * 3]
        refs = [[frames[0]], frames, [frames[0]], [frames[0]] * 3]
        if YUV_FORMATS[fmt][0] != "422":
            h, w = 44, 66
            f = frames[2]
            if YUV_FORMATS[fmt][0] == "420sp":
                planes = [("y", f[:h]), ("uv", f[h:])]
            else:
                q = (h // 2) * (w // 2)
                first, second = f[h:].reshape(-1)[:q], f[h:].reshape(-1)[q:]
                u, v = (first, second) if fmt == "I420" else (second, first)
                planes = [("y", f[:h]), ("u", u.reshape(h // 2, w // 2)),
                          ("v", v.reshape(h // 2, w // 2))]
            kw = {}
            for name, plane in planes:
                d = DeviceArray(plane.shape, np.uint8).copy_from_host(np.ascontiguousarray(plane))
                owners.append(d)
                kw[name] = d
            cases.append([YuvFrame(w, h, **kw), frames[0]])
            refs.append([f, frames[0]])
        with GpuPreprocessor(o, max_batch=3, max_frame_shape=(96, 130)) as pre:
            for batch, ref_batch in zip(cases, refs):
                pre._out.fill_bytes(0xFF)
                out, _ = pre.preprocess(batch)
                drv.Context.synchronize()
                got = out.get().astype(np.float32)
                ref = cpu_preprocess(ref_batch, o)[0].astype(np.float32)
                atol, rtol = tolerance(o)
                runs += 1
                if not np.allclose(got, ref, atol=atol, rtol=rtol):
                    failures += 1
                    print("MISMATCH", o, [getattr(b, "shape", b) for b in batch])
        for d in owners:
            d.close()
    return runs, failures


class _DevView(object):
    """A device frame with explicit strides: a crop of a device array, read in place."""

    def __init__(self, ptr, shape, strides):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "|u1", "data": (ptr, False),
                                         "strides": strides, "version": 3}


def _sanitize_edges():
    """Device frames allocated at exactly their size (a read past the last pixel leaves the
    allocation), 1 to 3 pixels wide, and crops starting at every byte alignment, read in place
    and compared with cpu_preprocess. Returns (launches, mismatches)."""
    from trtssd.gpu.cuda import DeviceArray, driver
    from trtssd.preprocess import GpuPreprocessor, PreprocessOptions, cpu_preprocess
    drv = driver()
    rng = np.random.default_rng(1)
    runs = failures = 0
    for fmt, c in (("BGR", 3), ("BGRA", 4)):
        o = PreprocessOptions(width=53, height=31, input_format=fmt)
        frames, refs, owners = [], [], []
        for h, w in ((1, 1), (2, 1), (1, 2), (3, 2), (4, 3), (45, 67), (33, 301)):
            f = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
            d = DeviceArray(f.shape, np.uint8).copy_from_host(f)
            owners.append(d)
            frames.append(d)
            refs.append(f)
        big = rng.integers(0, 256, (29, 43, c), dtype=np.uint8)
        d = DeviceArray(big.shape, np.uint8).copy_from_host(big)
        owners.append(d)
        for y0, x0 in ((0, 1), (1, 2), (2, 3), (5, 0)):
            frames.append(_DevView(d.ptr + y0 * big.strides[0] + x0 * c,
                                   (big.shape[0] - y0, big.shape[1] - x0, c), (big.strides[0], c, 1)))
            refs.append(big[y0:, x0:])
        atol, rtol = tolerance(o)
        with GpuPreprocessor(o, max_frame_shape=(8, 8, c)) as pre:
            for fr, ref in zip(frames, refs):
                pre._out.fill_bytes(0xFF)
                out, _ = pre.preprocess(fr)
                drv.Context.synchronize()
                runs += 1
                want = cpu_preprocess(ref, o)[0].astype(np.float32)
                if not np.allclose(out.get(), want, atol=atol, rtol=rtol):
                    failures += 1
                    print("MISMATCH", fmt, ref.shape)
        for d in owners:
            d.close()
    return runs, failures


def python_overhead(reps=20000):
    """Per-call Python cost of GpuPreprocessor.preprocess() with a no-op driver (CPU only).

    The GPU's own driver calls (launch, event record, H2D enqueue: a few us each on an H100)
    come on top; this is the part the code controls. Cases: the bench's (device frame, frames
    in the staging) and the pipeline's (pinned frames into a caller's output), and foreign
    device arrays (benchmarks._overhead.ForeignArray, a stand-in for torch/CuPy arrays: the
    same objects each call, or new view objects of the same memory each call) with a foreign
    ``out``, beside trtssd's own DeviceArray views of the same memory."""
    import trtssd.gpu.cuda as tcuda
    from trtssd.preprocess import GpuPreprocessor, PreprocessOptions
    from benchmarks._overhead import ForeignArray, noop_driver, print_us, time_cases
    res = {}
    with noop_driver() as drv:
        o = PreprocessOptions()
        h, w = 1080, 1920
        for n in (1, 8):
            pre = GpuPreprocessor(o, max_batch=n, max_frame_shape=(h, w, 3))
            dev = tcuda.DeviceArray((n, h, w, 3), np.uint8)
            staged = [pre.staging(i) for i in range(n)]
            pinned = [tcuda.pinned_empty((h, w, 3), np.uint8) for _ in range(n)]
            out = tcuda.DeviceArray(o.output_shape(n), np.float32)
            stream = drv.Stream()
            step = h * w * 3
            own = [tcuda.DeviceArray.view(dev.ptr + k * step, (h, w, 3), np.uint8, dev)
                   for k in range(n)]
            foreign = [ForeignArray(dev.ptr + k * step, (h, w, 3)) for k in range(n)]
            fout = ForeignArray(out.ptr, o.output_shape(n), "<f4")
            pool = [[ForeignArray(dev.ptr + k * step, (h, w, 3)) for k in range(n)]
                    for _ in range(64)]
            cycle = [0]

            def new_views():
                cycle[0] = (cycle[0] + 1) % len(pool)
                return pre.preprocess(pool[cycle[0]], out=fout, stream=stream)
            cases = [("device", lambda: pre.preprocess(dev)),
                     ("staging", lambda: pre.preprocess(staged)),
                     ("pinned_out_stream", lambda: pre.preprocess(pinned, out=out, stream=stream)),
                     ("own_views_out_stream", lambda: pre.preprocess(own, out=out, stream=stream)),
                     ("foreign_out_stream", lambda: pre.preprocess(foreign, out=fout,
                                                                   stream=stream)),
                     ("foreign_new_views_out_stream", new_views)]
            direct = getattr(pre, "_direct_pinned", False)
            time_cases(res, cases, n, lambda name: reps // n
                       if name != "pinned_out_stream" or direct else 50)
            pre.close()
    print_us(res, "call")
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", help="write every number here")
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--b2b", type=int, default=100, help="launches per back-to-back burst")
    p.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    p.add_argument("--dtypes", nargs="*", default=["float32", "float16"])
    p.add_argument("--input-formats", nargs="*", default=["BGR"],
                   help="frame formats to time: BGR (default), NV12, NV21, I420, YV12, YUYV, "
                        "UYVY (torch and OpenCV columns for BGR only)")
    p.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    p.add_argument("--no-opencv", action="store_true")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--sanitize", action="store_true",
                   help="run each variant once, checked, and exit (for compute-sanitizer)")
    p.add_argument("--python-overhead", action="store_true",
                   help="CPU only: the Python cost of a preprocess() call with a no-op driver")
    p.add_argument("--device", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.b2b = 20, 20
    if args.python_overhead:
        res = python_overhead()
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"python_overhead_us": res, "python": platform.python_version()}, f,
                          indent=1)
        return 0

    from trtssd.gpu.cuda import CudaContext, DeviceArray
    ctx = CudaContext(args.device)
    with ctx.active():
        if args.sanitize:
            return sanitize_run()
        filler = DeviceArray((FILLER_BYTES,), np.uint8)
        timer = Timer(filler.ptr)
        env = {"gpu": ctx.name, "cc": "%d.%d" % ctx.compute_capability,
               "python": platform.python_version(), "numpy": np.__version__,
               "date": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
               "command": " ".join(sys.argv)}
        try:
            import cv2
            env["opencv"] = cv2.__version__
        except ImportError:
            args.no_opencv = True
        try:
            import pycuda
            env["pycuda"] = pycuda.VERSION_TEXT
        except Exception:
            pass
        rows = []
        for size in args.sizes:
            h, w = SIZES[size]
            for n in args.batches:
                for dtype in args.dtypes:
                    for fmt in args.input_formats:
                        row = {"size": size, "frame": [h, w], "batch": n, "dtype": dtype,
                               "input_format": fmt,
                               "ours": bench_ours(ctx, h, w, n, dtype, args.reps, args.b2b,
                                                  timer, fmt=fmt)}
                        if not args.no_torch and fmt == "BGR":
                            row["torch"] = bench_torch(h, w, n, dtype, args.reps, timer)
                        if not args.no_opencv and fmt == "BGR":
                            row["opencv"] = bench_opencv(h, w, n, dtype, max(5, args.reps // 10))
                        rows.append(row)
                        print_row(row)
        filler.close()
    ctx.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "rows": rows}, f, indent=1)
        print("wrote", args.json)
    return 0 if all(r["ours"].get("check", True) for r in rows) else 1


def print_row(r):
    o = r["ours"]
    t = r.get("torch", {})
    cv = r.get("opencv", {})

    def m(d, k):
        return "%8.1f" % d[k]["median"] if k in d else "%8s" % "-"
    if not getattr(print_row, "header", False):
        print("%-6s %2s %-8s %-4s | %8s %8s %8s %8s %8s %8s %8s %7s | %8s %8s | %9s | %s" % (
            "size", "N", "dtype", "fmt", "kern_us", "b2b_us", "host_us", "hostStg", "hostPin",
            "h2d+k", "pin+k", "GB/s", "torch_k", "torch_h", "opencv_us", "check"))
        print_row.header = True
    print("%-6s %2d %-8s %-4s | %s %s %s %s %s %s %s %7.0f | %s %s | %9s | %s" % (
        r["size"], r["batch"], r["dtype"], r.get("input_format", "BGR"), m(o, "kernel_us"),
        m(o, "b2b_us"), m(o, "host_us"), m(o, "host_us_staging"), m(o, "host_us_pinned"),
        m(o, "h2d_kernel_us"), m(o, "h2d_kernel_pinned_us"), o["GBps"], m(t, "kernel_us"),
        m(t, "host_us"), ("%9.0f" % cv["call_us"]["median"]) if "call_us" in cv else "-",
        "ok (max diff %.3g)" % o["max_abs_diff_vs_opencv"] if o.get("check") else "MISMATCH"))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
