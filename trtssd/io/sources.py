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

OpenCV is imported lazily, so importing this module needs only numpy.
"""
import functools
import os
import threading
import time

import numpy as np

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


class Source(object):
    """Base class: counts frames, stamps them, closes once."""
    live = False
    width = 0
    height = 0
    source_id = "source"

    def __init__(self):
        self._next_index = 0
        self._closed = False

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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

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


class CaptureSource(Source):
    """A ``cv2.VideoCapture``: video files, cameras, RTSP and GStreamer pipelines."""

    def __init__(self, target, api=None, live=False, source_id=None, description=None,
                 fix=None):
        Source.__init__(self)
        cv2 = _cv2()
        self.live = bool(live)
        self.source_id = source_id or str(target)
        self.description = description or ("video %r" % (target,))
        self._fix = fix or "check that it exists and that OpenCV can decode it"
        cap = cv2.VideoCapture(target) if api is None else cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            raise InputError("cannot open %s; %s" % (self.description, self._fix))
        if self.live:
            try:    # keep OpenCV's own queue short so frames are fresh (ignored where unsupported)
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            except Exception:
                pass
        self._cap = cap
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and count > 0 and not self.live else None

    def read(self, out=None):
        if self._closed:
            return None
        t = time.perf_counter()
        dst = _check_out(out, (self.height, self.width, 3))
        if dst is not None:
            ok, img = self._cap.read(image=dst)     # decodes in place when the size matches
        else:
            ok, img = self._cap.read()
        if not ok or img is None or img.size == 0:
            if self.live:
                if self._next_index == 0:
                    raise SourceError("%s opened but gave no frame; check that the device is "
                                      "connected and not used by another program"
                                      % self.description)
                raise SourceError("%s stopped giving frames after %d (disconnected or the "
                                  "stream ended); reconnect it and start again"
                                  % (self.description, self._next_index))
            return None
        if img.ndim == 2:
            img = np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
        if self.width == 0:
            self.height, self.width = img.shape[:2]
        return self._frame(img, t)

    def close(self):
        if not self._closed:
            self._closed = True
            self._cap.release()


class VideoSource(CaptureSource):
    """A video file (anything OpenCV's FFmpeg backend decodes). Not live: nothing is dropped."""

    def __init__(self, path, source_id=None):
        if not os.path.isfile(path):
            raise InputError("video file %r does not exist; give the path of a video file, a "
                             "camera index, rtsp://..., csi://N, gst:PIPELINE or synthetic:WxH"
                             % path)
        CaptureSource.__init__(self, path, live=False, source_id=source_id,
                               description="video file %r" % path,
                               fix="it is not a video OpenCV can decode (try converting it to "
                                   "H.264 .mp4)")


class CameraSource(CaptureSource):
    """A USB/V4L2 camera by index (``/dev/videoN``). Live."""

    def __init__(self, index=0, width=None, height=None, fps=None, source_id=None):
        cv2 = _cv2()
        api = getattr(cv2, "CAP_V4L2", None) if os.name == "posix" and os.path.exists(
            "/dev/video%d" % int(index)) else None
        CaptureSource.__init__(self, int(index), api=api, live=True,
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
                 capture_width=None, capture_height=None):
    """The GStreamer pipeline of a Jetson CSI camera (``nvarguscamerasrc``), as NVIDIA's
    Jetson camera documentation builds it: NVMM NV12 from the ISP, converted by nvvidconv to
    BGRx, then to BGR for OpenCV; the appsink keeps only the newest buffer.

    Written from NVIDIA's docs and not measured or run here (no Jetson was available)."""
    cw = capture_width or width
    ch = capture_height or height
    return ("nvarguscamerasrc sensor-id=%d ! video/x-raw(memory:NVMM), width=%d, height=%d, "
            "format=NV12, framerate=%d/1 ! nvvidconv flip-method=%d ! video/x-raw, width=%d, "
            "height=%d, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
            "appsink drop=true max-buffers=1 sync=false"
            % (int(sensor_id), cw, ch, int(fps), int(flip), width, height))


def rtsp_pipeline(url, latency_ms=0):
    """A low-latency GStreamer pipeline for an RTSP stream: no jitter buffering beyond
    ``latency_ms``, decode, BGR, and an appsink that drops all but the newest frame."""
    return ("rtspsrc location=%s latency=%d ! decodebin ! videoconvert ! "
            "video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"
            % (url, int(latency_ms)))


class GstSource(CaptureSource):
    """Any GStreamer pipeline ending in an appsink (needs an OpenCV built with GStreamer, as
    JetPack's is). Live unless ``live=False`` (e.g. a filesrc pipeline)."""

    def __init__(self, pipeline, live=True, source_id=None, description=None):
        cv2 = _cv2()
        if not opencv_has_gstreamer():
            raise EnvironmentProblem(
                "%s needs an OpenCV built with GStreamer, and this one (%s) is not; on a Jetson "
                "use JetPack's python3-opencv instead of the pip wheel"
                % (description or "a GStreamer pipeline", cv2.__version__))
        CaptureSource.__init__(self, pipeline, api=cv2.CAP_GSTREAMER, live=live,
                               source_id=source_id or "gst:" + pipeline,
                               description=description or "GStreamer pipeline %r" % pipeline,
                               fix="check the pipeline with gst-launch-1.0 (it must end in "
                                   "appsink and give BGR)")


class CsiSource(GstSource):
    """A Jetson CSI camera through ``nvarguscamerasrc`` (see ``csi_pipeline``). Live.
    Unmeasured: written from NVIDIA's documentation without a Jetson to run it on."""

    def __init__(self, sensor_id=0, width=1280, height=720, fps=30, flip=0, source_id=None):
        GstSource.__init__(self, csi_pipeline(sensor_id, width, height, fps, flip), live=True,
                           source_id=source_id or "csi://%d" % int(sensor_id),
                           description="CSI camera %d (nvarguscamerasrc)" % int(sensor_id))


class RtspSource(CaptureSource):
    """An RTSP (or HTTP) stream. Live. Uses a low-latency GStreamer pipeline where OpenCV has
    GStreamer, else OpenCV's FFmpeg backend over TCP."""

    def __init__(self, url, latency_ms=0, use_gstreamer=None, source_id=None):
        cv2 = _cv2()
        if use_gstreamer is None:
            use_gstreamer = url.startswith("rtsp") and opencv_has_gstreamer()
        desc = "stream %s" % url
        fix = "check the URL, the network and the credentials (try it in ffplay or VLC)"
        if use_gstreamer:
            CaptureSource.__init__(self, rtsp_pipeline(url, latency_ms), api=cv2.CAP_GSTREAMER,
                                   live=True, source_id=source_id or url, description=desc,
                                   fix=fix)
        else:
            if url.startswith("rtsp"):
                os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
            CaptureSource.__init__(self, url, api=getattr(cv2, "CAP_FFMPEG", None), live=True,
                                   source_id=source_id or url, description=desc, fix=fix)


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
    (``loop=N`` keyword) or a video file. A Source object is returned unchanged."""
    if isinstance(text, Source):
        return text
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
        return GstSource(s[4:].strip(), source_id=s, **kw)
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
    return VideoSource(s, **kw)
