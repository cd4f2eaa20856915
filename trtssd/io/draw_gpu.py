"""Drawing detections into a frame on the GPU: the placement of trtssd.io.draw
(``layout_detections``), rasterised by one kernel launch into a device BGR uint8 frame in place
(draw.cu beside this file).

How the pixels come out the same as OpenCV's:
- Box outlines: cv2.rectangle draws four thick lines, each a polygon around the edge plus a
  filled disc at its end. ``Atlas`` measures, with OpenCV itself, for the thickness in use: the
  rows (columns) each edge's band covers around it, and the pixels of each corner that the bands
  miss (the disc), as a mask. A box is then four solid bands and four masked corners: exactly
  cv2.rectangle's pixels (tests/io/test_draw_gpu.py checks it on random boxes).
- Label tags: solid rectangles, corners inclusive, as cv2.rectangle fills them.
- Text: every printable character rendered once by cv2.putText (white on black, the same
  Hershey font, scale and thickness, LINE_AA) at an integer pen position; its pixels are the
  coverage (alpha) the kernel blends with, ``dst = dst * (1 - a) + colour * a``, rounded. Glyph k
  of a string goes where cv2.putText of the whole string puts its pen:
  * OpenCV 5 advances the pen by whole pixels, a fixed amount per character: measured once per
    character with OpenCV itself (where a bar drawn after it lands), so glyph positions are
    exactly OpenCV's, and so are the pixels but where two neighbouring glyphs' anti-aliased
    edges overlap (OpenCV blends the second over the first; here too, from coverage rounded
    to 1/255 once more) and for the rounding of the blend itself;
  * OpenCV 4 advances it by sub-pixel steps, ``A_k * hscale / 65536`` px (A_k: the earlier
    glyphs' advances in font units, cv2.getTextSize at scale 1 and thickness 0;
    hscale = round(font_scale * 65536)); here glyph k goes there rounded to the nearest pixel,
    at most half a pixel off, so its anti-aliased edges differ from OpenCV's (checked with
    OpenCV 4.10: differences only within a pixel of the glyphs, mean over a glyph's rectangle
    up to ~25 grey levels; boxes and tags exact).
  Vertically the positions agree exactly. Characters outside printable ASCII are drawn as
  "?", as cv2.putText does. The tests bound the difference to OpenCV's text pixels.

No font data is copied from anywhere: the atlas is drawn by OpenCV at run time, once per
(thickness, font scale, text thickness), and uploaded once.
"""
import threading

import numpy as np

from ..core.closeable import Closeable
from ..core.env import import_cv2
from ..core.errors import EnvironmentProblem, InputError
from .draw import BOX, FONT, TAG

_OTHER_OPENCV = ("; this OpenCV draws in a way the GPU drawing does not model: run a CPU mode "
                 "(--mode sync) to draw with OpenCV itself")

# The kernel's Prim (draw.cu): a rectangle of frame pixels (inclusive), the atlas pixel of its
# top-left corner (ax < 0: solid) and its colour.
PRIM_DTYPE = np.dtype([("x0", np.int32), ("y0", np.int32), ("x1", np.int32), ("y1", np.int32),
                       ("ax", np.int32), ("ay", np.int32), ("bgr", np.int32), ("pad", np.int32)])
TILE = (64, 32)             # TILE_W, TILE_H of draw.cu
BLOCK = (32, 8, 1)
_FIRST, _LAST = 32, 126     # printable ASCII


def _pack_colour(colour):
    b, g, r = [int(v) & 255 for v in colour[:3]]
    return b | (g << 8) | (r << 16)


def _runs(mask):
    """(first, last) of the True entries of a 1-D mask (they must be one run)."""
    idx = np.nonzero(mask)[0]
    if len(idx) == 0 or idx[-1] - idx[0] + 1 != len(idx):
        raise EnvironmentProblem("OpenCV drew a box edge that is not one band (rows %s)%s"
                                 % (idx.tolist(), _OTHER_OPENCV))
    return int(idx[0]), int(idx[-1])


