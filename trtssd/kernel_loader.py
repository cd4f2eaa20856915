"""Find, specialise and compile the CUDA sources in ``kernels/`` through PyCUDA.

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
import shutil
import threading

from .errors import EnvironmentProblem, InputError

_HERE = os.path.dirname(os.path.abspath(__file__))
_cache = {}
_lock = threading.Lock()

NVCC_MISSING_FIX = ("nvcc (the CUDA compiler) was not found on PATH, in $CUDA_HOME/bin or in "
                    "/usr/local/cuda/bin. On Jetson it ships with JetPack but is not on PATH: "
                    "run `export PATH=/usr/local/cuda/bin:$PATH` (add it to ~/.bashrc); elsewhere "
                    "install the CUDA toolkit or set CUDA_HOME")


def kernel_dirs():
    """Folders that may hold the .cu sources: the installed package's ``trtssd/kernels`` and the
    checkout's ``kernels/`` (``TRTSSD_KERNEL_DIR`` first, if set)."""
    dirs = []
    env = os.environ.get("TRTSSD_KERNEL_DIR")
    if env:
        dirs.append(env)
    dirs.append(os.path.join(_HERE, "kernels"))
    dirs.append(os.path.join(os.path.dirname(_HERE), "kernels"))
    return dirs


def kernel_path(name):
    """Absolute path of kernel source ``name`` (e.g. ``"preprocess.cu"``)."""
    for d in kernel_dirs():
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
    raise EnvironmentProblem(
        "kernel source %s not found in %s; the installation is incomplete: reinstall trtssd "
        "(`pip install .` from the checkout) or run from the checkout" % (name, kernel_dirs()))


def kernel_sources():
    """Names of every .cu file in the first kernel folder that exists."""
    for d in kernel_dirs():
        if os.path.isdir(d):
            names = sorted(n for n in os.listdir(d) if n.endswith(".cu"))
            if names:
                return names
    return []


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
    """Path of nvcc: PATH, then $CUDA_HOME/bin, $CUDA_PATH/bin, /usr/local/cuda/bin."""
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root:
            p = os.path.join(root, "bin", "nvcc")
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
    raise EnvironmentProblem(NVCC_MISSING_FIX)


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
            "`with CudaContext(0).active():` (trtssd.cuda)")
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
            mod = SourceModule(specialised_source(name, defines), nvcc=nvcc,
                               options=options, no_extern_c=True)
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
