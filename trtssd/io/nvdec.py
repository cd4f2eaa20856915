"""Hardware video decode on NVIDIA GPUs (NVDEC) through NVIDIA's PyNvVideoCodec.

``NvdecSource(path)`` reads a file or an RTSP stream through PyNvVideoCodec's demuxer and one
decoder session of its own (several sources decode at once, on the card's NVDEC engines). Its
frames stay on the GPU as NV12: each decoded picture is copied once, device to device, into
a ring buffer of the source's own, a (H*3/2, W) uint8 device array in OpenCV's single-buffer
NV12 layout (``Frame.image``, with ``__cuda_array_interface__``), which the preprocessing
kernel reads in place. A ring buffer is given back by ``Frame.done()``, which the pipeline
calls after the completion event of the slot that read it: the surface's lifetime is the
slot's. The decoder's own surfaces are never held across a later ``Decode`` call, so nothing
depends on how long PyNvVideoCodec keeps them. With ``device_frames = False`` (a layer that
preprocesses on the CPU) each frame is downloaded into a host (pinned) NV12 buffer instead.

``open_decoded(text, decode)`` picks the decoder for ``--decode auto|gpu|cpu``: ``gpu``
insists on NVDEC (an error that says why when it cannot), ``cpu`` is OpenCV's decoder
(trtssd.io.sources), ``auto`` takes NVDEC where it works for a file or an RTSP URL and OpenCV
otherwise, and says which it took (``source.decode`` and ``source.decode_note``).

PyNvVideoCodec (PyPI ``pynvvideocodec``, Python 3.8+) is imported only when a source is made.
"""
import collections
import functools
import os
import time

import numpy as np

from ..core.errors import EnvironmentProblem, InputError
from ..core.freelist import FreeList
from .sources import Source

DECODE_CHOICES = ("auto", "gpu", "cpu")
_NETWORK = ("rtsp://", "rtsps://", "http://", "https://")


def add_decode_argument(parser):
    """``--decode auto|gpu|cpu`` on an argparse parser (the CLI's detect and the bench)."""
    parser.add_argument("--decode", default="auto", choices=DECODE_CHOICES,
                        help="video decoding of files and RTSP streams: gpu = NVDEC through "
                             "PyNvVideoCodec (frames stay on the GPU as NV12), cpu = OpenCV, "
                             "auto = the GPU where it works, else the CPU (says which)")
    return parser


def _nvc():
    try:
        import PyNvVideoCodec as nvc
    except ImportError:
        raise EnvironmentProblem("hardware decode needs PyNvVideoCodec: `pip install "
                                 "pynvvideocodec` (Python 3.8+, an NVIDIA driver with NVDEC); "
                                 "or use --decode cpu")
    except Exception as e:          # the package is there but finds no driver / libnvcuvid
        raise EnvironmentProblem("PyNvVideoCodec cannot start here (%s: %s); use --decode cpu"
                                 % (type(e).__name__, str(e).strip().splitlines()[0]
                                    if str(e).strip() else ""))
    return nvc


def unavailable_reason():
    """None when NVDEC decode can be tried here (PyNvVideoCodec imports, a CUDA device is
    there), else why not, as text."""
    try:
        from ..gpu.cuda import driver
        drv = driver()
        if drv.Device.count() < 1:
            return "no CUDA device on this machine"
    except Exception as e:
        return "no usable CUDA device (%s)" % e
    try:
        _nvc()
    except EnvironmentProblem as e:
        return str(e)
    return None


def decodable(text):
    """True for what NVDEC can read here: a video file path or an RTSP/HTTP URL."""
    if not isinstance(text, str):
        return False
    low = text.strip().lower()
    if low.startswith(_NETWORK):
        return True
    from .sources import IMAGE_EXTENSIONS
    return os.path.isfile(text) and os.path.splitext(low)[1] not in IMAGE_EXTENSIONS


def open_decoded(text, decode="auto", **kw):
    """The source for ``text`` decoded as ``decode`` says (see the module docstring)."""
    from .sources import open_source
    if decode not in DECODE_CHOICES:
        raise InputError("--decode %s: choose one of %s" % (decode, ", ".join(DECODE_CHOICES)))
    if decode == "cpu" or (decode == "auto" and not decodable(text)):
        src = open_source(text, **kw)
        if decodable(text):
            _say(src, "cpu", "decoded on the CPU by OpenCV (--decode cpu)")
        return src
    if not decodable(text):
        raise InputError("--decode gpu: %r is not a video file or an RTSP URL; NVDEC decodes "
                         "those (cameras and synthetic sources are read as they are)" % (text,))
    try:
        return NvdecSource(text, **kw)
    except EnvironmentProblem as e:
        if decode == "gpu":
            raise
        src = open_source(text, **kw)
        _say(src, "cpu", "decoded on the CPU by OpenCV: NVDEC is not usable here (%s)" % e)
        return src


def _say(src, decode, note):
    try:
        src.decode, src.decode_note = decode, note
    except AttributeError:
        pass


