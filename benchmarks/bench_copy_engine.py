"""Probe: the rows the filter reads moved by the copy engine (cuMemcpyBatchAsync) instead of by
gather_rows on the SMs, before either is built into the product.

    python -m benchmarks.bench_copy_engine [--frames 8] [--reps 30] [--json out.json]

The gather kernel takes SMs from the network running beside it (NOTES_pipeline.md, round 9b:
multi's inference stage 0.91 -> 1.39-1.50 ms with the gather beside it). A copy engine takes
none, but round 3's strided 2D copies of the same rows were slow on it. This measures, for
``--frames`` pinned 1080p BGR frames and a 300x300 bilinear network input:
- each transfer alone: whole frames (one copy each), gather_rows (``GpuPreprocessor.upload``),
  and one cuMemcpyBatchAsync of every run of read rows (about 300 runs of 2 rows a frame):
  milliseconds per frame on the stream's events, and the host's microseconds per enqueue;
- the network (PyTorch backend, batch ``--frames``, CUDA graph) on one stream, alone and with
  each transfer repeated on another stream over the same time: milliseconds per batch;
- that the batch copy moved exactly the rows (read back and compared).
Needs a CUDA GPU, pycuda, PyTorch and a driver with cuMemcpyBatchAsync (CUDA 12.8 or later).
"""
import argparse
import ctypes
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks.bench_pcie import FRAME, pct  # noqa: E402


class MemcpyAttributes(ctypes.Structure):
    # CUmemcpyAttributes (cuda.h, 12.8+): srcAccessOrder, srcLocHint, dstLocHint, flags
    _fields_ = [("src_access_order", ctypes.c_int),
                ("src_type", ctypes.c_int), ("src_id", ctypes.c_int),
                ("dst_type", ctypes.c_int), ("dst_id", ctypes.c_int),
                ("flags", ctypes.c_uint)]


SRC_ACCESS_ORDER_STREAM = 1
LOCATION_DEVICE, LOCATION_HOST = 1, 2
FLAG_PREFER_OVERLAP_WITH_COMPUTE = 1


