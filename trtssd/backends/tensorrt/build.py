"""Build TensorRT engines from trtssd's ONNX, cache them, and check cached ones before use.

An engine is tied to one TensorRT version and one GPU model, so every engine is stored under
a name that encodes the model (sha256 prefix), precision, batch, TensorRT version and GPU
(name and compute capability), with a JSON sidecar (``<engine>.json``, never pickle) holding
those facts, the engine file's own sha256 and the ModelSpec. A cached engine whose sidecar
does not match this machine is rebuilt by ``ensure_engine`` and refused by
``load_checked_engine`` (the runner), with the command that rebuilds it.

Precisions: ``fp16`` (default), ``fp32``, ``int8``. INT8 takes the model's own scales where
the ONNX carries explicit QuantizeLinear/DequantizeLinear nodes (no calibration), otherwise
an entropy calibrator (IInt8EntropyCalibrator2) fed with real images through trtssd's GPU
preprocessing, with a calibration cache file.

Command line: ``python engines/build_engine.py MODEL`` (``make engines``), or
``trtssd build-engine`` which calls ``main(argv)`` / ``add_arguments(parser)`` + ``run(args)``.
"""
import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time

from ...core.env import cache_dir
from ...core.errors import EngineError, EnvironmentProblem, InputError, ModelError, TrtssdError
from ...core.spec import ModelSpec, SPEC_METADATA_KEY
from ...models.resolve import file_sha256
from .compat import TrtApi, Stopwatch, make_logger

SIDECAR_FORMAT = "trtssd-engine/1"
PRECISIONS = ("fp16", "fp32", "int8")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
INPUT_NAME = "images"
OUTPUT_NAMES = ("box_encodings", "class_scores")


