"""The GPU slot's drawing path on the CPU (tests/support/fake_cuda: device memory is host
memory, the kernels run through the CPU shim): where the preprocessor left each frame on the
device (GpuPreprocessor.device_frames), the copy of those pixels into the slot's pictures
right after the preprocessing (GpuSlot._copy_pictures), the next batch's upload into the same
staging after it (GpuSlot.stage's ordering), the drawing into the pictures, laid out on the
device from kept rows, and their download (GpuSlot._enqueue_draw), against OpenCV's drawing of
the same boxes; writable frames are left to the CPU, read-only ones are drawn on the device
copy and never touched on the host.
"""
import numpy as np
import pytest

from support import fake_cuda
from trtssd.io.draw import draw_detections, layout_detections
from trtssd.io.sources import Frame
from trtssd.postprocess.gpu import HEADER_FLOATS, MAX_DETECTIONS_GPU, ROW_FLOATS

STRIDE = HEADER_FLOATS + MAX_DETECTIONS_GPU * ROW_FLOATS
pytest.importorskip("cv2", reason="drawing needs OpenCV (opencv-python-headless)")


@pytest.fixture(params=["direct", "prepared"])
def fake_gpu(monkeypatch, request):
    return fake_cuda.install(monkeypatch, request.param, {
        "preprocess_u8": "P64sqPii" + "f" * 9, "draw_prims": "PiPiPqii",
        "layout_detections": "PPPPPPddddddiiPPi", "draw_prims_counted": "PPPiPqii"},
        nullable={"preprocess_u8": (0,)}, grid_len=3)


class SlotParts(object):
    """What GpuSlot._enqueue_draw reads of its slot."""

    def __init__(self, drv, pre, post, dets_drawer, h_drawn, d_drawn, stream):
        from trtssd.gpu.cuda import host_wait_event
        self.pre, self.post, self.dets_drawer, self.h_drawn = pre, post, dets_drawer, h_drawn
        self.d_drawn, self.stream = d_drawn, stream
        self.max_batch = h_drawn.shape[1]
        self._picture_bytes = int(np.prod(h_drawn.shape[2:]))
        self.copy_stream = drv.Stream()
        self.painted = host_wait_event(drv)
        self.staging_free = host_wait_event(drv)
        self.downloaded = [host_wait_event(drv), host_wait_event(drv)]


class Rows(object):
    """The postprocessor's device_rows over kept rows in device memory."""

    def __init__(self, dev):
        self.dev = dev

    def device_rows(self, k):
        return self.dev.ptr + k * STRIDE * 4


