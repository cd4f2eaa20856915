"""A GStreamer pipeline read through PyGObject's appsink, for an OpenCV built without GStreamer
(pip's is): ``GstAppSource("videotestsrc ! video/x-raw,format=NV12,width=640,height=480 !
appsink name=sink")``. ``open_source("gst:...")`` takes this path when OpenCV lacks GStreamer
and PyGObject (``gi``, with GStreamer's introspection data) is importable.

Frames keep the pipeline's format: BGR (H, W, 3), or NV12/NV21/I420/YV12 as one
(H*3/2, W) buffer, YUYV/UYVY as (H, W, 2) (see trtssd.io.sources). Rows are copied out of
the GStreamer buffer into a packed array (GStreamer pads rows to 4 bytes, so strides are
taken from the buffer's video meta where it has one, else computed as GStreamer does).

Needs: PyGObject and GStreamer 1.x (Debian/Ubuntu/JetPack: ``apt install python3-gi
gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base``).
"""
import time

import numpy as np

from ..core.errors import EnvironmentProblem, InputError
from .sources import PIXEL_FORMATS, SourceError, Source, yuv_buffer_shape

_GST_FORMATS = {"BGR": "BGR", "NV12": "NV12", "NV21": "NV21", "I420": "I420", "YV12": "YV12",
                "YUY2": "YUYV", "UYVY": "UYVY"}
_INSTALL = ("install PyGObject with GStreamer's introspection data (Debian/Ubuntu/JetPack: "
            "apt install python3-gi gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base)")


def import_gst():
    """(Gst, GstApp) initialised, or EnvironmentProblem saying what to install."""
    try:
        import gi
        gi.require_version("Gst", "1.0")
        gi.require_version("GstApp", "1.0")
        from gi.repository import Gst, GstApp
    except (ImportError, ValueError) as e:
        raise EnvironmentProblem("a GStreamer pipeline without OpenCV's GStreamer needs "
                                 "PyGObject (%s); %s" % (e, _INSTALL))
    if not Gst.is_initialized():
        Gst.init(None)
    return Gst, GstApp


def have_gst():
    try:
        import_gst()
        return True
    except EnvironmentProblem:
        return False


def _round4(n):
    return (n + 3) & ~3


