"""Where frames come from: image and video files, cameras (USB/V4L2, Jetson CSI), RTSP, any
GStreamer pipeline, and an in-memory synthetic source for benchmarks.

Every source has ``read(out=None) -> Frame or None`` (None = end of stream), ``live``,
``width``, ``height``, ``source_id`` and ``close()``, and is a context manager. ``read(out=...)``
decodes straight into the given uint8 HWC array (e.g. a pinned buffer) when OpenCV can; the
returned ``Frame.image`` is then that array, otherwise a new one.

Buffers: a source either decodes into buffers the caller lends (``read(out=buf)``; the pipeline
lends pooled pinned buffers, which the GPU preprocessor uploads without a second copy) or,
like a camera with N driver buffers, hands out buffers of its own. The pipeline offers its
allocator (pinned memory on CUDA) through ``provide_buffers(allocate, free, count, stop)``;
a source that keeps buffers of its own answers True and from then on ``read()`` hands out
its buffers, each given back by ``Frame.done()``; ``release_buffers()`` frees them (the
pipeline calls it in the thread and context that allocated them, after the run).
``SyntheticSource`` does so; the decoding sources answer False.

``live`` tells the pipeline how to handle back-pressure: a live source (camera, RTSP, a paced
synthetic source) keeps producing whether we keep up or not, so the oldest waiting frame is
dropped and counted; a file never drops, every frame gets its result.

Pixel formats (the contract with the pipeline): every source has ``pixel_format``, "BGR" by
default. A source that keeps the camera's or decoder's YUV says so with one of the names
``PreprocessOptions(input_format=...)`` uses: "NV12", "NV21", "I420", "YV12" (4:2:0; the
Frame's ``image`` is then a host uint8 array in OpenCV's single-buffer layout of shape
(H*3/2, W): the luma plane, then the chroma plane(s)), or "YUYV", "UYVY" (packed 4:2:2,
shape (H, W, 2)). ``width``/``height`` are always the picture's size, not the buffer's. Such
sources: ``CameraSource(..., pixel_format="YUYV")`` (V4L2 with OpenCV's RGB conversion off),
``GstSource`` with a pipeline ending in ``video/x-raw,format=NV12`` (an OpenCV with
GStreamer, as JetPack's; ``csi_pipeline(..., pixel_format="NV12")``), and
``trtssd.io.gst.GstAppSource`` (an appsink read through PyGObject, for an OpenCV without
GStreamer, as pip's is).

Damage and outages: a video file that cannot decode a frame skips it (``damaged`` counts
them, ``warnings`` names each frame) and says where a file ended early against its own frame
count; a live capture (RTSP, camera) that stops giving frames is reopened with back-off when
``reconnect`` is on (the default for live sources): ``gaps`` counts the outages, ``gap_s``
their length; ``interrupt()`` (the command's Ctrl-C and SIGTERM handler calls it) ends a
waiting reconnect at once.

OpenCV is imported lazily, so importing this module needs only numpy.
"""
import functools
import os
import threading
import time

import numpy as np

from ..core.closeable import Closeable
from ..core.env import import_cv2
from ..core.errors import EnvironmentProblem, InputError, TrtssdError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class SourceError(TrtssdError):
    """A source stopped giving frames in a way that is not the end of a stream."""


class Frame(object):
    """One captured picture: uint8 HWC BGR ``image``, its ``index`` in its source, the
    ``source_id`` it came from and ``t_capture`` (``time.perf_counter()`` when it was read).

    ``release`` (or None) gives a pooled buffer back once the pipeline is done with the frame;
    ``annotated`` caches the drawn picture so several drawing sinks draw it once.
    """
    __slots__ = ("index", "image", "source_id", "t_capture", "release", "annotated")

    def __init__(self, index, image, source_id, t_capture=None, release=None):
        self.index = int(index)
        self.image = image
        self.source_id = source_id
        self.t_capture = time.perf_counter() if t_capture is None else t_capture
        self.release = release
        self.annotated = None

    def done(self):
        """Give the frame's pooled buffer back (idempotent)."""
        r, self.release = self.release, None
        if r is not None:
            r()

    def __repr__(self):
        shape = None if self.image is None else tuple(self.image.shape)
        return "Frame(%r #%d %s)" % (self.source_id, self.index, shape)


_cv2 = import_cv2


