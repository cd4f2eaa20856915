"""What a frame given to the preprocessing is: one array or a batch, its size and dtype checked.

Shared by the CPU reference and the GPU path, so both accept and refuse the same frames with
the same messages.
"""
import numpy as np

from ..core.errors import InputError
from ..gpu.cuda import DeviceArray


def frame_list(frames):
    if isinstance(frames, (list, tuple)):
        return list(frames)
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        return [frames[i] for i in range(frames.shape[0])]
    if isinstance(frames, DeviceArray) and frames.ndim == 4:
        n, step = frames.shape[0], int(np.prod(frames.shape[1:])) * frames.dtype.itemsize
        return [DeviceArray.view(frames.ptr + k * step, frames.shape[1:], frames.dtype, frames)
                for k in range(n)]
    return [frames]


def frame_hwc(shape, options, what):
    """(h, w, c) of a frame's shape, or InputError naming the problem and the fix."""
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
    return int(h), int(w), int(c)


def check_dtype(dtype, what):
    if np.dtype(dtype) != np.uint8:
        raise InputError("%s has dtype %s: frames must be uint8 (as cameras and cv2.imread "
                         "give them); convert with np.clip(x, 0, 255).astype(np.uint8)"
                         % (what, np.dtype(dtype)))
