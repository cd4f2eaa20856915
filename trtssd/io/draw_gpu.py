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
- Text: every printable character, and every sequence of characters OpenCV draws as one glyph
  of its own (a ligature), rendered once by cv2.putText (white on black, the same font, scale
  and thickness, LINE_AA) at an integer pen position; its pixels are the coverage (alpha) the
  kernel blends with, ``dst = dst * (1 - a) + colour * a``, rounded. Glyph k of a string goes
  where cv2.putText of the whole string puts it:
  * OpenCV 5 draws a TrueType font in place of the Hershey one: glyph bitmaps that do not
    depend on where they go, at whole-pixel pen positions, blended in order with the kernel's
    rounding. A glyph's advance may depend on the character after it (kerning: OpenCV 5.1
    kerns, though not in a text whose first character is a digit, for one) and some sequences
    are drawn as one glyph (OpenCV 5.1: "ff", "fi", "fl", "ffi", "ffl"). Both are measured with
    OpenCV, not modelled. cv2.getTextSize's width of a text is its last pen position plus one,
    so the glyph of text[i:j] goes at getTextSize(text[:j]) - getTextSize(text[i:j]) (the first
    holds the text's kerning up to the glyph and the glyph's own advance, which nothing after
    it kerns there; the second that advance alone), asked per text. The sequences are found once per process and text thickness: every
    pair of printable characters after a letter and after a digit, and every three-character
    sequence around a pair found, drawn by cv2.putText and by its characters one by one at
    those pen positions; where the two differ it is a sequence (up to three characters; longer
    ones are not looked for). Each atlas then draws probe texts that hold every character and
    sequence, after a letter and after a digit, with its glyphs and with cv2.putText, and
    raises EnvironmentProblem where they differ by more than 2 grey levels. So glyphs and
    positions are OpenCV's, and so are the pixels: both blend the same coverage the same way;
  * OpenCV 4 advances it by sub-pixel steps, ``A_k * hscale / 65536`` px (A_k: the earlier
    glyphs' advances in font units, cv2.getTextSize at scale 1 and thickness 0;
    hscale = round(font_scale * 65536)); here glyph k goes there rounded to the nearest pixel,
    at most half a pixel off, so its anti-aliased edges differ from OpenCV's (checked with
    OpenCV 4.10: differences only within a pixel of the glyphs, mean over a glyph's rectangle
    up to ~25 grey levels; boxes and tags exact).
  Vertically the positions agree exactly. Characters outside printable ASCII are drawn as "?",
  as cv2.putText draws a control character (it draws a non-ASCII one as its own glyph with
  OpenCV 5, as one "?" per UTF-8 byte with OpenCV 4: not modelled). The tests bound the
  difference to OpenCV's text pixels.

No font data is copied from anywhere: the atlas is drawn by OpenCV at run time, once per
(thickness, font scale, text thickness), and uploaded once; with OpenCV 5 the search for the
sequences it draws as one glyph, once per text thickness, draws some 40 000 short texts.
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


# What the texts drawn to find the glyph sequences (below) start with: a letter and a digit. With
# OpenCV 5.1 a text's first character decides whether the font's kerning applies at all (not in
# a text that starts with a digit), so each pair is drawn in both kinds of text.
_LEADS = ("x", "0")
_SCAN_SCALE = 1.0           # the font scale the sequences are looked for at
_MAX_SEQUENCES = 32         # more than this: not a font's ligatures but a pen model that fails
_SEQUENCES = {}             # text thickness -> the sequences found
_SEQUENCES_LOCK = threading.Lock()


def _text_width(cv2, text, scale, thickness):
    return int(cv2.getTextSize(text, FONT, scale, thickness)[0][0])


def _text_canvas(cv2, scale, thickness):
    """(height, pad, baseline row) of a canvas that holds a line of printable text drawn by
    cv2.putText at (pad, baseline row)."""
    (_, th), base = cv2.getTextSize("|gjpqy", FONT, scale, thickness)
    pad = 2 * thickness + 4 + int(4 * scale)
    return th + base + 2 * pad, pad, pad + th


def _units(text, sequences):
    """``text`` cut into the units OpenCV draws one glyph each for: from the left, the longest
    of ``sequences`` (two or three characters) that starts there, else one character."""
    out = []
    i, n = 0, len(text)
    while i < n:
        step = 1
        for k in (3, 2):
            if i + k <= n and text[i:i + k] in sequences:
                step = k
                break
        out.append(text[i:i + step])
        i += step
    return out


