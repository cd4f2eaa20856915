"""The device layout of the detections (trtssd/io/draw.cu's layout_detections, trtssd.io.draw_device)
against the host's: for random kept rows as the GPU postprocessing writes them, the primitive
list the kernel writes must equal ``draw_gpu.expand(layout_detections(...))`` of the
Detections the host makes of the same rows (GpuPostprocessor.results: to_frame, label_names),
field by field, and the frame drawn by draw_prims_counted must equal the NumPy rasteriser of
test_draw_gpu.py on those primitives, pixel for pixel (the same integer arithmetic: no
tolerance). Run through the CPU shim (tests/support/fake_cuda), so the kernels' real source
is what is checked; frames of odd sizes, letterboxed or stretched, normalised and pixel boxes,
boxes beyond the frame, scores on the rounding ties of "%.2f", names with spaces, empty and
non-ASCII, every overlay, class filters, and batch frames other than the first.
"""
from types import SimpleNamespace

import numpy as np
import pytest

from support import fake_cuda
from trtssd.core.detections import Detections, label_names
from trtssd.core.geometry import FrameGeometry
from trtssd.io.draw import layout_detections
from trtssd.io.draw_device import DrawTables, box_template
from trtssd.postprocess.cpu import to_frame
from trtssd.postprocess.gpu import HEADER_FLOATS, MAX_DETECTIONS_GPU, ROW_FLOATS

cv2 = pytest.importorskip("cv2", reason="drawing needs OpenCV (opencv-python-headless)")
from test_draw_gpu import atlas_for, expand, numpy_raster  # noqa: E402

FORMATS = {"layout_detections": "PPPPPPddddddiiPPi", "draw_prims_counted": "PPPiPqii",
           "draw_prims": "PiPiPqii"}
STRIDE = HEADER_FLOATS + MAX_DETECTIONS_GPU * ROW_FLOATS


@pytest.fixture(params=["direct", "prepared"])
def fake_gpu(monkeypatch, request):
    return fake_cuda.install(monkeypatch, request.param, FORMATS, grid_len=3)


def spec_of(num_classes, net_w, net_h, normalized):
    return SimpleNamespace(num_classes=num_classes, input_width=net_w, input_height=net_h,
                           outputs=SimpleNamespace(normalized=normalized))


def random_rows(rng, spec, n, frames=1):
    """Kept rows as postprocess.cu writes them: count in the header, then (ymin, xmin, ymax,
    xmax) in the model's units, score, class, anchor, 0; the rest NaN (poisoned)."""
    out = np.full((frames, STRIDE), np.nan, np.float32)
    for f in range(frames):
        out[f, 0] = n
        r = out[f, HEADER_FLOATS:HEADER_FLOATS + n * ROW_FLOATS].reshape(n, ROW_FLOATS)
        yx = rng.uniform(-0.15, 1.1, (n, 2))
        hw = rng.exponential(0.2, (n, 2)) * rng.choice([0, 1], (n, 1), p=[0.1, 0.9])
        box = np.concatenate([yx, yx + hw], 1)
        if not spec.outputs.normalized:
            box = box * np.array([spec.input_height, spec.input_width] * 2)
            # half pixels: on a frame of the network's size they are the ties of round()
            half = rng.random(n) < 0.4          # a whole box at a time: corners stay ordered
            box[half] = np.floor(box[half]) + 0.5
        r[:, :4] = box
        ties = np.array([0.0, 1.0, 0.125, 0.375, 0.005, 0.995, 0.015, 0.5, 0.285], np.float32)
        s = rng.uniform(0, 1, n).astype(np.float32)
        pick = rng.random(n) < 0.3
        s[pick] = ties[rng.integers(0, len(ties), int(pick.sum()))]
        r[:, 4] = s
        r[:, 5] = rng.integers(0, spec.num_classes, n)
        r[:, 6] = rng.integers(0, 1000, n)
        r[:, 7] = 0
    return out


