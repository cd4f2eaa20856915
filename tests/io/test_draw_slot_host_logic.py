"""The GPU slot's drawing path on the CPU (tests/support/fake_cuda: device memory is host
memory, the kernels run through the CPU shim): where the preprocessor left each frame on the
device (GpuPreprocessor.device_frames), the drawing into that copy and its download
(GpuSlot._draw), against the NumPy rasteriser of test_draw_gpu.py's kind; writable frames are
left to the CPU, read-only ones are drawn on the device copy and never touched on the host.
"""
import numpy as np
import pytest

from support import fake_cuda
from trtssd.core.detections import Detections
from trtssd.io.draw import draw_detections, layout_detections
from trtssd.io.sources import Frame

pytest.importorskip("cv2", reason="drawing needs OpenCV (opencv-python-headless)")


@pytest.fixture(params=["direct", "prepared"])
def fake_gpu(monkeypatch, request):
    return fake_cuda.install(monkeypatch, request.param, {
        "preprocess_u8": "P64sqPii" + "f" * 9, "draw_prims": "PiPiPqii"},
        nullable={"preprocess_u8": (0,)}, grid_len=3)


class SlotParts(object):
    """What GpuSlot._draw reads of its slot."""

    def __init__(self, pre, drawer, h_drawn, drv, style):
        self.pre, self.drawer, self.h_drawn = pre, drawer, h_drawn
        self.stream = drv.Stream()
        self.drawn = drv.Event()
        self.draw_style = style


def check_slot_draw(drv):
    """GpuSlot._draw on a batch of two read-only ring frames, a writable one and a device
    frame, with ``drv`` the driver (the fake one, or pycuda's on a GPU)."""
    from trtssd.gpu.cuda import DeviceArray, pinned_empty
    from trtssd.io.draw_gpu import GpuDrawer
    from trtssd.pipeline.slots import DrawStyle, GpuSlot
    from trtssd.preprocess import GpuPreprocessor, PreprocessOptions
    from test_draw_gpu import atlas_for, expand, text_mask
    rng = np.random.default_rng(3)
    h, w = 173, 251
    o = PreprocessOptions(width=64, height=48)
    pre = GpuPreprocessor(o, max_batch=5, max_frame_shape=(h, w, 3))
    drawer = GpuDrawer(ring=2)
    dev = DeviceArray((h, w, 3), np.uint8)
    try:
        ring = pinned_empty((4, h, w, 3), np.uint8)          # a source's shared ring
        ring[...] = rng.integers(0, 256, ring.shape, dtype=np.uint8)
        pristine = np.array(ring)
        dev.copy_from_host(pristine[3])
        small = pinned_empty((101, 77, 3), np.uint8)         # smaller than the slot's frames
        small[...] = rng.integers(0, 256, small.shape, dtype=np.uint8)
        small_pristine = np.array(small)
        views = [ring[k] for k in range(3)] + [small.view()]
        for v in views[:2] + views[3:]:
            v.flags.writeable = False                         # handed out read-only
        # frames 0, 1 and 4 read-only, 2 writable (the CPU draws it), 3 on the device
        frames = [Frame(k, views[k], "s") for k in range(3)] + [Frame(3, dev, "s"),
                                                                 Frame(4, views[3], "s")]
        dets = []
        for _ in range(5):
            xy = rng.uniform(0, 150, (4, 2))
            dets.append(Detections(np.concatenate([xy, xy + [60, 20]], 1), rng.uniform(0, 1, 4),
                                   [5, 9, 7, 5], ["a", "bb", "c", "d"]))
        stream = drv.Stream()
        pre.preprocess([f.image for f in frames], stream=stream)
        where = pre.device_frames([f.image for f in frames])
        assert [x[4] for x in where] == [True, True, True, False, True]
        assert where[3][0] == dev.ptr
        assert all(x[1] == w * 3 and x[2:4] == (w, h) for x in where[:4])
        assert where[4][1:4] == (77 * 3, 77, 101)
        parts = SlotParts(pre, drawer, pinned_empty((5, h, w, 3), np.uint8), drv,
                          DrawStyle(labels=None, overlay="box,conf", class_ids=np.array([5, 7])))
        parts.stream = stream
        assert GpuSlot._draw(parts, frames, dets) is not None
        for k in (0, 1, 3, 4):
            keep = dets[k][np.isin(dets[k].class_ids, [5, 7])]
            src = pristine[k] if k < 4 else small_pristine
            want = draw_detections(src.copy(), keep, overlay="box,conf")
            layout = layout_detections(src.shape, keep, overlay="box,conf")
            mask = text_mask(src.shape, layout, expand(layout, atlas_for(layout)))
            got = frames[k].annotated
            assert got is not None and got.shape == src.shape and got.flags.c_contiguous
            np.testing.assert_array_equal(got[~mask], want[~mask])
        np.testing.assert_array_equal(dev.get(), frames[3].annotated)   # drawn in place there
        assert frames[2].annotated is None                    # writable: the CPU draws it
        np.testing.assert_array_equal(ring, pristine)         # the host ring is untouched
        np.testing.assert_array_equal(small, small_pristine)
    finally:
        dev.close()
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
