"""The preprocessing kernel's floor on this card: its launch and stores alone, and its bytes at
the card's best access pattern (kernels/floor.cu), beside the kernel itself.

    python -m benchmarks.bench_kernel_floor [--batches 1 8] [--reps 200] [--json out.json]
    ncu --clock-control none --kernel-name regex:"floor_|preprocess_u8" --launch-skip 0 \
        --launch-count 60 --metrics gpu__time_duration.sum,dram__bytes.sum \
        python -m benchmarks.bench_kernel_floor --reps 10

Cases at 1080p BGR uint8 -> 300x300 RGB float32 NCHW, per batch:
- ``store``: floor_store on the preprocessing kernel's grid: no loads, three float stores a
  thread (launch + one wave + the output's 1.08 MB a frame).
- ``copy``: floor_copy of the bytes the bilinear filter reads (600 rows x 5,760 B a frame)
  and the output's bytes, as 16-byte vectors over a grid of 8 blocks of 256 an SM;
  ``copy4``: floor_copy4, the same with 4 loads in flight a thread, on 8 and on 2 blocks an
  SM (``copy4_2``); ``memcpy``: the driver's device-to-device copy of the read bytes
  (events only: Nsight Compute does not profile it).
- ``kernel``: the preprocessing kernel on the same frames (GpuPreprocessor).
Each by CUDA events behind a 256 MiB memset (bench_preprocess's Timer: the GPU is busy when
the first event is recorded, so host latency is excluded), median and p5/p95 of --reps; under
Nsight Compute each launch is one row of its report.
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

from benchmarks.bench_preprocess import FILLER_BYTES, Timer, pct, random_frames  # noqa: E402

H, W, OUT = 1080, 1920, 300
BLOCK = (32, 8, 1)


def floor_kernels():
    """floor_store, floor_copy and floor_copy4, compiled for the current context."""
    from pycuda.compiler import SourceModule
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels",
                           "floor.cu")) as f:
        mod = SourceModule(f.read(), no_extern_c=True, options=["-O3"])
    return (mod, mod.get_function("floor_store"), mod.get_function("floor_copy"),
            mod.get_function("floor_copy4"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--json")
    args = p.parse_args(argv)
    from trtssd.gpu.cuda import CudaContext, DeviceArray, driver
    from trtssd.preprocess import GpuPreprocessor, PreprocessOptions
    drv = driver()
    res = {}
    ctx = CudaContext(0)
    with ctx.active():
        filler = DeviceArray((FILLER_BYTES,), np.uint8)
        timer = Timer(filler.ptr)
        mod, store, copy, copy4 = floor_kernels()
        sms = ctx.device.get_attribute(drv.device_attribute.MULTIPROCESSOR_COUNT)
        for n in args.batches:
            out = DeviceArray((n, 3, OUT, OUT), np.float32)
            read_bytes = n * 2 * OUT * W * 3
            src = DeviceArray((read_bytes,), np.uint8)
            dst = DeviceArray((out.nbytes,), np.uint8)
            dst2 = DeviceArray((read_bytes,), np.uint8)
            grid = (-(-OUT // BLOCK[0]), -(-OUT // BLOCK[1]), n)
            copy_args = (np.intp(src.ptr), np.int64(read_bytes // 16), np.intp(dst.ptr),
                         np.int64(out.nbytes // 16))

            def copy_case(fn, blocks_per_sm):
                return lambda: fn(*copy_args, block=(256, 1, 1), grid=(sms * blocks_per_sm, 1, 1))
            cases = {
                "store": lambda: store(np.intp(out.ptr), np.int32(OUT), np.int32(OUT),
                                       block=BLOCK, grid=grid),
                "copy": copy_case(copy, 8),
                "copy4": copy_case(copy4, 8),
                "copy4_2": copy_case(copy4, 2),
                "memcpy": lambda: drv.memcpy_dtod_async(dst2.ptr, src.ptr, read_bytes),
            }
            frames = random_frames(np.random.default_rng(n), n, H, W, "BGR")
            pre = GpuPreprocessor(PreprocessOptions(), max_batch=n, max_frame_shape=(H, W, 3))
            dev = DeviceArray(frames.shape, np.uint8).copy_from_host(frames)
            cases["kernel"] = lambda: pre.preprocess(dev)
            row = res["batch_%d" % n] = {"read_mb": read_bytes / 1e6,
                                         "write_mb": out.nbytes / 1e6}
            for name, enqueue in cases.items():
                for _ in range(10):
                    enqueue()
                drv.Context.synchronize()
                row[name + "_us"] = pct([timer.time_us(enqueue) for _ in range(args.reps)])
            pre.close()
            for a in (out, src, dst, dst2, dev):
                a.close()
            print("batch %d (events, medians): " % n + ", ".join(
                "%s %.2f us" % (name, row[name + "_us"]["median"]) for name in cases))
        filler.close()
    ctx.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"floor": res, "python": platform.python_version()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