def _opencv_major(cv2):
    try:
        return int(str(cv2.__version__).split(".")[0])
    except ValueError:
        return 4


def _last_ink_column(cv2, text, scale, thickness):
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    pad = 2 * thickness + 4
    c = np.zeros((th + base + 2 * pad, tw + 4 * pad), np.uint8)
    cv2.putText(c, text, (pad, pad + th), FONT, scale, 255, thickness, cv2.LINE_AA)
    cols = np.nonzero(c.any(axis=0))[0]
    return int(cols[-1]) if len(cols) else None


def _pen_advance(cv2, ch, scale, thickness):
    """How far cv2.putText moves its pen (whole pixels, OpenCV 5) after ``ch``: where a bar
    drawn after it and a space lands, against after the space alone (the space keeps the
    bar's ink apart from the character's)."""
    return (_last_ink_column(cv2, ch + " |", scale, thickness)
            - _last_ink_column(cv2, " |", scale, thickness))


class Atlas(object):
    """What the GPU rasteriser needs for one (``thickness``, ``font_scale``,
    ``text_thickness``), drawn by OpenCV: ``pixels`` (uint8 [H, W], coverage 0..255) holding
    one glyph per printable character and the four corner masks of a box outline; ``bands``
    (the offsets each edge's band spans around it); ``glyphs`` (per character: atlas x, width,
    height, offset from the pen position); ``advance`` (font units per character)."""

    def __init__(self, thickness, font_scale, text_thickness):
        cv2 = import_cv2()
        self.thickness, self.font_scale = int(thickness), float(font_scale)
        self.text_thickness = int(text_thickness)
        t = self.thickness
        R = self.radius = t + 2                 # corner window: (2R + 1) px square
        # -- a box outline, big enough that its corners do not meet
        P, Q = 2 * R + 2, 6 * R + 12
        canvas = np.zeros((Q + P + 1, Q + P + 1), np.uint8)
        cv2.rectangle(canvas, (P, P), (Q, Q), 255, t)
        on = canvas > 0
        mid = (P + Q) // 2
        top, bottom = _runs(on[:mid, mid]), _runs(on[mid:, mid])
        left, right = _runs(on[mid, :mid]), _runs(on[mid, mid:])
        self.bands = {"top": (top[0] - P, top[1] - P),
                      "bottom": (bottom[0] + mid - Q, bottom[1] + mid - Q),
                      "left": (left[0] - P, left[1] - P),
                      "right": (right[0] + mid - Q, right[1] + mid - Q)}
        model = np.zeros_like(on)
        self._bands_into(model, P, P, Q, Q)
        extra = on & ~model                     # what the bands miss: the discs at the corners
        stamps = []
        for cx, cy in ((P, P), (Q, P), (P, Q), (Q, Q)):
            stamps.append(extra[cy - R:cy + R + 1, cx - R:cx + R + 1])
        if extra.sum() != sum(int(s.sum()) for s in stamps):
            raise EnvironmentProblem("OpenCV's box outline of thickness %d has pixels beyond "
                                     "its corners' %d px windows%s" % (t, R, _OTHER_OPENCV))
        self._stamped = [bool(s.any()) for s in stamps]
        # -- glyphs
        ft, scale = self.text_thickness, self.font_scale
        (_, th), base = cv2.getTextSize("|gjpqy", FONT, scale, ft)
        pad = 2 * ft + 4 + int(4 * scale)
        gh_canvas = th + base + 2 * pad
        self.hscale = int(np.rint(scale * 65536.0))
        self.subpixel = _opencv_major(cv2) < 5
        self.advance = {}
        self.advance_px = {}
        tiles = []
        self.glyphs = {}
        x = 4 * (2 * R + 1)                     # the corner masks go first
        for code in range(_FIRST, _LAST + 1):
            ch = chr(code)
            self.advance[ch] = int(cv2.getTextSize(ch, FONT, 1.0, 0)[0][0])
            if not self.subpixel:
                self.advance_px[ch] = _pen_advance(cv2, ch, scale, ft)
            (tw, _), _ = cv2.getTextSize(ch, FONT, scale, ft)
            c = np.zeros((gh_canvas, tw + 2 * pad), np.uint8)
            cv2.putText(c, ch, (pad, pad + th), FONT, scale, 255, ft, cv2.LINE_AA)
            ys, xs = np.nonzero(c)
            if len(ys) == 0:
                continue                        # a space: advances, draws nothing
            y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
            tile = c[y0:y1 + 1, x0:x1 + 1]
            if y0 == 0 or x0 == 0 or y1 == c.shape[0] - 1 or x1 == c.shape[1] - 1:
                raise EnvironmentProblem("OpenCV's glyph %r at scale %g does not fit the canvas "
                                         "sized from cv2.getTextSize%s" % (ch, scale,
                                                                           _OTHER_OPENCV))
            self.glyphs[ch] = (x, tile.shape[1], tile.shape[0], int(x0) - pad, int(y0) - pad - th)
            tiles.append((x, tile))
            x += tile.shape[1]
        height = max([2 * R + 1] + [tl.shape[0] for _, tl in tiles])
        self.pixels = np.zeros((height, x), np.uint8)
        for k, s in enumerate(stamps):
            self.pixels[:2 * R + 1, k * (2 * R + 1):(k + 1) * (2 * R + 1)] = \
                np.where(s, 255, 0).astype(np.uint8)
        for gx, tile in tiles:
            self.pixels[:tile.shape[0], gx:gx + tile.shape[1]] = tile
        self._text = {}

    @property
    def key(self):
        return (self.thickness, self.font_scale, self.text_thickness)

    def _bands_into(self, mask, x1, y1, x2, y2):
        b = self.bands
        mask[y1 + b["top"][0]:y1 + b["top"][1] + 1, x1:x2 + 1] = True
        mask[y2 + b["bottom"][0]:y2 + b["bottom"][1] + 1, x1:x2 + 1] = True
        mask[y1:y2 + 1, x1 + b["left"][0]:x1 + b["left"][1] + 1] = True
        mask[y1:y2 + 1, x2 + b["right"][0]:x2 + b["right"][1] + 1] = True

    def box_prims(self, x1, y1, x2, y2, bgr):
        """The primitives of a box outline (x1 <= x2, y1 <= y2): bands, then corner masks."""
        b, R, n = self.bands, self.radius, 2 * self.radius + 1
        out = [(x1, y1 + b["top"][0], x2, y1 + b["top"][1], -1, 0, bgr, 0),
               (x1, y2 + b["bottom"][0], x2, y2 + b["bottom"][1], -1, 0, bgr, 0),
               (x1 + b["left"][0], y1, x1 + b["left"][1], y2, -1, 0, bgr, 0),
               (x2 + b["right"][0], y1, x2 + b["right"][1], y2, -1, 0, bgr, 0)]
        for k, (cx, cy) in enumerate(((x1, y1), (x2, y1), (x1, y2), (x2, y2))):
            if self._stamped[k]:
                out.append((cx - R, cy - R, cx + R, cy + R, k * n, 0, bgr, 0))
        return out

    def text_prims(self, text):
        """The glyph rectangles of ``text`` relative to its origin, [N, 8] int32 rows of
        PRIM_DTYPE's fields (colour 0): see the module docstring for where each glyph goes
        (cached per text)."""
        rel = self._text.get(text)
        if rel is not None:
            return rel
        rows = []
        units = pen = 0
        for ch in text:
            if not _FIRST <= ord(ch) <= _LAST:
                ch = "?"
            g = self.glyphs.get(ch)
            if g is not None:
                ax, gw, gh, dx, dy = g
                x = (((units * self.hscale + 32768) >> 16) if self.subpixel else pen) + dx
                rows.append((x, dy, x + gw - 1, dy + gh - 1, ax, 0, 0, 0))
            units += self.advance[ch]
            if not self.subpixel:
                pen += self.advance_px[ch]
        rel = np.array(rows, np.int32).reshape(-1, 8)
        if len(self._text) > 4096:
            self._text.clear()
        self._text[text] = rel
        return rel