# ---------------------------------------------------------------------------- ONNX facts
class OnnxInfo(object):
    """What the builder needs from an ONNX file, read without the onnx package."""

    def __init__(self, path, data, metadata, op_types, inputs, outputs):
        self.path = path
        self.data = data
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.metadata = metadata          # {key: value}
        self.op_types = op_types          # node op types in graph order
        self.inputs = inputs              # [(name, dims)] dims: int or str (symbolic) or None
        self.outputs = outputs

    @property
    def has_qdq(self):
        return any(op in QDQ_OPS for op in self.op_types)

    def spec(self):
        text = self.metadata.get(SPEC_METADATA_KEY)
        if text is None:
            raise ModelError(
                "%s has no %r metadata, so it was not written by trtssd's converter; convert "
                "the TFLite model with `python engines/convert.py detect.tflite`"
                % (self.path, SPEC_METADATA_KEY))
        return ModelSpec.from_json(text)


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _fields(buf):
    """Yield (field_number, wire_type, value) of one protobuf message (bytes for LEN)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
            if pos > end:
                raise ValueError("truncated field %d" % number)
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield number, wire, value


def _value_info(buf):
    name, dims = None, None
    for num, _, val in _fields(buf):
        if num == 1:
            name = bytes(val).decode("utf-8")
        elif num == 2:                                  # TypeProto
            for tn, _, tv in _fields(val):
                if tn == 1:                             # tensor_type
                    for sn, _, sv in _fields(tv):
                        if sn == 2:                     # shape
                            dims = []
                            for dn, _, dv in _fields(sv):
                                if dn != 1:
                                    continue
                                d = None
                                for en, _, ev in _fields(dv):
                                    if en == 1:
                                        d = int(ev)
                                    elif en == 2:
                                        d = bytes(ev).decode("utf-8")
                                dims.append(d)
    return name, dims


def read_onnx(path):
    """Metadata, operators and I/O of an ONNX file (ModelError if it is not one)."""
    if not os.path.isfile(path):
        raise ModelError("ONNX model %s does not exist; convert the TFLite model first with "
                         "`python engines/convert.py`" % path)
    with open(path, "rb") as f:
        data = f.read()
    metadata, ops, inputs, outputs = {}, [], [], []
    try:
        view = memoryview(data)
        for num, wire, val in _fields(view):
            if num == 14 and wire == 2:                 # metadata_props
                k = v = None
                for en, _, ev in _fields(val):
                    if en == 1:
                        k = bytes(ev).decode("utf-8")
                    elif en == 2:
                        v = bytes(ev).decode("utf-8")
                if k is not None:
                    metadata[k] = v if v is not None else ""
            elif num == 7 and wire == 2:                # graph
                for gn, gw, gv in _fields(val):
                    if gn == 1 and gw == 2:             # node
                        for nn, _, nv in _fields(gv):
                            if nn == 4:
                                ops.append(bytes(nv).decode("utf-8"))
                    elif gn == 11 and gw == 2:
                        inputs.append(_value_info(gv))
                    elif gn == 12 and gw == 2:
                        outputs.append(_value_info(gv))
    except (ValueError, UnicodeDecodeError, IndexError) as e:
        raise ModelError("%s is not a readable ONNX file (%s); it may be truncated: convert the "
                         "model again with `python engines/convert.py`" % (path, e))
    if not ops and not inputs:
        raise ModelError("%s holds no ONNX graph; convert the model again" % path)
    return OnnxInfo(path, data, metadata, ops, inputs, outputs)


# ---------------------------------------------------------------------------- identities
def gpu_identity(device=0):
    """{'name', 'compute_capability'} of a CUDA device, asked through pycuda (no context)."""
    try:
        import pycuda.driver as drv
    except ImportError:
        raise EnvironmentProblem("pycuda is needed to identify the GPU an engine is built for; "
                                 "install it (`pip install pycuda`, or JetPack's python3-pycuda)")
    try:
        drv.init()
        dev = drv.Device(int(device))
        major, minor = dev.compute_capability()
        return {"name": str(dev.name()), "compute_capability": "%d.%d" % (major, minor)}
    except drv.Error as e:
        raise EnvironmentProblem("no usable CUDA device %s (%s); TensorRT engines need a GPU"
                                 % (device, e))


def _slug(text):
    return re.sub(r"[^A-Za-z0-9.]+", "_", str(text)).strip("_") or "x"


def default_cache_dir():
    return cache_dir("engines", env="TRTSSD_ENGINE_CACHE")


class BuildOptions(object):
    """How to build an engine. Validates itself (InputError naming the bad option)."""

    def __init__(self, precision="fp16", max_batch=1, dynamic_batch=False, opt_batch=None,
                 profiles=None, workspace_mb=512, timing_cache=True, calib_images=None,
                 calib_cache=None, calib_batch=8, calib_max_images=512, device=0, force=False):
        if precision not in PRECISIONS:
            raise InputError("precision %r is not one of %s" % (precision, ", ".join(PRECISIONS)))
        max_batch = int(max_batch)
        if max_batch < 1:
            raise InputError("max_batch must be at least 1, got %d" % max_batch)
        if opt_batch is None:
            opt_batch = max_batch
        opt_batch = int(opt_batch)
        if dynamic_batch and not 1 <= opt_batch <= max_batch:
            raise InputError("opt_batch %d must lie in 1..max_batch (%d)" % (opt_batch, max_batch))
        if profiles is None:
            profiles = 4 if dynamic_batch else 1
        profiles = int(profiles)
        if profiles < 1:
            raise InputError("profiles must be at least 1 (one per execution context in flight)")
        if workspace_mb is not None and float(workspace_mb) <= 0:
            raise InputError("workspace_mb must be positive, got %r" % workspace_mb)
        if int(calib_batch) < 1:
            raise InputError("calib_batch must be at least 1")
        self.precision = precision
        self.max_batch = max_batch
        self.dynamic_batch = bool(dynamic_batch)
        self.opt_batch = opt_batch if self.dynamic_batch else max_batch
        self.profiles = profiles if self.dynamic_batch else 1
        self.workspace_mb = workspace_mb
        self.timing_cache = timing_cache      # True (default file in cache dir), path, or False
        self.calib_images = calib_images      # folder, list of paths, or None
        self.calib_cache = calib_cache
        self.calib_batch = int(calib_batch)
        self.calib_max_images = int(calib_max_images)
        self.device = int(device)
        self.force = bool(force)


def engine_filename(model_name, model_sha256, options, trt_version, gpu):
    """File name encoding model, precision, batch, TensorRT version and GPU."""
    batch = "b%d" % options.max_batch
    if options.dynamic_batch:
        batch = "b1-%d-%d" % (options.opt_batch, options.max_batch)
    return "%s-%s-%s-%s-trt%s-%s-sm%s.engine" % (
        _slug(model_name), model_sha256[:12], options.precision, batch, _slug(trt_version),
        _slug(gpu["name"]), str(gpu["compute_capability"]).replace(".", ""))


def sidecar_path(engine_path):
    return engine_path + ".json"


def rebuild_command(model_path, options, output=None):
    """The shell command that rebuilds an engine with these options."""
    parts = ["python", "engines/build_engine.py", model_path or "MODEL.onnx",
             "--precision", options.precision, "--max-batch", str(options.max_batch)]
    if options.dynamic_batch:
        parts += ["--dynamic-batch", "--opt-batch", str(options.opt_batch),
                  "--profiles", str(options.profiles)]
    if options.precision == "int8" and options.calib_images:
        parts += ["--calib-images", str(options.calib_images)]
    if output:
        parts += ["--output", output]
    parts.append("--force")
    return " ".join(parts)


def read_sidecar(engine_path):
    """The sidecar dict, or None when it is missing; ModelError when it is not ours."""
    path = sidecar_path(engine_path)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            d = json.load(f)
    except ValueError as e:
        raise EngineError("engine sidecar %s is not valid JSON (%s); rebuild the engine"
                          % (path, e))
    if not isinstance(d, dict) or d.get("format") != SIDECAR_FORMAT:
        raise EngineError("%s is not a trtssd engine sidecar (format %r); rebuild the engine"
                          % (path, d.get("format") if isinstance(d, dict) else None))
    return d


def sidecar_problems(sidecar, engine_path, trt_version, gpu, model_sha256=None):
    """Why this engine must not be used here (empty list: it fits)."""
    problems = []
    if sidecar.get("trt_version") != trt_version:
        problems.append("it was built by TensorRT %s and this is TensorRT %s"
                        % (sidecar.get("trt_version"), trt_version))
    if gpu is not None and (sidecar.get("gpu_name") != gpu["name"]
                            or str(sidecar.get("compute_capability"))
                            != str(gpu["compute_capability"])):
        problems.append("it was built for %s (sm %s) and this GPU is %s (sm %s)"
                        % (sidecar.get("gpu_name"), sidecar.get("compute_capability"),
                           gpu["name"], gpu["compute_capability"]))
    if model_sha256 is not None and sidecar.get("model_sha256") != model_sha256:
        problems.append("it was built from another version of the model")
    if not os.path.isfile(engine_path):
        problems.append("the engine file is missing")
    else:
        size = os.path.getsize(engine_path)
        if size != sidecar.get("engine_bytes") or file_sha256(engine_path) != \
                sidecar.get("engine_sha256"):
            problems.append("the engine file is truncated or corrupt (%d bytes, sha256 differs "
                            "from the sidecar's)" % size)
    return problems


def load_checked_engine(engine_path, trt_version, gpu):
    """(engine bytes, sidecar, ModelSpec) of an engine that fits this machine, else EngineError."""
    if not os.path.isfile(engine_path):
        raise EngineError("engine file %s does not exist; build it with `python "
                          "engines/build_engine.py MODEL.onnx`" % engine_path)
    sidecar = read_sidecar(engine_path)
    if sidecar is None:
        raise EngineError(
            "engine %s has no sidecar %s, so its TensorRT version, GPU and model cannot be "
            "checked; trtssd does not load engines blindly. Rebuild it from the ONNX with "
            "`python engines/build_engine.py MODEL.onnx --output %s --force`"
            % (engine_path, sidecar_path(engine_path), engine_path))
    problems = sidecar_problems(sidecar, engine_path, trt_version, gpu)
    if problems:
        raise EngineError("engine %s cannot be used here: %s. Rebuild it on this machine with "
                          "`%s`" % (engine_path, "; ".join(problems),
                                    sidecar.get("rebuild_command", "python engines/"
                                                "build_engine.py MODEL.onnx --force")))
    with open(engine_path, "rb") as f:
        data = f.read()
    spec = ModelSpec.from_dict(sidecar["spec"])
    return data, sidecar, spec


# ---------------------------------------------------------------------------- calibration
def list_images(source, limit=None):
    """Image files of a folder (sorted) or a list of paths."""
    exts = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
    if isinstance(source, (list, tuple)):
        paths = [str(p) for p in source]
    elif source and os.path.isdir(source):
        paths = sorted(os.path.join(source, n) for n in os.listdir(source)
                       if n.lower().endswith(exts))
    elif source and os.path.isfile(source):
        paths = [source]
    else:
        raise InputError("calibration images %r: no such folder or file; pass --calib-images "
                         "DIR with a few hundred pictures like the ones you will detect on"
                         % (source,))
    if limit:
        paths = paths[:limit]
    return paths


def device_pointer(obj):
    """Device pointer of anything with __cuda_array_interface__ (or an int)."""
    if isinstance(obj, int):
        return obj
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is None:
        raise InputError("%r has no __cuda_array_interface__; pass a device buffer "
                         "(trtssd.gpu.cuda.DeviceArray, a CUDA torch tensor)" % type(obj).__name__)
    return int(cai["data"][0])


class CalibrationFeed(object):
    """Batches of preprocessed real images on the GPU, for TensorRT's INT8 calibrator.

    ``preprocess(frames) -> device array [n,3,H,W] float32, ready to read`` defaults to
    trtssd's GpuPreprocessor (synchronised after each batch, since TensorRT reads the
    buffer on its own stream). Only full batches are produced.
    """

    def __init__(self, image_paths, spec, batch_size, preprocess=None):
        self.paths = list(image_paths)
        self.spec = spec
        self.batch_size = int(batch_size)
        if len(self.paths) < self.batch_size:
            raise InputError("INT8 calibration needs at least one full batch of %d images, got "
                             "%d; pass more with --calib-images or lower --calib-batch"
                             % (self.batch_size, len(self.paths)))
        self._preprocess = preprocess
        self._owned = None
        self.batches_done = 0

    def _default_preprocess(self):
        from ...preprocess import GpuPreprocessor, PreprocessOptions
        import pycuda.driver as drv
        opts = PreprocessOptions.from_spec(self.spec, input_format="BGR")
        pre = GpuPreprocessor(opts, max_batch=self.batch_size, max_frame_shape=(4096, 4096, 3))
        stream = drv.Stream()
        self._owned = pre

        def run(frames):
            out, _ = pre.preprocess(frames, stream=stream)
            stream.synchronize()
            return out
        return run

    def __iter__(self):
        import cv2
        if self._preprocess is None:
            self._preprocess = self._default_preprocess()
        n = len(self.paths) // self.batch_size
        for b in range(n):
            frames = []
            for p in self.paths[b * self.batch_size:(b + 1) * self.batch_size]:
                img = cv2.imread(p, cv2.IMREAD_COLOR)
                if img is None:
                    raise InputError("calibration image %s cannot be read by OpenCV; remove it "
                                     "or convert it to JPEG/PNG" % p)
                frames.append(img)
            self.batches_done = b + 1
            yield self._preprocess(frames)

    def close(self):
        if self._owned is not None:
            self._owned.close()
            self._owned = None


def make_calibrator(trt, feed, cache_path, echo=None):
    """An IInt8EntropyCalibrator2 over ``feed`` with a calibration cache file."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._it = None
            self._current = None      # keeps the last batch alive while TensorRT reads it

        def get_batch_size(self):
            return feed.batch_size

        def get_batch(self, names, *unused):
            if self._it is None:
                self._it = iter(feed)
            try:
                self._current = next(self._it)
            except StopIteration:
                self._current = None
                return None
            if echo:
                echo("calibration batch %d" % feed.batches_done)
            return [device_pointer(self._current)] * len(names)

        def read_calibration_cache(self):
            if cache_path and os.path.isfile(cache_path):
                if echo:
                    echo("using calibration cache %s (delete it to recalibrate)" % cache_path)
                with open(cache_path, "rb") as f:
                    return f.read()
            return None

        def write_calibration_cache(self, cache):
            if cache_path:
                _atomic_write(cache_path, bytes(cache))
                if echo:
                    echo("wrote calibration cache %s" % cache_path)

    return EntropyCalibrator()


