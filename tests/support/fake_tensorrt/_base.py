"""The machinery shared by the fake ``tensorrt`` modules (one per API generation).

``make_module(version, features)`` returns a fresh module object whose classes carry only the
attributes the given generation documents, so a call another generation lacks fails with
AttributeError exactly as on the real library. Every call is recorded in ``module.calls`` as
``(qualified_name, details)``; calls that the generation documents as deprecated are also
recorded in ``module.deprecated``. Failure injection: add names to ``module.faults``:
``'oom'`` (build_serialized_network logs an out-of-memory error and returns None),
``'missing_plugin'`` (the parser knows no ``*_TRT`` plugin op).

Behaviour checked (each from NVIDIA's documentation, cited in the version modules):
argument types (ints for pointers/streams, str names, tuples for shapes, enum members for
flags), call order (shapes before execute, addresses before ``execute_async_v3``, a profile
for dynamic inputs, ``set_calibration_profile`` for dynamic INT8 calibration), explicit batch
(8.x parser refuses an implicit-batch network), engines "serialised" to bytes carrying the fake's
version and how they were built (flags, strongly typed or not, the ONNX's weight types, INT8
mode; another version's bytes: ``deserialize_cuda_engine`` logs and returns None). Strongly
typed networks (``strongly_typed``: 10.x and 11.x have the flag; ``strongly_typed_only``: 11.x,
no FP16/INT8 flags and no calibrator) refuse precision flags and take INT8 from Q/DQ nodes.
``lean``: the runtime classes only, deserialising version-compatible plans only.

Public attributes are the real API's only (tests/backends/test_tensorrt_real.py checks each fake
against NVIDIA's bindings of its version); the fakes' own state has leading underscores.

Execution writes outputs through the device pointers, which in CI are host addresses of numpy
arrays (see ``devmem.py``): ``reference_outputs`` gives the values the fake writes.
"""
import ctypes
import enum
import functools
import json
import types

import numpy as np

MAGIC = b"FAKETRT\x00"
UNSUPPORTED_OPS = ("NoSuchOp", "TFLite_Detection_PostProcess")


