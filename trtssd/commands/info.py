"""`trtssd info`: what this machine has (GPU, driver, CUDA, libraries), which backends and
pipeline modes can run here, and, for each that cannot, why not."""
import os
import platform
import shutil
import subprocess
import sys

from ..core.env import nvidia_driver_present, which_nvcc


def _version(modname):
    try:
        m = __import__(modname)
    except ImportError as e:
        return None, "not installed (%s)" % e
    except Exception as e:     # a broken install
        return None, "import failed: %s: %s" % (type(e).__name__, e)
    return getattr(m, "__version__", "?"), ""


def gpu_status():
    """(ok, details dict, reason): pycuda, the driver, CUDA and the devices."""
    d = {}
    try:
        import pycuda.driver as drv
    except ImportError as e:
        if not nvidia_driver_present():
            return False, d, "this machine has no NVIDIA GPU (no NVIDIA driver is loaded)"
        return False, d, "pycuda is not installed (%s); `pip install pycuda` (on a Jetson it " \
                         "builds against JetPack's CUDA)" % e
    except Exception as e:
        return False, d, "pycuda cannot load: %s: %s" % (type(e).__name__, e)
    try:
        drv.init()
        v = drv.get_driver_version()
        d["cuda_driver_api"] = "%d.%d" % (v // 1000, (v % 1000) // 10)
        cv = drv.get_version()
        d["pycuda_built_for_cuda"] = ".".join(str(x) for x in cv)
        n = drv.Device.count()
        devs = []
        for i in range(n):
            dev = drv.Device(i)
            cc = dev.compute_capability()
            devs.append({"index": i, "name": dev.name(), "compute_capability": "%d.%d" % cc,
                         "memory_gib": round(dev.total_memory() / 2.0 ** 30, 1)})
        d["devices"] = devs
    except Exception as e:
        return False, d, "the CUDA driver is not usable: %s: %s" % (type(e).__name__, e)
    if not d.get("devices"):
        return False, d, "no CUDA device on this machine"
    return True, d, ""


def _nvidia_smi():
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        p = subprocess.Popen([exe, "--query-gpu=name,driver_version",
                              "--format=csv,noheader"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True)
        out, _ = p.communicate(timeout=10)
        return out.strip() or None
    except Exception:
        return None


def _nvcc():
    exe = which_nvcc()
    if not exe:
        return None, "nvcc not found (install the CUDA toolkit, or put it on PATH)"
    try:
        p = subprocess.Popen([exe, "--version"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True)
        out, _ = p.communicate(timeout=20)
        rel = [ln for ln in out.splitlines() if "release" in ln]
        return exe, (rel[-1].strip() if rel else "")
    except Exception as e:
        return exe, "nvcc did not run: %s" % e


def collect():
    """Everything `trtssd info` prints, as a dict."""
    info = {"python": sys.version.split()[0], "platform": platform.platform(),
            "machine": platform.machine()}
    for mod in ("numpy", "cv2", "pycuda", "tensorrt", "torch", "onnxruntime"):
        v, why = _version(mod)
        info[mod] = v if v is not None else "absent: " + why
    try:
        from ..io.sources import opencv_has_gstreamer
        info["opencv_gstreamer"] = opencv_has_gstreamer()
    except Exception as e:
        info["opencv_gstreamer"] = "unknown (%s)" % e
    ok, gpu, reason = gpu_status()
    info["gpu"] = gpu
    info["gpu_ok"] = ok
    info["gpu_reason"] = reason
    smi = _nvidia_smi()
    if smi:
        info["nvidia_smi"] = smi
    nvcc, nvcc_ver = _nvcc()
    info["nvcc"] = ("%s (%s)" % (nvcc, nvcc_ver)) if nvcc else "absent: " + nvcc_ver
    try:
        from ..backends import available_backends
        info["backends"] = {k: [bool(v[0]), v[1]] for k, v in available_backends().items()}
    except Exception as e:
        info["backends"] = {"error": [False, "%s: %s" % (type(e).__name__, e)]}
    try:
        from ..models.resolve import resolve_model
        info["model"] = resolve_model()
    except Exception:
        info["model"] = ("absent: no --model given and $TRTSSD_MODEL is not set; download "
                         "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.zip (the TFLite hosted "
                         "models archive), unzip it and pass --model detect.tflite or set "
                         "$TRTSSD_MODEL to it")
    info["modes"] = modes_here(info)
    return info


def modes_here(info):
    """{mode: [ok, how or why not]} from what collect() found."""
    be = info.get("backends", {})

    def has(name):
        return bool(be.get(name, [False])[0])
    cuda_backend = has("tensorrt") or has("torch-cuda")
    cpu_backend = has("onnxruntime-cpu") or has("torch-cpu")
    gpu_ok = info.get("gpu_ok")
    nvcc_ok = not str(info.get("nvcc", "")).startswith("absent")
    out = {}
    host = ("CUDA backend" if (gpu_ok and cuda_backend) else "CPU backend" if cpu_backend
            else None)
    why_no_backend = ("no backend can run: install onnxruntime (CPU) or torch/tensorrt with a "
                      "GPU")
    for m in ("sync", "async"):
        out[m] = [host is not None, ("CPU preprocessing, %s" % host) if host else why_no_backend]
    if not gpu_ok:
        why = "needs a CUDA GPU: %s" % (info.get("gpu_reason") or "none found")
    elif not cuda_backend:
        why = "needs TensorRT or PyTorch with CUDA (neither is usable here)"
    elif not nvcc_ok:
        why = "needs nvcc to compile the preprocessing/postprocessing kernels"
    else:
        why = None
    out["gpu"] = [why is None, "GPU preprocessing and postprocessing" if why is None else why]
    for m in ("pipelined", "multi"):
        if why is None:
            out[m] = [True, "on the GPU (slots with their own streams)"]
        elif host is not None:
            out[m] = [True, "on the CPU only (%s); not on the GPU: see gpu" % host]
        else:
            out[m] = [False, why_no_backend]
    return out


def format_info(info):
    lines = ["trtssd on %s, Python %s (%s)" % (info["platform"], info["python"],
                                               info["machine"])]
    lines.append("")
    lines.append("GPU:")
    if info.get("gpu_ok"):
        g = info["gpu"]
        for d in g.get("devices", []):
            lines.append("  [%d] %s, compute %s, %.1f GiB" % (d["index"], d["name"],
                                                             d["compute_capability"],
                                                             d["memory_gib"]))
        lines.append("  driver supports CUDA %s; pycuda built for CUDA %s"
                     % (g.get("cuda_driver_api"), g.get("pycuda_built_for_cuda")))
    else:
        lines.append("  none usable: %s" % info.get("gpu_reason"))
    if info.get("nvidia_smi"):
        lines.append("  nvidia-smi: %s" % info["nvidia_smi"])
    lines.append("  nvcc: %s" % info.get("nvcc"))
    lines.append("")
    lines.append("Libraries:")
    for mod in ("numpy", "cv2", "pycuda", "tensorrt", "torch", "onnxruntime"):
        lines.append("  %-12s %s%s" % (mod, info.get(mod), "  (trtssd runs 8.2 to 11.x)"
                                       if mod == "tensorrt" else ""))
    lines.append("  %-12s %s" % ("GStreamer", info.get("opencv_gstreamer")))
    lines.append("")
    lines.append("Backends:")
    for k, (ok, why) in sorted(info.get("backends", {}).items()):
        lines.append("  %-17s %-4s %s" % (k, "yes" if ok else "no", why))
    lines.append("")
    lines.append("Modes:")
    for m in ("sync", "async", "gpu", "pipelined", "multi"):
        ok, why = info["modes"][m]
        lines.append("  %-10s %-4s %s" % (m, "yes" if ok else "no", why))
    lines.append("")
    lines.append("Model: %s" % info.get("model"))
    return "\n".join(lines)
