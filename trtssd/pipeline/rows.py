"""Uploading only the frame rows the preprocessing kernel reads.

A 1080-row frame resized to 300 rows with the bilinear filter reads two source rows per
output row, 600 of 1,080: the other 44% of a host frame's bytes need not cross PCIe.
``rows_read(options, geometry)`` lists the rows the kernel reads (the same float32 coordinate
rule as the kernel's ``linear_coord``/nearest mapping, widened by the one-ulp cases where a
fused multiply-add could floor differently, so no read row is ever missed), and
``copy_plan(rows)`` groups them into a few strided blocks (``Block``: ``count`` runs of
``rows`` consecutive rows, ``period`` rows apart, from ``start``), each one 2D copy.
``upload_rows(...)`` enqueues those copies from a pinned host frame into a device frame of the
same shape; rows the kernel does not read are left as they were. GpuSlot uses it for pinned
host frames in BGR-like (H, W, C) layouts; the result is the same bits as a full upload.
"""
import collections

import numpy as np

Block = collections.namedtuple("Block", "start rows period count")

# more copies than this per frame cost more host time than the bytes they save
MAX_BLOCKS = 12
# below this saving a full upload (one copy) is used
MIN_SAVING = 0.15


def _floors(f32, exact):
    """Floors of a coordinate as the kernel may compute it: float32 multiply then subtract,
    or fused (exact, then rounded once to float32)."""
    return np.unique(np.concatenate([np.floor(f32), np.floor(exact),
                                     np.floor(exact.astype(np.float32))]).astype(np.int64))


def rows_read(options, geometry):
    """Sorted source rows (int64 array) the kernel reads for a frame of ``geometry``."""
    h = int(geometry.frame_height)
    if options.letterbox:
        ih = int(geometry.inner_size[1])
    else:
        ih = int(options.height)
    iy = np.arange(ih, dtype=np.float64)
    if options.interpolation == "nearest":
        nn = 1.0 / (float(ih) / float(h))
        rows = np.minimum(np.floor(iy * nn).astype(np.int64), h - 1)
        return np.unique(np.concatenate([rows, np.minimum(
            np.floor(np.nextafter(iy * nn, np.inf)).astype(np.int64), h - 1)]))
    sy = np.float32(float(h) / float(ih))
    f32 = (iy.astype(np.float32) + np.float32(0.5)) * sy - np.float32(0.5)
    exact = (iy + 0.5) * float(sy) - 0.5
    i0 = np.clip(_floors(f32, exact), 0, h - 1)
    return np.unique(np.concatenate([i0, np.minimum(i0 + 1, h - 1)]))


def _runs(rows):
    """[(start, length)] of the maximal runs of consecutive rows."""
    if len(rows) == 0:
        return []
    breaks = np.nonzero(np.diff(rows) != 1)[0]
    starts = np.concatenate([[rows[0]], rows[breaks + 1]])
    ends = np.concatenate([rows[breaks], [rows[-1]]])
    return [(int(s), int(e - s + 1)) for s, e in zip(starts, ends)]


def copy_plan(rows, height, max_blocks=MAX_BLOCKS, min_saving=MIN_SAVING):
    """Strided blocks covering exactly ``rows`` of a ``height``-row frame, or None when a
    full upload is the better choice (too many blocks, or too little saved)."""
    rows = np.asarray(rows, np.int64)
    if len(rows) == 0 or len(rows) > (1.0 - min_saving) * height:
        return None
    by_len = collections.OrderedDict()
    for s, n in _runs(rows):
        by_len.setdefault(n, []).append(s)
    blocks = []
    for n, starts in by_len.items():
        left = sorted(starts)
        taken = set()
        members = set(left)
        for i, s in enumerate(left):
            if s in taken:
                continue
            best = (1, 1)                               # (count, period)
            ahead = [t for t in left[i + 1:i + 17] if t not in taken]
            for t in ahead:
                d = t - s
                k = 1
                while s + k * d in members and s + k * d not in taken:
                    k += 1
                if k > best[0]:
                    best = (k, d)
            k, d = best
            for j in range(k):
                taken.add(s + j * d)
            blocks.append(Block(s, n, d, k))
            if len(blocks) > max_blocks:
                return None
    return sorted(blocks)


def plan_rows(plan):
    """The rows a plan copies (sorted), for checks."""
    out = []
    for b in plan:
        for j in range(b.count):
            out.extend(range(b.start + j * b.period, b.start + j * b.period + b.rows))
    return sorted(out)


def upload_rows(plan, host, dev_ptr, stream):
    """Enqueue the plan's copies from the pinned C-contiguous host frame ``host`` (H, W, C)
    into device memory at ``dev_ptr`` (the same layout) on ``stream``."""
    from ..gpu.cuda import driver
    drv = driver()
    row = int(host.strides[0])
    flat = host.reshape(-1)
    for b in plan:
        m = drv.Memcpy2D()
        m.set_src_host(flat[b.start * row:])
        m.set_dst_device(int(dev_ptr) + b.start * row)
        # a single run is one block of rows: its pitch is its own width
        m.src_pitch = m.dst_pitch = (b.period if b.count > 1 else b.rows) * row
        m.width_in_bytes = b.rows * row
        m.height = b.count
        m(stream)
