"""NVIDIA's real TensorRT Python bindings, imported with stub libraries, as the fakes' referee.

PyPI carries the bindings without the TensorRT libraries (``tensorrt-bindings==8.6.1``,
``tensorrt-cu12-bindings`` 10.x, ``tensorrt-cu13-bindings`` 11.x, ``tensorrt-lean-cu13-bindings``
11.x; about 1 MB each). Their extension module links libnvinfer & co. but needs from them only a
dozen C entry points; stub libraries with those sonames and symbols (functions returning NULL,
built here with gcc) let the module import. Nothing can be built or run that way, but every
class, method, pybind11 signature (from ``__doc__``), property and enum member of that version
can be read: ``surface(version)`` returns them as JSON-able dicts.

Wheels are downloaded once into ``$TRTSSD_TEST_CACHE`` (default ``~/.cache/trtssd-tests``)
and reused; ``Unavailable`` says why a version cannot be had (no network, no gcc), and the tests
skip with that reason.
"""
import ctypes
import glob
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

from .. import text

# version label -> (pip requirement, import name)
WHEELS = {
    "8.6": ("tensorrt-bindings==8.6.1", "tensorrt_bindings"),
    "10.3": ("tensorrt-cu12-bindings==10.3.0", "tensorrt_bindings"),
    "10.16": ("tensorrt-cu12-bindings==10.16.1.11", "tensorrt_bindings"),
    "11.4": ("tensorrt-cu13-bindings==11.4.0.106", "tensorrt_bindings"),
    "11.4-lean": ("tensorrt-lean-cu13-bindings==11.4.0.106", "tensorrt_lean_bindings"),
}
# Which fake generation each real version referees (tests/support/fake_tensorrt/__init__.py).
FAKE_OF = {"8.6": "8.6", "10.3": "10", "10.16": "10", "11.4": "11", "11.4-lean": "11-lean"}


class Unavailable(Exception):
    """This version's bindings cannot be had here (the reason is the message)."""


def cache_root():
    return os.environ.get("TRTSSD_TEST_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "trtssd-tests")


def _wheel(label):
    req, _ = WHEELS[label]
    folder = os.path.join(cache_root(), "tensorrt-wheels")
    dist, version = req.split("==")
    pattern = os.path.join(folder, "%s-%s-*.whl" % (dist.replace("-", "_"), version))
    found = glob.glob(pattern)
    if not found:
        if not os.path.isdir(folder):
            os.makedirs(folder)
        tag = "cp%d%d" % sys.version_info[:2]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--timeout", "30", "--retries", "1", "-q",
               "-d", folder, req]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Unavailable("pip download %s failed (%s)" % (req, e))
        found = glob.glob(pattern)
        if p.returncode != 0 or not found:
            tail = p.stdout.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise Unavailable("cannot download %s for %s from PyPI (%s)" % (req, tag, tail[0]))
    return found[0]


def _tool(name):
    path = shutil.which(name)
    if path is None:
        raise Unavailable("%s (binutils) is not installed; it reads the bindings' needed "
                          "libraries and symbols" % name)
    return path


def _needed_and_missing(so):
    """(sonames the module links, TensorRT symbols no system library it links defines)."""
    dyn = subprocess.check_output([_tool("readelf"), "-d", so]).decode()
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    symbols = []
    undefined = subprocess.check_output([_tool("nm"), "-D", "--undefined-only", so]).decode()
    for line in undefined.splitlines():
        parts = line.split()
        # 'U name' without a version tag; versioned ones (name@GLIBC_2.2.5) are the system's
        if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1]:
            symbols.append(parts[1])
    system = []
    for name in needed:
        if not name.startswith("libnv"):
            try:
                system.append(ctypes.CDLL(name))
            except OSError:
                pass
    missing = [s for s in symbols
               if not any(hasattr(lib, s) for lib in system) and not hasattr(ctypes.pythonapi, s)]
    return [n for n in needed if n.startswith("libnv")], missing


def _build_stubs(so, libdir):
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise Unavailable("no C compiler (gcc) to build TensorRT stub libraries")
    sonames, symbols = _needed_and_missing(so)
    src = os.path.join(libdir, "stubs.c")
    with open(src, "w") as f:
        f.write("/* TensorRT entry points the bindings link: each returns NULL. */\n")
        for i, s in enumerate(symbols):
            f.write('void *trtssd_stub_%d(void) __asm__("%s");\n'
                    'void *trtssd_stub_%d(void) { return 0; }\n' % (i, s, i))
    for soname in sonames:
        subprocess.check_call([gcc, "-shared", "-fPIC", "-o", os.path.join(libdir, soname),
                               "-Wl,-soname," + soname, src])
    return sonames, symbols


