"""Kernel parameter lists declared once, and the one launch path (fast, with its fallback).

A kernel's parameters are declared as a list, in the order of its C parameter list, as
PyCUDA's elementwise kernels do (``ScalarArg``/``VectorArg``)::

    SIGNATURE = Signature(VectorArg("table"), StructArg("frame", 64), ScalarArg("q", "stride"),
                          VectorArg("out"), ScalarArg("i", "out_w"), ...)

From it derive both the format of PyCUDA's prepared call (``SIGNATURE.format``, e.g.
``"P64sqP..."``) and the parameter buffer laid out as the C parameter list with native
alignment (``SIGNATURE.pack(...)``: Python's struct packs ``"@" + format`` exactly as PyCUDA's
``_pvt_struct`` does). Callers pack a launch's parameters once (per plan) and launch the bytes.

``load_kernel(...)`` compiles (trtssd.gpu.kernels) and returns a ``Kernel``: ``kernel.launch(grid,
block, params, shared_bytes, stream)`` is PyCUDA's ``Function._launch_kernel`` itself where
PyCUDA has it (no packing, no Python in between: PyCUDA's ``prepared_async_call`` repacks the
values on every call), else a fallback that unpacks the bytes into ``prepared_async_call``.
"""
import struct

from ..core.errors import InputError


class VectorArg(object):
    """A pointer parameter (``T*``): a device address as an int (0 passes NULL)."""
    __slots__ = ("name",)
    code = "P"

    def __init__(self, name):
        self.name = name


class ScalarArg(object):
    """A by-value number: ``code`` is its struct code, ``"i"`` int, ``"q"`` long long,
    ``"f"`` float, ``"I"`` unsigned int, ``"Q"`` unsigned long long, ``"d"`` double."""
    __slots__ = ("name", "code")

    def __init__(self, code, name):
        if code not in ("i", "I", "q", "Q", "f", "d"):
            raise InputError("ScalarArg %r: struct code %r is not one of i I q Q f d"
                             % (name, code))
        self.code, self.name = code, name


class StructArg(object):
    """A struct passed by value, given as its ``size`` bytes (the host builds the layout, e.g.
    with a numpy structured dtype); PyCUDA's format ``"<size>s"``."""
    __slots__ = ("name", "size", "code")

    def __init__(self, name, size):
        self.name, self.size = name, int(size)
        self.code = "%ds" % self.size


class Signature(object):
    """A kernel's parameter list: ``format`` (prepared call), ``pack``/``unpack`` (the bytes)."""

    def __init__(self, *args):
        self.args = tuple(args)
        self.names = tuple(a.name for a in self.args)
        self.format = "".join(a.code for a in self.args)
        self._struct = struct.Struct("@" + self.format)
        self.size = self._struct.size
        self.pack = self._struct.pack
        self.unpack = self._struct.unpack

    def __len__(self):
        return len(self.args)

    def __repr__(self):
        return "Signature(%s)" % self.format


class Kernel(object):
    """A compiled, prepared kernel function and its signature.

    ``launch(grid, block, params, shared_bytes, stream)`` enqueues it with ``params`` (bytes
    from ``signature.pack``) on ``stream`` (a pycuda Stream or None). ``direct`` says whether
    the fast path (PyCUDA's ``_launch_kernel``) is in use.
    """
    __slots__ = ("function", "signature", "launch", "direct")

    def __init__(self, function, signature):
        self.function = function
        self.signature = signature
        fast = getattr(function, "_launch_kernel", None)
        self.direct = fast is not None
        self.launch = fast if fast is not None else self._prepared_launch

    def _prepared_launch(self, grid, block, params, shared, stream):
        """A PyCUDA without ``_launch_kernel``: the prepared call packs the values itself."""
        if shared:
            self.function.prepared_async_call(grid, block, stream,
                                              *self.signature.unpack(params),
                                              shared_size=shared)
        else:
            self.function.prepared_async_call(grid, block, stream, *self.signature.unpack(params))

    def __call__(self, grid, block, stream, *values):
        """Pack ``values`` and launch (for one-off calls; plans pack once and ``launch``)."""
        self.launch(grid, block, self.signature.pack(*values), 0, stream)


def load_kernel(name, kernel, signature, defines=None, options=None):
    """The ``Kernel`` ``kernel`` of source ``name`` (relative to the package) compiled with
    ``defines``, prepared with ``signature`` (trtssd.gpu.kernels compiles and memoises it)."""
    from . import kernels
    fn = kernels.get_function(name, kernel, defines, signature.format, options=options)
    return Kernel(fn, signature)
