"""Fake ``tensorrt`` modules, one per API generation, written from NVIDIA's documentation.

``make(generation)`` returns a fresh fake module; ``installed(generation)`` puts one in
``sys.modules['tensorrt']`` for the duration of a ``with`` block. See ``_base.py`` for what
the fakes check and ``devmem.py`` for host-backed stand-ins of device buffers.
"""
import contextlib
import importlib
import sys

GENERATIONS = ("8.2", "8.4", "8.5", "8.6", "10")
_MODULES = {"8.2": "v8_2", "8.4": "v8_4", "8.5": "v8_5", "8.6": "v8_6", "10": "v10"}


def make(generation):
    mod = importlib.import_module("%s.%s" % (__name__, _MODULES[generation]))
    return mod.make()


@contextlib.contextmanager
def installed(generation):
    fake = make(generation)
    saved = sys.modules.get("tensorrt")
    sys.modules["tensorrt"] = fake
    try:
        yield fake
    finally:
        if saved is None:
            sys.modules.pop("tensorrt", None)
        else:
            sys.modules["tensorrt"] = saved