def batch_copier():
    """``copy(dsts, srcs, sizes, stream_handle)`` through the driver's cuMemcpyBatchAsync
    (the 8-argument _v2 of CUDA 13, else 12.8's with failIdx), or None."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None, "no libcuda.so.1"
    attrs = MemcpyAttributes(SRC_ACCESS_ORDER_STREAM, LOCATION_HOST, 0, LOCATION_DEVICE, 0,
                             FLAG_PREFER_OVERLAP_WITH_COMPUTE)
    idx = ctypes.c_size_t(0)
    fail = ctypes.c_size_t(0)
    P = ctypes.c_void_p
    fn = getattr(lib, "cuMemcpyBatchAsync_v2", None)
    if fn is not None:
        fn.argtypes = [P, P, P, ctypes.c_size_t, P, P, ctypes.c_size_t, P]
        fn.restype = ctypes.c_int

        def copy(d, s, z, stream):
            return fn(d.ctypes.data, s.ctypes.data, z.ctypes.data, len(z), ctypes.byref(attrs),
                      ctypes.byref(idx), 1, stream)
        return copy, "cuMemcpyBatchAsync_v2"
    fn = getattr(lib, "cuMemcpyBatchAsync", None)
    if fn is None:
        return None, "the driver has no cuMemcpyBatchAsync"
    fn.argtypes = [P, P, P, ctypes.c_size_t, P, P, ctypes.c_size_t, P, P]
    fn.restype = ctypes.c_int

    def copy(d, s, z, stream):
        return fn(d.ctypes.data, s.ctypes.data, z.ctypes.data, len(z), ctypes.byref(attrs),
                  ctypes.byref(idx), 1, ctypes.byref(fail), stream)
    return copy, "cuMemcpyBatchAsync"


def read_runs(in_h, out_h):
    """Runs (first row, rows) of the source rows a bilinear filter reads: both taps of every
    output row (float32 coordinates, as linear_coord), adjacent rows merged."""
    iy = np.arange(out_h, dtype=np.float32)
    fy = (iy + np.float32(0.5)) * np.float32(in_h / out_h) - np.float32(0.5)
    y0 = np.clip(np.floor(fy), 0, in_h - 1).astype(np.int64)
    rows = np.unique(np.concatenate([y0, np.minimum(y0 + 1, in_h - 1)]))
    runs, start, prev = [], rows[0], rows[0]
    for r in rows[1:]:
        if r != prev + 1:
            runs.append((int(start), int(prev - start + 1)))
            start = r
        prev = r
    runs.append((int(start), int(prev - start + 1)))
    return runs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    copy, how = batch_copier()
    res = {"batch_copy_entry": how}
    if copy is None:
        print(json.dumps(res))
        return 2
    import pycuda.driver as drv
    from trtssd.backends import create_backend
    from trtssd.gpu.cuda import CudaContext, DeviceArray, pinned_empty, stream_handle
    from trtssd.preprocess import GpuPreprocessor, PreprocessOptions
    n = args.frames
    cc = CudaContext(0)
    with cc.active():
        block = pinned_empty((n,) + FRAME, np.uint8)
        block[...] = np.random.RandomState(5).randint(0, 256, block.shape, dtype=np.uint8)
        frames = [block[k] for k in range(n)]
        dev = DeviceArray((n,) + FRAME, np.uint8)
        pitch = FRAME[1] * FRAME[2]
        runs = read_runs(FRAME[0], 300)
        res["runs_per_frame"] = len(runs)
        res["rows_per_frame"] = int(sum(r for _, r in runs))
        srcs = np.array([block.ctypes.data + k * block[0].nbytes + y * pitch
                         for k in range(n) for y, _ in runs], np.uint64)
        dsts = np.array([dev.ptr + k * block[0].nbytes + y * pitch
                         for k in range(n) for y, _ in runs], np.uint64)
        sizes = np.array([r * pitch for _ in range(n) for _, r in runs], np.uint64)
        s_net, s_up = drv.Stream(), drv.Stream()
        ev = [drv.Event(), drv.Event(), drv.Event(), drv.Event()]
        host_us = {}

        def batch(stream):
            rc = copy(dsts, srcs, sizes, stream_handle(stream))
            if rc:
                raise RuntimeError("cuMemcpyBatchAsync failed with CUDA error %d" % rc)

        def whole(stream):
            for k in range(n):
                drv.memcpy_htod_async(dev.ptr + k * block[0].nbytes, frames[k], stream)

        pre = GpuPreprocessor(PreprocessOptions(), max_batch=n, max_frame_shape=FRAME)
        if pre._gather is None:
            raise RuntimeError("gather_rows is not used on this machine")

        def gather(stream):
            pre.upload(frames, stream=stream)

        cases = (("whole", whole), ("gather", gather), ("batch", batch))
        # alone: device ms per frame, host us per enqueue
        for name, fn in cases:
            ms, us = [], []
            for r in range(args.reps + 3):
                drv.Context.synchronize()
                ev[0].record(s_up)
                t0 = time.perf_counter()
                fn(s_up)
                us.append((time.perf_counter() - t0) * 1e6)
                ev[1].record(s_up)
                drv.Context.synchronize()
                if r >= 3:
                    ms.append(ev[1].time_since(ev[0]) / n)
            res["alone_%s_ms_per_frame" % name] = pct(ms)
            host_us[name] = pct(us[3:])
        res["host_us_per_enqueue"] = host_us
        # the batch copy moved exactly the read rows
        dev.fill_bytes(0)
        batch(s_up)
        drv.Context.synchronize()
        back = dev.get()
        for y, r in runs:
            if not np.array_equal(back[:, y:y + r], block[:, y:y + r]):
                raise RuntimeError("the batch copy lost rows %d..%d" % (y, y + r - 1))
        res["batch_copy_rows_equal"] = True
        # beside the network: batch n, CUDA graph, on s_net, 20 batches a sample
        be = create_backend("torch", os.environ.get("TRTSSD_MODEL"), device="cuda",
                            precision=os.environ.get("PRECISION", "fp32"), max_batch=n)
        bshape, sshape = be.output_shapes(n)
        images = DeviceArray(be.input_shape(n), be.input_dtype)
        boxes, scores = DeviceArray(bshape, np.float32), DeviceArray(sshape, np.float32)
        images.fill_bytes(0)
        ec = be.create_context(images, boxes, scores)
        beside = {}
        for name, fn in (("none", None),) + cases:
            ms = []
            for r in range(args.reps + 3):
                drv.Context.synchronize()
                ev[2].record(s_net)
                for _ in range(20):
                    ec.enqueue(stream=s_net)
                ev[3].record(s_net)
                if fn is not None:
                    while not ev[3].query():
                        fn(s_up)
                        ev[1].record(s_up)
                        ev[1].synchronize()
                drv.Context.synchronize()
                if r >= 3:
                    ms.append(ev[3].time_since(ev[2]) / 20)
            beside[name] = pct(ms)
        res["network_ms_per_batch_beside"] = beside
        ec.close()
        for a in (images, boxes, scores, dev):
            a.close()
        pre.close()
        block.close()
    cc.close()
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