def prepare(label):
    """(site folder holding the package, stub library folder, import name) for a version."""
    req, module = WHEELS[label]
    root = os.path.join(cache_root(), "tensorrt-real", req.replace("==", "-"))
    site, libdir = os.path.join(root, "site"), os.path.join(root, "lib")
    done = os.path.join(root, "ready.json")
    if not os.path.isfile(done):
        wheel = _wheel(label)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(libdir)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
        so = glob.glob(os.path.join(site, module, "*.so"))
        if not so:
            raise Unavailable("%s holds no extension module" % os.path.basename(wheel))
        sonames, symbols = _build_stubs(so[0], libdir)
        with open(done, "w") as f:
            json.dump({"wheel": os.path.basename(wheel), "stubs": sonames,
                       "symbols": symbols}, f, indent=1)
    return site, libdir, module


# The dump runs in its own interpreter (one per version: each links its own libraries).
_DUMP = inspect.getsource(text) + r'''
import inspect, json, re, sys
mod = __import__(sys.argv[1])

split_args = split_top_level

def pybind_signatures(name, doc):
    sigs = []
    for line in (doc or "").splitlines():
        m = re.match(r"^(?:\d+\. )?%s\((.*)\)(?: -> .*)?$" % re.escape(name), line.strip())
        if not m:
            continue
        args = []
        for a in split_args(m.group(1)):
            aname = a.split(":")[0].split("=")[0].strip()
            args.append({"name": aname, "default": "=" in a})
        if args and args[0]["name"] == "self":
            args = args[1:]
        if [a["name"] for a in args] == ["*args", "**kwargs"] and "Overloaded function" in doc:
            continue
        sigs.append(args)
    return sigs

def py_signature(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    args = []
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.kind == p.VAR_POSITIONAL:
            n = "*" + p.name
        elif p.kind == p.VAR_KEYWORD:
            n = "**" + p.name
        else:
            n = p.name
        args.append({"name": n, "default": p.default is not p.empty})
    return [args]

def signatures(name, fn):
    doc = getattr(fn, "__doc__", None) or ""
    sigs = pybind_signatures(name, doc)
    if not sigs and inspect.isfunction(fn):
        sigs = py_signature(fn) or []
    return sigs

def is_enum(cls):
    return isinstance(getattr(cls, "__members__", None), dict)

out = {}

def dump_class(qual, cls):
    node = {"kind": "enum" if is_enum(cls) else "class", "members": {}}
    out[qual] = node
    if node["kind"] == "enum":
        node["values"] = sorted(cls.__members__)
    init = cls.__dict__.get("__init__")
    if init is not None:
        node["init"] = signatures("__init__", init)
    for name in dir(cls):
        if name.startswith("_"):
            continue
        raw = None
        for k in cls.__mro__:
            if name in k.__dict__:
                raw = k.__dict__[name]
                break
        value = getattr(cls, name, None)
        if isinstance(raw, property):
            node["members"][name] = {"kind": "property", "settable": raw.fset is not None}
        elif isinstance(raw, (staticmethod, classmethod)):
            node["members"][name] = {"kind": "method", "signatures": signatures(name, value)}
        elif inspect.isclass(value):
            node["members"][name] = {"kind": "class"}
            dump_class(qual + "." + name, value)
        elif callable(value) and not isinstance(value, int):
            node["members"][name] = {"kind": "method", "signatures": signatures(name, value)}
        else:
            node["members"][name] = {"kind": "value", "type": type(value).__name__}

for name in dir(mod):
    if name.startswith("_"):
        continue
    value = getattr(mod, name)
    if inspect.ismodule(value):
        continue
    if inspect.isclass(value):
        dump_class(name, value)
    elif callable(value):
        out[name] = {"kind": "function", "signatures": signatures(name, value)}
    else:
        out[name] = {"kind": "value", "type": type(value).__name__}
print(json.dumps({"version": mod.__version__, "module": sys.argv[1], "names": out}))
'''


def surface(label):
    """The real API of one version: {'version', 'module', 'names': {qualified name: node}}."""
    import hashlib
    req, _ = WHEELS[label]
    # keyed on the dumper's text, so a changed dumper never reads an old dump
    cached = os.path.join(cache_root(), "tensorrt-real", req.replace("==", "-"), "surface-%s.json"
                          % hashlib.sha256(_DUMP.encode()).hexdigest()[:12])
    if os.path.isfile(cached):
        with open(cached) as f:
            return json.load(f)
    site, libdir, module = prepare(label)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = libdir + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    env["PYTHONPATH"] = site
    p = subprocess.run([sys.executable, "-c", _DUMP, module], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, cwd=site, timeout=120)
    if p.returncode != 0:
        raise Unavailable("the real %s (%s) does not import with stub libraries: %s"
                          % (module, req, p.stderr.decode("utf-8", "replace")[-400:]))
    data = json.loads(p.stdout.decode("utf-8"))
    with open(cached, "w") as f:
        json.dump(data, f, indent=0, sort_keys=True)
    return data
