#!/usr/bin/env python3
"""Where multi x8's NVDEC frames go: the decoders alone, and beside each thing multi adds.

Every case reads ``--sessions`` copies of one clip at once, each session all of the clip's
frames after ``WARMUP`` (decoder start-up), each frame given back at once, and reports the
sessions' frames over the wall time from the common start to the last session's end, with
each session's own rate (the slowest sets a round-based mode's pace):

- ``threads``: trtssd's NvdecSource, a Python thread each (the bench's decode-only row);
- ``threads+python``: the same beside one more Python thread that runs pure Python for
  ``--python-us`` of every ``--python-period-us`` (a driving thread's share of the GIL);
- ``threads+network``: the same beside one thread replaying the network's batch-8 CUDA graph
  back to back on its own stream (the GPU work multi adds, with little host Python);
- ``processes``: NvdecSource, one process each (no GIL shared);
- ``processes+network``: the same beside the batch-8 graph replayed in this process (each
  process its own CUDA context: the network's and the decoders' work from different contexts);
- ``ipc`` / ``ipc+network``: a decoder process each that copies every picture into one of
  four device buffers of this process (CUDA IPC) and names it on a pipe; a thread of this
  process takes it and gives it back on another pipe (a process-backed source's data path),
  alone and beside the batch-8 graph;
- ``own+network`` / ``own-high+network``: a Python thread each decoding with Decode calls on a
  stream made through the driver API at the lowest (the default) or the highest priority, each
  picture copied into a buffer on that stream and waited for, beside the batch-8 graph (do the
  decoders' GPU steps wait behind the network's kernels?);
- ``threaded-decoder``: PyNvVideoCodec's ThreadedDecoder (its own C++ thread decodes ahead),
  a Python thread each taking one frame at a time and copying it into a device buffer as
  NvdecSource does.

    python -m benchmarks.bench_nvdec --clip clip.mp4 [--sessions 1 8] [--reps 2]
        [--cases threads processes ...] [--json out.json]

Needs a CUDA GPU with NVDEC and PyNvVideoCodec (and torch for ``threads+network``).
"""
import argparse
import ctypes
import json
import multiprocessing
import os
import platform
import sys
import threading
import time

WARMUP = 10
CASES = ("threads", "threads+python", "threads+network", "processes", "processes+network",
         "ipc", "ipc+network", "own+network", "own-high+network", "threaded-decoder")
IPC_BUFFERS = 4
IPC_END = 255


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if not n else (xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2]))


def read_all(reader, start, out, k):
    """One session: ``WARMUP`` frames, the barrier, then every frame to the end; its count and
    its end time into ``out[k]``, or the exception."""
    try:
        for _ in range(WARMUP):
            if not reader.step():
                break
        start.wait()
        n = 0
        while reader.step():
            n += 1
        out[k] = (n, time.perf_counter())
    except BaseException as e:        # noqa: B902 - reported by the caller
        out[k] = e
        start.abort()


