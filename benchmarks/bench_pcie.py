"""PCIe copies of 1080p BGR frames (6.2 MB), one direction at a time and both at once, and
the preprocessing's upload of them: whole frames against only the rows the filter reads.

    python -m benchmarks.bench_pcie [--frames 16] [--reps 30] [--json out.json]

What drawing on the GPU pays per frame is the download of the drawn picture while the other
slots upload theirs: in the pipelined modes the drawn rate levels off at ~2,000 FPS whatever
the depth (RESULTS.md section 10), which is ~12.7 GB/s of downloads. This says what the link
gives here: GB/s of ``--frames`` back-to-back copies between pinned host frames and device
memory, H2D alone, D2H alone, and both directions at once on two streams (each direction's
own events), median and p5/p95 over ``--reps``; plus where the GPU and this process sit (the
GPU's NUMA node from sysfs, the CPUs this process may run on), since pinned memory on the
far socket is one cause of slow downloads. Needs a CUDA GPU and pycuda.
"""
import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

FRAME = (1080, 1920, 3)


def pct(samples):
    s = np.asarray(samples, np.float64)
    return {"median": float(np.median(s)), "p5": float(np.percentile(s, 5)),
            "p95": float(np.percentile(s, 95)), "n": int(len(s))}


def placement(device):
    """The GPU's PCI bus id and NUMA node (sysfs; None where it does not say), and the CPUs
    this process may run on."""
    bus = device.pci_bus_id().lower()
    node = None
    try:
        with open("/sys/bus/pci/devices/%s/numa_node" % bus) as f:
            node = int(f.read().strip())
    except (OSError, ValueError):
        pass
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"pci_bus_id": bus, "gpu_numa_node": node, "process_cpus": cpus}


def measure(drv, n, reps):
    from trtssd.gpu.cuda import DeviceArray, pinned_empty
    nbytes = int(np.prod(FRAME))
    up_host = [pinned_empty(FRAME, np.uint8) for _ in range(n)]
    down_host = [pinned_empty(FRAME, np.uint8) for _ in range(n)]
    dev_up = [DeviceArray(FRAME, np.uint8) for _ in range(n)]
    dev_down = [DeviceArray(FRAME, np.uint8) for _ in range(n)]
    for h in up_host:
        h[...] = 7
    s_up, s_down = drv.Stream(), drv.Stream()
    ev = [drv.Event() for _ in range(4)]

    def up():
        for h, d in zip(up_host, dev_up):
            drv.memcpy_htod_async(d.ptr, h, s_up)

    def down():
        for h, d in zip(down_host, dev_down):
            drv.memcpy_dtoh_async(h, d.ptr, s_down)

    res = {}
    try:
        for case in ("h2d", "d2h", "both"):
            gbps = {"h2d": [], "d2h": []}
            for r in range(reps + 3):                   # three warm-up rounds
                drv.Context.synchronize()
                if case in ("h2d", "both"):
                    ev[0].record(s_up)
                if case in ("d2h", "both"):
                    ev[2].record(s_down)
                if case in ("h2d", "both"):
                    up()
                    ev[1].record(s_up)
                if case in ("d2h", "both"):
                    down()
                    ev[3].record(s_down)
                drv.Context.synchronize()
                if r < 3:
                    continue
                if case in ("h2d", "both"):
                    gbps["h2d"].append(n * nbytes / (ev[1].time_since(ev[0]) * 1e-3) / 1e9)
                if case in ("d2h", "both"):
                    gbps["d2h"].append(n * nbytes / (ev[3].time_since(ev[2]) * 1e-3) / 1e9)
            for d, s in gbps.items():
                if s:
                    res["%s_%s_GBps" % (case, d) if case == "both" else "%s_GBps" % d] = pct(s)
        # the copies really moved the bytes (a broken copy would time nothing)
        dev_down[0].copy_from_host(up_host[0])
        drv.memcpy_dtoh(down_host[0], dev_down[0].ptr)
        if not (down_host[0] == 7).all():
            raise RuntimeError("the round trip lost the frame's bytes")
    finally:
        for a in dev_up + dev_down + up_host + down_host:
            a.close()
    return res


def measure_uploads(drv, n, reps):
    """What the preprocessing moves of ``n`` pinned 1080p BGR frames for a 300x300 bilinear
    network input: every row (one copy of the [n, H, W, C] block on the copy engine) against
    the 600 rows the filter reads (gather_rows: the SMs read the host frames over the bus), as
    ``GpuPreprocessor.upload`` enqueues them. Milliseconds per frame from the stream's events,
    median and p5/p95 over ``reps`` after three warm-up groups; both preprocessors' outputs of
    the frames must then agree bit for bit."""
    from trtssd.gpu.cuda import pinned_empty
    from trtssd.preprocess import GpuPreprocessor, PreprocessOptions
    o = PreprocessOptions()
    n = min(n, 16)
    block = pinned_empty((n,) + FRAME, np.uint8)
    block[...] = np.arange(block.shape[1], dtype=np.uint8)[None, :, None, None]
    frames = [block[k] for k in range(n)]
    stream = drv.Stream()
    ev = [drv.Event(), drv.Event()]
    res, outs = {}, []
    try:
        for name, whole in (("whole", True), ("rows", False)):
            with GpuPreprocessor(o, max_batch=n, max_frame_shape=FRAME,
                                 whole_uploads=whole) as pre:
                ms = []
                for r in range(reps + 3):
                    drv.Context.synchronize()
                    ev[0].record(stream)
                    pre.upload(frames, stream=stream)
                    ev[1].record(stream)
                    drv.Context.synchronize()
                    if r >= 3:
                        ms.append(ev[1].time_since(ev[0]) / n)
                res["upload_%s_ms_per_frame" % name] = pct(ms)
                out, _ = pre.preprocess(frames, stream=stream)
                outs.append(out.get())
        if outs[0].tobytes() != outs[1].tobytes():
            raise RuntimeError("the gathered rows gave another network input than whole frames")
    finally:
        block.close()
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=16, help="frames per timed group")
    p.add_argument("--reps", type=int, default=30, help="timed groups per case")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    from trtssd.core.env import gpu_unavailable_reason
    reason = gpu_unavailable_reason()
    if reason:
        print("bench_pcie: skipped: %s" % reason)
        return 0
    from trtssd.gpu.cuda import CudaContext, driver
    ctx = CudaContext(0)
    try:
        with ctx.active():
            res = measure(driver(), args.frames, args.reps)
            res.update(measure_uploads(driver(), args.frames, args.reps))
            res.update(placement(ctx.device))
            res["device"] = ctx.name
    finally:
        ctx.close()
    print("PCIe, %d x 1080p BGR (%.1f MB) per group, GB/s median (p5-p95):"
          % (args.frames, np.prod(FRAME) / 1e6))
    for k in sorted(k for k in res if k.endswith("_GBps")):
        v = res[k]
        print("  %-16s %6.1f (%.1f-%.1f)" % (k[:-5], v["median"], v["p5"], v["p95"]))
    for k in ("whole", "rows"):
        v = res["upload_%s_ms_per_frame" % k]
        print("  upload %-9s %6.3f ms a frame (%.3f-%.3f)" % (k, v["median"], v["p5"], v["p95"]))
    print("  GPU %s on NUMA node %s; this process may run on CPUs %s"
          % (res["pci_bus_id"], res["gpu_numa_node"], res["process_cpus"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