def opencv_has_gstreamer():
    """True if this OpenCV was built with GStreamer (JetPack's is; the pip wheels are not)."""
    cv2 = _cv2()
    for line in cv2.getBuildInformation().splitlines():
        if "GStreamer" in line and ":" in line:
            return line.split(":", 1)[1].strip().upper().startswith("YES")
    return False


# the YUV formats are one 8-bit buffer in OpenCV's single-buffer layout
YUV420_FORMATS = ("NV12", "NV21", "I420", "YV12")
YUV422_FORMATS = ("YUYV", "UYVY")
PIXEL_FORMATS = ("BGR",) + YUV420_FORMATS + YUV422_FORMATS


def yuv_buffer_shape(pixel_format, height, width):
    """The host buffer shape of a picture of ``height`` x ``width`` in ``pixel_format``
    (see the module docstring)."""
    f = pixel_format.upper()
    if f == "BGR":
        return (height, width, 3)
    if f in YUV420_FORMATS:
        return (height * 3 // 2, width)
    if f in YUV422_FORMATS:
        return (height, width, 2)
    raise InputError("pixel format %r: use one of %s" % (pixel_format, ", ".join(PIXEL_FORMATS)))


class Source(Closeable):
    """Base class: counts frames, stamps them, closes once."""
    live = False
    width = 0
    height = 0
    source_id = "source"
    pixel_format = "BGR"
    damaged = 0
    gaps = 0
    gap_s = 0.0
    _warn = None

    def __init__(self):
        self._next_index = 0
        self._closed = False
        self._stop = threading.Event()
        self.warnings = []

    def _say(self, msg):
        """A one-line warning: kept in ``warnings`` and given to the ``warn`` callback the
        source was made with (default: written to stderr)."""
        self.warnings.append(msg)
        if self._warn is not None:
            self._warn(msg)
        else:
            import sys
            sys.stderr.write("trtssd: warning: %s\n" % msg)

    def interrupt(self):
        """Make a read that waits (a reconnect's back-off) return None soon; safe from a
        signal handler or another thread."""
        self._stop.set()

    def _frame(self, image, t_capture):
        f = Frame(self._next_index, image, self.source_id, t_capture)
        self._next_index += 1
        return f

    @property
    def frames_read(self):
        return self._next_index

    def read(self, out=None):
        raise NotImplementedError

    def provide_buffers(self, allocate, free=None, count=4, stop=None):
        """Offer an allocator (``allocate(shape) -> uint8 array``, ``free(array)``) for frame
        buffers the source keeps itself, at least ``count`` of them (the frames the caller may
        hold at once). True: ``read()`` now hands out the source's own buffers (give each back
        with ``Frame.done()``); False (this base class): lend buffers with ``read(out=...)``.
        ``stop``: a threading.Event that makes a ``read`` waiting for a free buffer return
        None."""
        return False

    def release_buffers(self):
        """Free the buffers ``provide_buffers`` allocated (after every frame was given back)."""

    def close(self):
        self._closed = True


    def __iter__(self):
        while True:
            f = self.read()
            if f is None:
                return
            yield f

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.source_id)


def _check_out(out, shape):
    """``out`` if it can take a frame of ``shape`` in place, else None."""
    if out is None:
        return None
    if (not isinstance(out, np.ndarray) or out.dtype != np.uint8 or tuple(out.shape) != shape
            or not out.flags.c_contiguous or not out.flags.writeable):
        return None
    return out


class ImageSource(Source):
    """One picture file, given ``loop`` times (``loop=None``: endlessly). Not live."""

    def __init__(self, path, loop=1, source_id=None):
        Source.__init__(self)
        cv2 = _cv2()
        if not os.path.isfile(path):
            raise InputError("image file %r does not exist; give the path of a .jpg/.png file"
                             % path)
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise InputError("OpenCV cannot decode %r as an image; give a .jpg/.png/.bmp file"
                             % path)
        if loop is not None and int(loop) < 1:
            raise InputError("loop=%r: an image source must give the picture at least once "
                             "(or loop=None for endlessly)" % (loop,))
        self._image = img
        self._loop = None if loop is None else int(loop)
        self.path = path
        self.source_id = source_id or path
        self.height, self.width = img.shape[:2]

    def read(self, out=None):
        if self._closed or (self._loop is not None and self._next_index >= self._loop):
            return None
        t = time.perf_counter()
        dst = _check_out(out, self._image.shape)
        if dst is None:
            dst = self._image.copy()      # a copy: drawing sinks draw on the frame in place
        else:
            np.copyto(dst, self._image)
        return self._frame(dst, t)


