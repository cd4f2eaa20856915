"""What a frame given to the preprocessing is: one array or a batch, its size and dtype checked,
and ``YuvFrame``, a 4:2:0 frame given as planes (what hardware decoders hand out).

Shared by the CPU reference and the GPU path, so both accept and refuse the same frames with
the same messages.
"""
import numpy as np

from ..core.errors import InputError
from ..gpu.cuda import DeviceArray, cuda_array_info, is_device_array


def frame_list(frames, options=None):
    """``frames`` as a list: a list or tuple, a batch (numpy array or DeviceArray of N frames:
    [N, H, W, C], or [N, H*3/2, W] for a 4:2:0 ``options.input_format``; N views), or one frame."""
    if isinstance(frames, (list, tuple)):
        return list(frames)
    nd = 3 if options is not None and options.yuv_layout in ("420sp", "420p") else 4
    if isinstance(frames, np.ndarray) and frames.ndim == nd:
        return [frames[i] for i in range(frames.shape[0])]
    if isinstance(frames, DeviceArray) and frames.ndim == nd:
        n, step = frames.shape[0], int(np.prod(frames.shape[1:])) * frames.dtype.itemsize
        return [DeviceArray.view(frames.ptr + k * step, frames.shape[1:], frames.dtype, frames)
                for k in range(n)]
    return [frames]


def _yuv_size(shape, options, what):
    fmt = options.input_format
    if options.yuv_layout == "422":
        if len(shape) != 3 or shape[2] != 2:
            raise InputError("%s has shape %s: input_format=%r needs (H, W, 2) (packed 4:2:2, "
                             "2 bytes a pixel)" % (what, tuple(shape), fmt))
        h, w = shape[0], shape[1]
        if w % 2 or w < 2 or h < 1:
            raise InputError("%s is %dx%d: %s needs an even width of at least 2 pixels (one "
                             "chroma pair per 2 pixels); crop it to %dx%d"
                             % (what, w, h, fmt, max(2, w - w % 2), max(1, h)))
        return int(h), int(w)
    if len(shape) != 2:
        raise InputError("%s has shape %s: input_format=%r needs OpenCV's single buffer of shape "
                         "(H*3/2, W), or a trtssd.preprocess.YuvFrame of its planes"
                         % (what, tuple(shape), fmt))
    rows, w = shape
    h = rows * 2 // 3
    if rows % 3 or h % 2 or w % 2 or h < 2 or w < 2:
        raise InputError("%s has shape %s: a 4:2:0 buffer (%s) is (H*3/2, W) with H and W even "
                         "and at least 2; crop the picture to even sizes before converting it"
                         % (what, tuple(shape), fmt))
    return int(h), int(w)


def frame_size(shape, options, what):
    """(height, width) in pixels of a frame array of ``shape`` in ``options.input_format``, or
    InputError naming the problem and the fix."""
    if options.is_yuv:
        return _yuv_size(shape, options, what)
    want = options.in_channels
    if len(shape) == 2 and want == 1:
        h, w, c = shape[0], shape[1], 1
    elif len(shape) == 3:
        h, w, c = shape
    else:
        raise InputError("%s has shape %s: expected (H, W, %d) for input_format=%r%s"
                         % (what, tuple(shape), want, options.input_format,
                            " or (H, W)" if want == 1 else ""))
    if c != want:
        raise InputError("%s has %d channels but input_format=%r needs %d: convert it "
                         "(cv2.cvtColor) or set input_format to match the frame"
                         % (what, c, options.input_format, want))
    if h < 1 or w < 1:
        raise InputError("%s is empty (%dx%d): the source returned no image; skip it"
                         % (what, w, h))
    return int(h), int(w)


def check_dtype(dtype, what):
    """InputError unless ``dtype`` is uint8."""
    if np.dtype(dtype) != np.uint8:
        raise InputError("%s has dtype %s: frames must be uint8 (as cameras and cv2.imread "
                         "give them); convert with np.clip(x, 0, 255).astype(np.uint8)"
                         % (what, np.dtype(dtype)))