def host_detections(rows, geometry, spec, names):
    """What GpuPostprocessor.results makes of one frame's rows."""
    k = int(rows[0])
    r = rows[HEADER_FLOATS:HEADER_FLOATS + k * ROW_FLOATS].reshape(k, ROW_FLOATS)
    cls = r[:, 5].astype(np.int32)
    return Detections(to_frame(r[:, :4], geometry, spec), r[:, 4], cls, label_names(names, cls))


NAME_POOL = ["person", "car", "traffic light", "", " ", "dog", "\u00e9t\u00e9", "x" * 30]


def case(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(9, 300)), int(rng.integers(9, 360))
    c = int(rng.choice([3, 7, 91 if seed % 5 == 0 else 9]))
    spec = spec_of(c, int(rng.choice([300, 320])), int(rng.choice([300, 240])),
                   bool(rng.random() < 0.7))
    if seed % 4 == 1:           # the network's size: frame pixels are the boxes' own
        h, w = spec.input_height, spec.input_width
        spec.outputs.normalized = False
    opts = SimpleNamespace(width=spec.input_width, height=spec.input_height,
                           letterbox=bool(rng.random() < 0.5))
    geometry = FrameGeometry.compute(w, h, opts)
    names = None if rng.random() < 0.3 else [NAME_POOL[k] for k in
                                            rng.integers(0, len(NAME_POOL), c)]
    labels = None if rng.random() < 0.5 else ["L%d" % k for k in range(c)]
    overlay = [None, "box", "labels", "conf", "box,conf", "labels,conf", "none"][
        int(rng.integers(0, 7))]
    class_ids = None if rng.random() < 0.6 else rng.choice(c, int(rng.integers(1, c + 1)),
                                                          replace=False)
    n = int(rng.choice([0, 1, 2, 5, 13, 40, MAX_DETECTIONS_GPU]))
    return rng, h, w, spec, geometry, names, labels, overlay, class_ids, n


def expected(rows, geometry, spec, names, labels, overlay, class_ids, h, w):
    det = host_detections(rows, geometry, spec, names)
    if class_ids is not None and len(det):
        det = det[np.isin(np.asarray(det.class_ids), class_ids)]
    layout = layout_detections((h, w), det, labels, overlay=overlay)
    atlas = atlas_for(layout)
    return expand(layout, atlas), atlas


def check_case(seed):
    """One random case through DetectionDrawer with the driver in place (fake or pycuda)."""
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.io.draw_device import DetectionDrawer
    from trtssd.io.draw_gpu import GpuDrawer
    from trtssd.pipeline.slots import DrawStyle
    rng, h, w, spec, geometry, names, labels, overlay, class_ids, n = case(seed)
    frames = 3
    rows = random_rows(rng, spec, n, frames)
    style = DrawStyle(labels=labels, overlay=overlay, class_ids=class_ids)
    pitch = w * 3 + int(rng.choice([0, 5]))
    k = int(rng.integers(0, frames))
    picture = rng.integers(0, 256, (h, pitch), dtype=np.uint8)
    with GpuDrawer(ring=2) as drawer, DetectionDrawer(drawer, spec, names, style, frames,
                                                      MAX_DETECTIONS_GPU) as dd:
        dev = DeviceArray((h, pitch), np.uint8)
        d_rows = DeviceArray(rows.shape, np.float32)
        try:
            dev.copy_from_host(picture)
            d_rows.copy_from_host(rows)
            dd.enqueue(k, d_rows.ptr + k * STRIDE * 4, geometry, dev.ptr, pitch, w, h, None)
            got = dd.primitives(k, h, w)
            drawn = dev.get()
        finally:
            dev.close()
            d_rows.close()
    want, atlas = expected(rows[k], geometry, spec, names, labels, overlay, class_ids, h, w)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.int32).reshape(-1, 8),
                                  want.view(np.int32).reshape(-1, 8))
    ref = picture.copy()
    ref[:, :w * 3] = numpy_raster(np.ascontiguousarray(picture[:, :w * 3]).reshape(h, w, 3),
                                  want, atlas.pixels).reshape(h, w * 3)
    np.testing.assert_array_equal(drawn, ref)       # the pitch's padding untouched too