def _capture_params(cv2, open_ms, read_ms):
    """OpenCV's open/read timeouts (4.5.2 and later) as VideoCapture params, else []."""
    params = []
    for name, ms in (("CAP_PROP_OPEN_TIMEOUT_MSEC", open_ms), ("CAP_PROP_READ_TIMEOUT_MSEC",
                                                               read_ms)):
        if ms and hasattr(cv2, name):
            params += [getattr(cv2, name), int(ms)]
    return params


# failed reads in a row after which a file is taken as ending there
MAX_DAMAGED_RUN = 25


class CaptureSource(Source):
    """A ``cv2.VideoCapture``: video files, cameras, RTSP and GStreamer pipelines.

    ``reconnect`` (default: on for live sources): when a live capture stops giving frames it
    is reopened, waiting 0.25 s, then twice as long each try up to 4 s, until it gives
    frames again, ``reconnect_timeout_s`` passes (None: for ever) or ``interrupt()``.
    ``timeout_ms``: OpenCV's open and read timeouts where it has them (so a cut network
    stream is noticed in that time rather than FFmpeg's default 30 s)."""
    reconnect = False
    reconnect_timeout_s = None
    frame_count = None
    fps = None
    _pos = 0
    _gap_t0 = None
    _backoff = 0.25

    def __init__(self, target, api=None, live=False, source_id=None, description=None,
                 fix=None, reconnect=None, reconnect_timeout_s=None, timeout_ms=None,
                 convert_rgb=True, fourcc=None, pixel_format="BGR", warn=None):
        Source.__init__(self)
        cv2 = _cv2()
        self.live = bool(live)
        self.source_id = source_id or str(target)
        self.description = description or ("video %r" % (target,))
        self._fix = fix or "check that it exists and that OpenCV can decode it"
        self.reconnect = self.live if reconnect is None else bool(reconnect)
        self.reconnect_timeout_s = reconnect_timeout_s
        self.pixel_format = pixel_format
        self._target, self._api = target, api
        self._params = _capture_params(cv2, timeout_ms, timeout_ms)
        self._convert_rgb, self._fourcc = convert_rgb, fourcc
        self._warn = warn
        self.damaged = 0
        self.gaps = 0
        self.gap_s = 0.0
        cap = self._open_capture()
        if not cap.isOpened():
            cap.release()
            raise InputError("cannot open %s; %s" % (self.description, self._fix))
        self._cap = cap
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and count > 0 and not self.live else None
        self._pos = 0          # frames the capture went through, damaged ones included

    def _open_capture(self):
        cv2 = _cv2()
        target, api = self._target, self._api
        if self._params and api is not None:
            try:
                cap = cv2.VideoCapture(target, api, self._params)
            except Exception:   # an OpenCV without the params constructor
                cap = cv2.VideoCapture(target, api)
        else:
            cap = cv2.VideoCapture(target) if api is None else cv2.VideoCapture(target, api)
        if cap.isOpened():
            if self._fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self._fourcc))
            if not self._convert_rgb:
                cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
            if self.live:
                try:    # keep OpenCV's own queue short so frames are fresh
                    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
                except Exception:
                    pass
        return cap

    def _buffer_shape(self):
        return yuv_buffer_shape(self.pixel_format, self.height, self.width)

    def _grab(self, out):
        dst = _check_out(out, self._buffer_shape()) if self.pixel_format == "BGR" else None
        if dst is not None:
            ok, img = self._cap.read(image=dst)     # decodes in place when the size matches
        else:
            ok, img = self._cap.read()
        if not ok or img is None or img.size == 0:
            return None
        return img

    def read(self, out=None):
        failed = 0          # reads that gave nothing since the last frame (files)
        while not self._closed:
            t = time.perf_counter()
            img = self._grab(out)
            if img is not None:
                if failed:        # frames after the failures: those were damaged frames
                    for k in range(failed):
                        self.damaged += 1
                        self._say("%s: frame %d is damaged (cannot be decoded); skipped"
                                  % (self.description, self._pos + k))
                    self._pos += failed
                self._pos += 1
                self._backoff = 0.25
                if self._gap_t0 is not None:       # the first frame after an outage
                    self.gap_s += t - self._gap_t0
                    self._say("%s gives frames again after %.1f s"
                              % (self.description, t - self._gap_t0))
                    self._gap_t0 = None
                return self._frame(self._shape_image(img), t)
            if self.live:
                if not self.reconnect:
                    self._raise_stopped()
                if not self._reopen():
                    return None
                continue
            # a file that fails before the count it announces: damage if frames follow,
            # else the file ends there (a failed read at the end consumes nothing)
            if self.frame_count is not None and self._pos + failed < self.frame_count \
                    and failed < MAX_DAMAGED_RUN:
                failed += 1
                continue
            if self.frame_count is not None and self._pos < self.frame_count:
                self._say("%s ended after frame %d of the %d it announces: the file is "
                          "truncated or damaged from frame %d on"
                          % (self.description, self._pos - 1, self.frame_count, self._pos))
                self.damaged += self.frame_count - self._pos
                self.frame_count = self._pos
            return None
        return None

    def _raise_stopped(self):
        if self._next_index == 0:
            raise SourceError("%s opened but gave no frame; check that the device is "
                              "connected and not used by another program" % self.description)
        raise SourceError("%s stopped giving frames after %d (disconnected or the stream "
                          "ended); reconnect it and start again, or leave --reconnect on"
                          % (self.description, self._next_index))

    def _reopen(self):
        """Reopen a live capture that stopped, with back-off; True once it is open again,
        False when interrupted or closed; SourceError after ``reconnect_timeout_s``. An
        outage counts once in ``gaps`` however many tries it takes."""
        if self._gap_t0 is None:
            self._gap_t0 = time.perf_counter()
            self.gaps += 1
            self._say("%s stopped giving frames after %d; reconnecting (Ctrl-C ends)"
                      % (self.description, self._next_index))
        while not self._closed and not self._stop.is_set():
            self._cap.release()
            if self._stop.wait(self._backoff):
                break
            self._backoff = min(4.0, self._backoff * 2)
            cap = self._open_capture()
            if cap.isOpened():
                self._cap = cap
                return True
            cap.release()
            if (self.reconnect_timeout_s is not None
                    and time.perf_counter() - self._gap_t0 > self.reconnect_timeout_s):
                raise SourceError("%s could not be reopened for %.0f s after frame %d; "
                                  "check the camera or the network and start again"
                                  % (self.description, self.reconnect_timeout_s,
                                     self._next_index))
        self.gap_s += time.perf_counter() - self._gap_t0     # ended while still cut
        self._gap_t0 = None
        return False

    def _shape_image(self, img):
        if self.pixel_format != "BGR":
            shape = self._buffer_shape()
            if img.size == int(np.prod(shape)) and img.shape != shape:
                img = np.ascontiguousarray(img).reshape(shape)   # OpenCV's raw 1 x N buffer
            return img
        if img.ndim == 2:
            img = np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
        if self.width == 0:
            self.height, self.width = img.shape[:2]
        return img

    def close(self):
        if not self._closed:
            self._closed = True
            self._stop.set()
            self._cap.release()