def reference_outputs(images, num_anchors, num_classes):
    """What a fake engine computes: functions of each image's mean, anchor and column."""
    images = np.asarray(images, dtype=np.float64)
    m = images.reshape(images.shape[0], -1).mean(axis=1)
    a = np.arange(num_anchors, dtype=np.float64)
    boxes = m[:, None, None] + a[None, :, None] * 0.01 + np.arange(4)[None, None, :]
    logits = m[:, None, None] + a[None, :, None] * 0.001 + \
        np.arange(num_classes)[None, None, :] * 0.1
    return boxes.astype(np.float32), (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def _host_view(ptr, shape, dtype):
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = (ctypes.c_char * n).from_address(int(ptr))
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


class FakeTensorRTError(AssertionError):
    """A call the documented API would not accept (a bug in trtssd, caught by the fake)."""


def make_module(version, features, docs):
    """A fresh fake ``tensorrt`` module. ``features``: set of generation capabilities."""
    F = set(features)
    mod = types.ModuleType("tensorrt")
    mod.__version__ = version
    mod.__doc__ = "Fake tensorrt %s for trtssd's tests. Follows:\n" % version + "\n".join(docs)
    mod.calls = []
    mod.deprecated = []
    mod.faults = set()
    mod.FEATURES = frozenset(F)
    major = int(version.split(".")[0])

    def rec(name, *details):
        mod.calls.append((name, details))

    def dep(name):
        mod.deprecated.append(name)

    def need(cond, msg):
        if not cond:
            raise FakeTensorRTError("tensorrt %s: %s" % (version, msg))

    def is_int(x):
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    def as_shape(shape, what):
        need(isinstance(shape, (tuple, list, Dims)) and all(is_int(d) for d in shape),
             "%s must be a tuple of ints, got %r" % (what, shape))
        return tuple(int(d) for d in shape)

    # ------------------------------------------------------------------ enums and basics
    class DataType(enum.IntEnum):
        FLOAT = 0
        HALF = 1
        INT8 = 2
        INT32 = 3
        BOOL = 4

    _np = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
           DataType.INT32: np.int32, DataType.BOOL: np.bool_}

    def nptype(trt_type):
        return _np[trt_type]

    class Dims(tuple):
        pass

    # TensorRT 11 ("strongly_typed_only") has no FP16/INT8 flags and no EXPLICIT_BATCH
    flag_names = ["DEBUG", "GPU_FALLBACK", "REFIT"]
    if "strongly_typed_only" not in F:
        flag_names += ["FP16", "INT8"]
    if "version_compatible" in F:
        flag_names += ["VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"]
    BuilderFlag = enum.IntEnum("BuilderFlag", [(n, i) for i, n in enumerate(flag_names)],
                               module=__name__)
    creation = []
    if "strongly_typed_only" not in F:
        creation.append(("EXPLICIT_BATCH", 0))
    if "strongly_typed" in F:
        creation.append(("STRONGLY_TYPED", 1))
    NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", creation,
                                                 module=__name__)
    STRONGLY_TYPED_BIT = 2 if "strongly_typed" in F else 0

    class MemoryPoolType(enum.IntEnum):
        WORKSPACE = 0
        DLA_MANAGED_SRAM = 1

    class TensorIOMode(enum.IntEnum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    class _Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    class ILogger(object):
        Severity = _Severity
        INTERNAL_ERROR = _Severity.INTERNAL_ERROR
        ERROR = _Severity.ERROR
        WARNING = _Severity.WARNING
        INFO = _Severity.INFO
        VERBOSE = _Severity.VERBOSE

        def __init__(self):
            self._fake_init = True

        def log(self, severity, msg):
            raise NotImplementedError

    class Logger(ILogger):
        def __init__(self, min_severity=_Severity.WARNING):
            ILogger.__init__(self)
            self.min_severity = min_severity
            self.messages = []

        def log(self, severity, msg):
            self.messages.append((severity, msg))

    def _check_logger(logger):
        need(isinstance(logger, ILogger), "a logger must be a tensorrt.ILogger, got %r" % logger)
        need(getattr(logger, "_fake_init", False), "ILogger subclass did not call "
                                                   "ILogger.__init__(self)")

    def _log(logger, sev, msg):
        logger.log(sev, msg)

    plugins = {"loaded": False}

    def init_libnvinfer_plugins(logger, namespace):
        _check_logger(logger)
        need(isinstance(namespace, str), "namespace must be a str")
        rec("init_libnvinfer_plugins", namespace)
        plugins["loaded"] = True
        return True

    class IHostMemory(bytes):
        @property
        def nbytes(self):
            return len(self)

    # ------------------------------------------------------------------ network and parser
    class ITensor(object):
        def __init__(self, name, shape, dtype, is_input):
            self.name = name
            self._shape = Dims(shape)
            self.dtype = dtype
            self.is_network_input = is_input

        @property
        def shape(self):
            return self._shape

        @shape.setter
        def shape(self, value):
            need(self.is_network_input, "only network inputs can be reshaped")
            rec("ITensor.shape=", self.name, as_shape(value, "shape"))
            self._shape = Dims(as_shape(value, "shape"))

    class INetworkDefinition(object):
        def __init__(self, flags):
            self._flags = flags
            self._explicit_batch = major >= 10 or bool(flags & 1)
            self._strongly_typed = bool(flags & STRONGLY_TYPED_BIT)
            self._inputs, self._outputs, self._op_types = [], [], []
            self._weight_types = set()
            self._parsed = False

        @property
        def num_inputs(self):
            return len(self._inputs)

        @property
        def num_outputs(self):
            return len(self._outputs)

        def get_input(self, index):
            need(is_int(index), "get_input takes an int")
            return self._inputs[index]

        def get_output(self, index):
            need(is_int(index), "get_output takes an int")
            return self._outputs[index]

    class ParserError(object):
        def __init__(self, code, desc, node, op):
            self._code, self._desc, self._node, self._op = code, desc, node, op

        def code(self):
            return self._code

        def desc(self):
            return self._desc

        def node(self):
            return self._node

    if "parser_node_operator" in F:
        ParserError.node_operator = lambda self: self._op

    class OnnxParser(object):
        def __init__(self, network, logger):
            need(isinstance(network, INetworkDefinition), "OnnxParser needs the network")
            _check_logger(logger)
            rec("OnnxParser", )
            self._network, self._logger, self._errors = network, logger, []

        @property
        def num_errors(self):
            return len(self._errors)

        def get_error(self, index):
            need(is_int(index) and 0 <= index < len(self._errors), "get_error index out of range")
            return self._errors[index]

        def clear_errors(self):
            self._errors = []

        def parse(self, model, path=None):
            need(isinstance(model, (bytes, bytearray, memoryview)),
                 "parse takes the serialized model as bytes, got %s" % type(model).__name__)
            rec("OnnxParser.parse", len(model))
            import onnx
            from onnx import TensorProto
            net = self._network
            if not net._explicit_batch:
                self._errors.append(ParserError(
                    4, "The ONNX parser only supports networks with an explicit batch "
                       "dimension; create the network with EXPLICIT_BATCH", -1, ""))
                return False
            try:
                m = onnx.load_from_string(bytes(model))
            except Exception as e:  # noqa: BLE001
                self._errors.append(ParserError(1, "Failed to parse ONNX model: %s" % e, -1, ""))
                return False
            for i, node in enumerate(m.graph.node):
                net._op_types.append(node.op_type)
                if node.op_type in UNSUPPORTED_OPS:
                    self._errors.append(ParserError(
                        8, "No importer registered for op: %s" % node.op_type, i, node.op_type))
                elif node.op_type.endswith("_TRT") and (not plugins["loaded"]
                                                       or "missing_plugin" in mod.faults):
                    self._errors.append(ParserError(
                        8, "Plugin not found, are the plugin name, version, and namespace "
                           "correct?", i, node.op_type))
            if self._errors:
                return False
            dt = {TensorProto.FLOAT: DataType.FLOAT, TensorProto.FLOAT16: DataType.HALF}

            def dims(vi):
                return tuple(d.dim_value if d.HasField("dim_value") else -1
                             for d in vi.type.tensor_type.shape.dim)
            inits = set(t.name for t in m.graph.initializer)
            net._weight_types = set(DataType.HALF if t.data_type == TensorProto.FLOAT16
                                    else DataType.FLOAT for t in m.graph.initializer
                                    if t.data_type in dt)
            for vi in m.graph.input:
                if vi.name not in inits:
                    net._inputs.append(ITensor(vi.name, dims(vi),
                                              dt[vi.type.tensor_type.elem_type], True))
            for vi in m.graph.output:
                net._outputs.append(ITensor(vi.name, dims(vi), dt[vi.type.tensor_type.elem_type],
                                           False))
            net._parsed = True
            return True

    # ------------------------------------------------------------------ builder
    class IOptimizationProfile(object):
        def __init__(self):
            self._shapes = {}

        def set_shape(self, input, min, opt, max):  # noqa: A002 (documented names)
            need(isinstance(input, str), "set_shape takes the input's name")
            mn, op, mx = (as_shape(s, "profile shape") for s in (min, opt, max))
            need(all(a <= b <= c for a, b, c in zip(mn, op, mx)), "need min <= opt <= max")
            rec("IOptimizationProfile.set_shape", input, mn, op, mx)
            self._shapes[input] = (mn, op, mx)

        def get_shape(self, input):  # noqa: A002
            return [Dims(s) for s in self._shapes[input]]

    class ITimingCache(object):
        def __init__(self, data):
            self._data = bytes(data) or b"FAKECACHE" + version.encode()
            self._entries = self._data.count(b";")

        def serialize(self):
            rec("ITimingCache.serialize")
            return IHostMemory(self._data)

    class IInt8EntropyCalibrator2(object):
        """TensorRT calls these on the application's subclass."""

        def __init__(self):
            self._fake_init = True

        def get_batch_size(self):
            raise NotImplementedError

        def get_batch(self, names):
            raise NotImplementedError

        def read_calibration_cache(self):
            raise NotImplementedError

        def write_calibration_cache(self, cache):
            raise NotImplementedError

    class _ConfigBase(object):
        def __init__(self):
            self._flags = set()
            self._profiles = []
            self._calibrator = None
            self._calibration_profile = None
            self._timing_cache = None
            self._workspace = None
            self._monitor = None

        def set_flag(self, flag):
            need(isinstance(flag, BuilderFlag), "set_flag takes a tensorrt.BuilderFlag")
            rec("IBuilderConfig.set_flag", flag.name)
            self._flags.add(flag)

        def get_flag(self, flag):
            return flag in self._flags

        def add_optimization_profile(self, profile):
            need(isinstance(profile, IOptimizationProfile), "add_optimization_profile takes an "
                                                            "IOptimizationProfile")
            rec("IBuilderConfig.add_optimization_profile")
            self._profiles.append(profile)
            return len(self._profiles) - 1

        @property
        def int8_calibrator(self):
            return self._calibrator

        @int8_calibrator.setter
        def int8_calibrator(self, calib):
            need(isinstance(calib, IInt8EntropyCalibrator2) and getattr(calib, "_fake_init", 0),
                 "int8_calibrator must be an IInt8EntropyCalibrator2 whose __init__ ran")
            rec("IBuilderConfig.int8_calibrator=")
            self._calibrator = calib

        def set_calibration_profile(self, profile):
            need(isinstance(profile, IOptimizationProfile), "set_calibration_profile takes a "
                                                            "profile")
            rec("IBuilderConfig.set_calibration_profile")
            self._calibration_profile = profile
            return True

        def create_timing_cache(self, serialized_timing_cache):
            need(isinstance(serialized_timing_cache, (bytes, bytearray, memoryview)),
                 "create_timing_cache takes bytes (b'' for a new cache)")
            rec("IBuilderConfig.create_timing_cache", len(serialized_timing_cache))
            return ITimingCache(serialized_timing_cache)

        def set_timing_cache(self, cache, ignore_mismatch):
            need(isinstance(cache, ITimingCache) and isinstance(ignore_mismatch, bool),
                 "set_timing_cache(cache, ignore_mismatch: bool)")
            rec("IBuilderConfig.set_timing_cache")
            if not cache._data.startswith(b"FAKECACHE" + version.encode()) and \
                    not ignore_mismatch:
                return False
            self._timing_cache = cache
            return True

        def get_timing_cache(self):
            return self._timing_cache

    config_dict = {}
    if "max_workspace_size" in F:
        def _get_ws(self):
            return self._workspace or 0

        def _set_ws(self, value):
            need(is_int(value), "max_workspace_size takes an int")
            rec("IBuilderConfig.max_workspace_size=", value)
            if "memory_pool" in F:
                dep("IBuilderConfig.max_workspace_size")
            self._workspace = int(value)
        config_dict["max_workspace_size"] = property(_get_ws, _set_ws)
    if "memory_pool" in F:
        def set_memory_pool_limit(self, pool, pool_size):
            need(isinstance(pool, MemoryPoolType), "set_memory_pool_limit takes a MemoryPoolType")
            need(is_int(pool_size), "pool_size must be an int")
            rec("IBuilderConfig.set_memory_pool_limit", pool.name, int(pool_size))
            self._workspace = int(pool_size)

        def get_memory_pool_limit(self, pool):
            return self._workspace
        config_dict["set_memory_pool_limit"] = set_memory_pool_limit
        config_dict["get_memory_pool_limit"] = get_memory_pool_limit
    if "progress_monitor" in F:
        class IProgressMonitor(object):
            """TensorRT calls these on the application's subclass."""

            def __init__(self):
                self._fake_init = True

            def phase_start(self, phase_name, parent_phase, num_steps):
                raise NotImplementedError

            def step_complete(self, phase_name, step):
                raise NotImplementedError

            def phase_finish(self, phase_name):
                raise NotImplementedError
        if "lean" not in F:
            mod.IProgressMonitor = IProgressMonitor

        def _get_pm(self):
            return self._monitor

        def _set_pm(self, monitor):
            need(isinstance(monitor, IProgressMonitor) and getattr(monitor, "_fake_init", 0),
                 "progress_monitor must be an IProgressMonitor whose __init__ ran")
            rec("IBuilderConfig.progress_monitor=")
            self._monitor = monitor
        config_dict["progress_monitor"] = property(_get_pm, _set_pm)
    if "strongly_typed_only" in F:           # TensorRT 11: no INT8 calibration
        del _ConfigBase.int8_calibrator
        del _ConfigBase.set_calibration_profile
    IBuilderConfig = type("IBuilderConfig", (_ConfigBase,), config_dict)

    def _calibrate(calib, net, config, logger):
        inp = net._inputs[0]
        shape = inp.shape
        if any(d < 0 for d in shape):
            need(config._calibration_profile is not None,
                 "INT8 calibration of a dynamic network needs set_calibration_profile")
            shape = config._calibration_profile._shapes[inp.name][1]
        bs = calib.get_batch_size()
        need(is_int(bs) and bs >= 1, "get_batch_size must return a positive int")
        shape = (bs,) + tuple(shape[1:])
        cache = calib.read_calibration_cache()
        rec("calibrator.read_calibration_cache", cache is not None)
        if cache:
            need(bytes(cache).startswith(b"FAKECALIB"), "foreign calibration cache")
            return True
        batches = []
        while len(batches) < 10000:
            ptrs = calib.get_batch([inp.name])
            if ptrs is None or len(ptrs) == 0:
                break
            need(isinstance(ptrs, list) and len(ptrs) == 1 and all(is_int(p) for p in ptrs),
                 "get_batch must return a list of one int device pointer per input, got %r"
                 % (ptrs,))
            data = _host_view(ptrs[0], shape, np.float32)
            batches.append(float(np.abs(data).max()))
            rec("calibrator.get_batch", shape)
        if not batches:
            _log(logger, _Severity.ERROR, "Calibration failure occurred with no scaling "
                                          "factors detected")
            return False
        calib.write_calibration_cache(IHostMemory(b"FAKECALIB %r" % (batches,)))
        rec("calibrator.write_calibration_cache", len(batches))
        return True

    def _progress(monitor):
        phases = [("Building engine", None, 3), ("Tactic selection", "Building engine", 2)]
        for name, parent, steps in phases:
            monitor.phase_start(name, parent, steps)
        for s in range(2):
            need(isinstance(monitor.step_complete("Tactic selection", s), bool),
                 "step_complete must return a bool")
        monitor.phase_finish("Tactic selection")
        for s in range(3):
            monitor.step_complete("Building engine", s)
        monitor.phase_finish("Building engine")
        rec("progress_monitor.used")

    class Builder(object):
        def __init__(self, logger):
            _check_logger(logger)
            rec("Builder")
            self.logger = logger

        if "strongly_typed_only" not in F:
            platform_has_fast_fp16 = property(lambda self: True)
            platform_has_fast_int8 = property(lambda self: True)

        def create_network(self, flags=0):
            need(is_int(flags), "create_network takes int flags")
            rec("Builder.create_network", int(flags))
            if major >= 10 and "EXPLICIT_BATCH" in NetworkDefinitionCreationFlag.__members__ \
                    and flags & 1:
                dep("NetworkDefinitionCreationFlag.EXPLICIT_BATCH")
                _log(self.logger, _Severity.WARNING, "EXPLICIT_BATCH is deprecated and ignored")
            return INetworkDefinition(int(flags))

        def create_builder_config(self):
            rec("Builder.create_builder_config")
            return IBuilderConfig()

        def create_optimization_profile(self):
            rec("Builder.create_optimization_profile")
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            need(isinstance(network, INetworkDefinition) and isinstance(config, IBuilderConfig),
                 "build_serialized_network(network, config)")
            rec("Builder.build_serialized_network")
            need(network._parsed, "building a network the parser did not fill")
            if "oom" in mod.faults:
                _log(self.logger, _Severity.ERROR, "1: [defaultAllocator.cpp::allocate::31] Error "
                     "Code 1: Cuda Runtime (out of memory)")
                _log(self.logger, _Severity.ERROR, "2: [builder.cpp::buildSerializedNetwork::751]"
                     " Error Code 2: Internal Error (Assertion engine != nullptr failed. )")
                return None
            inp = network._inputs[0]
            dynamic = any(d < 0 for d in inp.shape)
            profiles = []
            if dynamic:
                if not config._profiles:
                    _log(self.logger, _Severity.ERROR, "4: Network has dynamic or shape inputs, "
                                                       "but no optimization profile has been "
                                                       "defined.")
                    return None
                for p in config._profiles:
                    need(inp.name in p._shapes, "a profile lacks input %r" % inp.name)
                    profiles.append(p._shapes[inp.name])
            if config._monitor is not None:
                _progress(config._monitor)
            qdq = any(op in ("QuantizeLinear", "DequantizeLinear") for op in network._op_types)
            int8_mode = None
            typed = network._strongly_typed
            weak = [f.name for f in config._flags if f.name in ("FP16", "INT8")]
            if typed and weak:
                # documented: precision flags are not allowed on strongly typed networks
                _log(self.logger, _Severity.ERROR, "4: BuilderFlag::k%s cannot be set on a "
                                                   "strongly typed network" % weak[0])
                return None
            if typed and qdq:
                int8_mode = "qdq"         # strongly typed: the Q/DQ nodes' types decide
            elif "INT8" in BuilderFlag.__members__ and BuilderFlag.INT8 in config._flags:
                if qdq:
                    int8_mode = "qdq"
                elif config._calibrator is not None:
                    if not _calibrate(config._calibrator, network, config, self.logger):
                        return None
                    int8_mode = "calibrator"
                else:
                    _log(self.logger, _Severity.ERROR, "Calibration failure occurred with no "
                                                       "scaling factors detected")
                    return None
            if config._timing_cache is not None:
                config._timing_cache._data += b";entry"
            io = [{"name": t.name, "input": True, "shape": list(t.shape), "dtype": int(t.dtype)}
                  for t in network._inputs]
            # shape inference: with a static input the batch dimension of outputs is known
            io += [{"name": t.name, "input": False,
                    "shape": [inp.shape[0] if (k == 0 and d < 0 and not dynamic) else d
                              for k, d in enumerate(t.shape)],
                    "dtype": int(t.dtype)} for t in network._outputs]
            header = {"version": version, "io": io, "profiles": [[list(s) for s in p]
                                                                  for p in profiles],
                      "flags": sorted(f.name for f in config._flags), "int8_mode": int8_mode,
                      "workspace": config._workspace, "strongly_typed": typed,
                      "weights": sorted(t.name for t in network._weight_types)}
            return IHostMemory(MAGIC + json.dumps(header).encode())

    # ------------------------------------------------------------------ runtime and engine
    class Runtime(object):
        def __init__(self, logger):
            _check_logger(logger)
            rec("Runtime")
            self.logger = logger
            self._host_code_allowed = False

        if "version_compatible" in F:
            def _get_hc(self):
                return self._host_code_allowed

            def _set_hc(self, value):
                need(isinstance(value, bool), "engine_host_code_allowed takes a bool")
                rec("Runtime.engine_host_code_allowed=", value)
                self._host_code_allowed = value
            engine_host_code_allowed = property(_get_hc, _set_hc)

        def deserialize_cuda_engine(self, serialized_engine):
            need(isinstance(serialized_engine, (bytes, bytearray, memoryview)),
                 "deserialize_cuda_engine takes bytes")
            rec("Runtime.deserialize_cuda_engine", len(serialized_engine))
            data = bytes(serialized_engine)
            if not data.startswith(MAGIC):
                _log(self.logger, _Severity.ERROR, "1: [stdArchiveReader.cpp::StdArchiveReader::"
                     "32] Error Code 1: Serialization (Serialization assertion "
                     "magicTagRead == kMAGIC_TAG failed.Magic tag does not match)")
                return None
            try:
                header = json.loads(data[len(MAGIC):].decode())
            except ValueError:
                _log(self.logger, _Severity.ERROR, "1: Serialization (Serialization assertion "
                                                   "size == serializedSize failed.)")
                return None
            if header["version"] != version:
                _log(self.logger, _Severity.ERROR, "1: [stdArchiveReader.cpp::StdArchiveReader::"
                     "40] Error Code 1: Serialization (Serialization assertion stdVersionRead == "
                     "serializationVersion failed.Version tag does not match. The engine plan "
                     "file is not compatible with this version of TensorRT, expecting library "
                     "version %s got %s, please rebuild.)" % (version, header["version"]))
                return None
            if "lean" in F and not {"VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"} <= \
                    set(header["flags"]):
                _log(self.logger, _Severity.ERROR, "1: [runtime.cpp::deserializeCudaEngine] "
                     "the lean runtime can only deserialize version-compatible plans built "
                     "with the lean runtime excluded")
                return None
            return ICudaEngine(header)

    class _EngineBase(object):
        def __init__(self, header):
            self._header = header
            self._io = header["io"]
            self._profiles = header["profiles"]
            self._by_name = dict((t["name"], t) for t in self._io)

        @property
        def num_optimization_profiles(self):
            return max(1, len(self._profiles))

        def create_execution_context(self):
            rec("ICudaEngine.create_execution_context")
            return IExecutionContext(self)

        def _dims(self, t):
            return Dims(t["shape"])

        def _dtype(self, t):
            return DataType(t["dtype"])

        def _profile_of(self, name, profile):
            need(is_int(profile) and 0 <= profile < len(self._profiles),
                 "profile index %r out of range" % (profile,))
            need(self._by_name[name]["input"], "profile shapes exist only for inputs")
            return [Dims(s) for s in self._profiles[profile]]

    eng_dict, ctx_dict = {}, {}
    if "bindings" in F:
        def _binding(self, index):
            need(is_int(index) and 0 <= index < self.num_bindings,
                 "binding index %r out of range" % (index,))
            return self._io[index % len(self._io)], index // len(self._io)

        def _b(name, fn):
            @functools.wraps(fn)
            def wrapper(self, *a):
                rec("ICudaEngine." + name, *a)
                if "tensors" in F:
                    dep("ICudaEngine." + name)
                return fn(self, *a)
            return wrapper
        eng_dict["num_bindings"] = property(
            lambda self: len(self._io) * self.num_optimization_profiles)

        def get_binding_name(self, index):
            t, p = _binding(self, index)
            return t["name"] if p == 0 else "%s [profile %d]" % (t["name"], p)
        eng_dict["get_binding_name"] = _b("get_binding_name", get_binding_name)
        eng_dict["get_binding_shape"] = _b("get_binding_shape",
                                           lambda self, index: self._dims(_binding(self, index)[0]))
        eng_dict["get_binding_dtype"] = _b("get_binding_dtype",
                                           lambda self, index:
                                           self._dtype(_binding(self, index)[0]))
        eng_dict["binding_is_input"] = _b("binding_is_input",
                                          lambda self, index: _binding(self, index)[0]["input"])

        def get_binding_index(self, name):
            need(isinstance(name, str), "get_binding_index takes a name")
            for i in range(self.num_bindings):
                if get_binding_name(self, i) == name:
                    return i
            return -1
        eng_dict["get_binding_index"] = _b("get_binding_index", get_binding_index)

        def get_profile_shape(self, profile_index, binding):
            if isinstance(binding, str):
                binding = get_binding_index(self, binding)
            t, p = _binding(self, binding)
            need(p == profile_index, "binding %d does not belong to profile %d"
                 % (binding, profile_index))
            return self._profile_of(t["name"], profile_index)
        eng_dict["get_profile_shape"] = _b("get_profile_shape", get_profile_shape)

        def set_binding_shape(self, binding, shape):
            need(is_int(binding), "set_binding_shape takes a binding index")
            shape = as_shape(shape, "binding shape")
            rec("IExecutionContext.set_binding_shape", binding, shape)
            if "tensors" in F:
                dep("IExecutionContext.set_binding_shape")
            t, p = _binding(self.engine, binding)
            need(t["input"], "set_binding_shape on an output")
            need(p == self._profile, "binding %d belongs to profile %d, the context uses %d"
                 % (binding, p, self._profile))
            if not self._in_profile(t["name"], shape):
                return False
            self._shapes[t["name"]] = shape
            return True
        ctx_dict["set_binding_shape"] = set_binding_shape
        ctx_dict["all_binding_shapes_specified"] = property(lambda self: self._shapes_ok())

        def execute_async_v2(self, bindings, stream_handle):
            need(isinstance(bindings, list) and all(is_int(b) for b in bindings),
                 "execute_async_v2 takes a list of int device pointers")
            need(is_int(stream_handle), "stream_handle must be an int (stream.handle)")
            rec("IExecutionContext.execute_async_v2", len(bindings), int(stream_handle))
            if "tensors" in F:
                dep("IExecutionContext.execute_async_v2")
            eng = self.engine
            need(len(bindings) == eng.num_bindings, "bindings must list all %d bindings"
                 % eng.num_bindings)
            off = self._profile * len(eng._io)
            addr = dict((t["name"], bindings[off + k]) for k, t in enumerate(eng._io))
            return self._execute(addr)
        ctx_dict["execute_async_v2"] = execute_async_v2

    if "tensors" in F:
        def _t(name, fn):
            @functools.wraps(fn)
            def wrapper(self, *a):
                rec("ICudaEngine." + name, *a)
                return fn(self, *a)
            return wrapper

        def _named(self, name):
            need(isinstance(name, str), "tensor API takes tensor names (str), got %r" % (name,))
            need(name in self._by_name, "no tensor named %r" % name)
            return self._by_name[name]
        eng_dict["num_io_tensors"] = property(lambda self: len(self._io))

        def get_tensor_name(self, index):
            need(is_int(index) and 0 <= index < len(self._io), "tensor index out of range")
            return self._io[index]["name"]
        eng_dict["get_tensor_name"] = _t("get_tensor_name", get_tensor_name)
        eng_dict["get_tensor_shape"] = _t("get_tensor_shape",
                                          lambda self, name: self._dims(_named(self, name)))
        eng_dict["get_tensor_dtype"] = _t("get_tensor_dtype",
                                          lambda self, name: self._dtype(_named(self, name)))
        eng_dict["get_tensor_mode"] = _t("get_tensor_mode", lambda self, name: (
            TensorIOMode.INPUT if _named(self, name)["input"] else TensorIOMode.OUTPUT))
        eng_dict["get_tensor_profile_shape"] = _t(
            "get_tensor_profile_shape",
            lambda self, name, profile_index: self._profile_of(_named(self, name)["name"],
                                                               profile_index))

        def set_input_shape(self, name, shape):
            t = _named(self.engine, name)
            shape = as_shape(shape, "input shape")
            rec("IExecutionContext.set_input_shape", name, shape)
            need(t["input"], "set_input_shape on an output")
            if not self._in_profile(name, shape):
                return False
            self._shapes[name] = shape
            return True
        ctx_dict["set_input_shape"] = set_input_shape

        def set_tensor_address(self, name, memory):
            _named(self.engine, name)
            need(is_int(memory), "set_tensor_address takes an int pointer, got %r" % (memory,))
            rec("IExecutionContext.set_tensor_address", name, int(memory))
            self._addresses[name] = int(memory)
            return True
        ctx_dict["set_tensor_address"] = set_tensor_address

        def execute_async_v3(self, stream_handle):
            need(is_int(stream_handle), "stream_handle must be an int (stream.handle)")
            rec("IExecutionContext.execute_async_v3", int(stream_handle))
            missing = [t["name"] for t in self.engine._io if t["name"] not in self._addresses]
            need(not missing, "set_tensor_address was not called for %s before "
                              "execute_async_v3" % missing)
            return self._execute(self._addresses)
        ctx_dict["execute_async_v3"] = execute_async_v3

    ICudaEngine = type("ICudaEngine", (_EngineBase,), eng_dict)

    class _ContextBase(object):
        def __init__(self, engine):
            self.engine = engine
            self._profile = 0
            self._shapes = {}
            self._addresses = {}
            self._runs = 0

        def _in_profile(self, name, shape):
            t = self.engine._by_name[name]
            if len(shape) != len(t["shape"]):
                return False
            if not self.engine._profiles:
                return tuple(shape) == tuple(t["shape"])
            mn, _, mx = self.engine._profiles[self._profile]
            return all(a <= s <= b for a, s, b in zip(mn, shape, mx))

        def _shapes_ok(self):
            for t in self.engine._io:
                if t["input"] and any(d < 0 for d in t["shape"]) and t["name"] not in self._shapes:
                    return False
            return True

        def _resolved(self, t):
            batch = None
            for name, s in self._shapes.items():
                batch = s[0]
            shape = list(t["shape"])
            if shape[0] < 0:
                need(batch is not None, "dynamic shape unresolved")
                shape[0] = batch
            return tuple(shape)

        def _execute(self, addr):
            need(self._shapes_ok(), "input shapes not specified before execute "
                                    "(set_input_shape / set_binding_shape)")
            eng = self.engine
            for t in eng._io:
                need(addr.get(t["name"], 0) != 0, "tensor %r has no address" % t["name"])
            inp = [t for t in eng._io if t["input"]][0]
            images = _host_view(addr[inp["name"]], self._resolved(inp),
                                nptype(DataType(inp["dtype"])))
            outs = dict((t["name"], t) for t in eng._io if not t["input"])
            sb = self._resolved(outs["box_encodings"])
            sc = self._resolved(outs["class_scores"])
            boxes, scores = reference_outputs(images, sb[1], sc[2])
            _host_view(addr["box_encodings"], sb, np.float32)[...] = boxes
            _host_view(addr["class_scores"], sc, np.float32)[...] = scores
            self._runs += 1
            return True

        def set_optimization_profile_async(self, profile_index, stream_handle):
            need(is_int(profile_index) and is_int(stream_handle),
                 "set_optimization_profile_async(int, int stream handle)")
            rec("IExecutionContext.set_optimization_profile_async", int(profile_index))
            need(0 <= profile_index < self.engine.num_optimization_profiles, "bad profile")
            need(not self._shapes, "select the profile before setting input shapes")
            self._profile = int(profile_index)
            return True

    def _get_profile(self):
        return self._profile

    if major >= 10:
        ctx_dict["active_optimization_profile"] = property(_get_profile)   # read-only in 10
    else:
        def _set_profile(self, value):
            rec("IExecutionContext.active_optimization_profile=", value)
            dep("IExecutionContext.active_optimization_profile=")
            self._profile = value
        ctx_dict["active_optimization_profile"] = property(_get_profile, _set_profile)
    IExecutionContext = type("IExecutionContext", (_ContextBase,), ctx_dict)

    exported = ["DataType", "Dims", "ILogger", "Logger", "IHostMemory", "Runtime", "ICudaEngine",
                "IExecutionContext", "nptype"]
    if "lean" in F:
        mod.__name__ = "tensorrt_lean"        # the runtime classes only: nothing builds
    else:
        exported += ["BuilderFlag", "NetworkDefinitionCreationFlag", "ITensor",
                     "INetworkDefinition", "OnnxParser", "ParserError", "IOptimizationProfile",
                     "ITimingCache", "IBuilderConfig", "Builder", "init_libnvinfer_plugins"]
        if "strongly_typed_only" not in F:
            exported.append("IInt8EntropyCalibrator2")
    scope = locals()
    for name in exported:
        setattr(mod, name, scope[name])
    if "memory_pool" in F and "lean" not in F:
        mod.MemoryPoolType = MemoryPoolType
    if "tensors" in F:
        mod.TensorIOMode = TensorIOMode
    mod.FakeTensorRTError = FakeTensorRTError
    return mod