def make_progress_monitor(trt, echo, max_depth=2):
    """TensorRT 10's IProgressMonitor printing phases (and their time) up to ``max_depth``."""

    class PhasePrinter(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._depth = {}
            self._start = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            with self._lock:
                depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
                self._depth[phase_name] = depth
                self._start[phase_name] = time.perf_counter()
            if depth < max_depth:
                echo("%s%s (%d steps)" % ("  " * depth, phase_name, num_steps))

        def step_complete(self, phase_name, step):
            return True        # never cancel the build

        def phase_finish(self, phase_name):
            with self._lock:
                depth = self._depth.pop(phase_name, 0)
                t0 = self._start.pop(phase_name, None)
            if depth < max_depth and t0 is not None:
                echo("%s%s done in %.1f s" % ("  " * depth, phase_name, time.perf_counter() - t0))

    return PhasePrinter()


# ---------------------------------------------------------------------------- building
def _atomic_write(path, data):
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        os.makedirs(d)
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class _maybe_active(object):
    """``with cuda_context.active():`` when there is a context, else nothing."""

    def __init__(self, cuda_context):
        self._cm = cuda_context.active() if cuda_context is not None else None

    def __enter__(self):
        if self._cm is not None:
            self._cm.__enter__()
        return self

    def __exit__(self, *exc):
        if self._cm is not None:
            return self._cm.__exit__(*exc)
        return False


def _parser_errors(parser, info):
    lines, plugin = [], False
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        desc = str(err.desc())
        node = int(err.node()) if hasattr(err, "node") else -1
        op = None
        if hasattr(err, "node_operator"):
            op = str(err.node_operator()) or None
        if op is None and 0 <= node < len(info.op_types):
            op = info.op_types[node]
        where = "node %d (%s)" % (node, op) if node >= 0 else "model"
        lines.append("%s: %s" % (where, desc))
        if "plugin" in desc.lower():
            plugin = True
    return lines, plugin


def _build_failure_hint(messages):
    text = " ".join(messages).lower()
    if any(k in text for k in ("out of memory", "outofmemory", "cudaerrormemoryallocation",
                               "insufficient memory", "failed to allocate")):
        return ("TensorRT ran out of GPU memory while building. Lower --workspace-mb or "
                "--max-batch, or close other programs using the GPU, then build again")
    if "calibrat" in text:
        return ("INT8 calibration failed: check --calib-images, or use a Q/DQ (quantised) ONNX, "
                "or build fp16 instead")
    return ("see TensorRT's messages above; try --precision fp32, a smaller --max-batch, or "
            "another backend (--backend torch)")


def build_engine(onnx_path, engine_path, options=None, trt=None, gpu=None, echo=print,
                 preprocess=None, cuda_context=None):
    """Build ``onnx_path`` into ``engine_path`` (+ sidecar). Returns the sidecar dict.

    ``preprocess`` replaces the GPU preprocessing of INT8 calibration (tests);
    ``cuda_context`` is the trtssd.gpu.cuda.CudaContext made current while calibrating.
    """
    options = options or BuildOptions()
    api = TrtApi(trt)
    trt = api.trt
    gpu = gpu or gpu_identity(options.device)
    info = read_onnx(onnx_path)
    spec = info.spec()
    echo = echo or (lambda text: None)
    logger = make_logger(trt, echo=echo)
    t_start = time.perf_counter()
    echo("building a TensorRT %s engine (%s API, %s) for %s on %s: %s, batch %s"
         % (api.version, api.generation, "progress monitor" if api.has_progress_monitor
            else "step timing", os.path.basename(onnx_path), gpu["name"], options.precision,
            ("1..%d (opt %d)" % (options.max_batch, options.opt_batch))
            if options.dynamic_batch else options.max_batch))

    if hasattr(trt, "init_libnvinfer_plugins"):
        trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags())
    parser = trt.OnnxParser(network, logger)
    with Stopwatch(None if api.has_progress_monitor else echo, "parsing the ONNX graph"):
        ok = parser.parse(info.data)
    if not ok:
        lines, plugin = _parser_errors(parser, info)
        if plugin:
            fix = ("the model uses a TensorRT plugin this installation does not have (is "
                   "libnvinfer_plugin installed?); trtssd's converter keeps NMS out of the graph, "
                   "so re-convert the model with `python engines/convert.py`")
        else:
            fix = ("TensorRT %s's ONNX parser rejects an operator; re-convert the model with "
                   "`python engines/convert.py`, upgrade TensorRT, or use --backend onnxruntime"
                   % api.version)
        raise ModelError("TensorRT cannot parse %s: %s. Fix: %s"
                         % (onnx_path, "; ".join(lines) or "; ".join(logger.errors()), fix))

    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    by_name = dict((t.name, t) for t in inputs)
    if INPUT_NAME not in by_name or len(inputs) != 1:
        raise ModelError("%s has inputs %s, expected one input %r [N,3,H,W]; re-convert the "
                         "model with `python engines/convert.py`"
                         % (onnx_path, [t.name for t in inputs], INPUT_NAME))
    out_names = [network.get_output(i).name for i in range(network.num_outputs)]
    if sorted(out_names) != sorted(OUTPUT_NAMES):
        raise ModelError("%s has outputs %s, expected %s; re-convert the model"
                         % (onnx_path, out_names, list(OUTPUT_NAMES)))
    image = by_name[INPUT_NAME]
    chw = (3, spec.input_height, spec.input_width)
    dims = tuple(image.shape)
    if len(dims) != 4 or tuple(dims[1:]) != chw:
        raise ModelError("%s: input %r has shape %s but its ModelSpec says [N,%d,%d,%d]; "
                         "re-convert the model" % ((onnx_path, INPUT_NAME, dims) + chw))

    config = builder.create_builder_config()
    if options.workspace_mb is not None:
        api.set_workspace(config, int(float(options.workspace_mb) * (1 << 20)))
    if options.precision in ("fp16", "int8"):
        if not getattr(builder, "platform_has_fast_fp16", True):
            echo("note: this GPU has no fast FP16; the engine may be no faster than FP32")
        config.set_flag(trt.BuilderFlag.FP16)

    profile = None
    if options.dynamic_batch:
        # Several contexts that run at once need one optimisation profile each (TensorRT's
        # rule for dynamic shapes), so the engine carries `profiles` identical profiles.
        for _ in range(options.profiles):
            p = builder.create_optimization_profile()
            p.set_shape(INPUT_NAME, (1,) + chw, (options.opt_batch,) + chw,
                        (options.max_batch,) + chw)
            config.add_optimization_profile(p)
            profile = profile or p
    else:
        # A static batch: no profile needed, and any number of contexts may run at once.
        image.shape = (options.max_batch,) + chw

    int8_mode = None
    feed = None
    if options.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if info.has_qdq:
            int8_mode = "qdq"
            echo("INT8 from the model's own Q/DQ scales (no calibration)")
        else:
            int8_mode = "calibrator"
            if not options.calib_images:
                raise InputError(
                    "INT8 for %s needs calibration images (the ONNX has no Q/DQ scales): pass "
                    "--calib-images DIR (a few hundred typical pictures), or build fp16"
                    % onnx_path)
            paths = list_images(options.calib_images, options.calib_max_images)
            feed = CalibrationFeed(paths, spec, options.calib_batch, preprocess=preprocess)
            cache = options.calib_cache or os.path.join(
                os.path.dirname(os.path.abspath(engine_path)),
                "%s-%s.calib" % (_slug(spec.name), info.sha256[:12]))
            config.int8_calibrator = make_calibrator(trt, feed, cache, echo)
            if profile is not None:
                config.set_calibration_profile(profile)

    timing_path = None
    if options.timing_cache:
        timing_path = options.timing_cache if isinstance(options.timing_cache, str) else \
            os.path.join(os.path.dirname(os.path.abspath(engine_path)), "timing-trt%s-%s-sm%s.cache"
                         % (_slug(api.version), _slug(gpu["name"]),
                            str(gpu["compute_capability"]).replace(".", "")))
        old = b""
        if os.path.isfile(timing_path):
            with open(timing_path, "rb") as f:
                old = f.read()
        tc = config.create_timing_cache(old)
        if not config.set_timing_cache(tc, False):
            echo("note: timing cache %s does not fit this TensorRT/GPU; starting a new one"
                 % timing_path)
            config.set_timing_cache(config.create_timing_cache(b""), False)

    monitor = None
    if api.has_progress_monitor:
        monitor = make_progress_monitor(trt, echo)
        config.progress_monitor = monitor

    logger.clear()
    owned_ctx = None
    try:
        if feed is not None and preprocess is None and cuda_context is None:
            # the calibrator's GPU preprocessing runs in the device's primary context
            from ...gpu.cuda import CudaContext
            cuda_context = owned_ctx = CudaContext(options.device)
        with _maybe_active(cuda_context if feed is not None else None):
            with Stopwatch(None if api.has_progress_monitor else echo,
                           "building the engine (takes minutes on a Jetson)"):
                serialized = builder.build_serialized_network(network, config)
    finally:
        if feed is not None:
            feed.close()
        if owned_ctx is not None:
            owned_ctx.close()
    if serialized is None:
        errs = logger.errors()
        raise EngineError("TensorRT could not build an engine from %s (%s). %s"
                          % (onnx_path, "; ".join(errs) or "no message",
                             _build_failure_hint(errs)))
    data = bytes(serialized)
    if not data:
        raise EngineError("TensorRT built an empty engine from %s; %s"
                          % (onnx_path, _build_failure_hint(logger.errors())))

    if timing_path:
        try:
            _atomic_write(timing_path, bytes(config.get_timing_cache().serialize()))
        except (OSError, AttributeError) as e:
            echo("note: could not save the timing cache %s (%s)" % (timing_path, e))

    _atomic_write(engine_path, data)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "model_name": spec.name,
        "source_model": os.path.abspath(onnx_path),
        "model_sha256": info.sha256,
        "precision": options.precision,
        "int8_mode": int8_mode,
        "max_batch": options.max_batch,
        "dynamic_batch": options.dynamic_batch,
        "opt_batch": options.opt_batch,
        "profiles": options.profiles,
        "trt_version": api.version,
        "api_generation": api.generation,
        "gpu_name": gpu["name"],
        "compute_capability": str(gpu["compute_capability"]),
        "engine_bytes": len(data),
        "engine_sha256": hashlib.sha256(data).hexdigest(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "build_seconds": round(time.perf_counter() - t_start, 2),
        "rebuild_command": rebuild_command(os.path.abspath(onnx_path), options, engine_path),
        "spec": spec.to_dict(),
    }
    _atomic_write(sidecar_path(engine_path), json.dumps(sidecar, indent=1).encode("utf-8"))
    echo("engine written: %s (%.1f MB, %.1f s)" % (engine_path, len(data) / 1e6,
                                                   sidecar["build_seconds"]))
    return sidecar


