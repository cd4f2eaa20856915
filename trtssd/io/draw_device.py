"""Drawing detections with no host work per frame: trtssd.io.draw's layout computed on the
device from the GPU postprocessing's kept rows (draw.cu's ``layout_detections``), rasterised
by draw_gpu's kernel (``draw_prims_counted``), both enqueued on the stream that computes the
rows, right after them. The host never reads the boxes to draw them.

Everything that depends on the text is made once per (sizes, classes, labels, overlay) with
OpenCV, as trtssd.io.draw_gpu does for the glyphs (``DrawTables``): for each class its colour
and whether it is drawn, and for each (class, score in hundredths) the tag's size
(cv2.getTextSize of its text) and the glyph rectangles of draw_gpu's ``Atlas.text_prims``; the
box outline is ``Atlas.box_prims`` as a template whose rectangles follow the box's corners. So
the device writes the primitives ``draw_gpu.expand(layout_detections(...))`` gives for the
same boxes, in the same order (tests/io/test_draw_device.py compares them), and the pixels
are the same kernel's.

Scores are written with two decimals, as "%.2f": the table holds 0.00 .. 1.00 (the scores of
a spec's activations are probabilities); a score outside [0, 1] is written as the nearer end.
Classes outside the model's score columns are not drawn (the postprocessing makes none).
"""
import threading

import numpy as np

from ..core.closeable import Closeable
from ..core.detections import label_names
from ..core.errors import EnvironmentProblem, InputError
from .draw_gpu import BLOCK, _pack_colour
from .draw import FONT, Layout, class_colour, class_name, label_text, parse_overlay, \
    scaled_sizes

LAYOUT_THREADS = 128        # draw.cu's layout_detections block: one thread per kept box
_TPL_PROBES = ((1000, 2000, 5000, 9000), (1100, 2300, 5700, 9900))
_SCORES = 101               # 0.00 .. 1.00


def box_template(atlas):
    """``atlas.box_prims`` as rows of draw.cu's template: for each rectangle corner
    coordinate the box corner it follows (0..3: x1, y1, x2, y2) and its offset, then ax, ay.
    Found by asking box_prims for two boxes whose corners move by different amounts."""
    a = np.array(atlas.box_prims(*(_TPL_PROBES[0] + (0,))), np.int64).reshape(-1, 8)
    b = np.array(atlas.box_prims(*(_TPL_PROBES[1] + (0,))), np.int64).reshape(-1, 8)
    moves = dict((q - p, k) for k, (p, q) in enumerate(zip(*_TPL_PROBES)))
    rows = []
    for ra, rb in zip(a, b):
        row = []
        for j in range(4):
            src = moves.get(int(rb[j] - ra[j]))
            if src is None or (ra[4], ra[5], ra[6]) != (rb[4], rb[5], rb[6]) or ra[6] != 0:
                raise EnvironmentProblem("a box outline's rectangles do not follow its corners "
                                         "(draw_gpu.Atlas.box_prims): the device drawing cannot "
                                         "lay it out")
            row += [src, int(ra[j] - _TPL_PROBES[0][src])]
        rows.append(row + [int(ra[4]), int(ra[5])])
    return np.array(rows, np.int32).reshape(-1, 10)


class DrawTables(object):
    """The host half of the device layout for one ``atlas`` (trtssd.io.draw_gpu.Atlas): int32
    arrays ``style`` (classes, scores per class, template rows), ``template`` (box_template, or
    none without "box"), ``classes`` ([C, 2]: packed colour, drawn), ``entries``
    ([C * scores, 5]: glyph row offset, glyph rows or -1 for no tag, tw, th, base) and
    ``glyphs`` (draw_gpu's primitive rows, relative to the text origin); ``max_prims`` per
    frame for ``max_detections`` boxes. ``names``: the detections' label per class id (None:
    the detections carry none), ``labels``: the drawing's own names (DrawStyle.labels)."""

    def __init__(self, atlas, num_classes, overlay=None, names=None, labels=None,
                 class_ids=None, max_detections=100):
        from ..core.env import import_cv2
        cv2 = import_cv2()
        what = parse_overlay(overlay)
        c = int(num_classes)
        n_scores = _SCORES if "conf" in what else 1
        self.template = box_template(atlas) if "box" in what else np.zeros((0, 10), np.int32)
        self.classes = np.zeros((c, 2), np.int32)
        keep = None if class_ids is None else set(int(v) for v in np.asarray(class_ids).ravel())
        entries = np.zeros((c * n_scores, 5), np.int32)
        glyphs = []
        at = 0
        longest = 0
        for cid in range(c):
            self.classes[cid] = (_pack_colour(class_colour(cid)),
                                 1 if (what and (keep is None or cid in keep)) else 0)
            name = class_name(cid, None if names is None else names[cid], labels)
            for s in range(n_scores):
                e = entries[cid * n_scores + s]
                text = label_text(name, s / 100.0, what) if what else ""
                if not text:
                    e[:] = (0, -1, 0, 0, 0)
                    continue
                (tw, th), base = cv2.getTextSize(text, FONT, atlas.font_scale,
                                                 atlas.text_thickness)
                rel = atlas.text_prims(text)
                e[:] = (at, len(rel), tw, th, base)
                glyphs.append(rel)
                at += len(rel)
                longest = max(longest, len(rel))
        self.entries = entries
        self.glyphs = (np.concatenate(glyphs) if glyphs else np.zeros((1, 8), np.int32)).astype(
            np.int32).reshape(-1, 8)
        self.style = np.array([c, n_scores, len(self.template)], np.int32)
        self.max_prims = max(1, int(max_detections) * (len(self.template) + 1 + longest))


