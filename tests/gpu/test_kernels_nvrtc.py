"""The boards we cannot reach, in CI: every kernel variant compiled for the Jetson Nano (sm_53)
and Xavier (sm_72), which CUDA 13's nvcc no longer targets, with CUDA 12.9 from PyPI: NVRTC
(``nvidia-cuda-nvrtc-cu12``) compiles each variant's exact source text (the one the loader
gives PyCUDA) to compute_53 / compute_72 PTX with the CUDA runtime's headers
(``nvidia-cuda-runtime-cu12``), and ``ptxas`` (``nvidia-cuda-nvcc-cu12``, which has no nvcc
driver) assembles that PTX for sm_53 / sm_72. Sources and variants come from
trtssd.gpu.kernels (kernel_sources, declared_variants). No GPU is needed; skipped with the
reason where the wheels are absent (tools/ensure_deps.py test installs them)."""
import ctypes
import glob
import os
import subprocess
import tempfile

import pytest

from trtssd.gpu import kernels as K

TARGETS = [("compute_53", "sm_53"), ("compute_72", "sm_72")]


def _nvidia_dir(sub):
    try:
        import nvidia
    except ImportError:
        return None
    for root in list(getattr(nvidia, "__path__", [])):
        p = os.path.join(root, sub)
        if os.path.isdir(p):
            return p
    return None


def _toolchain():
    nvrtc_dir, rt_dir, nvcc_dir = (_nvidia_dir(s) for s in ("cuda_nvrtc", "cuda_runtime",
                                                             "cuda_nvcc"))
    why = ("CUDA 12.9 from PyPI is not installed (pip install 'nvidia-cuda-nvrtc-cu12==12.9.*' "
           "'nvidia-cuda-runtime-cu12==12.9.*' 'nvidia-cuda-nvcc-cu12==12.9.*')")
    if not (nvrtc_dir and rt_dir and nvcc_dir):
        return None, why
    libs = sorted(glob.glob(os.path.join(nvrtc_dir, "lib", "libnvrtc.so*")))
    libs = [p for p in libs if ".alt." not in p] or libs
    ptxas = os.path.join(nvcc_dir, "bin", "ptxas")
    include = os.path.join(rt_dir, "include")
    if not libs or not os.path.isfile(ptxas) or not os.path.isfile(
            os.path.join(include, "cuda_fp16.h")):
        return None, why + " (a part is missing)"
    return (libs[0], include, ptxas), None


_lib = {}


def _nvrtc(path):
    if path not in _lib:
        lib = ctypes.CDLL(path)
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        _lib[path] = lib
    return _lib[path]


def nvrtc_ptx(lib_path, source, name, arch, include, source_dir=None):
    """(PTX text or None, log) of ``source`` compiled by NVRTC for virtual ``arch``."""
    lib = _nvrtc(lib_path)
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None,
                                None)
    assert rc == 0, lib.nvrtcGetErrorString(rc)
    try:
        opts = ["--gpu-architecture=%s" % arch, "-I" + include, "--use_fast_math",
                "-default-device", "-std=c++14"]
        if source_dir:                  # the .cu's own headers (#include "yuv.cuh")
            opts.append("-I" + source_dir)
        arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        log = log.value.decode(errors="replace")
        if rc != 0:
            return None, log
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(prog, ptx)
        return ptx.value.decode(), log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


SOURCES = K.kernel_sources()


@pytest.mark.parametrize("virtual,real", TARGETS)
@pytest.mark.parametrize("name", SOURCES)
def test_every_variant_builds_for_the_jetson_boards(name, virtual, real):
    tools, why = _toolchain()
    if tools is None:
        pytest.skip(why)
    lib, include, ptxas = tools
    failures = _build_all(name, virtual, real, lib, include, ptxas)
    assert not failures, "\n".join(failures)




def _build_all(name, virtual, real, lib, include, ptxas, prefix=""):
    """NVRTC then ptxas for every declared variant of ``name``; the failures, as text."""
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, defines in enumerate(K.declared_variants(name)):
            src = prefix + K.specialised_source(name, defines)
            ptx, log = nvrtc_ptx(lib, src, name, virtual, include,
                                 os.path.dirname(K.kernel_path(name)))
            if ptx is None:
                failures.append("NVRTC %s %s: %s" % (virtual, defines, log.strip()[-1500:]))
                continue
            assert ".target sm_%s" % virtual.split("_")[1] in ptx
            assert ".entry" in ptx                      # kernels, not an empty module
            path = os.path.join(tmp, "v%d.ptx" % k)
            with open(path, "w") as f:
                f.write(ptx)
            p = subprocess.run([ptxas, "-arch=" + real, "-O3", path, "-o", path + ".cubin"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            if p.returncode != 0:
                failures.append("ptxas %s %s: %s" % (real, defines, p.stdout[-1500:]))
            elif os.path.getsize(path + ".cubin") == 0:
                failures.append("ptxas %s %s: empty cubin" % (real, defines))
    return failures


def test_the_sources_are_the_package_kernels():
    assert "preprocess/preprocess.cu" in SOURCES and "postprocess/postprocess.cu" in SOURCES