def onnx_for_model(model_path):
    """An .onnx path for ``model_path`` (.onnx as is; .tflite converted through trtssd.models.resolve)."""
    if model_path.lower().endswith(".tflite") or model_path == "synthetic":
        from ...models.resolve import onnx_for
        return onnx_for(model_path)
    if not model_path.lower().endswith(".onnx"):
        raise InputError("model %s is neither .onnx nor .tflite; pass the ONNX written by "
                         "`python engines/convert.py`" % model_path)
    return model_path


def ensure_engine(model_path, options=None, cache_dir=None, output=None, trt=None, gpu=None,
                  echo=print, preprocess=None, cuda_context=None):
    """The engine for this model/options/TensorRT/GPU: cached if it fits, else (re)built.

    Returns ``(engine_path, sidecar)``.
    """
    options = options or BuildOptions()
    api = TrtApi(trt)
    gpu = gpu or gpu_identity(options.device)
    onnx_path = onnx_for_model(model_path)
    info = read_onnx(onnx_path)
    spec = info.spec()
    if output:
        engine_path = output
    else:
        engine_path = os.path.join(cache_dir or default_cache_dir(),
                                   engine_filename(spec.name, info.sha256, options, api.version,
                                                   gpu))
    if os.path.isfile(engine_path) and not options.force:
        reasons = []
        try:
            sidecar = read_sidecar(engine_path)
        except EngineError as e:
            sidecar, reasons = None, [str(e)]
        if sidecar is None and not reasons:
            reasons = ["it has no sidecar"]
        if sidecar is not None:
            reasons = sidecar_problems(sidecar, engine_path, api.version, gpu, info.sha256)
            for key in ("precision", "max_batch", "dynamic_batch"):
                if sidecar.get(key) != getattr(options, key):
                    reasons.append("it was built with %s=%r, not %r"
                                   % (key, sidecar.get(key), getattr(options, key)))
        if not reasons:
            if echo:
                echo("using cached engine %s" % engine_path)
            return engine_path, sidecar
        if echo:
            echo("engine %s is stale (%s): rebuilding" % (engine_path, "; ".join(reasons)))
    sidecar = build_engine(onnx_path, engine_path, options, trt=api.trt, gpu=gpu, echo=echo,
                           preprocess=preprocess, cuda_context=cuda_context)
    return engine_path, sidecar