class YuvFrame(object):
    """A 4:2:0 frame as planes with their own addresses and pitches, as decoders give them.

    NV12 / NV21 (``PreprocessOptions(input_format="NV12")``)::

        YuvFrame(width, height, y=..., uv=...)             # Y plane, interleaved chroma plane
        YuvFrame.from_surface(ptr, width, height, pitch)   # one pitched surface, NVDEC's layout:
                                                           # Y rows, then height/2 chroma rows

    I420 / YV12: ``YuvFrame(width, height, y=..., u=..., v=...)`` (U and V planes by name,
    whatever their order in memory).

    A plane is a device array (anything with ``__cuda_array_interface__``: DeviceArray, a CUDA
    torch tensor, CuPy; uint8, 2-D or with unit inner strides; its row pitch is its first
    stride), an ``int`` device address with its pitch (``y_pitch=``, ``uv_pitch=``, ...), or a
    numpy uint8 array (host planes: copied through the staging on the GPU path; the CPU path
    reads them). Planes must all be on the device or all on the host. Sizes: ``width`` and
    ``height`` even; Y is height rows of width bytes, UV height/2 rows of width bytes, U and V
    height/2 rows of width/2 bytes, each row ``pitch`` bytes from the next (pitch >= the row).
    ``owner`` is kept alive as long as the record (a decoder's frame object).

    Contract (device planes): the caller keeps them alive and unchanged until the stream has
    run the kernel of the call they were given to, as for device frames.
    """
    __slots__ = ("width", "height", "on_device", "planes", "pitches", "chroma", "owner")

    def __init__(self, width, height, y, uv=None, u=None, v=None, y_pitch=None, uv_pitch=None,
                 u_pitch=None, v_pitch=None, owner=None):
        try:
            w, h = int(width), int(height)
        except (TypeError, ValueError):
            raise InputError("YuvFrame width and height must be integers, got %r x %r"
                             % (width, height))
        if w < 2 or h < 2 or w % 2 or h % 2:
            raise InputError("YuvFrame is %dx%d: 4:2:0 planes need an even width and height of "
                             "at least 2" % (w, h))
        if uv is not None and (u is not None or v is not None):
            raise InputError("YuvFrame: give uv= (NV12/NV21) or u= and v= (I420/YV12), not both")
        if uv is None and (u is None or v is None):
            raise InputError("YuvFrame needs the chroma planes: uv= for NV12/NV21, or u= and v= "
                             "for I420/YV12")
        self.width, self.height, self.owner = w, h, owner
        if uv is not None:
            self.chroma = "uv"
            named = (("y", y, y_pitch, h, w), ("uv", uv, uv_pitch, h // 2, w))
        else:
            self.chroma = "u,v"
            named = (("y", y, y_pitch, h, w), ("u", u, u_pitch, h // 2, w // 2),
                     ("v", v, v_pitch, h // 2, w // 2))
        host = [isinstance(p, np.ndarray) for _, p, _, _, _ in named]
        if any(host) and not all(host):
            raise InputError("YuvFrame planes are partly numpy arrays and partly device memory: "
                             "give them all on the host or all on the device")
        self.on_device = not host[0]
        planes, pitches = [], []
        for name, plane, pitch, rows, row_bytes in named:
            p, q = _plane(plane, pitch, rows, row_bytes, "YuvFrame plane %s" % name)
            planes.append(p)
            pitches.append(q)
        self.planes, self.pitches = tuple(planes), tuple(pitches)

    @classmethod
    def from_surface(cls, ptr, width, height, pitch, owner=None):
        """An NV12/NV21 frame in one pitched device surface: ``height`` Y rows from ``ptr``, then
        ``height / 2`` interleaved chroma rows, every row ``pitch`` bytes apart (NVDEC's output;
        ``ptr`` an int device address or an object with ``__cuda_array_interface__`` of shape
        (height * 3 / 2, >= width))."""
        if not isinstance(ptr, (int, np.integer)):
            if not is_device_array(ptr):
                raise InputError("YuvFrame.from_surface needs a device address (int) or a device "
                                 "array, got %s" % type(ptr).__name__)
            owner = ptr if owner is None else owner
            addr, shape, strides, _ = cuda_array_info(ptr)
            if len(shape) != 2 or shape[0] * 2 != int(height) * 3:
                raise InputError("YuvFrame.from_surface: the surface has shape %s; an NV12 surface "
                                 "of %d rows is (%d, pitch)" % (shape, int(height),
                                                                int(height) * 3 // 2))
            ptr = addr
            pitch = strides[0] if pitch is None else pitch
        ptr, pitch, h = int(ptr), int(pitch), int(height)
        return cls(width, height, y=ptr, uv=ptr + h * pitch, y_pitch=pitch, uv_pitch=pitch,
                   owner=owner)

    def __repr__(self):
        return "YuvFrame(%dx%d, %s, %s)" % (self.width, self.height, self.chroma,
                                            "device" if self.on_device else "host")


def _plane(plane, pitch, rows, row_bytes, what):
    """(device address or host array, pitch) of one plane, validated."""
    if isinstance(plane, np.ndarray):
        check_dtype(plane.dtype, what)
        if plane.ndim != 2 or plane.shape[0] < rows or plane.shape[1] < row_bytes:
            raise InputError("%s has shape %s; it needs at least (%d, %d)"
                             % (what, plane.shape, rows, row_bytes))
        if plane.strides[1] != 1 or plane.strides[0] < row_bytes:
            raise InputError("%s has strides %s: its bytes must be contiguous within a row"
                             % (what, plane.strides))
        return plane[:rows, :row_bytes], int(plane.strides[0])
    if isinstance(plane, (int, np.integer)):
        if pitch is None:
            raise InputError("%s is a device address: give its pitch too (%s_pitch=bytes from "
                             "one row to the next)" % (what, what.split()[-1]))
        ptr, pitch = int(plane), int(pitch)
    elif is_device_array(plane):
        ptr, shape, strides, dtype = cuda_array_info(plane)
        check_dtype(dtype, what)
        if len(shape) != 2 or shape[0] < rows or shape[1] < row_bytes or strides[1] != 1:
            raise InputError("%s has shape %s and strides %s; it needs at least (%d, %d) with "
                             "contiguous bytes in a row" % (what, shape, strides, rows, row_bytes))
        pitch = int(strides[0]) if pitch is None else int(pitch)
    else:
        raise InputError("%s is a %s: give a device array, an int device address with its "
                         "pitch, or a numpy uint8 array" % (what, type(plane).__name__))
    if ptr == 0:
        raise InputError("%s has a null device pointer" % what)
    if pitch < row_bytes:
        raise InputError("%s has pitch %d, less than its row of %d bytes" % (what, pitch, row_bytes))
    return ptr, pitch