@pytest.mark.parametrize("seed", range(24))
def test_device_layout_writes_the_hosts_primitives_and_pixels(fake_gpu, seed):
    check_case(seed)


def test_device_layout_on_a_gpu(cuda_context):
    for seed in range(24):
        check_case(seed)


def test_box_template_reproduces_box_prims_at_every_thickness():
    from trtssd.io.draw_gpu import Atlas
    rng = np.random.default_rng(11)
    for t in range(1, 12):
        atlas = Atlas(t, 0.5, max(1, t // 2))
        tpl = box_template(atlas)
        for _ in range(20):
            x1, y1 = [int(v) for v in rng.integers(0, 400, 2)]
            x2, y2 = x1 + int(rng.integers(0, 300)), y1 + int(rng.integers(0, 300))
            corners = (x1, y1, x2, y2)
            got = [(corners[r[0]] + r[1], corners[r[2]] + r[3], corners[r[4]] + r[5],
                    corners[r[6]] + r[7], r[8], r[9], 77, 0) for r in tpl.tolist()]
            assert got == [tuple(p) for p in atlas.box_prims(x1, y1, x2, y2, 77)]


def test_tables_score_entries_are_the_two_decimal_texts():
    """Entry s of a class is the text of a score that "%.2f" writes as s/100, and the device's
    index rint(score * 100) (exact in double for a float32 score) is that s."""
    from trtssd.io.draw_gpu import Atlas
    atlas = Atlas(2, 0.5, 1)
    t = DrawTables(atlas, 3, "labels,conf", names=["a", "bb", ""], max_detections=4)
    assert t.style.tolist() == [3, 101, 0]
    rng = np.random.default_rng(5)
    scores = np.concatenate([rng.uniform(0, 1, 2000), np.arange(0, 1.0001, 0.005)]).astype(
        np.float32)
    for v in scores:
        s = int(np.rint(np.float64(v) * 100.0))
        assert "%.2f" % float(v) == "%.2f" % (s / 100.0)
    for cid, name in enumerate(["a", "bb", ""]):
        for s in (0, 7, 50, 100):
            off, count, tw, th, base = t.entries[cid * 101 + s].tolist()
            text = ("%s %.2f" % (name, s / 100.0))
            (w0, h0), b0 = cv2.getTextSize(text, 0, 0.5, 1)
            assert (tw, th, base) == (w0, h0, b0)
            np.testing.assert_array_equal(t.glyphs[off:off + count], atlas.text_prims(text))
    none = DrawTables(atlas, 3, "box", max_detections=4)
    assert none.style.tolist()[1] == 1 and (none.entries[:, 1] == -1).all()


def test_bad_arguments_are_clear_errors(fake_gpu):
    from trtssd.core.errors import InputError
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.io.draw_device import LAYOUT_THREADS, DetectionDrawer
    from trtssd.io.draw_gpu import GpuDrawer
    from trtssd.pipeline.slots import DrawStyle
    spec = spec_of(5, 300, 300, True)
    g = FrameGeometry.compute(40, 30, SimpleNamespace(width=300, height=300, letterbox=False))
    with GpuDrawer(ring=2) as drawer:
        with pytest.raises(InputError, match="at most %d boxes" % LAYOUT_THREADS):
            DetectionDrawer(drawer, spec, None, DrawStyle(), 1, LAYOUT_THREADS + 1)
        dd = DetectionDrawer(drawer, spec, None, DrawStyle(), 2, 10)
        rows = DeviceArray((STRIDE,), np.float32)
        frame = DeviceArray((30, 40, 3), np.uint8)
        try:
            with pytest.raises(InputError, match="frame 2 of a batch of at most 2"):
                dd.enqueue(2, rows.ptr, g, frame.ptr, 120, 40, 30, None)
            dd.close()
            dd.close()                                  # idempotent
            with pytest.raises(InputError, match="closed"):
                dd.enqueue(0, rows.ptr, g, frame.ptr, 120, 40, 30, None)
        finally:
            rows.close()
            frame.close()