def _not_appended(cv2, items, scale, thickness, width):
    """The texts of ``items`` ((text, where its last unit starts), ...) that cv2.putText does
    not draw as its drawing of the text before the last unit with the last unit drawn over it
    on its own, at pen position getTextSize(text) - getTextSize(last unit). ``width``: a
    memoised ``_text_width`` at this scale and thickness."""
    if not items:
        return []
    height, pad, row = _text_canvas(cv2, scale, thickness)
    total = [width(t) for t, _ in items]
    cols = max(total) + 4 * pad
    got = np.zeros((len(items), height, cols), np.uint8)
    want = np.zeros_like(got)
    heads = {}
    for j, (text, k) in enumerate(items):
        cv2.putText(got[j], text, (pad, row), FONT, scale, 255, thickness, cv2.LINE_AA)
        head, unit = text[:k], text[k:]
        drawn = heads.get(head)
        if drawn is None:
            drawn = heads[head] = np.zeros((height, cols), np.uint8)
            cv2.putText(drawn, head, (pad, row), FONT, scale, 255, thickness, cv2.LINE_AA)
        want[j] = drawn
        cv2.putText(want[j], unit, (pad + total[j] - width(unit), row), FONT, scale, 255,
                    thickness, cv2.LINE_AA)
    return [items[j][0] for j in np.nonzero((got != want).any(axis=(1, 2)))[0]]


def _few(sequences):
    if len(sequences) > _MAX_SEQUENCES:
        raise EnvironmentProblem("cv2.putText draws %d character sequences otherwise than as "
                                 "their glyphs one by one at getTextSize's pen positions (%s "
                                 "...)%s" % (len(sequences), ", ".join(sorted(sequences)[:8]),
                                             _OTHER_OPENCV))


def _scan_sequences(cv2, thickness):
    """The sequences of two or three printable characters that cv2.putText draws as one glyph
    of their own (a font's ligatures, such as "fi"): every pair after each of _LEADS, then each
    pair found with any character after or before it, drawn at _SCAN_SCALE and compared with
    its characters drawn one by one (``_not_appended``)."""
    scale = _SCAN_SCALE
    memo = {}

    def width(text):
        w = memo.get(text)
        if w is None:
            w = memo[text] = _text_width(cv2, text, scale, thickness)
        return w

    chars = [chr(c) for c in range(_FIRST, _LAST + 1)]
    found = set()
    for lead in _LEADS:
        for a in chars:
            items = [(lead + a + b, len(lead) + 1) for b in chars]
            found.update(t[len(lead):] for t in _not_appended(cv2, items, scale, thickness,
                                                              width))
    _few(found)
    pairs = sorted(found)
    for lead in _LEADS:
        items = []
        for p in pairs:
            for c in chars:
                for s in (p + c, c + p):
                    text = lead + s
                    items.append((text, len(text) - len(_units(text, found)[-1])))
        found.update(t[len(lead):] for t in _not_appended(cv2, items, scale, thickness, width))
    _few(found)
    for lead in _LEADS:
        wrong = _not_appended(cv2, [(lead + s, len(lead)) for s in sorted(found)], scale,
                              thickness, width)
        if wrong:
            raise EnvironmentProblem("cv2.putText draws %s otherwise than as one glyph after "
                                     "%r%s" % (", ".join(w[len(lead):] for w in wrong), lead,
                                               _OTHER_OPENCV))
    return frozenset(found)


def _sequences(cv2, thickness):
    """``_scan_sequences`` once per process and text thickness."""
    with _SEQUENCES_LOCK:
        got = _SEQUENCES.get(thickness)
        if got is None:
            got = _SEQUENCES[thickness] = _scan_sequences(cv2, thickness)
    return got


