"""``cpu_preprocess``: frames -> network input with OpenCV and NumPy, the reference of every
kernel test and the path of the CPU modes (semantics: trtssd.preprocess.options)."""
import numpy as np

from ..core.env import import_cv2
from ..core.errors import InputError
from ..core.geometry import FrameGeometry
from .frames import YuvFrame, check_dtype, frame_list, frame_size
from .options import YUV_FORMATS, YUV_SHIFT, yuv_coefficients

_CV2_CODES = {"NV12": "COLOR_YUV2RGB_NV12", "NV21": "COLOR_YUV2RGB_NV21",
              "I420": "COLOR_YUV2RGB_I420", "YV12": "COLOR_YUV2RGB_YV12",
              "YUYV": "COLOR_YUV2RGB_YUYV", "UYVY": "COLOR_YUV2RGB_UYVY"}


def _yuv_buffer(frame, options):
    """The frame as OpenCV's contiguous single buffer: (H*3/2, W) for 4:2:0, (H, W, 2) for 4:2:2."""
    if isinstance(frame, YuvFrame):
        y, c = frame.planes[0], frame.planes[1:]
        if frame.chroma == "uv":
            return np.ascontiguousarray(np.vstack([y, c[0]]))
        u, v = c
        first, second = (u, v) if YUV_FORMATS[options.input_format][1] == (0, 1) else (v, u)
        return np.concatenate([y.ravel(), first.ravel(), second.ravel()]).reshape(
            frame.height * 3 // 2, frame.width)
    return np.ascontiguousarray(frame)


def _yuv_full(buf, options, h, w):
    """Y, U, V at every pixel (int64 [h, w] each; chroma repeated over its 2x2 or 2x1 block)."""
    layout, offs = YUV_FORMATS[options.input_format]
    if layout == "422":
        y0, u, y1, v = offs
        mp = buf.reshape(h, w // 2, 4)
        Y = np.empty((h, w), np.int64)
        Y[:, 0::2], Y[:, 1::2] = mp[..., y0], mp[..., y1]
        return Y, np.repeat(mp[..., u], 2, 1).astype(np.int64), \
            np.repeat(mp[..., v], 2, 1).astype(np.int64)
    Y = buf[:h].astype(np.int64)
    if layout == "420sp":
        pairs = buf[h:].reshape(h // 2, w // 2, 2)
        cu, cv = pairs[..., offs[0]], pairs[..., offs[1]]
    else:
        q = (h // 2) * (w // 2)
        planes = buf[h:].reshape(-1)
        first, second = planes[:q].reshape(h // 2, w // 2), planes[q:].reshape(h // 2, w // 2)
        cu, cv = (first, second) if offs == (0, 1) else (second, first)
    up = lambda c: np.repeat(np.repeat(c, 2, 0), 2, 1).astype(np.int64)  # noqa: E731
    return Y, up(cu), up(cv)


def yuv_to_rgb(frame, options):
    """A YUV frame (array or host YuvFrame) -> RGB uint8 [H, W, 3], the conversion both paths do.

    BT601 limited range: ``cv2.cvtColor(..., COLOR_YUV2RGB_<format>)`` itself. Other matrices
    and ranges: the same integer arithmetic with their coefficients (``yuv_coefficients``),
    in NumPy.
    """
    h, w = (frame.height, frame.width) if isinstance(frame, YuvFrame) else \
        frame_size(frame.shape, options, "frame")
    buf = _yuv_buffer(frame, options)
    if options.yuv_matrix == "BT601" and options.yuv_range == "limited":
        cv2 = import_cv2()
        return cv2.cvtColor(buf, getattr(cv2, _CV2_CODES[options.input_format]))
    cy, cub, cug, cvg, cvr, off = yuv_coefficients(options.yuv_matrix, options.yuv_range)
    Y, U, V = _yuv_full(buf, options, h, w)
    yy = np.maximum(Y - off, 0) * cy
    u, v = U - 128, V - 128
    half = 1 << (YUV_SHIFT - 1)
    rgb = np.stack([yy + cvr * v + half, yy + cug * u + cvg * v + half, yy + cub * u + half], -1)
    return np.clip(rgb >> YUV_SHIFT, 0, 255).astype(np.uint8)


def cpu_preprocess(frames, options, out=None):
    """The network input from OpenCV/NumPy. The reference of every kernel test.

    ``frames``: one uint8 HWC (or HW for GRAY) array, a list of them (any sizes), or an
    [N, H, W, C] array. Returns ``(tensor [N, ...], [FrameGeometry])``; ``out`` (a numpy array
    of the output shape and dtype) is filled if given.
    """
    cv2 = import_cv2()
    frames = frame_list(frames, options)
    if not frames:
        raise InputError("no frames given: pass one frame or a list of frames")
    n = len(frames)
    shape = options.output_shape(n)
    if out is None:
        out = np.empty(shape, options.np_dtype)
    elif not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != options.np_dtype:
        raise InputError("out must be a numpy array of shape %s and dtype %s for %d frame(s), got "
                         "%s %s" % (shape, options.dtype, n, getattr(out, "shape", type(out)),
                                    getattr(out, "dtype", "")))
    interp = cv2.INTER_NEAREST if options.interpolation == "nearest" else cv2.INTER_LINEAR
    mean = np.asarray(options.mean, np.float32)
    scale = np.asarray(options.scale, np.float32)
    pad = options.normalised_pad()
    chans = list(options.source_channels())
    geoms = []
    for i, frame in enumerate(frames):
        what = "frame %d" % i
        if isinstance(frame, YuvFrame) and options.is_yuv and not frame.on_device:
            _check_planes(frame, options, what)
            h, w = frame.height, frame.width
            src = yuv_to_rgb(frame, options)
        elif not isinstance(frame, np.ndarray):
            raise InputError("%s is a %s: the CPU path needs numpy arrays (copy device frames to "
                             "the host first)" % (what, type(frame).__name__))
        else:
            check_dtype(frame.dtype, what)
            h, w = frame_size(frame.shape, options, what)
            c = options.in_channels
            if options.is_yuv:
                src = yuv_to_rgb(frame, options)
            else:
                src = frame if frame.ndim == 2 else (frame[:, :, 0] if c == 1 else frame)
            if not (src.strides[-1] == 1 and src.strides[0] > 0
                    and (src.ndim == 2 or src.strides[1] == src.shape[2])):
                src = np.ascontiguousarray(src)      # OpenCV reads packed pixels with a row step
        g = FrameGeometry.compute(w, h, options)
        nw, nh = g.inner_size
        resized = cv2.resize(src, (nw, nh), interpolation=interp)
        if resized.ndim == 2:
            resized = resized[:, :, None]
        vals = (resized[:, :, chans].astype(np.float32) - mean) * scale
        if options.letterbox:
            canvas = np.empty((options.height, options.width, 3), np.float32)
            canvas[...] = pad
            canvas[g.pad_y:g.pad_y + nh, g.pad_x:g.pad_x + nw] = vals
            vals = canvas
        if options.layout == "NCHW":
            vals = vals.transpose(2, 0, 1)
        out[i] = vals            # float16 output: numpy casts float32 -> float16 to nearest even
        geoms.append(g)
    return out, geoms


def _check_planes(frame, options, what):
    """InputError unless YuvFrame ``frame``'s planes are the ones ``options.input_format`` has."""
    need = {"420sp": "uv", "420p": "u,v"}.get(options.yuv_layout)
    if need is None:
        raise InputError("%s is a YuvFrame, but input_format=%r is packed 4:2:2: pass the (H, W, 2) "
                         "array itself" % (what, options.input_format))
    if frame.chroma != need:
        raise InputError("%s is a YuvFrame with %s planes, but input_format=%r has %s planes"
                         % (what, frame.chroma, options.input_format, need))