_TABLES = {}
_TABLES_LOCK = threading.Lock()


def tables_for(atlas, num_classes, overlay, names, labels, class_ids, max_detections):
    """The DrawTables of these arguments, made once per process (read-only once made)."""
    key = (atlas.key, int(num_classes), parse_overlay(overlay),
           None if names is None else tuple(names),
           None if labels is None else tuple(class_name(k, None, labels)
                                             for k in range(int(num_classes))),
           None if class_ids is None else tuple(sorted(set(int(v) for v in
                                                           np.asarray(class_ids).ravel()))),
           int(max_detections))
    with _TABLES_LOCK:
        got = _TABLES.get(key)
        if got is None:
            if len(_TABLES) >= 16:
                _TABLES.clear()
            got = _TABLES[key] = DrawTables(atlas, num_classes, overlay, names, labels,
                                            class_ids, max_detections)
    return got


def layout_signature():
    """layout_detections's parameter list (draw.cu)."""
    from ..gpu.launch import ScalarArg, Signature, VectorArg
    return Signature(VectorArg("rows"), VectorArg("style"), VectorArg("box_template"),
                     VectorArg("classes"), VectorArg("entries"), VectorArg("glyphs"),
                     ScalarArg("d", "net_w"), ScalarArg("d", "net_h"), ScalarArg("d", "pad_x"),
                     ScalarArg("d", "pad_y"), ScalarArg("d", "scale_x"),
                     ScalarArg("d", "scale_y"), ScalarArg("i", "width"),
                     ScalarArg("i", "height"), VectorArg("out"), VectorArg("count"),
                     ScalarArg("i", "max_prims"))


def counted_signature():
    """draw_prims_counted's parameter list (draw.cu)."""
    from ..gpu.launch import ScalarArg, Signature, VectorArg
    return Signature(VectorArg("prims"), VectorArg("count"), VectorArg("atlas"),
                     ScalarArg("i", "atlas_pitch"), VectorArg("frame"), ScalarArg("q", "pitch"),
                     ScalarArg("i", "width"), ScalarArg("i", "height"))