class Atlas(object):
    """What the GPU rasteriser needs for one (``thickness``, ``font_scale``,
    ``text_thickness``), drawn by OpenCV: ``pixels`` (uint8 [H, W], coverage 0..255) holding
    the four corner masks of a box outline and one glyph per printable character and per
    sequence OpenCV draws as one glyph (``sequences``); ``bands`` (the offsets each edge's band
    spans around it); ``glyphs`` (per character or sequence: atlas x, width, height, offset
    from the pen position); with OpenCV 4 ``advance`` (font units per character)."""

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
        self.hscale = int(np.rint(scale * 65536.0))
        self.subpixel = _opencv_major(cv2) < 5
        self.advance = {}
        self._widths = {}
        self.sequences = frozenset() if self.subpixel else _sequences(cv2, ft)
        height, pad, row = _text_canvas(cv2, scale, ft)
        tiles = []
        self.glyphs = {}
        x = 4 * (2 * R + 1)                     # the corner masks go first
        units = [chr(code) for code in range(_FIRST, _LAST + 1)] + sorted(self.sequences)
        for unit in units:
            if self.subpixel:
                self.advance[unit] = int(cv2.getTextSize(unit, FONT, 1.0, 0)[0][0])
            c = np.zeros((height, _text_width(cv2, unit, scale, ft) + 2 * pad), np.uint8)
            cv2.putText(c, unit, (pad, row), FONT, scale, 255, ft, cv2.LINE_AA)
            ys, xs = np.nonzero(c)
            if len(ys) == 0:
                continue                        # a space: advances, draws nothing
            y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
            tile = c[y0:y1 + 1, x0:x1 + 1]
            if y0 == 0 or x0 == 0 or y1 == c.shape[0] - 1 or x1 == c.shape[1] - 1:
                raise EnvironmentProblem("OpenCV's glyph %r at scale %g does not fit the canvas "
                                         "sized from cv2.getTextSize%s" % (unit, scale,
                                                                           _OTHER_OPENCV))
            self.glyphs[unit] = (x, tile.shape[1], tile.shape[0], int(x0) - pad, int(y0) - row)
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
        if not self.subpixel:
            self._check_probes(cv2)

    @property
    def key(self):
        return (self.thickness, self.font_scale, self.text_thickness)

    def _bands_into(self, mask, x1, y1, x2, y2):
        b = self.bands
        mask[y1 + b["top"][0]:y1 + b["top"][1] + 1, x1:x2 + 1] = True
        mask[y2 + b["bottom"][0]:y2 + b["bottom"][1] + 1, x1:x2 + 1] = True
        mask[y1:y2 + 1, x1 + b["left"][0]:x1 + b["left"][1] + 1] = True
        mask[y1:y2 + 1, x2 + b["right"][0]:x2 + b["right"][1] + 1] = True

    def _width(self, text):
        """cv2.getTextSize's width of ``text`` (memoised)."""
        w = self._widths.get(text)
        if w is None:
            if len(self._widths) > 65536:
                self._widths.clear()
            w = self._widths[text] = _text_width(import_cv2(), text, self.font_scale,
                                                 self.text_thickness)
        return w

    def _check_probes(self, cv2):
        """Each of _LEADS followed by every printable character and every sequence, drawn by
        cv2.putText and by this atlas's glyphs at ``text_prims``'s places: equal but for the
        rounding of a blend (2 grey levels), else EnvironmentProblem."""
        chars = "".join(chr(c) for c in range(_FIRST, _LAST + 1))
        height, pad, row = _text_canvas(cv2, self.font_scale, self.text_thickness)
        for lead in _LEADS:
            text = lead + chars + " " + " ".join(sorted(self.sequences))
            cols = self._width(text) + 4 * pad
            want = np.zeros((height, cols), np.uint8)
            cv2.putText(want, text, (pad, row), FONT, self.font_scale, 255, self.text_thickness,
                        cv2.LINE_AA)
            got = np.zeros((height, cols), np.int64)
            for x0, y0, x1, y1, ax, _, _, _ in self._rows(text).tolist():
                a = self.pixels[:y1 - y0 + 1, ax:ax + x1 - x0 + 1].astype(np.int64)
                r = got[row + y0:row + y1 + 1, pad + x0:pad + x1 + 1]
                got[row + y0:row + y1 + 1, pad + x0:pad + x1 + 1] = \
                    (r * (255 - a) + 255 * a + 127) // 255
            diff = np.abs(got - want)
            if diff.max() > 2:
                ys, xs = np.nonzero(diff > 2)
                raise EnvironmentProblem("cv2.putText of %r at scale %g is not its glyphs at "
                                         "the pen positions cv2.getTextSize gives (from pixel "
                                         "column %d)%s" % (text, self.font_scale,
                                                           int(xs.min()) - pad, _OTHER_OPENCV))

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

    def _rows(self, text):
        """``text_prims`` uncached."""
        text = "".join(ch if _FIRST <= ord(ch) <= _LAST else "?" for ch in text)
        rows = []
        if self.subpixel:
            units = 0
            for ch in text:
                g = self.glyphs.get(ch)
                if g is not None:
                    ax, gw, gh, dx, dy = g
                    x = ((units * self.hscale + 32768) >> 16) + dx
                    rows.append((x, dy, x + gw - 1, dy + gh - 1, ax, 0, 0, 0))
                units += self.advance[ch]
        else:
            end = 0
            for unit in (_units(text, self.sequences) if self.sequences else text):
                end += len(unit)
                g = self.glyphs.get(unit)
                if g is not None:
                    ax, gw, gh, dx, dy = g
                    x = self._width(text[:end]) - self._width(unit) + dx
                    rows.append((x, dy, x + gw - 1, dy + gh - 1, ax, 0, 0, 0))
        return np.array(rows, np.int32).reshape(-1, 8)

    def text_prims(self, text):
        """The glyph rectangles of ``text`` relative to its origin, [N, 8] int32 rows of
        PRIM_DTYPE's fields (colour 0): see the module docstring for where each glyph goes
        (cached per text)."""
        rel = self._text.get(text)
        if rel is not None:
            return rel
        rel = self._rows(text)
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
    """The Atlas of these sizes, made once per process (OpenCV draws it in ~10-40 ms; with
    OpenCV 5 the first atlas of a text thickness also looks for the sequences drawn as one
    glyph, ~0.3-0.9 s)."""
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