class VideoSource(CaptureSource):
    """A video file (anything OpenCV's FFmpeg backend decodes). Not live: nothing is dropped."""

    def __init__(self, path, source_id=None, warn=None):
        if not os.path.isfile(path):
            raise InputError("video file %r does not exist; give the path of a video file, a "
                             "picture, a folder of pictures, a camera index, rtsp://..., "
                             "csi://N, gst:PIPELINE or synthetic:WxH" % path)
        CaptureSource.__init__(self, path, live=False, source_id=source_id,
                               description="video file %r" % path, warn=warn,
                               fix="it is not a video OpenCV can decode, or it is truncated "
                                   "(a cut .mp4 or .avi loses its index; .mkv and .ts keep "
                                   "what was written): try converting it to H.264 .mp4")


class CameraSource(CaptureSource):
    """A USB/V4L2 camera by index (``/dev/videoN``). Live.

    ``pixel_format="YUYV"`` (or "UYVY") keeps the camera's packed 4:2:2 frames, as (H, W, 2)
    uint8, for the GPU preprocessing to convert (OpenCV's RGB conversion is turned off and
    the FOURCC asked for). Written from OpenCV's V4L2 backend documentation; no USB camera
    was available to this project, so it has not been run on one."""

    def __init__(self, index=0, width=None, height=None, fps=None, source_id=None,
                 pixel_format="BGR", reconnect=None, warn=None):
        cv2 = _cv2()
        api = getattr(cv2, "CAP_V4L2", None) if os.name == "posix" and os.path.exists(
            "/dev/video%d" % int(index)) else None
        fmt = str(pixel_format).upper()
        if fmt not in ("BGR", "YUYV", "UYVY"):
            raise InputError("camera pixel format %r: a V4L2 camera gives BGR (converted by "
                             "OpenCV), YUYV or UYVY" % (pixel_format,))
        yuv = fmt != "BGR"
        CaptureSource.__init__(self, int(index), api=api, live=True,
                               reconnect=reconnect, warn=warn, pixel_format=fmt,
                               convert_rgb=not yuv, fourcc=fmt if yuv else None,
                               source_id=source_id or "camera:%d" % int(index),
                               description="camera %d (/dev/video%d)" % (int(index), int(index)),
                               fix="check that it is plugged in (ls /dev/video*) and that no "
                                   "other program holds it")
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width),
                            (cv2.CAP_PROP_FRAME_HEIGHT, height), (cv2.CAP_PROP_FPS, fps)):
            if value:
                self._cap.set(prop, float(value))
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)


