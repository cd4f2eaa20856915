"""Find, specialise and compile trtssd's CUDA sources through PyCUDA.

The .cu files live inside the package beside the Python that launches them
(``preprocess/preprocess.cu``, ``postprocess/postprocess.cu``); a kernel's name is its path
relative to the ``trtssd`` package.

A kernel variant is a source file plus compile-time constants, prepended as ``#define``s
(``defines={"OUT_HALF": 1}``). Each variant is compiled once per device context on first use
and memoised; PyCUDA also caches the cubin on disk (``PYCUDA_CACHE_DIR``). Kernels are marked
``extern "C"`` in the .cu files, so their names are not mangled (``no_extern_c=True``).

The same ``defines_header`` is used by the CPU shim in the tests, so CI runs exactly what the
GPU compiles. Each .cu may declare the variants CI must compile in a comment line
``// trtssd-variants: {"A": 1, "B": 0} | {"A": 2}`` (JSON objects separated by ``|``);
``declared_variants(name)`` reads them.
"""
import json
import os
import threading

from ..core.env import which_nvcc
from ..core.errors import EnvironmentProblem, InputError

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_cache = {}
_lock = threading.Lock()

NVCC_MISSING_FIX = ("nvcc (the CUDA compiler) was not found on PATH, in $CUDA_HOME/bin or in "
                    "/usr/local/cuda/bin. On Jetson it ships with JetPack but is not on PATH: "
                    "run `export PATH=/usr/local/cuda/bin:$PATH` (add it to ~/.bashrc); elsewhere "
                    "install the CUDA toolkit or set CUDA_HOME")


def kernel_root():
    """The folder kernel names are relative to: the ``trtssd`` package (``TRTSSD_KERNEL_DIR``
    overrides it, for trying an edited copy of the sources)."""
    return os.environ.get("TRTSSD_KERNEL_DIR") or _PACKAGE


def kernel_path(name):
    """Absolute path of kernel source ``name`` (e.g. ``"preprocess/preprocess.cu"``)."""
    p = os.path.join(kernel_root(), name)
    if os.path.isfile(p):
        return p
    raise EnvironmentProblem(
        "kernel source %s not found under %s; the installation is incomplete: reinstall trtssd "
        "(`pip install .` from the checkout) or run from the checkout" % (name, kernel_root()))


def kernel_sources():
    """Names (relative to the package) of every .cu file trtssd ships."""
    root = kernel_root()
    names = []
    for folder, _dirs, files in os.walk(root):
        for n in files:
            if n.endswith(".cu"):
                names.append(os.path.relpath(os.path.join(folder, n), root).replace(os.sep, "/"))
    return sorted(names)


def read_source(name):
    with open(kernel_path(name)) as f:
        return f.read()


def _define_value(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value) + "f"
    return str(value)


def defines_header(defines):
    """``#define`` lines for ``defines`` (sorted, so equal dicts give equal sources)."""
    lines = []
    for key in sorted(defines or {}):
        if not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise InputError("bad kernel constant name %r: use letters, digits and _" % key)
        lines.append("#define %s %s" % (key, _define_value(defines[key])))
    return "\n".join(lines) + ("\n" if lines else "")


def specialised_source(name, defines=None):
    """The text nvcc compiles: the defines, a #line reset, then the file."""
    return "%s#line 1 \"%s\"\n%s" % (defines_header(defines), name, read_source(name))


def declared_variants(name):
    """The variants (list of dicts) a .cu declares with ``// trtssd-variants:`` lines, or [{}]."""
    variants = []
    for line in read_source(name).splitlines():
        line = line.strip()
        if line.startswith("// trtssd-variants:"):
            for part in line.split(":", 1)[1].split("|"):
                part = part.strip()
                if part:
                    variants.append(json.loads(part))
    return variants or [{}]


def find_nvcc():
    """Path of nvcc (trtssd.core.env.which_nvcc), or EnvironmentProblem saying how to get it."""
    found = which_nvcc()
    if found is None:
        raise EnvironmentProblem(NVCC_MISSING_FIX)
    return found


def _context_key():
    from .cuda import driver
    drv = driver()
    try:
        ctx = drv.Context.get_current()
    except Exception:
        ctx = None
    if ctx is None:
        raise EnvironmentProblem(
            "no CUDA context is current in this thread: wrap the call in "
            "`with CudaContext(0).active():` (trtssd.gpu.cuda)")
    dev = drv.Context.get_device()
    # The primary context of a device is one context: key on the device and the handle.
    return (dev.pci_bus_id(), int(getattr(ctx, "handle", 0)))


def get_module(name, defines=None, options=None):
    """The compiled pycuda SourceModule of ``name`` with ``defines``, memoised per context."""
    defines = dict(defines or {})
    options = list(options or ["-O3", "--use_fast_math"])
    key = (name, tuple(sorted((k, str(v)) for k, v in defines.items())), tuple(options),
           _context_key())
    mod = _cache.get(key)
    if mod is not None:
        return mod
    with _lock:
        mod = _cache.get(key)
        if mod is None:
            nvcc = find_nvcc()
            try:
                from pycuda.compiler import SourceModule
            except ImportError as e:
                raise EnvironmentProblem("pycuda is not importable (%s): `pip install pycuda`" % e)
            # pycuda.driver.CompileError carries nvcc's output; it propagates as it is.
            # include_dirs: a .cu may include headers beside it (#include "x.cuh")
            mod = SourceModule(specialised_source(name, defines), nvcc=nvcc,
                               options=options, no_extern_c=True,
                               include_dirs=[os.path.dirname(kernel_path(name))])
            _cache[key] = mod
    return mod


def get_function(name, kernel, defines=None, arg_types=None, options=None):
    """A kernel function of a compiled variant; ``prepare``d with ``arg_types`` if given."""
    mod = get_module(name, defines, options)
    fkey = ("fn", id(mod), kernel, arg_types)
    fn = _cache.get(fkey)
    if fn is None:
        fn = mod.get_function(kernel)
        if arg_types is not None:
            fn.prepare(arg_types)
        _cache[fkey] = fn
    return fn


def clear_cache():
    """Forget memoised modules (e.g. before closing the context they were loaded into)."""
    with _lock:
        _cache.clear()
