"""Install only what is missing, so a Jetson keeps JetPack's OpenCV, numpy and TensorRT.

    python tools/ensure_deps.py test     # what `make test` needs
    python tools/ensure_deps.py bench    # what `make bench` needs
    python tools/ensure_deps.py vermin   # what `make vermin` needs

A module that imports already is left alone, whatever installed it; a missing one is
installed from PyPI with the pip of the running interpreter.
"""
import importlib
import os
import subprocess
import sys

# (import name, pip requirement). torch 2.13.0 is pinned because the CI machine has that
# wheel on disk (CPU build); any torch >= 1.10 works for the code.
COMMON = [
    ("numpy", "numpy>=1.19"),
    ("cv2", "opencv-python-headless"),
    ("onnx", "onnx"),
    ("tflite", "tflite"),
    ("flatbuffers", "flatbuffers"),
]
GROUPS = {
    "test": COMMON + [
        ("pytest", "pytest"),
        ("vermin", "vermin"),
        ("onnxruntime", "onnxruntime"),
        ("ai_edge_litert", "ai-edge-litert"),
        ("skimage", "scikit-image"),
        ("torch", "torch==2.13.0"),
        ("matplotlib", "matplotlib"),
        ("av", "av"),
        ("setuptools", "setuptools"),
        ("wheel", "wheel"),
        ("tqdm", "tqdm"),
        # CUDA 12.9's NVRTC, runtime headers and ptxas: the kernels compiled for the Jetson
        # Nano (sm_53) and Xavier (sm_72), which CUDA 13's nvcc no longer targets
        ("nvidia.cuda_nvrtc", "nvidia-cuda-nvrtc-cu12==12.9.*"),
        ("nvidia.cuda_runtime", "nvidia-cuda-runtime-cu12==12.9.*"),
        ("nvidia.cuda_nvcc", "nvidia-cuda-nvcc-cu12==12.9.*"),
        ("paho.mqtt.client", "paho-mqtt"),      # the MQTT sink against a real broker
    ] + ([("ray", "ray"), ("pyarrow", "pyarrow")]          # Ray for archives (3.9+ wheels)
         if sys.version_info >= (3, 9) else []),
    "vermin": [("vermin", "vermin")],
    "bench": COMMON + [
        ("matplotlib", "matplotlib"),
        ("av", "av"),               # makes the bench's H.264 clip (its wheels carry libx264)
    ],
}


# Debian/Ubuntu packages the RTSP and GStreamer tests use (a real RTSP server on 127.0.0.1,
# videotestsrc through PyGObject's appsink); installed best effort where apt-get runs as root
APT_TEST = ["python3-gi", "gir1.2-gstreamer-1.0", "gir1.2-gst-plugins-base-1.0",
            "gir1.2-gst-rtsp-server-1.0", "gstreamer1.0-plugins-base",
            "gstreamer1.0-plugins-good", "gstreamer1.0-tools",
            "mosquitto"]                 # the MQTT broker the MQTT sink's tests start


def apt_missing(packages):
    """The Debian packages of ``packages`` that dpkg says are not installed."""
    out = []
    for p in packages:
        try:
            r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               universal_newlines=True)
        except OSError:
            return []          # not a Debian system: nothing to do here
        if "install ok installed" not in r.stdout:
            out.append(p)
    return out


def ensure_apt(packages):
    """Best effort: install missing Debian packages when running as root with apt-get; a
    failure is reported and the tests that need them skip with the reason."""
    need = apt_missing(packages)
    if not need:
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not _which("apt-get"):
        print("note: the RTSP/GStreamer tests need %s (apt-get install as root); they skip "
              "without them" % " ".join(need))
        return
    print("apt-get installing: " + " ".join(need))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + need,
                       env=env, check=True, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as e:
        print("note: apt-get could not install %s (%s); the RTSP/GStreamer tests will skip"
              % (" ".join(need), e))


def _which(name):
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _has_nvidia_gpu():
    """trtssd.core.env's driver probe (the one rule), imported from this checkout: it needs
    nothing that this script installs."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    from trtssd.core.env import nvidia_driver_present
    return nvidia_driver_present()


def missing(group):
    out = []
    for module, requirement in GROUPS[group]:
        try:
            importlib.import_module(module)
        except Exception:
            out.append(requirement)
    return out


def main(argv):
    if len(argv) != 2 or argv[1] not in GROUPS:
        sys.exit("usage: python tools/ensure_deps.py {%s}" % "|".join(sorted(GROUPS)))
    need = missing(argv[1])
    if argv[1] == "test":
        ensure_apt(APT_TEST)
    if argv[1] == "bench" and _has_nvidia_gpu():
        try:
            importlib.import_module("pycuda")
        except Exception:
            # the GPU modes need PyCUDA; it compiles against the CUDA toolkit (on Jetson,
            # JetPack's, whose nvcc is in /usr/local/cuda/bin, usually not on PATH)
            os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + "/usr/local/cuda/bin"
            need.append("pycuda")
    if argv[1] == "bench" and _has_nvidia_gpu() and sys.version_info >= (3, 8) \
            and os.path.exists("/proc/driver/nvidia/version"):
        try:
            importlib.import_module("PyNvVideoCodec")
        except ImportError:
            need.append("pynvvideocodec")       # NVDEC decode (desktop GPUs; 27 MB)
        except Exception:
            pass                                # installed; the bench says why it cannot run
    if argv[1] == "bench":
        have_backend = False
        for module in ("tensorrt", "torch", "onnxruntime"):
            try:
                importlib.import_module(module)
                have_backend = True
                break
            except Exception:
                pass
        if not have_backend:
            need.append("onnxruntime")
    if argv[1] == "bench" and _has_nvidia_gpu():
        ok = False
        for module in ("tensorrt", "torch"):
            try:
                m = importlib.import_module(module)
                ok = ok or module == "tensorrt" or bool(m.cuda.is_available())
            except Exception:
                pass
        if not ok:
            print("note: this machine has an NVIDIA GPU but neither TensorRT nor a CUDA build "
                  "of PyTorch: the bench will run the network with ONNX Runtime on the CPU. "
                  "Install TensorRT (NVIDIA's index / JetPack) or PyTorch with CUDA to use it.")
    if not need:
        return
    print("installing: " + " ".join(need))
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           "--disable-pip-version-check"] + need)


if __name__ == "__main__":
    main(sys.argv)
