"""The GPU rasteriser of the drawing layout (trtssd/io/draw.cu, trtssd.io.draw_gpu) against an
independent NumPy rasteriser of the same primitives, and those primitives against OpenCV's own
drawing (trtssd.io.draw.draw_detections).

- NumPy vs OpenCV: box outlines and label tags must be pixel-exact (the primitives are measured
  from OpenCV, see draw_gpu's docstring). Text: with OpenCV 5 the glyphs (a character's, or a
  ligature's such as "fi" with OpenCV 5.1) sit where cv2.putText puts them, kerning included,
  and carry its coverage, which both blend with the same rounding: pixel-exact too. With
  OpenCV 4 glyphs are up to half a pixel from OpenCV's sub-pixel positions: an edge pixel may
  then differ by up to full contrast, so the bound is on the mean difference over the glyphs'
  rectangles (a glyph shifted by half a pixel changes about half its edge pixels by about half
  the contrast; measured with OpenCV 4.10 on 40 random frames: at most 24, and no pixel
  differing more than one pixel away from a glyph's rectangle).
- The kernel (through the CPU shim, and on a GPU) vs NumPy: every pixel equal, on frames of
  random pixels (drawing is in place, so there is nothing to poison: every pixel the list does
  not touch must come back as it was), including a frame with a row pitch wider than its
  pixels whose padding must stay untouched.
"""
import numpy as np
import pytest

from support.kernel_shim import compile_cpu_module
from trtssd.core.detections import Detections
from trtssd.io.draw import TEXT, draw_detections, layout_detections
from trtssd.io.draw_gpu import BLOCK, TILE, Atlas, GpuDrawer, expand, launch_grid

cv2 = pytest.importorskip("cv2", reason="drawing needs OpenCV (opencv-python-headless)")
OPENCV5 = int(cv2.__version__.split(".")[0]) >= 5