def csi_pipeline(sensor_id=0, width=1280, height=720, fps=30, flip=0,
                 capture_width=None, capture_height=None, pixel_format="BGR"):
    """The GStreamer pipeline of a Jetson CSI camera (``nvarguscamerasrc``), as NVIDIA's
    Jetson camera documentation builds it: NVMM NV12 from the ISP, copied out of NVMM by
    nvvidconv; then either BGRx -> BGR on the CPU (videoconvert) for BGR, or kept as NV12
    (``pixel_format="NV12"``: no CPU colour conversion, half the bytes; the GPU
    preprocessing converts). The appsink keeps only the newest buffer.
    (A Jetson path: README.md, "Jetson", says what was and was not run.)"""
    cw = capture_width or width
    ch = capture_height or height
    head = ("nvarguscamerasrc sensor-id=%d ! video/x-raw(memory:NVMM), width=%d, height=%d, "
            "format=NV12, framerate=%d/1 ! nvvidconv flip-method=%d ! "
            % (int(sensor_id), cw, ch, int(fps), int(flip)))
    if str(pixel_format).upper() == "NV12":
        return head + ("video/x-raw, width=%d, height=%d, format=NV12 ! "
                       "appsink drop=true max-buffers=1 sync=false" % (width, height))
    return head + ("video/x-raw, width=%d, height=%d, format=BGRx ! videoconvert ! "
                   "video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"
                   % (width, height))


def nvdec_file_pipeline(path, codec="h264", pixel_format="NV12"):
    """A Jetson hardware-decode pipeline for a video file (``nvv4l2decoder``), ending in NV12
    host frames (or BGR), from NVIDIA's Accelerated GStreamer guide (a Jetson path:
    README.md, "Jetson")."""
    parse = {"h264": "h264parse", "h265": "h265parse"}.get(codec)
    if parse is None:
        raise InputError("codec %r: use h264 or h265" % (codec,))
    tail = ("video/x-raw, format=NV12 ! appsink sync=false" if pixel_format == "NV12" else
            "video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
            "appsink sync=false")
    return ("filesrc location=%s ! qtdemux ! %s ! nvv4l2decoder ! nvvidconv ! %s"
            % (path, parse, tail))


def pipeline_pixel_format(pipeline):
    """The format the caps before a pipeline's appsink name (``format=NV12`` -> "NV12"),
    "BGR" when none of the YUV formats is named there."""
    last = pipeline.rsplit("appsink", 1)[0].rsplit("!", 2)
    caps = last[-2] if len(last) >= 2 else ""
    for f in PIXEL_FORMATS[1:]:
        if "format=%s" % f in caps.replace(" ", "").replace("(string)", ""):
            return f
    return "BGR"


def rtsp_pipeline(url, latency_ms=0):
    """A low-latency GStreamer pipeline for an RTSP stream: no jitter buffering beyond
    ``latency_ms``, decode, BGR, and an appsink that drops all but the newest frame."""
    return ("rtspsrc location=%s latency=%d ! decodebin ! videoconvert ! "
            "video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"
            % (url, int(latency_ms)))