class _Ring(object):
    """Buffers handed out one frame each and given back (from any thread)."""

    def __init__(self, buffers):
        self.buffers = list(buffers)
        self._free = FreeList(range(len(self.buffers)))
        self._releasers = [functools.partial(self.put, k) for k in range(len(self.buffers))]

    def take(self, wait, stop=None):
        """A free buffer's index; waits while none is free (``wait`` True) unless ``stop``
        is set, else returns None at once."""
        return self._free.take(wait, stop)

    def put(self, k):
        self._free.put(k)

    @property
    def all_free(self):
        return len(self._free) == len(self.buffers)


class NvdecSource(Source):
    """A video file or RTSP stream decoded by NVDEC; NV12 frames on the GPU (see the module
    docstring). ``gpu``: the device's ordinal; ``live``: default True for network URLs."""
    pixel_format = "NV12"
    decode = "gpu"

    def __init__(self, path, gpu=0, live=None, source_id=None, buffers=4):
        Source.__init__(self)
        text = str(path)
        network = text.lower().startswith(_NETWORK)
        if not network and not os.path.isfile(text):
            raise InputError("video file %r does not exist; give the path of a video file or "
                             "an rtsp:// URL" % text)
        self.path = text
        self.source_id = source_id or text
        self.live = network if live is None else bool(live)
        self.device_frames = True
        self.skipped = 0
        self.decode_note = ("decoded on the GPU by NVDEC (PyNvVideoCodec), frames kept as NV12; "
                            "each decoder session starts while the run is set up")
        self._min_buffers = max(2, int(buffers))
        self._ring = None
        self._pending = collections.deque()
        self._eof = False
        self._stop = None
        self._host_alloc = self._host_free = None
        self._dmx = self._dec = self._stream = None
        nvc = _nvc()
        from ..gpu.cuda import CudaContext
        self._cc = CudaContext(int(gpu))
        try:
            with self._cc.active():
                from ..gpu.cuda import driver
                self._stream = driver().Stream()
                try:
                    self._dmx = nvc.CreateDemuxer(filename=text)
                    self._dec = nvc.CreateDecoder(
                        gpuid=int(gpu), codec=self._dmx.GetNvCodecId(),
                        cudacontext=self._cc._ctx.handle, cudastream=self._stream.handle,
                        usedevicememory=True)
                except EnvironmentProblem:
                    raise
                except Exception as e:
                    raise EnvironmentProblem("NVDEC cannot open %r (%s: %s); use --decode cpu"
                                             % (text, type(e).__name__, e))
                self.width = int(_first(self._dmx, ("Width", "GetWidth")))
                self.height = int(_first(self._dmx, ("Height", "GetHeight")))
                try:
                    self.fps = float(_first(self._dmx, ("FrameRate",))) or None
                except Exception:
                    self.fps = None
        except BaseException:
            self.close()
            raise
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            self.close()
            raise InputError("video %r: NV12 needs an even, non-zero size, the demuxer says "
                             "%dx%d" % (text, self.width, self.height))
        self._iter = iter(self._dmx)

    # -- buffers -----------------------------------------------------------------------------

    @property
    def frame_shape(self):
        return (self.height * 3 // 2, self.width)

    def provide_buffers(self, allocate, free=None, count=4, stop=None):
        """Keep ``count`` (or more) frame buffers of the source's own: device NV12 arrays, or
        with ``device_frames`` False host buffers from ``allocate`` (pinned on CUDA)."""
        self.release_buffers()
        self._stop = stop
        n = max(int(count), self._min_buffers)
        if self.device_frames:
            self._host_alloc = self._host_free = None
            self._ring = _Ring(self._device_buffers(n))
        else:
            self._host_alloc, self._host_free = allocate, free
            self._ring = _Ring([allocate(self.frame_shape) for _ in range(n)])
        self._start_decoding()
        return True

    def _start_decoding(self):
        """Decode up to the first picture now, while the run is being set up: NVDEC makes its
        session at the stream's first sequence header, which takes tens of milliseconds (and
        more when several sources start at once), so opening a source for a run includes it,
        as making the slots includes their graph captures. The pictures of that Decode call
        wait in ``_pending`` for the first reads; no other Decode call comes before them."""
        if self._pending or self._eof or self._dec is None:
            return
        with self._cc.active():
            pic = self._next_decoded()
            if pic is not None:
                self._pending.appendleft(pic)

    def _device_buffers(self, n):
        from ..gpu.cuda import DeviceArray
        out = []
        with self._cc.active():
            try:
                for _ in range(n):
                    out.append(DeviceArray(self.frame_shape, np.uint8))
            except BaseException:
                for a in out:
                    a.close()
                raise
        return out

    def release_buffers(self):
        ring, self._ring = self._ring, None
        if ring is None:
            return
        if self._host_alloc is None:
            with self._cc.active():
                for a in ring.buffers:
                    a.close()
        elif self._host_free is not None:
            for b in ring.buffers:
                self._host_free(b)

    # -- reading -----------------------------------------------------------------------------

    def _next_decoded(self):
        """The next decoded picture (PyNvVideoCodec's frame), or None at the end. The pictures
        of one Decode call are all taken before the next call."""
        while not self._pending:
            if self._eof:
                return None
            try:
                packet = next(self._iter)
            except StopIteration:
                self._eof = True
                self._pending.extend(self._flush())
                continue
            self._pending.extend(self._dec.Decode(packet) or ())
        return self._pending.popleft()

    def _flush(self):
        # an empty packet drains the frames the decoder still holds (B-frame reordering)
        try:
            nvc = _nvc()
            return list(self._dec.Decode(nvc.PacketData()) or ())
        except Exception:
            return []

    def read(self, out=None):
        if self._closed:
            return None
        if self._ring is None and out is None:
            # not lent an allocator: device buffers of the source's own
            self.provide_buffers(None, None, self._min_buffers)
        with self._cc.active():
            if out is not None:              # any host array: copied synchronously
                pic = self._next_decoded()
                if pic is None:
                    return None
                t = time.perf_counter()
                self._stream.synchronize()
                self._copy(pic, out, host=True, stream=None)
                return self._frame(out, t)
            while True:
                k = None
                if not self.live:
                    # a file waits for a free buffer before it decodes on (back-pressure)
                    k = self._ring.take(True, self._stop)
                    if k is None:
                        return None          # stopped
                pic = self._next_decoded()
                if pic is None:
                    if k is not None:
                        self._ring.put(k)
                    return None
                t = time.perf_counter()
                if k is None:
                    k = self._ring.take(False)
                    if k is None:            # live: every buffer is still out; drop it
                        self.skipped += 1
                        continue
                buf = self._ring.buffers[k]
                try:
                    self._copy(pic, buf, host=self._host_alloc is not None,
                               stream=self._stream)
                    # the frame is complete before any other stream reads it
                    self._stream.synchronize()
                except BaseException:
                    self._ring.put(k)
                    raise
                f = self._frame(buf, t)
                f.release = self._ring._releasers[k]
                return f

    def _copy(self, pic, dst, host, stream):
        """One decoded picture into ``dst`` ((H*3/2, W) uint8, device or host): luma rows,
        then the interleaved chroma rows, each plane with its own pitch; on ``stream`` (the
        decoder's, so after its writes; a host ``dst`` must then be pinned), or synchronously
        with ``stream`` None."""
        from ..gpu.cuda import copy_2d
        h, w = self.height, self.width
        for src_ptr, src_pitch, rows, row0 in _planes(pic, h, w):
            target = dst[row0:row0 + rows] if host else int(dst.ptr) + row0 * w
            copy_2d(src_ptr, src_pitch, target, w, w, rows, stream)

    def close(self):
        if self._closed and self._cc is None:
            return
        Source.close(self)
        try:
            if self._cc is not None:
                with self._cc.active():
                    if self._stream is not None:
                        self._stream.synchronize()
                    self._pending.clear()
                    # decoder, then demuxer, then stream (PyNvVideoCodec's order)
                    self._dec = None
                    self._dmx = self._iter = None
                    self.release_buffers()
                    self._stream = None
        finally:
            cc, self._cc = self._cc, None
            if cc is not None:
                cc.close()


def _first(obj, names):
    for n in names:
        fn = getattr(obj, n, None)
        if fn is not None:
            return fn() if callable(fn) else fn
    raise EnvironmentProblem("this PyNvVideoCodec has none of %s; use --decode cpu"
                             % ", ".join(names))


def _planes(pic, height, width):
    """[(device pointer, pitch in bytes, rows, first destination row)] of a decoded NV12
    picture: its luma plane (``height`` rows) and its interleaved chroma plane
    (``height / 2`` rows), from the picture's ``__cuda_array_interface__`` (one (H*3/2, W)
    array, or the planes of ``cuda()``) or, failing those, ``GetPtrToPlane(0)`` (planes
    back to back, pitch = width)."""
    from ..gpu.cuda import cuda_array_info
    iface = getattr(pic, "__cuda_array_interface__", None)
    if iface is not None:
        ptr, shape, strides, _ = cuda_array_info(pic)
        if shape[0] >= height * 3 // 2:
            return [(ptr, strides[0], height, 0),
                    (ptr + strides[0] * height, strides[0], height // 2, height)]
    planes = pic.cuda() if callable(getattr(pic, "cuda", None)) else None
    if planes:
        luma = cuda_array_info(planes[0])
        if len(planes) >= 2:
            chroma = cuda_array_info(planes[1])
            return [(luma[0], luma[2][0], height, 0), (chroma[0], chroma[2][0], height // 2,
                                                       height)]
        return [(luma[0], luma[2][0], height, 0),
                (luma[0] + luma[2][0] * height, luma[2][0], height // 2, height)]
    ptr = int(pic.GetPtrToPlane(0))
    return [(ptr, width, height, 0), (ptr + width * height, width, height // 2, height)]


__all__ = ["NvdecSource", "open_decoded", "add_decode_argument", "unavailable_reason",
           "decodable", "DECODE_CHOICES"]