def numpy_raster(frame, prims, atlas):
    """The reference: each primitive in order, clipped to the frame, solid or blended
    dst = round((dst * (255 - a) + colour * a) / 255) with a the atlas coverage."""
    h, w = frame.shape[:2]
    for p in prims:
        x0, y0 = max(int(p["x0"]), 0), max(int(p["y0"]), 0)
        x1, y1 = min(int(p["x1"]), w - 1), min(int(p["y1"]), h - 1)
        if x0 > x1 or y0 > y1:
            continue
        colour = np.array([(int(p["bgr"]) >> s) & 255 for s in (0, 8, 16)], np.int64)
        region = frame[y0:y1 + 1, x0:x1 + 1].astype(np.int64)
        if p["ax"] < 0:
            a = np.full(region.shape[:2], 255, np.int64)
        else:
            ay, ax = int(p["ay"]) + y0 - int(p["y0"]), int(p["ax"]) + x0 - int(p["x0"])
            a = atlas[ay:ay + region.shape[0], ax:ax + region.shape[1]].astype(np.int64)
        a = a[..., None]
        frame[y0:y1 + 1, x0:x1 + 1] = ((region * (255 - a) + colour * a + 127) // 255)
    return frame


def random_detections(rng, h, w, n, margin=25):
    """``n`` boxes anywhere around the frame: inside, across and beyond its edges, tiny ones."""
    a = rng.uniform([-margin, -margin], [w + margin, h + margin], (n, 2))
    b = a + rng.exponential(max(4.0, min(h, w) / 4.0), (n, 2)) * rng.choice([0, 1], (n, 1),
                                                                            p=[0.1, 0.9])
    names = ["person", "car", "traffic light", "dog", "x", ""]
    return Detections(np.concatenate([a, b], 1), rng.uniform(0, 1, n), rng.integers(0, 91, n),
                      [names[k] for k in rng.integers(0, len(names), n)])


def case(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(9, 420)), int(rng.integers(9, 520))
    n = int(rng.choice([0, 1, 2, 5, 12]))
    det = random_detections(rng, h, w, n)
    thickness = None if rng.random() < 0.4 else int(rng.integers(1, 10))
    overlay = [None, "box", "labels", "conf", "box,conf", "none"][int(rng.integers(0, 6))]
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return frame, det, dict(thickness=thickness, overlay=overlay)


def text_mask(shape, layout, prims):
    """Pixels inside the glyph rectangles of the layout's text runs; with OpenCV 4 grown by
    one pixel each way, since a glyph OpenCV draws half a pixel off reaches one pixel past the
    rectangle of the same glyph drawn at a whole pixel."""
    mask = np.zeros(shape[:2], bool)
    n_text = sum(len(i[3]) for i in layout.items if i[0] == TEXT)
    if n_text:
        for p in prims:
            if p["ax"] >= 0 and p["bgr"] == 0:      # glyphs (black text); corner masks are coloured
                mask[max(p["y0"], 0):max(p["y1"] + 1, 0), max(p["x0"], 0):max(p["x1"] + 1, 0)] = True
    if not OPENCV5:
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
        mask = grown
    return mask


def atlas_for(layout):
    from trtssd.io.draw_gpu import atlas_for as cached
    return cached(layout.thickness, layout.font_scale, layout.text_thickness)


@pytest.mark.parametrize("seed", range(40))
def test_primitives_draw_what_opencv_draws(seed):
    frame, det, kw = case(seed)
    layout = layout_detections(frame.shape, det, **kw)
    atlas = atlas_for(layout)
    prims = expand(layout, atlas)
    ours = numpy_raster(frame.copy(), prims, atlas.pixels)
    cv = draw_detections(frame.copy(), det, **kw)
    text = text_mask(frame.shape, layout, prims)
    np.testing.assert_array_equal(ours[~text], cv[~text])       # boxes, tags, the rest: exact
    diff = np.abs(ours[text].astype(int) - cv[text])
    if OPENCV5:
        assert diff.size == 0 or diff.max() == 0
    else:
        assert diff.size == 0 or diff.mean() <= 40


@pytest.mark.parametrize("thickness", range(1, 12))
def test_box_outlines_exact_at_every_thickness_and_edge(thickness):
    rng = np.random.default_rng(100 + thickness)
    h, w = 97, 131
    # touching each edge, corners, zero width or height after clamping, whole frame
    boxes = [[0, 0, 40, 30], [100, 70, 131, 97], [-50, 10, 0, 50], [10, -20, 60, 0],
             [60, 40, 60, 80], [20, 50, 90, 50], [-10, -10, 200, 200], [30, 30, 33, 32]]
    det = Detections(boxes, [0.5] * len(boxes), list(range(len(boxes))))
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    layout = layout_detections(frame.shape, det, thickness=thickness, overlay="box")
    atlas = atlas_for(layout)
    ours = numpy_raster(frame.copy(), expand(layout, atlas), atlas.pixels)
    np.testing.assert_array_equal(ours, draw_detections(frame.copy(), det, thickness=thickness,
                                                        overlay="box"))


def test_tag_moves_inside_the_box_at_the_top_edge():
    det = Detections([[20, 0, 120, 80], [20, 60, 120, 100]], [0.9, 0.8], [1, 2], ["a", "b"])
    layout = layout_detections((200, 300), det)
    tags = [i for i in layout.items if i[0] == "tag"]
    assert tags[0][2] >= 0 and tags[0][4] > 0           # inside: below the top edge
    assert tags[1][4] == 58                             # above: y1 - 2
    frame = np.zeros((200, 300, 3), np.uint8)
    atlas = atlas_for(layout)
    ours = numpy_raster(frame.copy(), expand(layout, atlas), atlas.pixels)
    cv = draw_detections(frame.copy(), det)
    mask = text_mask(frame.shape, layout, expand(layout, atlas))
    np.testing.assert_array_equal(ours[~mask], cv[~mask])


def test_nothing_to_draw_is_no_primitive():
    layout = layout_detections((50, 60), Detections.empty())
    assert len(expand(layout, atlas_for(layout))) == 0
    det = Detections([[1, 2, 30, 40]], [0.5], [3])
    layout = layout_detections((50, 60), det, overlay="none")
    assert layout.items == [] and len(expand(layout, atlas_for(layout))) == 0


# what OpenCV 5.1 draws otherwise than glyph by glyph at fixed advances: kerned pairs (To, AV,
# Wa, y.), ligatures (ff, fi, fl, ffi, ffl), and no kerning in a text that starts with a digit
PEN_TEXTS = ["traffic light 0.87 ?~", "To AVAWay. office baffle fl", "0.87 To AVAWay. office",
             "$1 To", " Tow fire hydrant 1.00", "giraffe 0.05"]


def test_glyph_positions_follow_opencv_pen():
    """A text run's glyphs against cv2.putText of the whole string on a black frame."""
    for scale, thick in ((0.35, 1), (0.5, 1), (1.125, 2), (2.25, 4)):
        atlas = Atlas(2 * thick, scale, thick)
        for text in PEN_TEXTS:
            frame = np.zeros((int(60 * scale) + 20, int(20 * scale * len(text)) + 20, 3),
                             np.uint8)
            org = (5, int(40 * scale) + 5)
            cv = frame.copy()
            cv2.putText(cv, text, org, 0, scale, (255, 255, 255), thick, cv2.LINE_AA)
            rel = atlas.text_prims(text)
            prims = np.ascontiguousarray(rel).view(atlas_prims_dtype()).reshape(-1).copy()
            for name in ("x0", "x1"):
                prims[name] += org[0]
            for name in ("y0", "y1"):
                prims[name] += org[1]
            prims["bgr"] = 0xffffff
            ours = numpy_raster(frame.copy(), prims, atlas.pixels)
            diff = np.abs(ours.astype(int) - cv)
            if OPENCV5:
                assert diff.max() == 0, (scale, thick, text, diff.max())
            else:
                assert diff.mean() <= 8, (scale, thick, text, diff.mean())


def test_sequences_are_glyphs_of_their_own():
    """What the atlas holds as one glyph for several characters (OpenCV 5's ligatures) is not
    those characters' glyphs at the pen positions cv2.getTextSize gives, and a text is cut into
    the longest of them from the left."""
    from trtssd.io.draw_gpu import _units
    atlas = Atlas(2, 0.5, 1)
    assert all(2 <= len(s) <= 3 for s in atlas.sequences)
    if not OPENCV5:
        assert not atlas.sequences
    for s in atlas.sequences:
        alone = np.zeros((40, 80), np.uint8)
        cv2.putText(alone, s, (10, 25), 0, 0.5, 255, 1, cv2.LINE_AA)
        apart = np.zeros((40, 80), np.uint8)
        for k, ch in enumerate(s):
            pen = cv2.getTextSize(s[:k + 1], 0, 0.5, 1)[0][0] - cv2.getTextSize(ch, 0, 0.5, 1)[0][0]
            cv2.putText(apart, ch, (10 + pen, 25), 0, 0.5, 255, 1, cv2.LINE_AA)
        assert not np.array_equal(alone, apart), s
    seqs = {"ff", "fi", "ffi"}
    assert _units("offfix", seqs) == ["o", "ff", "fi", "x"]
    assert _units("offix f", seqs) == ["o", "ffi", "x", " ", "f"]


def atlas_prims_dtype():
    from trtssd.io.draw_gpu import PRIM_DTYPE
    return PRIM_DTYPE


# ------------------------------------------------------------------ the kernel on the CPU
def run_shim(frame, prims, atlas):
    mod = compile_cpu_module("io/draw.cu", defines={"TILE_W": TILE[0], "TILE_H": TILE[1]})
    h, w = frame.shape[:2]
    plist = np.ascontiguousarray(prims) if len(prims) else np.zeros(1, prims.dtype)
    mod.launch("draw_prims", launch_grid(h, w), BLOCK, plist, np.int32(len(prims)),
               np.ascontiguousarray(atlas.pixels), np.int32(atlas.pixels.shape[1]), frame,
               np.int64(frame.strides[0]), np.int32(w), np.int32(h))
    return frame


@pytest.mark.parametrize("seed", range(12))
def test_kernel_on_cpu_matches_numpy(seed):
    frame, det, kw = case(1000 + seed)
    layout = layout_detections(frame.shape, det, **kw)
    atlas = atlas_for(layout)
    prims = expand(layout, atlas)
    want = numpy_raster(frame.copy(), prims, atlas.pixels)
    got = run_shim(frame.copy(), prims, atlas)
    np.testing.assert_array_equal(got, want)


def test_kernel_on_cpu_pitched_frame_leaves_padding():
    rng = np.random.default_rng(7)
    big = rng.integers(0, 256, (203, 317 + 13, 3), dtype=np.uint8)
    view = big[:, :317]                      # rows 330 * 3 bytes apart, 317 pixels wide
    det = random_detections(rng, 203, 317, 9)
    layout = layout_detections(view.shape, det)
    atlas = atlas_for(layout)
    prims = expand(layout, atlas)
    want = numpy_raster(np.ascontiguousarray(view).copy(), prims, atlas.pixels)
    before = big.copy()
    run_shim(view, prims, atlas)
    np.testing.assert_array_equal(big[:, :317], want)
    np.testing.assert_array_equal(big[:, 317:], before[:, 317:])


def test_kernel_on_cpu_no_primitives_changes_nothing():
    rng = np.random.default_rng(8)
    frame = rng.integers(0, 256, (33, 71, 3), dtype=np.uint8)
    layout = layout_detections(frame.shape, Detections.empty())
    atlas = atlas_for(layout)
    got = run_shim(frame.copy(), expand(layout, atlas), atlas)
    np.testing.assert_array_equal(got, frame)


# ------------------------------------------------------------------ the kernel on a GPU
@pytest.mark.parametrize("seed", range(8))
def test_gpu_drawer_matches_numpy(cuda_context, seed):
    from trtssd.gpu.cuda import DeviceArray
    import pycuda.driver as drv
    frame, det, kw = case(2000 + seed)
    layout = layout_detections(frame.shape, det, **kw)
    atlas = atlas_for(layout)
    want = numpy_raster(frame.copy(), expand(layout, atlas), atlas.pixels)
    stream = drv.Stream()
    with GpuDrawer(max_prims=64 if seed % 2 else 4096) as drawer:      # small: several chunks
        dev = DeviceArray(frame.shape, np.uint8)
        try:
            dev.copy_from_host(frame)
            drawer.draw(dev.ptr, frame.strides[0], layout, stream)
            stream.synchronize()
            got = dev.get()
        finally:
            dev.close()
    np.testing.assert_array_equal(got, want)


def test_gpu_drawer_1080p_many_frames(cuda_context):
    """The bench's case: 1080p, several frames in a row through the ring of primitive lists."""
    from trtssd.gpu.cuda import DeviceArray
    import pycuda.driver as drv
    rng = np.random.default_rng(9)
    stream = drv.Stream()
    with GpuDrawer(ring=2) as drawer:
        dev = DeviceArray((1080, 1920, 3), np.uint8)
        try:
            for k in range(5):
                frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
                det = random_detections(rng, 1080, 1920, int(rng.integers(0, 20)))
                layout = layout_detections(frame.shape, det)
                atlas = atlas_for(layout)
                want = numpy_raster(frame.copy(), expand(layout, atlas), atlas.pixels)
                dev.copy_from_host(frame)
                drawer.draw(dev.ptr, 1920 * 3, layout, stream)
                stream.synchronize()
                got = dev.get()
                np.testing.assert_array_equal(got, want)
        finally:
            dev.close()


# ------------------------------------------------------------------ in the GPU modes
class KeepDrawn(object):
    """A drawing sink that keeps a copy of each frame, its detections and its picture."""
    draws = True
    failed = False

    def __init__(self, labels=None, overlay=None):
        self.labels, self.overlay, self.got = labels, overlay, []

    def write(self, frame, dets):
        from trtssd.io.sinks import annotate
        pic = annotate(frame, dets, self.labels, self.overlay)
        self.got.append((frame.source_id, frame.index, np.array(frame.image), np.array(pic),
                         dets))

    def close(self):
        pass


@pytest.mark.parametrize("mode,depth,nsources", [("gpu", 1, 1), ("pipelined", 2, 1),
                                                  ("pipelined", 4, 1), ("multi", 2, 2)])
def test_gpu_modes_draw_read_only_ring_frames_on_the_device(torch_backends, mode, depth,
                                                            nsources):
    """Synthetic ring frames are read-only pinned views: the GPU slot draws into their device
    copy and downloads the picture; it must be draw_detections' picture of the frame with the
    same detections (boxes and tags exact, text as bounded above), and the ring untouched."""
    from trtssd.io.sources import SyntheticSource
    from trtssd.pipeline import PipelineOptions, run
    n = 10
    srcs = [SyntheticSource(641, 363, frames=n, seed=k, source_id="s%d" % k)
            for k in range(nsources)]
    pristine = [[np.array(im) for im in s._images] for s in srcs]
    sink = KeepDrawn(labels=["bg"] + ["class%d" % i for i in range(1, 91)],
                     overlay=None if mode != "multi" else "box,labels")
    st = run(srcs if mode == "multi" else srcs[0], torch_backends(nsources), sink,
             PipelineOptions(mode=mode, depth=depth, score_threshold=0.02,
                             source_timeout_ms=5000))
    assert st.frames == n * nsources
    assert "frames drawn on the GPU into the device frame, then downloaded" in st.notes
    drawn = 0
    for sid, index, image, pic, dets in sink.got:
        want = draw_detections(image.copy(), dets, labels=sink.labels, overlay=sink.overlay)
        layout = layout_detections(image.shape, dets, sink.labels, overlay=sink.overlay)
        mask = text_mask(image.shape, layout, expand(layout, atlas_for(layout)))
        np.testing.assert_array_equal(pic[~mask], want[~mask])
        diff = np.abs(pic[mask].astype(int) - want[mask])
        assert diff.size == 0 or (diff.max() <= 2 if OPENCV5 else diff.mean() <= 40)
        drawn += len(dets)
        # the frame the sink saw is still one of the source's pictures: nothing drew on it
        k = int(sid[1:])
        assert any(np.array_equal(image, p) for p in pristine[k]), (sid, index)
    assert drawn > 0                            # at 0.02 the network finds something