class GstSource(CaptureSource):
    """Any GStreamer pipeline ending in an appsink (needs an OpenCV built with GStreamer, as
    JetPack's is). Live unless ``live=False`` (e.g. a filesrc pipeline). A pipeline whose
    caps before the appsink say ``format=NV12`` (I420, YV12, NV21, YUYV, UYVY) gives frames
    in that format (``pixel_format``; OpenCV's RGB conversion is turned off)."""

    def __init__(self, pipeline, live=True, source_id=None, description=None, reconnect=None,
                 warn=None):
        cv2 = _cv2()
        fmt = pipeline_pixel_format(pipeline)
        if not opencv_has_gstreamer():
            raise EnvironmentProblem(
                "%s needs an OpenCV built with GStreamer, and this one (%s) is not; on a Jetson "
                "use JetPack's python3-opencv instead of the pip wheel"
                % (description or "a GStreamer pipeline", cv2.__version__))
        CaptureSource.__init__(self, pipeline, api=cv2.CAP_GSTREAMER, live=live,
                               reconnect=reconnect, warn=warn, pixel_format=fmt,
                               convert_rgb=fmt == "BGR",
                               source_id=source_id or "gst:" + pipeline,
                               description=description or "GStreamer pipeline %r" % pipeline,
                               fix="check the pipeline with gst-launch-1.0 (it must end in "
                                   "appsink and give BGR or one of %s)"
                                   % ", ".join(PIXEL_FORMATS[1:]))


class CsiSource(GstSource):
    """A Jetson CSI camera through ``nvarguscamerasrc`` (see ``csi_pipeline``). Live.
    (A Jetson path: README.md, "Jetson".)"""

    def __init__(self, sensor_id=0, width=1280, height=720, fps=30, flip=0, source_id=None,
                 pixel_format="BGR", reconnect=None, warn=None):
        GstSource.__init__(self, csi_pipeline(sensor_id, width, height, fps, flip,
                                              pixel_format=pixel_format), live=True,
                           reconnect=reconnect, warn=warn,
                           source_id=source_id or "csi://%d" % int(sensor_id),
                           description="CSI camera %d (nvarguscamerasrc)" % int(sensor_id))


class RtspSource(CaptureSource):
    """An RTSP (or HTTP) stream. Live. Uses a low-latency GStreamer pipeline where OpenCV has
    GStreamer, else OpenCV's FFmpeg backend over TCP. Reconnects by default (see
    CaptureSource); ``timeout_ms`` bounds how long a cut stream blocks a read."""

    def __init__(self, url, latency_ms=0, use_gstreamer=None, source_id=None, reconnect=True,
                 reconnect_timeout_s=None, timeout_ms=3000, warn=None):
        cv2 = _cv2()
        if use_gstreamer is None:
            use_gstreamer = url.startswith("rtsp") and opencv_has_gstreamer()
        desc = "stream %s" % url
        fix = "check the URL, the network and the credentials (try it in ffplay or VLC)"
        if use_gstreamer:
            CaptureSource.__init__(self, rtsp_pipeline(url, latency_ms), api=cv2.CAP_GSTREAMER,
                                   live=True, source_id=source_id or url, description=desc,
                                   fix=fix, reconnect=reconnect, warn=warn,
                                   reconnect_timeout_s=reconnect_timeout_s)
        else:
            if url.startswith("rtsp"):
                os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
            CaptureSource.__init__(self, url, api=getattr(cv2, "CAP_FFMPEG", None), live=True,
                                   source_id=source_id or url, description=desc, fix=fix,
                                   reconnect=reconnect, warn=warn, timeout_ms=timeout_ms,
                                   reconnect_timeout_s=reconnect_timeout_s)