def run_threads(make_reader, sessions, beside=None):
    """``sessions`` readers in threads, started together; ``beside`` (a callable taking a stop
    Event) runs in one more thread for the whole case. Returns the case's dict."""
    readers = [make_reader() for _ in range(sessions)]
    out = [None] * sessions
    start = threading.Barrier(sessions + 1)
    stop = threading.Event()
    side = None
    try:
        if beside is not None:
            side = threading.Thread(target=beside, args=(stop,), daemon=True)
            side.start()
        threads = [threading.Thread(target=read_all, args=(r, start, out, k), daemon=True)
                   for k, r in enumerate(readers)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
    finally:
        stop.set()
        if side is not None:
            side.join()
        for r in readers:
            r.close()
    return summarise(out, t0)


def summarise(out, t0):
    errors = [e for e in out if isinstance(e, BaseException)]
    if errors:
        raise errors[0]
    ends = [t for _, t in out]
    counts = [n for n, _ in out]
    wall = max(ends) - t0
    rates = [n / (t - t0) for n, t in out]
    return {"frames": sum(counts), "wall_s": wall, "fps": sum(counts) / wall,
            "session_fps_min": min(rates), "session_fps_max": max(rates),
            "round_fps": len(rates) * min(rates)}


class SourceReader(object):
    """trtssd's NvdecSource: read a frame, give it back."""

    def __init__(self, clip):
        from trtssd.io.nvdec import NvdecSource
        self.src = NvdecSource(clip)
        self.src.provide_buffers(None, None, 4)

    def step(self):
        f = self.src.read()
        if f is None:
            return False
        f.done()
        return True

    def close(self):
        self.src.close()


class ThreadedReader(object):
    """PyNvVideoCodec's ThreadedDecoder; each frame copied into a device buffer of ours on
    our stream and waited for, as NvdecSource copies into its ring."""

    def __init__(self, clip, buffer_size=8):
        import numpy as np
        import PyNvVideoCodec as nvc
        from trtssd.gpu.cuda import CudaContext, DeviceArray, driver
        self.cc = CudaContext(0)
        with self.cc.active():
            self.stream = driver().Stream()
            self.dec = nvc.ThreadedDecoder(clip, buffer_size, gpu_id=0,
                                           cuda_context=self.cc._ctx.handle,
                                           cuda_stream=self.stream.handle,
                                           use_device_memory=True)
            dmx = nvc.CreateDemuxer(filename=clip)
            self.w, self.h = int(dmx.Width()), int(dmx.Height())
            del dmx
            self.buf = DeviceArray((self.h * 3 // 2, self.w), np.uint8)

    def step(self):
        from trtssd.gpu.cuda import copy_2d
        from trtssd.io.nvdec import _planes
        with self.cc.active():
            frames = self.dec.get_batch_frames(1)
            if not frames:
                return False
            for ptr, pitch, rows, row0 in _planes(frames[0], self.h, self.w):
                copy_2d(ptr, pitch, int(self.buf.ptr) + row0 * self.w, self.w, self.w, rows,
                        self.stream)
            self.stream.synchronize()
        return True

    def close(self):
        with self.cc.active():
            self.stream.synchronize()
            self.dec = None
            self.buf.close()
        self.cc.close()


class _Cu(object):
    """The few driver-API calls a priority stream needs (ctypes, the GIL released)."""

    class Copy2D(ctypes.Structure):       # CUDA_MEMCPY2D
        _c = ctypes
        _fields_ = [("srcXInBytes", _c.c_size_t), ("srcY", _c.c_size_t),
                    ("srcMemoryType", _c.c_int), ("srcHost", _c.c_void_p),
                    ("srcDevice", _c.c_uint64), ("srcArray", _c.c_void_p),
                    ("srcPitch", _c.c_size_t),
                    ("dstXInBytes", _c.c_size_t), ("dstY", _c.c_size_t),
                    ("dstMemoryType", _c.c_int), ("dstHost", _c.c_void_p),
                    ("dstDevice", _c.c_uint64), ("dstArray", _c.c_void_p),
                    ("dstPitch", _c.c_size_t),
                    ("WidthInBytes", _c.c_size_t), ("Height", _c.c_size_t)]

    def __init__(self):
        self.c = ctypes
        self.lib = ctypes.CDLL("libcuda.so.1")

    def check(self, rc, what):
        if rc:
            raise RuntimeError("%s failed with CUDA error %d" % (what, rc))

    def stream(self, high):
        c = self.c
        least, greatest = c.c_int(), c.c_int()
        self.check(self.lib.cuCtxGetStreamPriorityRange(c.byref(least), c.byref(greatest)),
                   "cuCtxGetStreamPriorityRange")
        s = c.c_void_p()
        self.check(self.lib.cuStreamCreateWithPriority(
            c.byref(s), 1, greatest if high else least), "cuStreamCreateWithPriority")
        return s.value, (greatest.value if high else least.value)

    def copy(self, src, src_pitch, dst, dst_pitch, width, rows, stream):
        m = self.Copy2D(srcMemoryType=2, srcDevice=src, srcPitch=src_pitch, dstMemoryType=2,
                        dstDevice=dst, dstPitch=dst_pitch, WidthInBytes=width, Height=rows)
        self.check(self.lib.cuMemcpy2DAsync_v2(self.c.byref(m), self.c.c_void_p(stream)),
                   "cuMemcpy2DAsync")

    def sync(self, stream):
        self.check(self.lib.cuStreamSynchronize(self.c.c_void_p(stream)), "cuStreamSynchronize")

    def destroy(self, stream):
        self.check(self.lib.cuStreamDestroy_v2(self.c.c_void_p(stream)), "cuStreamDestroy")


class OwnStreamReader(object):
    """Decode calls on a stream of a chosen priority (``high``: the context's greatest, else
    its least, the default's), each picture copied into one device buffer on that stream and
    waited for: NvdecSource's steps, its stream's priority the only difference."""

    def __init__(self, clip, high):
        import numpy as np
        import PyNvVideoCodec as nvc
        from trtssd.gpu.cuda import CudaContext, DeviceArray
        self.nvc, self.cu = nvc, _Cu()
        self.cc = CudaContext(0)
        with self.cc.active():
            self.stream, self.priority = self.cu.stream(high)
            self.dmx = nvc.CreateDemuxer(filename=clip)
            self.dec = nvc.CreateDecoder(gpuid=0, codec=self.dmx.GetNvCodecId(),
                                         cudacontext=self.cc._ctx.handle,
                                         cudastream=self.stream, usedevicememory=True)
            self.w, self.h = int(self.dmx.Width()), int(self.dmx.Height())
            self.buf = DeviceArray((self.h * 3 // 2, self.w), np.uint8)
        self.it = self._pictures()

    def _pictures(self):
        for packet in self.dmx:
            for pic in self.dec.Decode(packet) or ():
                yield pic
        for pic in self.dec.Decode(self.nvc.PacketData()) or ():
            yield pic

    def step(self):
        from trtssd.io.nvdec import _planes
        with self.cc.active():
            pic = next(self.it, None)
            if pic is None:
                return False
            for ptr, pitch, rows, row0 in _planes(pic, self.h, self.w):
                self.cu.copy(ptr, pitch, int(self.buf.ptr) + row0 * self.w, self.w, self.w,
                             rows, self.stream)
            self.cu.sync(self.stream)
        return True

    def close(self):
        with self.cc.active():
            self.cu.sync(self.stream)
            self.it = self.dec = self.dmx = None
            self.buf.close()
            self.cu.destroy(self.stream)
        self.cc.close()


def python_load(busy_us, period_us):
    """A thread body: pure Python for ``busy_us`` (the GIL held, as a driving thread's
    Python holds it), then a sleep for the rest of ``period_us``, until stopped."""
    def body(stop):
        busy, period = busy_us * 1e-6, period_us * 1e-6
        while not stop.is_set():
            t0 = time.perf_counter()
            x = 0
            while time.perf_counter() - t0 < busy:
                x += 1
            rest = period - (time.perf_counter() - t0)
            if rest > 0:
                time.sleep(rest)
    return body


def network_load():
    """A thread body: the model's batch-8 CUDA graph (trtssd's torch backend, fp32) replayed
    back to back on its own stream until stopped; made before it returns."""
    import torch
    from trtssd.backends.torch_backend import TorchBackend
    from trtssd.models import resolve as models
    onnx = models.onnx_for(models.resolve_model())
    be = TorchBackend(onnx, device="cuda", precision="fp32", max_batch=8, cuda_graph=True)
    b_shape, s_shape = be.output_shapes(8)
    images = torch.zeros((8, 3, be.spec.input_height, be.spec.input_width), device="cuda")
    ctx = be.create_context(images, torch.empty(b_shape, device="cuda"),
                            torch.empty(s_shape, device="cuda"))
    stream = torch.cuda.Stream()
    for _ in range(20):
        ctx.enqueue(stream)
    stream.synchronize()
    done = []

    def body(stop):
        n = 0
        t0 = time.perf_counter()
        while not stop.is_set():
            ctx.enqueue(stream)
            stream.synchronize()
            n += 1
        done.append(8 * n / (time.perf_counter() - t0))
    body.rates = done
    return body


def _process_main(clip, barrier, queue):
    try:
        r = SourceReader(clip)
        out = [None]
        read_all(r, barrier, out, 0)       # a multiprocessing Barrier waits and aborts alike
        r.close()
        queue.put(out[0] if not isinstance(out[0], BaseException) else repr(out[0]))
    except BaseException as e:        # noqa: B902
        queue.put(repr(e))
        barrier.abort()


def _ipc_main(clip, handles, barrier, queue, frame_conn, free_conn):
    """A decoder process of the ``ipc`` cases: each picture copied into this process's mapping
    of one of the parent's buffers (the first one given back), waited for, and its index
    written to ``frame_conn``'s pipe; IPC_END after the last (the pipes' bytes are read and
    written raw). Its count and end time into ``queue``."""
    out = [None]
    frame_fd, free_fd = frame_conn.fileno(), free_conn.fileno()
    try:
        import PyNvVideoCodec as nvc
        from trtssd.gpu.cuda import CudaContext, copy_2d, driver
        from trtssd.io.nvdec import _planes
        drv = driver()
        cc = CudaContext(0)
        with cc.active():
            stream = drv.Stream()
            mapped = [drv.IPCMemoryHandle(h) for h in handles]
            ptrs = [int(m) for m in mapped]
            dmx = nvc.CreateDemuxer(filename=clip)
            dec = nvc.CreateDecoder(gpuid=0, codec=dmx.GetNvCodecId(),
                                    cudacontext=cc._ctx.handle, cudastream=stream.handle,
                                    usedevicememory=True)
            w, h = int(dmx.Width()), int(dmx.Height())
            free = list(range(len(ptrs)))

            def pictures():
                for packet in dmx:
                    for pic in dec.Decode(packet) or ():
                        yield pic
                for pic in dec.Decode(nvc.PacketData()) or ():
                    yield pic

            class Reader(object):
                it = pictures()

                def step(self):
                    pic = next(self.it, None)
                    if pic is None:
                        return False
                    while not free:
                        free.extend(bytearray(os.read(free_fd, 64)))
                    k = free.pop(0)
                    for ptr, pitch, rows, row0 in _planes(pic, h, w):
                        copy_2d(ptr, pitch, ptrs[k] + row0 * w, w, w, rows, stream)
                    stream.synchronize()
                    os.write(frame_fd, bytes([k]))
                    return True
            read_all(Reader(), barrier, out, 0)
            os.write(frame_fd, bytes([IPC_END]))
            while len(free) < len(ptrs):       # every buffer back before they are unmapped
                free.extend(bytearray(os.read(free_fd, 64)))
            dec = dmx = None
            for m in mapped:
                m.close()
        cc.close()
        queue.put(out[0] if not isinstance(out[0], BaseException) else repr(out[0]))
    except BaseException as e:        # noqa: B902
        queue.put(repr(e))
        barrier.abort()
        try:
            os.write(frame_fd, bytes([IPC_END]))
        except OSError:
            pass


def _ipc_taker(frame_fd, free_fd):
    """This process's side of one ``ipc`` session: every buffer named is given back at once,
    until IPC_END."""
    while True:
        got = bytearray(os.read(frame_fd, 64))
        if not got:
            return
        back = bytes(k for k in got if k != IPC_END)
        if back:
            os.write(free_fd, back)
        if IPC_END in got:
            return


def run_processes(clip, sessions, beside=None, ipc=False):
    """``sessions`` processes, one NvdecSource each (``ipc``: one decoder each writing into
    this process's buffers, see ``_ipc_main``), started together (a barrier after each decoded
    its warm-up frames); ``beside`` as in run_threads."""
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(sessions + 1)
    queue = mp.Queue()
    stop = threading.Event()
    side = None
    procs, takers, fds, bufs = [], [], [], []
    cc = None
    try:
        if ipc:
            import numpy as np
            from trtssd.gpu.cuda import CudaContext, DeviceArray, driver
            cc = CudaContext(0)
            dmx = __import__("PyNvVideoCodec").CreateDemuxer(filename=clip)
            shape = (int(dmx.Height()) * 3 // 2, int(dmx.Width()))
            del dmx
        for _ in range(sessions):
            if ipc:
                with cc.active():
                    mine = [DeviceArray(shape, np.uint8) for _ in range(IPC_BUFFERS)]
                    handles = [driver().mem_get_ipc_handle(a.ptr) for a in mine]
                bufs.extend(mine)
                frame_r, frame_w = mp.Pipe(duplex=False)     # os.pipe()s, passed on by spawn
                free_r, free_w = mp.Pipe(duplex=False)
                fds.extend([frame_r, frame_w, free_r, free_w])
                p = mp.Process(target=_ipc_main, daemon=True,
                               args=(clip, handles, barrier, queue, frame_w, free_r))
                takers.append(threading.Thread(target=_ipc_taker, daemon=True,
                                               args=(frame_r.fileno(), free_w.fileno())))
            else:
                p = mp.Process(target=_process_main, args=(clip, barrier, queue), daemon=True)
            procs.append(p)
        for p in procs:
            p.start()
        for t in takers:
            t.start()
        if beside is not None:
            side = threading.Thread(target=beside, args=(stop,), daemon=True)
            side.start()
        barrier.wait(timeout=120)
        t0 = time.perf_counter()       # perf_counter is CLOCK_MONOTONIC: one clock for all
        out = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(10)
    finally:
        stop.set()
        if side is not None:
            side.join()
        for t in takers:
            t.join(10)
        for conn in fds:
            conn.close()
        if bufs:
            with cc.active():
                for a in bufs:
                    a.close()
        if cc is not None:
            cc.close()
    bad = [o for o in out if isinstance(o, str)]
    if bad:
        raise RuntimeError("a decoding process failed: %s" % bad[0])
    return summarise(out, t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", required=True)
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 8])
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    p.add_argument("--python-us", type=float, default=40.0)
    p.add_argument("--python-period-us", type=float, default=200.0)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if not os.path.isfile(a.clip):
        print("--clip %s: no such file" % a.clip, file=sys.stderr)
        return 2
    net = network_load() if any(c.endswith("+network") for c in a.cases) else None
    rows = []
    for rep in range(a.reps):
        for n in a.sessions:
            for case in a.cases:
                if n == 1 and case not in ("threads", "threaded-decoder", "ipc"):
                    continue
                if case.startswith(("processes", "ipc")):
                    r = run_processes(a.clip, n, net if case.endswith("+network") else None,
                                      ipc=case.startswith("ipc"))
                else:
                    make = {"threaded-decoder": lambda: ThreadedReader(a.clip),
                            "own+network": lambda: OwnStreamReader(a.clip, False),
                            "own-high+network": lambda: OwnStreamReader(a.clip, True),
                            }.get(case, lambda: SourceReader(a.clip))
                    beside = (python_load(a.python_us, a.python_period_us)
                              if case == "threads+python" else
                              net if case.endswith("+network") else None)
                    r = run_threads(make, n, beside)
                if case.endswith("+network"):
                    r["network_img_s"] = net.rates.pop()
                r.update(case=case, sessions=n, rep=rep + 1)
                rows.append(r)
                print("%-17s x%d rep %d: %7.0f FPS (sessions %4.0f-%4.0f, round pace %6.0f)%s"
                      % (case, n, rep + 1, r["fps"], r["session_fps_min"],
                         r["session_fps_max"], r["round_fps"],
                         "  network %.0f img/s" % r["network_img_s"]
                         if "network_img_s" in r else ""), flush=True)
    summary = {}
    for r in rows:
        summary.setdefault("%s x%d" % (r["case"], r["sessions"]), []).append(r["fps"])
    for k, v in summary.items():
        print("%-20s median %7.0f FPS over %d (%.0f-%.0f)" % (k, median(v), len(v), min(v),
                                                              max(v)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"host": platform.node(), "date": time.strftime("%Y-%m-%d"),
                       "python_us": a.python_us, "python_period_us": a.python_period_us,
                       "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