def expand(layout, atlas):
    """``layout`` (trtssd.io.draw.Layout) as the kernel's primitives, in drawing order: a
    PRIM_DTYPE array. ``atlas``: the Atlas of the layout's sizes."""
    if atlas.key != (layout.thickness, layout.font_scale, layout.text_thickness):
        raise InputError("an atlas of %s for a layout of %s" % (
            atlas.key, (layout.thickness, layout.font_scale, layout.text_thickness)))
    parts = []
    rows = []               # boxes and tags since the last text run
    for item in layout.items:
        kind = item[0]
        if kind == BOX:
            rows.extend(atlas.box_prims(item[1], item[2], item[3], item[4],
                                        _pack_colour(item[5])))
        elif kind == TAG:
            rows.append(item[1:5] + (-1, 0, _pack_colour(item[5]), 0))
        else:
            rel = atlas.text_prims(item[3])
            if not len(rel):
                continue
            if rows:
                parts.append(np.array(rows, np.int32))
                rows = []
            x, y = item[1], item[2]
            parts.append(rel + np.array((x, y, x, y, 0, 0, _pack_colour(item[4]), 0), np.int32))
    if rows:
        parts.append(np.array(rows, np.int32))
    flat = np.concatenate(parts) if len(parts) > 1 else (
        parts[0] if parts else np.zeros((0, 8), np.int32))
    return np.ascontiguousarray(flat).view(PRIM_DTYPE).reshape(-1)


