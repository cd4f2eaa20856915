"""``cpu_preprocess``: frames -> network input with OpenCV and NumPy, the reference of every
kernel test and the path of the CPU modes (semantics: trtssd.preprocess.options)."""
import numpy as np

from ..core.env import import_cv2
from ..core.errors import InputError
from ..core.geometry import FrameGeometry
from .frames import check_dtype, frame_hwc, frame_list


def cpu_preprocess(frames, options, out=None):
    """The network input from OpenCV/NumPy. The reference of every kernel test.

    ``frames``: one uint8 HWC (or HW for GRAY) array, a list of them (any sizes), or an
    [N, H, W, C] array. Returns ``(tensor [N, ...], [FrameGeometry])``; ``out`` (a numpy array
    of the output shape and dtype) is filled if given.
    """
    cv2 = import_cv2()
    frames = frame_list(frames)
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
        if not isinstance(frame, np.ndarray):
            raise InputError("%s is a %s: the CPU path needs numpy arrays (copy device frames to "
                             "the host first)" % (what, type(frame).__name__))
        check_dtype(frame.dtype, what)
        h, w, c = frame_hwc(frame.shape, options, what)
        g = FrameGeometry.compute(w, h, options)
        nw, nh = g.inner_size
        src = frame if frame.ndim == 2 else (frame[:, :, 0] if c == 1 else frame)
        if not (src.strides[-1] == 1 and src.strides[0] > 0
                and (src.ndim == 2 or src.strides[1] == c)):
            src = np.ascontiguousarray(src)      # OpenCV reads packed pixels with a row step
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
