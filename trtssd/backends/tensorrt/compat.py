"""One face over TensorRT's Python API from 8.2 to 11.x, chosen by what the module offers.

TensorRT changed its Python API twice:

* 8.2 to 8.4, the *bindings* API: ``engine.num_bindings``, ``get_binding_name/shape/dtype``,
  ``binding_is_input``, ``context.set_binding_shape(index, dims)`` and
  ``context.execute_async_v2(bindings, stream_handle)`` with a list of device pointers.
  The workspace limit is ``config.max_workspace_size`` on 8.2 and
  ``config.set_memory_pool_limit(MemoryPoolType.WORKSPACE, n)`` from 8.3/8.4.
* 8.5 and later, the *tensor-name* API: ``engine.num_io_tensors``, ``get_tensor_name(i)``,
  ``get_tensor_shape/dtype/mode(name)``, ``context.set_input_shape(name, dims)``,
  ``context.set_tensor_address(name, ptr)``, ``context.execute_async_v3(stream_handle)``.
* 10.x removed the bindings API, made ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH``
  deprecated and ignored (networks are always explicit-batch), and added
  ``IProgressMonitor`` to the builder config (``config.progress_monitor``).
* 11.x removed weak typing: no ``BuilderFlag.FP16``/``INT8``, no INT8 calibrators, no
  ``EXPLICIT_BATCH``; networks are ``STRONGLY_TYPED`` and take their precision from the ONNX.
  ``tensorrt_lean`` (the lean runtime, any version from 8.6) has the runtime classes only.

``build_serialized_network`` exists in every supported version (from 8.0).

Which API to use is decided by *feature detection* on the imported module's classes (the
version string is only a hint, used for the network-creation flag and for messages), so a
vendor build with a surprising version string still gets the calls it has.

Nothing here imports tensorrt at import time: ``import_tensorrt()`` does, when called.
"""
import re
import time

import numpy as np

from ...core.errors import EngineError, EnvironmentProblem

BINDINGS = "bindings"   # 8.2 - 8.4 (still present, deprecated, in 8.5 - 8.6)
TENSORS = "tensors"     # 8.5 and later; the only API from 10.x


def import_tensorrt(lean_ok=False):
    """The ``tensorrt`` module, or EnvironmentProblem saying how to get it.

    With ``lean_ok`` (running engines, not building them), ``tensorrt_lean`` is taken where
    ``tensorrt`` is absent: NVIDIA's lean runtime, the smallest install that runs trtssd's
    version-compatible engines (``pip install tensorrt-lean-cu13``)."""
    try:
        import tensorrt  # noqa: F401
        return tensorrt
    except ImportError as e:
        first = e
    if lean_ok:
        try:
            import tensorrt_lean
            return tensorrt_lean
        except ImportError:
            pass
    raise EnvironmentProblem(
        "TensorRT's Python module cannot be imported (%s). On a Jetson it comes with "
        "JetPack (python3-libnvinfer); on x86 `pip install tensorrt`%s. Or use another "
        "backend: --backend torch or --backend onnxruntime"
        % (first, " (or, to run version-compatible engines only, `pip install "
                  "tensorrt-lean-cu13`)" if lean_ok else ""))


def parse_version(text):
    """'8.2.5.1' -> (8, 2, 5, 1); unparsable parts become 0."""
    parts = []
    for p in str(text).split("."):
        m = re.match(r"\d+", p)
        parts.append(int(m.group(0)) if m else 0)
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


class TensorInfo(object):
    """One input or output of an engine, as both API generations describe it."""
    __slots__ = ("name", "index", "is_input", "shape", "dtype")

    def __init__(self, name, index, is_input, shape, dtype):
        self.name = name
        self.index = index          # binding index (bindings API) or position (tensor API)
        self.is_input = bool(is_input)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtype          # numpy dtype, or None when TensorRT's type has none

    def __repr__(self):
        return "TensorInfo(%r, %s, shape=%s, dtype=%s)" % (
            self.name, "input" if self.is_input else "output", self.shape, self.dtype)


