"""What `trtssd bench` needs for real video: a generated H.264 clip and the decode-only rows.

``clip_for(spec)``: ``--video auto`` is a 1080p H.264 clip made here with PyAV (whose wheels
carry libx264), cached under ``$TRTSSD_CACHE/clips`` (generated, never shipped); any other
value is a file the user gave. The picture is moving boxes over a textured background, so
the encoder has motion and detail to code at a camera-like bitrate (``BITRATE``).

``decode_only(...)``: the source alone, as the source's own ceiling: ``sessions`` sources of
the clip (one decoder each, a thread each, all at once) reading frames into their buffers and
giving them back, nothing else; wall clock and process CPU time.
"""
import os
import threading
import time

import numpy as np

from ..core.errors import EnvironmentProblem, InputError

CLIP_SIZE = (1920, 1080)
CLIP_FRAMES = 600
CLIP_FPS = 30
BITRATE = 4000000       # ~10 MB for the 600-frame clip: small enough to carry to a GPU host


def clip_path(cache_dir=None, size=CLIP_SIZE, frames=CLIP_FRAMES):
    from ..models.resolve import default_cache_dir
    d = os.path.join(cache_dir or default_cache_dir(), "clips")
    return os.path.join(d, "trtssd-h264-%dx%d-%d.mp4" % (size[0], size[1], frames))


def _picture(k, w, h, base, rng_boxes):
    img = base.copy()
    for (x0, y0, vx, vy, bw, bh, color) in rng_boxes:
        x = int((x0 + vx * k) % max(1, w - bw))
        y = int((y0 + vy * k) % max(1, h - bh))
        img[y:y + bh, x:x + bw] = color
    return img


def make_clip(path, size=CLIP_SIZE, frames=CLIP_FRAMES, fps=CLIP_FPS, bitrate=BITRATE):
    """Encode an H.264 .mp4 of ``frames`` pictures at ``size`` with PyAV into ``path``
    (written beside and renamed, so a half-written clip is never left); returns ``path``."""
    try:
        import av
    except ImportError:
        raise EnvironmentProblem("making the benchmark clip needs PyAV: `pip install av` (its "
                                 "wheels carry libx264), or pass --video FILE")
    w, h = int(size[0]), int(size[1])
    if w % 2 or h % 2 or w < 16 or h < 16:
        raise InputError("clip size %dx%d: H.264 in 4:2:0 needs even sizes >= 16" % (w, h))
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        os.makedirs(d)
    rng = np.random.RandomState(7)
    small = rng.randint(0, 256, size=(-(-h // 16), -(-w // 16), 3)).astype(np.uint8)
    base = np.repeat(np.repeat(small, 16, axis=0), 16, axis=1)[:h, :w]
    boxes = [(rng.randint(0, w), rng.randint(0, h), rng.randint(-12, 13), rng.randint(-8, 9),
              rng.randint(w // 20, w // 5), rng.randint(h // 20, h // 5),
              rng.randint(0, 256, size=3).astype(np.uint8)) for _ in range(12)]
    tmp = path + ".part.mp4"
    out = av.open(tmp, "w")
    try:
        stream = out.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = int(bitrate)
        stream.options = {"preset": "veryfast", "bf": "0"}
        for k in range(int(frames)):
            frame = av.VideoFrame.from_ndarray(_picture(k, w, h, base, boxes), format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    finally:
        out.close()
    os.replace(tmp, path)
    return path


def clip_for(spec, progress=None, cache_dir=None):
    """The video file of ``--video SPEC``: 'auto' = the cached generated clip (made now when
    missing), else the path given."""
    if spec != "auto":
        if not os.path.isfile(spec):
            raise InputError("--video %s: no such file; give a video file or 'auto' (a "
                             "generated 1080p H.264 clip)" % spec)
        return spec
    path = clip_path(cache_dir)
    if not os.path.isfile(path):
        t0 = time.perf_counter()
        if progress is not None:
            progress.log("video: making %s (1080p H.264, %d frames, PyAV)..."
                         % (path, CLIP_FRAMES))
        make_clip(path)
        if progress is not None:
            progress.log("video: made in %.1f s" % (time.perf_counter() - t0))
    return path


def decode_only(open_one, sessions, max_frames, seconds, warmup=10, allocate=None):
    """Frames per second of ``sessions`` sources (``open_one()`` each) read at once, one
    thread each, each frame given back at once (into a buffer of its own when the source
    lends none). Returns (frames, wall s, process CPU s); the first ``warmup`` frames of each
    (decoder start-up) are not counted."""
    srcs = [open_one() for _ in range(int(sessions))]
    counts = [0] * len(srcs)
    errors = []
    start = threading.Barrier(len(srcs) + 1)
    try:
        for s in srcs:
            if getattr(s, "device_frames", None) is not None:
                s.device_frames = True
            provide = getattr(s, "provide_buffers", None)
            own = bool(provide(allocate or (lambda shape: np.empty(shape, np.uint8)), None, 4)
                       if provide is not None else False)
            s._bench_out = None if own else _buffer_for(s)

        def reader(k, s):
            try:
                for _ in range(warmup):
                    f = s.read(out=s._bench_out) if s._bench_out is not None else s.read()
                    if f is None:
                        break
                    f.done()
            except BaseException as e:
                errors.append(e)
            try:
                start.wait()
            except threading.BrokenBarrierError:
                return
            try:
                n, t_end = 0, None if seconds is None else time.perf_counter() + seconds
                while max_frames is None or n < max_frames:
                    if t_end is not None and time.perf_counter() >= t_end:
                        break
                    f = s.read(out=s._bench_out) if s._bench_out is not None else s.read()
                    if f is None:
                        break
                    f.done()
                    n += 1
                counts[k] = n
            except BaseException as e:
                errors.append(e)
        threads = [threading.Thread(target=reader, args=(k, s), name="trtssd-decode-%d" % k)
                   for k, s in enumerate(srcs)]
        for t in threads:
            t.daemon = True
            t.start()
        start.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        for t in threads:
            t.join()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        for s in srcs:
            try:
                s.close()
            except Exception:
                pass
    if errors:
        raise errors[0]
    return sum(counts), wall, cpu


def _buffer_for(src):
    h, w = int(getattr(src, "height", 0) or 0), int(getattr(src, "width", 0) or 0)
    if h <= 0 or w <= 0:
        return None
    from ..pipeline.slots import frame_shape
    return np.empty(frame_shape(getattr(src, "pixel_format", None), h, w), np.uint8)


def main(argv=None):
    """``python -m trtssd.commands.bench_video [PATH]``: make the benchmark clip at PATH (for
    a GPU machine without PyAV: make it here and carry it, then ``--video PATH``)."""
    import sys
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else clip_path()
    t0 = time.perf_counter()
    make_clip(path)
    print("%s: 1080p H.264, %d frames, %.1f MB, %.1f s" % (
        path, CLIP_FRAMES, os.path.getsize(path) / 1e6, time.perf_counter() - t0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