# ---------------------------------------------------------------------------- command line
def add_arguments(parser):
    parser.add_argument("model", help="ONNX written by engines/convert.py (or a .tflite, "
                                      "converted on the fly)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16")
    parser.add_argument("--max-batch", type=int, default=1)
    parser.add_argument("--dynamic-batch", action="store_true",
                        help="batch 1..max-batch in one engine (an optimisation profile each "
                             "for --profiles contexts in flight)")
    parser.add_argument("--opt-batch", type=int, default=None,
                        help="batch size TensorRT tunes for (default: --max-batch)")
    parser.add_argument("--profiles", type=int, default=None,
                        help="optimisation profiles of a dynamic engine = contexts that can "
                             "run at once (default 4)")
    parser.add_argument("--workspace-mb", type=float, default=512)
    parser.add_argument("--timing-cache", default=None,
                        help="timing cache file (default: beside the engine)")
    parser.add_argument("--no-timing-cache", action="store_true")
    parser.add_argument("--calib-images", default=None,
                        help="folder of images for INT8 entropy calibration")
    parser.add_argument("--calib-cache", default=None,
                        help="calibration cache file (default: beside the engine)")
    parser.add_argument("--calib-batch", type=int, default=8)
    parser.add_argument("--calib-max-images", type=int, default=512)
    parser.add_argument("--cache-dir", default=None,
                        help="engine cache folder (default $TRTSSD_ENGINE_CACHE or "
                             "~/.cache/trtssd/engines)")
    parser.add_argument("--output", "-o", default=None, help="engine path (overrides the cache "
                                                            "name)")
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild even if a fitting engine "
                                                             "is cached")
    parser.add_argument("--quiet", "-q", action="store_true")
    return parser