class TrtApi(object):
    """The calls trtssd needs, routed to whichever API generation ``trt`` offers."""

    def __init__(self, trt=None, lean_ok=False):
        self.trt = trt if trt is not None else import_tensorrt(lean_ok)
        trt = self.trt
        self.version = str(getattr(trt, "__version__", "0.0.0"))
        self.version_tuple = parse_version(self.version)
        engine_cls = getattr(trt, "ICudaEngine", None)
        context_cls = getattr(trt, "IExecutionContext", None)
        config_cls = getattr(trt, "IBuilderConfig", None)
        if engine_cls is None or context_cls is None:
            raise EnvironmentProblem(
                "the imported tensorrt module (version %s) has no ICudaEngine/IExecutionContext;"
                " it is not NVIDIA's TensorRT Python API (a stub package?). Reinstall TensorRT "
                "8.2 or later" % self.version)
        has_tensor = (hasattr(engine_cls, "num_io_tensors")
                      and hasattr(engine_cls, "get_tensor_name")
                      and hasattr(context_cls, "set_tensor_address")
                      and hasattr(context_cls, "execute_async_v3"))
        has_bindings = (hasattr(engine_cls, "num_bindings")
                        and hasattr(engine_cls, "get_binding_name")
                        and hasattr(context_cls, "execute_async_v2"))
        if has_tensor:
            self.generation = TENSORS
        elif has_bindings:
            self.generation = BINDINGS
        else:
            raise EnvironmentProblem(
                "TensorRT %s offers neither the bindings API (8.2-8.4) nor the tensor-name API "
                "(8.5+); trtssd supports TensorRT 8.2 to 11.x" % self.version)
        if self.version_tuple < (8, 0, 0) and self.version_tuple != (0, 0, 0):
            raise EnvironmentProblem(
                "TensorRT %s is too old: trtssd needs 8.2 or later (build_serialized_network, "
                "explicit batch). Upgrade JetPack to 4.6 or later" % self.version)
        self.has_memory_pool = config_cls is not None and hasattr(config_cls,
                                                                  "set_memory_pool_limit")
        self.has_progress_monitor = (hasattr(trt, "IProgressMonitor") and config_cls is not None
                                     and hasattr(config_cls, "progress_monitor"))
        self.has_profile_async = hasattr(context_cls, "set_optimization_profile_async")
        # the lean runtime (tensorrt_lean) deserialises and runs; it has no builder
        self.can_build = hasattr(trt, "Builder") and hasattr(trt, "OnnxParser")
        self.is_lean = not self.can_build
        flags = getattr(trt, "BuilderFlag", None)
        # TensorRT 11 dropped weak typing: no BuilderFlag.FP16/INT8, no INT8 calibrators
        self.strongly_typed_only = self.can_build and not hasattr(flags, "FP16")
        self.has_calibrator = self.can_build and hasattr(trt, "IInt8EntropyCalibrator2") \
            and hasattr(flags, "INT8")
        self.has_version_compatible = hasattr(flags, "VERSION_COMPATIBLE") and \
            hasattr(flags, "EXCLUDE_LEAN_RUNTIME")

    # ------------------------------------------------------------------ building
    def require_builder(self):
        if not self.can_build:
            raise EnvironmentProblem(
                "%s %s is a runtime only (the lean runtime): it runs engines, it cannot build "
                "them. Build the engine where full TensorRT %s is installed with `trtssd "
                "build-engine MODEL --version-compatible` and pass the .engine file"
                % (getattr(self.trt, "__name__", "tensorrt"), self.version, self.version))

    def network_flags(self, strongly_typed=False):
        """Flags for ``builder.create_network``.

        EXPLICIT_BATCH before 10 (10 ignores it, 11 has none); STRONGLY_TYPED when asked
        (TensorRT 11's only kind of network)."""
        flag_enum = getattr(self.trt, "NetworkDefinitionCreationFlag", None)
        flags = 0
        if strongly_typed:
            flags |= 1 << int(flag_enum.STRONGLY_TYPED)
        if self.version_tuple[0] < 10 and flag_enum is not None \
                and hasattr(flag_enum, "EXPLICIT_BATCH"):
            flags |= 1 << int(flag_enum.EXPLICIT_BATCH)
        return flags

    def set_workspace(self, config, nbytes):
        """Limit the builder's scratch memory (tactics needing more are skipped)."""
        nbytes = int(nbytes)
        if self.has_memory_pool:
            config.set_memory_pool_limit(self.trt.MemoryPoolType.WORKSPACE, nbytes)
        else:
            config.max_workspace_size = nbytes

    # ------------------------------------------------------------------ engines
    def numpy_dtype(self, trt_dtype):
        try:
            return np.dtype(self.trt.nptype(trt_dtype))
        except (TypeError, KeyError, ValueError, AttributeError):
            return None

    def io_tensors(self, engine):
        """Inputs and outputs of ``engine`` (profile 0 only in the bindings API)."""
        out = []
        if self.generation == TENSORS:
            mode_enum = self.trt.TensorIOMode
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                mode = engine.get_tensor_mode(name)
                if mode not in (mode_enum.INPUT, mode_enum.OUTPUT):
                    continue
                out.append(TensorInfo(name, i, mode == mode_enum.INPUT,
                                      tuple(engine.get_tensor_shape(name)),
                                      self.numpy_dtype(engine.get_tensor_dtype(name))))
        else:
            per_profile = self.bindings_per_profile(engine)
            for i in range(per_profile):
                out.append(TensorInfo(engine.get_binding_name(i), i, engine.binding_is_input(i),
                                      tuple(engine.get_binding_shape(i)),
                                      self.numpy_dtype(engine.get_binding_dtype(i))))
        return out

    def num_profiles(self, engine):
        return int(getattr(engine, "num_optimization_profiles", 1) or 1)

    def bindings_per_profile(self, engine):
        return engine.num_bindings // self.num_profiles(engine)

    def profile_shape(self, engine, info, profile=0):
        """(min, opt, max) shapes of an input in an optimisation profile."""
        if self.generation == TENSORS:
            shapes = engine.get_tensor_profile_shape(info.name, profile)
        else:
            shapes = engine.get_profile_shape(profile, info.index)
        return tuple(tuple(int(d) for d in s) for s in shapes)

    def create_context(self, engine):
        ctx = engine.create_execution_context()
        if ctx is None:
            raise EngineError(
                "TensorRT could not create an execution context (out of GPU memory for its "
                "activations?). Close other GPU programs or rebuild with a smaller --max-batch")
        return ctx

    def select_profile(self, engine, context, profile):
        """Make ``profile`` the context's optimisation profile (before setting shapes)."""
        if profile == 0:
            return
        if self.has_profile_async:
            ok = context.set_optimization_profile_async(profile, 0)
        else:
            context.active_optimization_profile = profile
            ok = True
        if ok is False:
            raise EngineError("TensorRT refused optimisation profile %d of %d"
                              % (profile, self.num_profiles(engine)))

    def set_input_shape(self, engine, context, info, shape, profile=0):
        shape = tuple(int(d) for d in shape)
        if self.generation == TENSORS:
            ok = context.set_input_shape(info.name, shape)
        else:
            ok = context.set_binding_shape(info.index + profile * self.bindings_per_profile(engine),
                                           shape)
        if ok is False:
            raise EngineError("TensorRT rejected shape %s for input %r; the engine's profile does "
                              "not cover it" % (shape, info.name))

    def bind(self, engine, context, infos_and_ptrs, profile=0):
        """Set device addresses once. Returns what ``enqueue`` needs (bindings list or None)."""
        if self.generation == TENSORS:
            for info, ptr in infos_and_ptrs:
                ok = context.set_tensor_address(info.name, int(ptr))
                if ok is False:
                    raise EngineError("TensorRT rejected the address of tensor %r" % info.name)
            return None
        bindings = [0] * engine.num_bindings
        offset = profile * self.bindings_per_profile(engine)
        for info, ptr in infos_and_ptrs:
            bindings[info.index + offset] = int(ptr)
        return bindings

    def enqueue(self, context, bindings, stream_handle):
        """Enqueue one inference on ``stream_handle`` (an int); never synchronises."""
        if self.generation == TENSORS:
            ok = context.execute_async_v3(int(stream_handle))
        else:
            ok = context.execute_async_v2(bindings, int(stream_handle))
        if ok is False:
            raise EngineError("TensorRT failed to enqueue inference (see its log above); check "
                              "that the bound buffers are alive and on this GPU")