# Atlases are read-only once made; the lock makes each once when several slots' threads ask
_ATLASES = {}
_ATLASES_LOCK = threading.Lock()


def atlas_for(thickness, font_scale, text_thickness):
    """The Atlas of these sizes, made once per process (OpenCV draws it in ~10-40 ms)."""
    key = (int(thickness), float(font_scale), int(text_thickness))
    with _ATLASES_LOCK:
        got = _ATLASES.get(key)
        if got is None:
            if len(_ATLASES) >= 16:
                _ATLASES.clear()
            got = _ATLASES[key] = Atlas(*key)
    return got


def kernel_signature():
    """draw_prims's parameter list (draw.cu)."""
    from ..gpu.launch import ScalarArg, Signature, VectorArg
    return Signature(VectorArg("prims"), ScalarArg("i", "n"), VectorArg("atlas"),
                     ScalarArg("i", "atlas_pitch"), VectorArg("frame"), ScalarArg("q", "pitch"),
                     ScalarArg("i", "width"), ScalarArg("i", "height"))


def launch_grid(height, width):
    return ((int(width) + TILE[0] - 1) // TILE[0], (int(height) + TILE[1] - 1) // TILE[1], 1)


class GpuDrawer(Closeable):
    """Draws ``Layout``s into device BGR uint8 frames in place, one kernel launch per frame on
    the caller's stream. Owns the atlases (uploaded once each), a ring of ``ring`` pinned
    primitive lists of ``max_prims`` entries and their device copies (list k is written again
    only after the launch that read it), and the compiled kernel. Made, used and closed with
    the CUDA context current."""

    def __init__(self, max_prims=4096, ring=4):
        from ..gpu import cuda
        from ..gpu.launch import load_kernel
        drv = cuda.driver()
        self._drv = drv
        self.max_prims = int(max_prims)
        if self.max_prims < 1:
            raise InputError("max_prims must be at least 1, got %r" % (max_prims,))
        self._ring = max(2, int(ring))
        self._signature = kernel_signature()
        self._launch = load_kernel("io/draw.cu", "draw_prims", self._signature,
                                   {"TILE_W": TILE[0], "TILE_H": TILE[1]}).launch
        self._buffers = []
        self._atlases = {}
        self._closed = False
        try:
            # int32 words (PRIM_DTYPE is eight int32 fields): a plain dtype for pinned memory
            self._host = cuda.pinned_empty((self._ring, self.max_prims * 8), np.int32)
            self._buffers.append(self._host)
            self._dev = cuda.DeviceArray((self._ring, self.max_prims * PRIM_DTYPE.itemsize),
                                         np.uint8)
            self._buffers.append(self._dev)
        except Exception:
            self.close()
            raise
        self._events = [cuda.host_wait_event(drv) for _ in range(self._ring)]
        self._used = [False] * self._ring
        self._calls = 0

    def atlas(self, layout):
        """(Atlas, its device copy) for the layout's sizes: made and uploaded on first use."""
        return self._atlas((layout.thickness, layout.font_scale, layout.text_thickness))

    def prepare(self, height, width):
        """Make and upload now the atlas of frames of ``height`` x ``width`` at the default
        sizes (trtssd.io.draw.scaled_sizes), so the first frame drawn does not wait for it."""
        from .draw import scaled_sizes
        t, f = scaled_sizes(height, width)
        self._atlas((t, f, max(1, t // 2)))

    def _atlas(self, key):
        got = self._atlases.get(key)
        if got is None:
            from ..gpu.cuda import DeviceArray
            host = atlas_for(*key)
            dev = DeviceArray(host.pixels.shape, np.uint8)
            try:
                dev.copy_from_host(host.pixels)         # synchronous, once per size
            except Exception:
                dev.close()
                raise
            if len(self._atlases) >= 8:
                self._drop_atlases()
            got = self._atlases[key] = (host, dev)
        return got

    def draw(self, frame_ptr, pitch, layout, stream=None):
        """Enqueue the drawing of ``layout`` into the device frame at ``frame_ptr`` (BGR uint8,
        ``layout.shape`` pixels, rows ``pitch`` bytes apart) on ``stream``. Returns the number
        of primitives. The caller keeps the frame alive until ``stream`` has run it."""
        if self._closed:
            raise InputError("this GpuDrawer was closed; create a new one")
        host_atlas, dev_atlas = self.atlas(layout)
        prims = expand(layout, host_atlas)
        h, w = layout.shape
        grid = launch_grid(h, w)
        drv = self._drv
        for start in range(0, len(prims), self.max_prims):
            chunk = prims[start:start + self.max_prims]
            k = self._calls % self._ring
            ev = self._events[k]
            if self._used[k]:
                ev.synchronize()        # the launch that last read list k has run
            n = len(chunk)
            dst = self._host[k][:n * 8]
            dst[...] = chunk.view(np.int32).reshape(-1)
            dptr = self._dev.ptr + k * self.max_prims * PRIM_DTYPE.itemsize
            drv.memcpy_htod_async(dptr, dst, stream)
            self._launch(grid, BLOCK, self._signature.pack(
                dptr, n, dev_atlas.ptr, host_atlas.pixels.shape[1], int(frame_ptr), int(pitch),
                w, h), 0, stream)
            ev.record(stream)
            self._used[k] = True
            self._calls += 1
        return len(prims)

    def _drop_atlases(self):
        self.synchronize()
        for _, dev in self._atlases.values():
            dev.close()
        self._atlases = {}

    def synchronize(self):
        for ev, used in zip(getattr(self, "_events", ()), getattr(self, "_used", ())):
            if used:
                ev.synchronize()

    def close(self):
        """Free every buffer now (waits for the launches this object enqueued)."""
        if getattr(self, "_closed", True) and not getattr(self, "_buffers", None):
            return
        self._closed = True
        try:
            self.synchronize()
        finally:
            for _, dev in getattr(self, "_atlases", {}).values():
                dev.close()
            self._atlases = {}
            for b in reversed(getattr(self, "_buffers", [])):
                b.close()
            self._buffers = []
            self._events = []
            self._used = []
