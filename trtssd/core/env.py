"""What this machine has: OpenCV, a CUDA driver and device, nvcc, and where trtssd caches.

Every probe imports or runs what it checks only when called, never at import.
"""
import os
import shutil

from .errors import EnvironmentProblem

CACHE_ENV = "TRTSSD_CACHE"


def cache_dir(sub=None, env=CACHE_ENV):
    """The folder trtssd caches into: ``$env`` when set, else ``~/.cache/trtssd[/sub]``."""
    override = os.environ.get(env) if env else None
    if override:
        return override
    base = os.path.join(os.path.expanduser("~"), ".cache", "trtssd")
    return os.path.join(base, sub) if sub else base


def import_cv2():
    """``cv2``, or EnvironmentProblem saying how to install OpenCV."""
    try:
        import cv2
    except ImportError as e:
        raise EnvironmentProblem(
            "OpenCV (cv2) is needed to read, draw, show and write pictures and videos, and is not "
            "importable (%s): install it with `pip install opencv-python-headless` (on a Jetson "
            "use JetPack's python3-opencv, which has GStreamer)" % e)
    return cv2


def which_nvcc():
    """Path of nvcc (PATH, then $CUDA_HOME/bin, $CUDA_PATH/bin, /usr/local/cuda/bin) or None."""
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root:
            p = os.path.join(root, "bin", "nvcc")
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
    return None


def nvidia_driver_present():
    """True where an NVIDIA driver is loaded (desktop: /proc/driver/nvidia; Jetson: the
    nvgpu/nvhost device nodes)."""
    return any(os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/nvhost-gpu",
                                           "/dev/nvgpu", "/dev/nvidia0"))


def gpu_unavailable_reason():
    """None when pycuda and a CUDA device are usable here, else why not (as text)."""
    if not nvidia_driver_present():
        return "no NVIDIA GPU or driver on this machine"
    try:
        import pycuda.driver as drv
    except ImportError:
        return "pycuda is not installed (`pip install pycuda`; on Jetson it comes with JetPack)"
    try:
        drv.init()
        if drv.Device.count() < 1:
            return "no CUDA device on this machine"
    except Exception as e:  # no driver, no device
        return "no usable CUDA device (%s)" % e
    return None