def _plane_layout(fmt, w, h):
    """GStreamer's default (stride, offset) of each plane for ``fmt`` (video-info.c: rows
    padded to 4 bytes, chroma planes after a luma plane of even height)."""
    if fmt == "BGR":
        return [(_round4(w * 3), 0)]
    if fmt in ("YUYV", "UYVY"):
        return [(_round4(((w + 1) & ~1) * 2), 0)]
    ys = _round4(w)
    h2 = (h + 1) & ~1
    if fmt in ("NV12", "NV21"):
        return [(ys, 0), (ys, ys * h2)]
    cs = _round4(((w + 1) & ~1) // 2)
    return [(ys, 0), (cs, ys * h2), (cs, ys * h2 + cs * (h2 // 2))]


def pack(data, fmt, w, h, layout):
    """A packed host array (see the module docstring) from a mapped buffer ``data`` (bytes)
    whose planes lie at ``layout`` [(stride, offset)]."""
    buf = np.frombuffer(data, np.uint8)
    out = np.empty(yuv_buffer_shape(fmt, h, w), np.uint8)
    if fmt in ("BGR", "YUYV", "UYVY"):
        c = 3 if fmt == "BGR" else 2
        stride, off = layout[0]
        rows = np.lib.stride_tricks.as_strided(buf[off:], (h, w * c), (stride, 1))
        out.reshape(h, w * c)[:] = rows
        return out
    stride, off = layout[0]
    out[:h] = np.lib.stride_tricks.as_strided(buf[off:], (h, w), (stride, 1))
    if fmt in ("NV12", "NV21"):
        stride, off = layout[1]
        ch = h // 2
        out[h:h + ch] = np.lib.stride_tricks.as_strided(buf[off:], (ch, w), (stride, 1))
        return out
    # I420 / YV12: two quarter planes, each packed into the (H/2, W) rows OpenCV expects
    cw, ch = w // 2, h // 2
    flat = out[h:].reshape(-1)
    for k in (1, 2):
        stride, off = layout[k]
        plane = np.lib.stride_tricks.as_strided(buf[off:], (ch, cw), (stride, 1))
        flat[(k - 1) * cw * ch:k * cw * ch] = plane.reshape(-1)
    return out


class GstAppSource(Source):
    """Frames from a GStreamer pipeline's appsink (see the module docstring). ``pipeline``
    must end in an appsink; one named ``sink`` is taken, else the last appsink. Live unless
    ``live=False``; a live pipeline's appsink keeps only the newest ``max_buffers``."""

    def __init__(self, pipeline, live=True, source_id=None, timeout_s=5.0, max_buffers=2):
        Source.__init__(self)
        Gst, GstApp = import_gst()
        self._Gst = Gst
        self.live = bool(live)
        self.source_id = source_id or "gst:" + pipeline
        self.description = "GStreamer pipeline %r" % pipeline
        self.timeout_ns = int(float(timeout_s) * 1e9)
        try:
            self._pipe = Gst.parse_launch(pipeline)
        except Exception as e:
            raise InputError("cannot build %s: %s; check it with gst-launch-1.0"
                             % (self.description, getattr(e, "message", e)))
        sink = self._pipe.get_by_name("sink") if hasattr(self._pipe, "get_by_name") else None
        if sink is None:
            sink = self._find_appsink()
        if sink is None:
            raise InputError("%s has no appsink; end it with `! appsink name=sink`"
                             % self.description)
        self._sink = sink
        if self.live:
            sink.set_property("drop", True)
            sink.set_property("max-buffers", int(max_buffers))
        sink.set_property("sync", False)
        self._pipe.set_state(Gst.State.PLAYING)
        self._first = self._pull()
        if self._first is None:
            self._stop_pipeline()
            raise InputError("%s gave no frame in %.1f s; check it with gst-launch-1.0"
                             % (self.description, timeout_s))
        self.fps = self._fps

    def _find_appsink(self):
        it = self._pipe.iterate_elements() if hasattr(self._pipe, "iterate_elements") else None
        found = None
        while it is not None:
            ok, el = it.next()
            if ok != self._Gst.IteratorResult.OK:
                break
            if el.get_factory() is not None and el.get_factory().get_name() == "appsink":
                found = found or el
        return found

    def _pull(self):
        """(image, t) of the next sample, or None at the end of the stream."""
        Gst = self._Gst
        while not self._closed and not self._stop.is_set():
            sample = self._sink.emit("try-pull-sample", min(self.timeout_ns, 250000000))
            if sample is None:
                if self._sink.get_property("eos"):
                    return None
                bus_err = self._bus_error()
                if bus_err:
                    raise SourceError("%s failed: %s" % (self.description, bus_err))
                continue
            t = time.perf_counter()
            caps = sample.get_caps().get_structure(0)
            gfmt = caps.get_value("format")
            fmt = _GST_FORMATS.get(gfmt)
            if fmt is None:
                raise InputError("%s gives %s frames; end it with video/x-raw,format=X "
                                 "before the appsink, X one of BGR, %s"
                                 % (self.description, gfmt, ", ".join(PIXEL_FORMATS[1:])))
            w, h = caps.get_value("width"), caps.get_value("height")
            ok_r, num, den = caps.get_fraction("framerate")
            self._fps = float(num) / den if ok_r and den else None
            if fmt != "BGR" and (w % 2 or h % 2):
                raise InputError("%s gives %s frames of %dx%d; a 4:2:0/4:2:2 frame needs an "
                                 "even width and height (add videoscale and caps with even "
                                 "sizes)" % (self.description, fmt, w, h))
            self.pixel_format, self.width, self.height = fmt, int(w), int(h)
            buf = sample.get_buffer()
            layout = self._layout(buf, fmt, w, h)
            ok, info = buf.map(Gst.MapFlags.READ)
            if not ok:
                raise SourceError("%s: a buffer could not be mapped" % self.description)
            try:
                img = pack(info.data, fmt, w, h, layout)
            finally:
                buf.unmap(info)
            return img, t
        return None

    def _layout(self, buf, fmt, w, h):
        try:
            from gi.repository import GstVideo
            meta = GstVideo.buffer_get_video_meta(buf)
            if meta is not None:
                return [(meta.stride[k], meta.offset[k]) for k in range(meta.n_planes)]
        except Exception:
            pass
        return _plane_layout(fmt, w, h)

    def _bus_error(self):
        bus = self._pipe.get_bus()
        msg = bus.pop_filtered(self._Gst.MessageType.ERROR)
        if msg is None:
            return None
        err, _ = msg.parse_error()
        return err.message

    def read(self, out=None):
        if self._closed:
            return None
        got, self._first = self._first, None
        if got is None:
            got = self._pull()
        if got is None:
            return None
        img, t = got
        return self._frame(img, t)

    def _stop_pipeline(self):
        pipe, self._pipe = getattr(self, "_pipe", None), None
        if pipe is not None:
            pipe.set_state(self._Gst.State.NULL)

    def close(self):
        if not self._closed:
            self._closed = True
            self._stop.set()
            self._stop_pipeline()