class DetectionDrawer(Closeable):
    """Draws the kept boxes of a GpuPostprocessor into device BGR uint8 frames, two kernel
    launches per frame on the caller's stream (``enqueue``), with no host work on the boxes.

    ``drawer``: the trtssd.io.draw_gpu.GpuDrawer whose atlases it uses (the caller owns it);
    ``spec``: the model's; ``names``: the labels the detections carry (the postprocessing's
    LabelMap or list, or None); ``style``: a trtssd.pipeline.slots.DrawStyle (labels,
    overlay, class ids kept); ``max_frames``: frames per batch; ``max_detections``: the
    postprocessing's. Owns a primitive list and a count per frame of a batch and the tables'
    device copies. Made, used and closed with the CUDA context current."""

    def __init__(self, drawer, spec, names, style, max_frames, max_detections):
        from ..gpu import cuda
        from ..gpu.launch import load_kernel
        from ..postprocess.gpu import HEADER_FLOATS, ROW_FLOATS
        from .draw_gpu import TILE
        if int(max_detections) > LAYOUT_THREADS:
            raise InputError("the device drawing lays out at most %d boxes a frame, got "
                             "max_detections=%d" % (LAYOUT_THREADS, max_detections))
        self._drawer = drawer
        self._spec = spec
        self._names = (None if names is None else
                       label_names(names, list(range(int(spec.num_classes)))))
        self._style = style
        self.max_frames = int(max_frames)
        self.max_detections = int(max_detections)
        defines = {"TILE_W": TILE[0], "TILE_H": TILE[1], "LAYOUT_THREADS": LAYOUT_THREADS,
                   "HEADER": HEADER_FLOATS, "ROW": ROW_FLOATS}
        if not spec.outputs.normalized:
            defines["NORMALIZED"] = 0
        self._layout_sig = layout_signature()
        self._draw_sig = counted_signature()
        self._layout = load_kernel("io/draw.cu", "layout_detections", self._layout_sig,
                                   defines).launch
        self._draw = load_kernel("io/draw.cu", "draw_prims_counted", self._draw_sig,
                                 defines).launch
        self._cuda = cuda
        self._tables = {}           # atlas key -> (DrawTables, device arrays, prims, counts)
        self._plans = {}
        self._closed = False

    def prepare(self, height, width):
        """Make and upload now the tables of frames of ``height`` x ``width`` (the sizes
        trtssd.io.draw.scaled_sizes gives them), so the first frame drawn does not wait."""
        self._device_tables(height, width)

    def _device_tables(self, height, width):
        t, f = scaled_sizes(height, width)
        key = (t, f, max(1, t // 2))
        got = self._tables.get(key)
        if got is not None:
            return got
        atlas, dev_atlas = self._drawer.atlas(Layout((height, width), key[0], key[1], key[2],
                                                     []))
        style = self._style
        tables = tables_for(atlas, self._spec.num_classes, style.overlay, self._names,
                            style.labels, style.class_ids, self.max_detections)
        owned = []
        try:
            arrays = []
            for host in (tables.style, tables.template if len(tables.template) else
                         np.zeros((1, 10), np.int32), tables.classes, tables.entries,
                         tables.glyphs):
                dev = self._cuda.DeviceArray(host.shape, np.int32)
                owned.append(dev)
                dev.copy_from_host(np.ascontiguousarray(host))      # synchronous, once
                arrays.append(dev)
            prims = self._cuda.DeviceArray((self.max_frames, tables.max_prims * 8), np.int32)
            owned.append(prims)
            counts = self._cuda.DeviceArray((self.max_frames,), np.int32)
            owned.append(counts)
        except Exception:
            for b in reversed(owned):
                b.close()
            raise
        if len(self._tables) >= 8:
            self._drop_tables()
        got = self._tables[key] = (tables, atlas, dev_atlas, arrays, prims, counts, owned)
        return got

    def enqueue(self, k, rows_ptr, geometry, frame_ptr, pitch, width, height, stream):
        """Enqueue on ``stream`` the layout of the rows at ``rows_ptr`` (GpuPostprocessor's
        ``device_rows``, enqueued before on the same stream) for batch frame ``k`` of
        ``geometry`` (its FrameGeometry) and their drawing into the device frame at
        ``frame_ptr`` (BGR uint8, ``width`` x ``height``, rows ``pitch`` bytes apart). The
        caller keeps the frame alive until ``stream`` has run it."""
        key = (k, rows_ptr, geometry, frame_ptr, pitch, width, height)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(key)
        layout_args, grid, draw_args = plan
        self._layout((1, 1, 1), (LAYOUT_THREADS, 1, 1), layout_args, 0, stream)
        self._draw(grid, BLOCK, draw_args, 0, stream)

    def _plan(self, key):
        from .draw_gpu import launch_grid
        if self._closed:
            raise InputError("this DetectionDrawer was closed; create a new one")
        k, rows_ptr, g, frame_ptr, pitch, width, height = key
        if not 0 <= k < self.max_frames:
            raise InputError("frame %d of a batch of at most %d" % (k, self.max_frames))
        tables, atlas, dev_atlas, arrays, prims, counts, _ = self._device_tables(height, width)
        style, template, classes, entries, glyphs = arrays
        row_bytes = tables.max_prims * 32
        spec = self._spec
        layout_args = self._layout_sig.pack(
            int(rows_ptr), style.ptr, template.ptr, classes.ptr, entries.ptr, glyphs.ptr,
            float(spec.input_width), float(spec.input_height), float(g.pad_x), float(g.pad_y),
            float(g.scale_x), float(g.scale_y), int(width), int(height),
            prims.ptr + k * row_bytes, counts.ptr + 4 * k, tables.max_prims)
        draw_args = self._draw_sig.pack(prims.ptr + k * row_bytes, counts.ptr + 4 * k,
                                        dev_atlas.ptr, atlas.pixels.shape[1], int(frame_ptr),
                                        int(pitch), int(width), int(height))
        if len(self._plans) >= 256:
            self._plans.clear()
        plan = self._plans[key] = (layout_args, launch_grid(height, width), draw_args)
        return plan

    def primitives(self, k, height, width):
        """Batch frame ``k``'s primitive list as the last layout wrote it (a PRIM_DTYPE
        array; synchronous: for tests and debugging, once the stream has run)."""
        from .draw_gpu import PRIM_DTYPE
        tables, _, _, _, prims, counts, _ = self._device_tables(height, width)
        n = counts.get()
        rows = prims.get()
        return rows[k][:int(n[k]) * 8].reshape(-1, 8).copy().view(PRIM_DTYPE).reshape(-1)

    def _drop_tables(self):
        if self._tables:
            self._cuda.driver().Context.synchronize()   # launches in flight may read them
        for got in self._tables.values():
            for b in reversed(got[-1]):
                b.close()
        self._tables = {}
        self._plans = {}

    def close(self):
        """Free the device tables and lists (the caller has synchronised the streams that
        used them)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._drop_tables()
