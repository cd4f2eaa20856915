"""Every .cu file of the package, in every variant it declares, compiles with nvcc for the GPUs we serve.

Architectures: sm_53 (Jetson Nano), sm_72 (Xavier), sm_75 (T4, the oldest desktop GPU we support), sm_86 (RTX 30), sm_87 (Orin), sm_90 (H100). nvcc 13
dropped sm_53 and sm_72 (offline compilation for Maxwell/Pascal/Volta): where the installed nvcc
cannot target one, that case skips and says so; those boards build with their JetPack's CUDA
(10.2 / 11.4), which this test covers whenever it runs there. The variants come from the
``// trtssd-variants:`` lines of each .cu (trtssd.gpu.kernels.declared_variants), with the
exact source text the loader gives PyCUDA.
"""
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from trtssd.gpu import kernels as kernel_loader

ARCHS = ["sm_53", "sm_72", "sm_75", "sm_86", "sm_87", "sm_90"]
SOURCES = kernel_loader.kernel_sources()
_arch_list = {}


def _supported_archs(nvcc):
    if nvcc not in _arch_list:
        try:
            out = subprocess.check_output([nvcc, "--list-gpu-code"], stderr=subprocess.STDOUT)
            _arch_list[nvcc] = set(out.decode().split())
        except Exception:
            _arch_list[nvcc] = None          # old nvcc without the flag: try every arch
    return _arch_list[nvcc]


def _compile(nvcc, name, defines, arch, folder):
    src = kernel_loader.specialised_source(name, defines)
    tag = "_".join("%s%s" % (k, v) for k, v in sorted(defines.items())) or "default"
    path = os.path.join(folder, "%s_%s_%s.cu" % (os.path.basename(name)[:-3], tag, arch))
    with open(path, "w") as f:
        f.write(src)
    cmd = [nvcc, "-cubin", "-arch=" + arch, "-O3", "--use_fast_math", "-Werror", "all-warnings",
           "-I", os.path.dirname(kernel_loader.kernel_path(name)), "-o", path[:-3] + ".cubin", path]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.communicate()[0].decode(errors="replace")
    return defines, p.returncode, " ".join(cmd), out


def test_sources_found():
    assert SOURCES == ["io/draw.cu", "postprocess/postprocess.cu", "preprocess/preprocess.cu"], \
        SOURCES


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", SOURCES)
def test_kernel_compiles(nvcc, name, arch):
    supported = _supported_archs(nvcc)
    if supported is not None and arch not in supported:
        pytest.skip("this nvcc (%s) cannot target %s; CUDA 13 dropped it. Build for that board "
                    "with its JetPack's CUDA" % (nvcc, arch))
    variants = kernel_loader.declared_variants(name)
    with tempfile.TemporaryDirectory() as folder:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            results = list(pool.map(lambda d: _compile(nvcc, name, d, arch, folder), variants))
    failures = ["%s\n$ %s\n%s" % (d, cmd, out) for d, rc, cmd, out in results if rc != 0]
    assert not failures, "nvcc failed for %s on %s:\n%s" % (name, arch, "\n\n".join(failures))