def check_slot_draw(drv):
    """GpuSlot._enqueue_draw on a batch of two read-only ring frames, a writable one, a device
    frame and a smaller read-only one, with ``drv`` the driver (the fake one, or pycuda's on a
    GPU): each drawn picture against OpenCV's drawing of the Detections the host makes of the
    same kept rows."""
    from trtssd.gpu.cuda import DeviceArray, pinned_empty
    from trtssd.io.draw_device import DetectionDrawer
    from trtssd.io.draw_gpu import GpuDrawer
    from trtssd.pipeline.slots import DrawStyle, GpuSlot, slot_preprocessor
    from trtssd.preprocess import PreprocessOptions
    from test_draw_gpu import atlas_for, expand, text_mask
    from test_draw_device import host_detections, random_rows, spec_of
    rng = np.random.default_rng(3)
    h, w = 173, 256     # 768-byte rows, 3.6 source rows per output row: gatherable but for drawing
    o = PreprocessOptions(width=64, height=48)
    spec = spec_of(12, 64, 48, True)
    names = ["n%d" % k for k in range(12)]
    style = DrawStyle(labels=None, overlay="box,conf", class_ids=np.array([5, 7]))
    pre = slot_preprocessor(o, 5, (h, w, 3), drawn=True)
    drawer = GpuDrawer(ring=2)
    dd = DetectionDrawer(drawer, spec, names, style, 5, 100)
    dev = DeviceArray((h, w, 3), np.uint8)
    kept = random_rows(rng, spec, 9, 5)
    kept[:, HEADER_FLOATS + 5:HEADER_FLOATS + 9 * ROW_FLOATS:ROW_FLOATS] = [5, 9, 7, 5, 7, 7,
                                                                            1, 5, 0]
    rows = DeviceArray(kept.shape, np.float32)
    d_drawn = DeviceArray((2, 5, h, w, 3), np.uint8)
    stream = drv.Stream()
    try:
        rows.copy_from_host(kept)
        ring = pinned_empty((4, h, w, 3), np.uint8)          # a source's shared ring
        ring[...] = rng.integers(0, 256, ring.shape, dtype=np.uint8)
        pristine = np.array(ring)
        dev.copy_from_host(pristine[3])
        small = pinned_empty((150, 80, 3), np.uint8)         # smaller than the slot's frames
        small[...] = rng.integers(0, 256, small.shape, dtype=np.uint8)
        small_pristine = np.array(small)
        views = [ring[k] for k in range(3)] + [small.view()]
        for v in views[:2] + views[3:]:
            v.flags.writeable = False                         # handed out read-only
        # frames 0, 1 and 4 read-only, 2 writable (the CPU draws it), 3 on the device
        frames = [Frame(k, views[k], "s") for k in range(3)] + [Frame(3, dev, "s"),
                                                                 Frame(4, views[3], "s")]
        _, geoms = pre.preprocess([f.image for f in frames], stream=stream)
        where = pre.device_frames([f.image for f in frames])
        assert [x[4] for x in where] == [True, True, True, False, True]
        assert where[3][0] == dev.ptr
        assert all(x[1] == w * 3 and x[2:4] == (w, h) for x in where[:4])
        assert where[4][1:4] == (80 * 3, 80, 150)
        h_drawn = pinned_empty((2, 5, h, w, 3), np.uint8)
        parts = SlotParts(drv, pre, Rows(rows), dd, h_drawn, d_drawn, stream)
        copies = GpuSlot._copy_pictures(parts, frames, [f.image for f in frames], 1)
        assert [c[0] for c in copies] == [0, 1, 3, 4]
        # the next batch's upload overwrites the staging the pictures were copied from, on
        # another stream, ordered after the copies only by the slot's staging_free event
        nxt = pinned_empty((5, h, w, 3), np.uint8)
        nxt[...] = 255 - pristine[0]
        upload = drv.Stream()
        upload.wait_for_event(parts.staging_free)
        pre.upload([nxt[k] for k in range(5)], stream=upload)
        drawn, half = GpuSlot._enqueue_draw(parts, copies, geoms, 1)
        assert half == 1 and [f.index for f, _ in drawn] == [0, 1, 3, 4]
        parts.downloaded[1].synchronize()
        for frame, out in drawn:
            frame.annotated = out
            assert np.shares_memory(out, h_drawn[1])
        for k in (0, 1, 3, 4):
            det = host_detections(kept[k], geoms[k], spec, names)
            keep = det[np.isin(det.class_ids, [5, 7])]
            assert len(keep)
            src = pristine[k] if k < 4 else small_pristine
            want = draw_detections(src.copy(), keep, overlay="box,conf")
            layout = layout_detections(src.shape, keep, overlay="box,conf")
            mask = text_mask(src.shape, layout, expand(layout, atlas_for(layout)))
            got = frames[k].annotated
            assert got is not None and got.shape == src.shape and got.flags.c_contiguous
            np.testing.assert_array_equal(got[~mask], want[~mask])
        np.testing.assert_array_equal(dev.get(), pristine[3])     # drawn on a copy of it
        assert frames[2].annotated is None                    # writable: the CPU draws it
        np.testing.assert_array_equal(ring, pristine)         # the host ring is untouched
        np.testing.assert_array_equal(small, small_pristine)
    finally:
        stream.synchronize()
        rows.close()
        dev.close()
        d_drawn.close()
        dd.close()
        drawer.close()
        pre.close()


def test_slot_draws_read_only_and_device_frames_on_the_device(fake_gpu):
    check_slot_draw(fake_gpu)


def test_slot_draws_on_a_gpu(cuda_context):
    import pycuda.driver as drv
    check_slot_draw(drv)


def test_device_frames_says_mapped_and_device_frames_are_not_staged(fake_gpu):
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.preprocess import GpuPreprocessor, PreprocessOptions
    o = PreprocessOptions(width=32, height=32)
    pre = GpuPreprocessor(o, max_batch=1, max_frame_shape=(40, 50, 3))
    try:
        dev = DeviceArray((40, 50, 3), np.uint8)
        pre.preprocess(dev)
        (ptr, pitch, w, h, staged), = pre.device_frames(dev)
        assert (ptr, pitch, w, h, staged) == (dev.ptr, 150, 50, 40, False)
        host = np.zeros((30, 20, 3), np.uint8)                  # copied through the staging
        pre.preprocess(host)
        (ptr, pitch, w, h, staged), = pre.device_frames(host)
        assert staged and (pitch, w, h) == (60, 20, 30)
        dev.close()
    finally:
        pre.close()


def test_drawer_in_chunks_through_its_ring(fake_gpu):
    """More primitives than one list holds: several launches in order, lists reused round the
    ring (the fake driver runs the kernel on the shim); the frame as NumPy draws it."""
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.io.draw_gpu import GpuDrawer
    from test_draw_gpu import atlas_for, case, expand, numpy_raster
    for seed in (5, 10, 11):           # 108, 26 and 45 primitives: 4 to 16 launches
        frame, det, kw = case(3000 + seed)
        layout = layout_detections(frame.shape, det, **kw)
        atlas = atlas_for(layout)
        want = numpy_raster(frame.copy(), expand(layout, atlas), atlas.pixels)
        drawer = GpuDrawer(max_prims=7, ring=2)
        dev = DeviceArray(frame.shape, np.uint8)
        try:
            dev.copy_from_host(frame)
            n = drawer.draw(dev.ptr, frame.strides[0], layout, fake_gpu.Stream())
            assert n == len(expand(layout, atlas)) > 7
            np.testing.assert_array_equal(dev.get(), want)
        finally:
            dev.close()
            drawer.close()