def options_from_args(args):
    timing = False if args.no_timing_cache else (args.timing_cache or True)
    return BuildOptions(precision=args.precision, max_batch=args.max_batch,
                        dynamic_batch=args.dynamic_batch, opt_batch=args.opt_batch,
                        profiles=args.profiles, workspace_mb=args.workspace_mb,
                        timing_cache=timing, calib_images=args.calib_images,
                        calib_cache=args.calib_cache, calib_batch=args.calib_batch,
                        calib_max_images=args.calib_max_images, device=args.device,
                        force=args.force)


def run(args, trt=None, gpu=None):
    """Run the parsed command; prints the engine path. Returns the process exit code."""
    echo = None if args.quiet else (lambda text: print(text, flush=True))
    try:
        path, _ = ensure_engine(args.model, options_from_args(args), cache_dir=args.cache_dir,
                                output=args.output, trt=trt, gpu=gpu, echo=echo)
    except TrtssdError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print(path)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="build_engine", description="Build (or find cached) a TensorRT engine for an "
                                         "SSD model converted by trtssd.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


__all__ = ["BuildOptions", "build_engine", "ensure_engine", "load_checked_engine",
           "engine_filename", "read_onnx", "read_sidecar", "sidecar_problems", "gpu_identity",
           "rebuild_command", "CalibrationFeed", "make_calibrator", "make_progress_monitor",
           "add_arguments", "run", "main"]