class SyntheticSource(Source):
    """Deterministic in-memory frames for benchmarks and tests.

    ``frames``: how many (None = endless). ``images``: pictures to cycle through (resized to
    width x height); by default a few seeded random pictures. ``live=True`` with ``fps``
    paces the frames like a camera: a reader that falls behind skips frames, which are counted
    in ``skipped`` (a camera would have overwritten them).

    Zero copy: the pictures are rendered once, and ``read()`` (without ``out``) hands out a
    read-only view of a pre-rendered buffer, no copy. A pipeline lends its allocator through
    ``provide_buffers``: the pictures are then rendered once into a ring of ``count`` (or
    more) buffers from it (pinned memory on CUDA, uploaded to the GPU by a direct H2D), and
    each frame holds its ring buffer until ``Frame.done()``. Like a camera with N V4L2/NVMM
    buffers, a file-like source then waits for its next buffer to come back (back-pressure)
    and a live one drops the frame (counted in ``skipped``). So synthetic frames are
    pre-rendered in pinned memory; the capture cost models a DMA camera, not a decoder.
    ``read(out=array)`` still copies the picture into ``array``.
    """

    def __init__(self, width=1920, height=1080, frames=None, live=False, seed=0, fps=None,
                 images=None, source_id=None):
        Source.__init__(self)
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise InputError("synthetic source of %dx%d: width and height must be >= 1"
                             % (width, height))
        if frames is not None and int(frames) < 0:
            raise InputError("synthetic source: frames=%r must be >= 0 or None" % (frames,))
        if live and not fps:
            fps = 30.0
        self.width, self.height = width, height
        self.live = bool(live)
        self.fps = float(fps) if fps else None
        self.frames = None if frames is None else int(frames)
        self.skipped = 0
        self.source_id = source_id or "synthetic:%dx%d" % (width, height)
        if images is None:
            rng = np.random.RandomState(seed)
            small = [rng.randint(0, 256, size=(-(-height // 8), -(-width // 8), 3))
                     .astype(np.uint8) for _ in range(4)]
            images = [np.repeat(np.repeat(s, 8, axis=0), 8, axis=1)[:height, :width] for s in small]
        self._images = [self._fit(np.asarray(im)) for im in images]
        if not self._images:
            raise InputError("synthetic source: images must hold at least one picture")
        self._t0 = None
        self._ring = None
        self._views = []
        for im in self._images:
            v = im.view()
            v.flags.writeable = False
            self._views.append(v)

    def provide_buffers(self, allocate, free=None, count=4, stop=None):
        self.release_buffers()
        self._ring = _FrameRing(self._images, count, allocate, free, stop)
        return True

    def release_buffers(self):
        ring, self._ring = self._ring, None
        if ring is not None:
            ring.close()

    @property
    def ring_size(self):
        """Buffers of the lent ring (0 when none was provided)."""
        return 0 if self._ring is None else len(self._ring.views)

    def _fit(self, im):
        if im.ndim == 2:
            im = np.repeat(im[:, :, None], 3, axis=2)
        if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
            raise InputError("synthetic source: images must be uint8 HxWx3 (BGR), got %s %s"
                             % (im.dtype, im.shape))
        if im.shape[:2] != (self.height, self.width):
            cv2 = _cv2()
            im = cv2.resize(im, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(im)

    def read(self, out=None):
        if self._closed or (self.frames is not None and self._next_index >= self.frames):
            return None
        if self.live:
            now = time.perf_counter()
            if self._t0 is None:
                self._t0 = now
            due = self._t0 + self._next_index / self.fps
            if now < due:
                time.sleep(due - now)
            else:
                behind = int((now - due) * self.fps)
                if behind > 0:
                    if self.frames is not None:
                        behind = min(behind, self.frames - self._next_index - 1)
                    self._next_index += max(0, behind)
                    self.skipped += max(0, behind)
        ring = self._ring
        if out is None and ring is not None:
            return self._read_ring(ring)
        t = time.perf_counter()
        src = self._images[self._next_index % len(self._images)]
        dst = _check_out(out, src.shape)
        if dst is None:
            if out is None:           # zero copy: a read-only view of the rendered picture
                return self._frame(self._views[self._next_index % len(self._views)], t)
            dst = src.copy()
        else:
            np.copyto(dst, src)
        return self._frame(dst, t)

    def _read_ring(self, ring):
        """The next frame in its ring buffer: a file-like source waits for the buffer, a live
        one drops the frame when its buffer is still out (the next one is due 1/fps later)."""
        while True:
            i = self._next_index
            k = i % len(ring.views)
            if ring.take(k, None if not self.live else 0.0):
                break
            if ring.stopped() or self._closed:
                return None
            # live and every buffer out: the camera drops this frame; wait for the next one
            self._next_index += 1
            self.skipped += 1
            if self.frames is not None and self._next_index >= self.frames:
                return None
            due = self._t0 + self._next_index / self.fps
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
        f = Frame(i, ring.views[k], self.source_id, time.perf_counter(), ring.releasers[k])
        self._next_index = i + 1
        return f


class _FrameRing(object):
    """Frame buffers of a SyntheticSource from a lent allocator, each rendered once with the
    picture it always shows (buffer k: picture k % pictures), handed out as read-only views
    and taken back by their frame's ``release``."""

    def __init__(self, pictures, count, allocate, free, stop):
        n = len(pictures)
        count = max(int(count), n)
        count = -(-count // n) * n        # a multiple of the pictures: buffer k keeps its own
        self.free_fn = free
        self.stop = stop
        self.buffers = []
        self.views = []
        try:
            for k in range(count):
                b = allocate(pictures[0].shape)
                self.buffers.append(b)
                np.copyto(b, pictures[k % n])
                v = b.view()
                v.flags.writeable = False
                self.views.append(v)
        except BaseException:
            self.close()
            raise
        self.out = [False] * count
        self.cond = threading.Condition()
        self.releasers = [functools.partial(self.put, k) for k in range(count)]

    def stopped(self):
        return self.stop is not None and self.stop.is_set()

    def take(self, k, timeout=None):
        """Mark buffer k as handed out; waits while it is out (``timeout`` None: until it
        comes back or ``stop`` is set). False if it did not come back in time."""
        with self.cond:
            if not self.out[k]:
                self.out[k] = True
                return True
            deadline = None if timeout is None else time.perf_counter() + timeout
            while self.out[k]:
                if self.stopped():
                    return False
                wait = 0.25 if deadline is None else min(0.25, deadline - time.perf_counter())
                if wait <= 0:
                    return False
                self.cond.wait(wait)
            self.out[k] = True
            return True

    def put(self, k):
        with self.cond:
            self.out[k] = False
            self.cond.notify()

    def close(self):
        bufs, self.buffers, self.views = self.buffers, [], []
        for b in bufs:
            if self.free_fn is not None:
                self.free_fn(b)


def open_source(text, **kw):
    """A source from its text: a camera index (``0``, ``/dev/video0``), ``rtsp://...``
    (or http(s)://), ``csi://N``, ``gst:PIPELINE``, ``synthetic:WxH[@FPS]``, an image file
    (``loop=N`` keyword), a folder or glob of pictures (one PictureSource) or a video file.
    A Source object is returned unchanged."""
    if isinstance(text, Source):
        return text
    if kw.get("decode") not in (None, "cpu"):     # --decode auto|gpu: NVDEC where it works
        from .nvdec import open_decoded
        return open_decoded(text, **kw)
    kw.pop("decode", None)
    if isinstance(text, int):
        return CameraSource(text, **kw)
    if not isinstance(text, str) or not text:
        raise InputError("source %r: give a file path, a camera index, rtsp://..., csi://N, "
                         "gst:PIPELINE or synthetic:WxH" % (text,))
    s = text.strip()
    if s.isdigit():
        return CameraSource(int(s), **kw)
    if s.startswith("/dev/video") and s[len("/dev/video"):].isdigit():
        return CameraSource(int(s[len("/dev/video"):]), source_id=s, **kw)
    low = s.lower()
    if low.startswith(("rtsp://", "rtsps://", "http://", "https://")):
        return RtspSource(s, **kw)
    if low.startswith("csi://"):
        rest = s[len("csi://"):] or "0"
        if not rest.isdigit():
            raise InputError("source %r: write a CSI camera as csi://N (N = sensor id)" % s)
        return CsiSource(int(rest), source_id=s, **kw)
    if low.startswith("gst:"):
        pipeline = s[4:].strip()
        if not opencv_has_gstreamer():
            from . import gst
            if gst.have_gst():      # pip's OpenCV has no GStreamer: PyGObject's appsink
                return gst.GstAppSource(pipeline, source_id=s, **_only(kw, ("live",)))
        return GstSource(pipeline, source_id=s, **kw)
    if low.startswith("synthetic"):
        spec = s[len("synthetic"):].lstrip(":")
        fps = None
        if "@" in spec:
            spec, f = spec.split("@", 1)
            try:
                fps = float(f)
            except ValueError:
                raise InputError("source %r: the rate after @ must be a number" % s)
        width, height = 1920, 1080
        if spec:
            try:
                width, height = (int(v) for v in spec.lower().split("x"))
            except ValueError:
                raise InputError("source %r: write synthetic:WIDTHxHEIGHT[@FPS], e.g. "
                                 "synthetic:1920x1080@30" % s)
        if fps:
            kw.setdefault("live", True)
            kw.setdefault("fps", fps)
        return SyntheticSource(width, height, source_id=s, **kw)
    if os.path.splitext(low)[1] in IMAGE_EXTENSIONS:
        return ImageSource(s, **kw)
    from .pictures import GLOB_CHARS, PictureSource, expand_pictures
    if os.path.isdir(s) or (any(c in s for c in GLOB_CHARS) and not os.path.exists(s)):
        return PictureSource(expand_pictures(s), source_id=s, **_only(kw, ("loop", "warn")))
    return VideoSource(s, **kw)


def _only(kw, names):
    return dict((k, v) for k, v in kw.items() if k in names)