def stream_handle(stream):
    """A pycuda Stream, an int handle or None (legacy default stream) -> int."""
    if stream is None:
        return 0
    if isinstance(stream, int):
        return stream
    handle = getattr(stream, "handle", None)
    if handle is None:
        handle = getattr(stream, "ptr", None)
    if handle is None:
        from ...core.errors import InputError
        raise InputError("stream %r is neither a pycuda Stream, an int handle nor None" % (stream,))
    return int(handle)


def make_logger(trt, echo=None, min_severity="WARNING"):
    """An ILogger subclass keeping TensorRT's messages, so errors can be quoted to the user.

    ``echo(text)`` (e.g. print) gets messages at or above ``min_severity`` as they come.
    """
    severity = trt.ILogger.Severity
    order = ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"]
    limit = order.index(min_severity)
    ranks = {}
    for i, name in enumerate(order):
        if hasattr(severity, name):
            ranks[getattr(severity, name)] = (i, name)

    class CapturingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages = []

        def log(self, sev, msg):
            rank, name = ranks.get(sev, (1, str(sev)))
            self.messages.append((name, str(msg)))
            if echo is not None and rank <= limit:
                echo("[TensorRT %s] %s" % (name, msg))

        def errors(self):
            return [m for s, m in self.messages if s in ("INTERNAL_ERROR", "ERROR")]

        def clear(self):
            del self.messages[:]

    return CapturingLogger()


class Stopwatch(object):
    """Prints what a step does and how long it took (the progress of TensorRT < 10)."""

    def __init__(self, echo, what):
        self.echo, self.what = echo, what

    def __enter__(self):
        self.t0 = time.perf_counter()
        if self.echo:
            self.echo("%s ..." % self.what)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.echo:
            self.echo("%s: %s in %.1f s" % (self.what, "failed" if exc_type else "done",
                                            time.perf_counter() - self.t0))
        return False
