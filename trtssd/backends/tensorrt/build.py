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

Building takes steps (``build_engine``): a ``BuildPlan`` (what this TensorRT version can be
asked for: TensorRT 11 is strongly typed only, FP16 from an FP16 copy of the ONNX and INT8
from Q/DQ only), ``parse_network``, ``configure``, ``build_serialized``, ``write_cached``.

Command line: ``trtssd build-engine MODEL`` (``make engines``), which calls
``add_arguments(parser)`` + ``run(args)`` (or ``main(argv)``).
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
from ...core.nullcontext import NULL_CONTEXT
from ...core.errors import EngineError, EnvironmentProblem, InputError, ModelError, TrtssdError
from ...core.spec import ModelSpec
from ...models.resolve import file_sha256
from .compat import TrtApi, Stopwatch, make_logger
from .onnx_info import OnnxInfo, read_onnx  # noqa: F401 (OnnxInfo re-exported)

SIDECAR_FORMAT = "trtssd-engine/1"
PRECISIONS = ("fp16", "fp32", "int8")
INPUT_NAME = "images"
OUTPUT_NAMES = ("box_encodings", "class_scores")


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
    """``$TRTSSD_ENGINE_CACHE``, else ``engines/`` in trtssd's cache folder."""
    return os.environ.get("TRTSSD_ENGINE_CACHE") or os.path.join(cache_dir(), "engines")


class BuildOptions(object):
    """How to build an engine. Validates itself (InputError naming the bad option)."""

    def __init__(self, precision="fp16", max_batch=1, dynamic_batch=False, opt_batch=None,
                 profiles=None, workspace_mb=512, timing_cache=True, calib_images=None,
                 calib_cache=None, calib_batch=8, calib_max_images=512, device=0, force=False,
                 qdq=False, version_compatible=False):
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
        if qdq and precision != "int8":
            raise InputError("--qdq builds INT8 from the model's own scales: add --precision int8")
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
        self.qdq = bool(qdq)                    # INT8 from the model's own Q/DQ scales only
        self.version_compatible = bool(version_compatible)   # for the lean runtime


def engine_filename(model_name, model_sha256, options, trt_version, gpu):
    """File name encoding model, precision, batch, TensorRT version and GPU."""
    batch = "b%d" % options.max_batch
    if options.dynamic_batch:
        batch = "b1-%d-%d" % (options.opt_batch, options.max_batch)
    precision = options.precision + ("-vc" if options.version_compatible else "")
    return "%s-%s-%s-%s-trt%s-%s-sm%s.engine" % (
        _slug(model_name), model_sha256[:12], precision, batch, _slug(trt_version),
        _slug(gpu["name"]), str(gpu["compute_capability"]).replace(".", ""))


def sidecar_path(engine_path):
    return engine_path + ".json"


def rebuild_command(model_path, options, output=None):
    """The shell command that rebuilds an engine with these options."""
    parts = ["trtssd", "build-engine", model_path or "MODEL.onnx",
             "--precision", options.precision, "--max-batch", str(options.max_batch)]
    if options.dynamic_batch:
        parts += ["--dynamic-batch", "--opt-batch", str(options.opt_batch),
                  "--profiles", str(options.profiles)]
    if options.precision == "int8" and options.qdq:
        parts.append("--qdq")
    elif options.precision == "int8" and options.calib_images:
        parts += ["--calib-images", str(options.calib_images)]
    if options.version_compatible:
        parts.append("--version-compatible")
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
        raise EngineError("engine file %s does not exist; build it with `trtssd "
                          "build-engine MODEL.onnx`" % engine_path)
    sidecar = read_sidecar(engine_path)
    if sidecar is None:
        raise EngineError(
            "engine %s has no sidecar %s, so its TensorRT version, GPU and model cannot be "
            "checked; trtssd does not load engines blindly. Rebuild it from the ONNX with "
            "`trtssd build-engine MODEL.onnx --output %s --force`"
            % (engine_path, sidecar_path(engine_path), engine_path))
    problems = sidecar_problems(sidecar, engine_path, trt_version, gpu)
    if problems:
        raise EngineError("engine %s cannot be used here: %s. Rebuild it on this machine with "
                          "`%s`" % (engine_path, "; ".join(problems),
                                    sidecar.get("rebuild_command", "trtssd build-engine "
                                                "MODEL.onnx --force")))
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
        self.needs_gpu = preprocess is None     # trtssd's GpuPreprocessor, in a CUDA context
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


class BuildPlan(object):
    """What this TensorRT will be asked for: decided from the options, the ONNX and the version.

    ``strongly_typed``: the network takes its precision from the ONNX's types (TensorRT 11 has
    nothing else; its FP16 engines come from an FP16 copy of the ONNX, see ``fp16.py``), else
    builder flags choose it (``BuilderFlag.FP16``/``INT8``, TensorRT 8.x-10.x). ``int8_mode``:
    None, ``'qdq'`` (the model's own scales) or ``'calibrator'`` (entropy calibration).
    """

    def __init__(self, api, options, info, engine_path):
        self.options = options
        self.info = info                  # the ONNX as given (its sha256 names the engine)
        self.parse_info = info            # the ONNX handed to the parser
        self.spec = info.spec()
        self.strongly_typed = api.strongly_typed_only
        self.int8_mode = None
        p = options.precision
        if options.version_compatible and not api.has_version_compatible:
            raise InputError(
                "TensorRT %s cannot build version-compatible engines (BuilderFlag."
                "VERSION_COMPATIBLE came with 8.6); build without --version-compatible, or "
                "upgrade TensorRT" % api.version)
        if p == "int8":
            if info.has_qdq:
                self.int8_mode = "qdq"
            elif options.qdq or api.strongly_typed_only:
                hint = ("the .tflite with --qdq (trtssd writes its own quantisation as Q/DQ), "
                        "or an ONNX with QuantizeLinear/DequantizeLinear nodes")
                if options.qdq:
                    raise InputError("--qdq: %s has no QuantizeLinear/DequantizeLinear nodes; "
                                     "pass %s" % (info.path, hint))
                raise InputError(
                    "TensorRT %s builds INT8 only from a model's own Q/DQ scales (it has no "
                    "INT8 calibrator), and %s has none: pass %s (`trtssd build-engine "
                    "detect.tflite --precision int8 --qdq`); --calib-images needs TensorRT 10 or "
                    "older" % (api.version, info.path, hint))
            elif not api.has_calibrator:
                raise InputError("TensorRT %s has no INT8 calibrator; use --qdq" % api.version)
            else:
                self.int8_mode = "calibrator"
                if not options.calib_images:
                    raise InputError(
                        "INT8 for %s needs calibration images (the ONNX has no Q/DQ scales): "
                        "pass --calib-images DIR (a few hundred typical pictures), or --qdq, "
                        "or build fp16" % info.path)
        if self.strongly_typed and p == "fp16":
            if info.has_qdq:
                raise InputError(
                    "%s carries Q/DQ (INT8) nodes, and TensorRT %s builds a network in its "
                    "ONNX's own types: build it with --precision int8, or pass the float ONNX "
                    "for fp16" % (info.path, api.version))
            self.parse_info = read_onnx(_fp16_onnx(info, engine_path))

    def describe(self):
        if self.strongly_typed:
            typing = "strongly typed, %s" % ("FP16 ONNX" if self.options.precision == "fp16"
                                             else "types of the ONNX")
        else:
            typing = "weakly typed, builder flags"
        return typing + (", version-compatible" if self.options.version_compatible else "")


def _fp16_onnx(info, engine_path):
    """The FP16 copy of ``info``'s ONNX beside the engine (made once per model)."""
    from .fp16 import write_fp16
    out = os.path.join(os.path.dirname(os.path.abspath(engine_path)), "%s-%s.fp16.onnx"
                       % (_slug(info.spec().name), info.sha256[:12]))
    if not os.path.isfile(out):
        try:
            write_fp16(info.path, out)
        except ImportError as e:
            raise EnvironmentProblem("an FP16 engine on TensorRT 11 is built from an FP16 copy "
                                     "of the ONNX, which needs the onnx package (%s): `pip "
                                     "install onnx`, or build --precision fp32" % e)
    return out


def parse_network(api, logger, plan, echo):
    """Step 1: builder, network and parser; the ONNX parsed and its I/O checked.

    Returns ``(builder, network, parser, image)``; ``image`` is the network's input tensor.
    """
    trt = api.trt
    info, onnx_path = plan.parse_info, plan.info.path
    if hasattr(trt, "init_libnvinfer_plugins"):
        trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags(strongly_typed=plan.strongly_typed))
    parser = trt.OnnxParser(network, logger)
    with Stopwatch(None if api.has_progress_monitor else echo, "parsing the ONNX graph"):
        ok = parser.parse(info.data)
    if not ok:
        lines, plugin = _parser_errors(parser, info)
        if plugin:
            fix = ("the model uses a TensorRT plugin this installation does not have (is "
                   "libnvinfer_plugin installed?); trtssd's converter keeps NMS out of the graph, "
                   "so re-convert the model with `trtssd convert`")
        else:
            fix = ("TensorRT %s's ONNX parser rejects an operator; re-convert the model with "
                   "`trtssd convert`, upgrade TensorRT, or use --backend onnxruntime"
                   % api.version)
        what = onnx_path if info is plan.info else "%s (its FP16 copy %s; node numbers are " \
            "the copy's)" % (onnx_path, info.path)
        raise ModelError("TensorRT cannot parse %s: %s. Fix: %s"
                         % (what, "; ".join(lines) or "; ".join(logger.errors()), fix))
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    by_name = dict((t.name, t) for t in inputs)
    if INPUT_NAME not in by_name or len(inputs) != 1:
        raise ModelError("%s has inputs %s, expected one input %r [N,3,H,W]; re-convert the "
                         "model with `trtssd convert`"
                         % (onnx_path, [t.name for t in inputs], INPUT_NAME))
    out_names = [network.get_output(i).name for i in range(network.num_outputs)]
    if sorted(out_names) != sorted(OUTPUT_NAMES):
        raise ModelError("%s has outputs %s, expected %s; re-convert the model"
                         % (onnx_path, out_names, list(OUTPUT_NAMES)))
    image = by_name[INPUT_NAME]
    spec = plan.spec
    chw = (3, spec.input_height, spec.input_width)
    dims = tuple(image.shape)
    if len(dims) != 4 or tuple(dims[1:]) != chw:
        raise ModelError("%s: input %r has shape %s but its ModelSpec says [N,%d,%d,%d]; "
                         "re-convert the model" % ((onnx_path, INPUT_NAME, dims) + chw))
    return builder, network, parser, image


def configure(api, builder, image, plan, engine_path, gpu, echo, preprocess=None):
    """Step 2: the builder config (workspace, precision, batch profiles, INT8, timing cache,
    progress). Returns ``(config, calibration feed or None, timing cache path or None)``."""
    trt = api.trt
    options, spec = plan.options, plan.spec
    chw = (3, spec.input_height, spec.input_width)
    config = builder.create_builder_config()
    if options.workspace_mb is not None:
        api.set_workspace(config, int(float(options.workspace_mb) * (1 << 20)))
    if not plan.strongly_typed and options.precision in ("fp16", "int8"):
        if not getattr(builder, "platform_has_fast_fp16", True):
            echo("note: this GPU has no fast FP16; the engine may be no faster than FP32")
        config.set_flag(trt.BuilderFlag.FP16)
    if options.version_compatible:
        # runs on the lean runtime of this version (tensorrt_lean), which is left out of the plan
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)

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

    feed = None
    if plan.int8_mode == "qdq":
        if not plan.strongly_typed:
            config.set_flag(trt.BuilderFlag.INT8)
        echo("INT8 from the model's own Q/DQ scales (no calibration)")
    elif plan.int8_mode == "calibrator":
        config.set_flag(trt.BuilderFlag.INT8)
        paths = list_images(options.calib_images, options.calib_max_images)
        feed = CalibrationFeed(paths, spec, options.calib_batch, preprocess=preprocess)
        cache = options.calib_cache or os.path.join(
            os.path.dirname(os.path.abspath(engine_path)),
            "%s-%s.calib" % (_slug(spec.name), plan.info.sha256[:12]))
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

    if api.has_progress_monitor:
        config.progress_monitor = make_progress_monitor(trt, echo)
    return config, feed, timing_path


def build_serialized(api, builder, network, config, logger, plan, feed, cuda_context, echo):
    """Step 3: ``build_serialized_network``; the engine's bytes, or EngineError with
    TensorRT's messages and what to change."""
    logger.clear()
    owned_ctx = None
    try:
        if feed is not None and cuda_context is None and feed.needs_gpu:
            # the calibrator's GPU preprocessing runs in the device's primary context
            from ...gpu.cuda import CudaContext
            cuda_context = owned_ctx = CudaContext(plan.options.device)
        with (cuda_context.active() if cuda_context is not None and feed is not None
              else NULL_CONTEXT):
            with Stopwatch(None if api.has_progress_monitor else echo,
                           "building the engine (takes minutes on a Jetson)"):
                serialized = builder.build_serialized_network(network, config)
    finally:
        if feed is not None:
            feed.close()
        if owned_ctx is not None:
            owned_ctx.close()
    onnx_path = plan.info.path
    if serialized is None:
        errs = logger.errors()
        raise EngineError("TensorRT could not build an engine from %s (%s). %s"
                          % (onnx_path, "; ".join(errs) or "no message",
                             _build_failure_hint(errs)))
    data = bytes(serialized)
    if not data:
        raise EngineError("TensorRT built an empty engine from %s; %s"
                          % (onnx_path, _build_failure_hint(logger.errors())))
    return data


def write_cached(api, config, plan, data, engine_path, timing_path, gpu, seconds, echo):
    """Step 4: the timing cache, the engine and its sidecar, each written atomically.

    Returns the sidecar dict."""
    options, spec, info = plan.options, plan.spec, plan.info
    if timing_path:
        try:
            _atomic_write(timing_path, bytes(config.get_timing_cache().serialize()))
        except (OSError, AttributeError) as e:
            echo("note: could not save the timing cache %s (%s)" % (timing_path, e))
    _atomic_write(engine_path, data)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "model_name": spec.name,
        "source_model": os.path.abspath(info.path),
        "model_sha256": info.sha256,
        "precision": options.precision,
        "int8_mode": plan.int8_mode,
        "strongly_typed": plan.strongly_typed,
        "version_compatible": options.version_compatible,
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
        "build_seconds": round(seconds, 2),
        "rebuild_command": rebuild_command(os.path.abspath(info.path), options, engine_path),
        "spec": spec.to_dict(),
    }
    _atomic_write(sidecar_path(engine_path), json.dumps(sidecar, indent=1).encode("utf-8"))
    echo("engine written: %s (%.1f MB, %.1f s)" % (engine_path, len(data) / 1e6,
                                                   sidecar["build_seconds"]))
    return sidecar


def build_engine(onnx_path, engine_path, options=None, trt=None, gpu=None, echo=print,
                 preprocess=None, cuda_context=None):
    """Build ``onnx_path`` into ``engine_path`` (+ sidecar). Returns the sidecar dict.

    The steps: plan (what this TensorRT can be asked for), parse, configure, build, write.
    ``preprocess`` replaces the GPU preprocessing of INT8 calibration (tests);
    ``cuda_context`` is the trtssd.gpu.cuda.CudaContext made current while calibrating.
    """
    options = options or BuildOptions()
    api = TrtApi(trt)
    api.require_builder()
    gpu = gpu or gpu_identity(options.device)
    echo = echo or (lambda text: None)
    plan = BuildPlan(api, options, read_onnx(onnx_path), engine_path)
    logger = make_logger(api.trt, echo=echo)
    t_start = time.perf_counter()
    echo("building a TensorRT %s engine (%s API, %s, %s) for %s on %s: %s, batch %s"
         % (api.version, api.generation, plan.describe(), "progress monitor"
            if api.has_progress_monitor else "step timing", os.path.basename(onnx_path),
            gpu["name"], options.precision,
            ("1..%d (opt %d)" % (options.max_batch, options.opt_batch))
            if options.dynamic_batch else options.max_batch))
    builder, network, parser, image = parse_network(api, logger, plan, echo)
    config, feed, timing_path = configure(api, builder, image, plan, engine_path, gpu, echo,
                                          preprocess)
    data = build_serialized(api, builder, network, config, logger, plan, feed, cuda_context, echo)
    return write_cached(api, config, plan, data, engine_path, timing_path, gpu,
                        time.perf_counter() - t_start, echo)


def onnx_for_model(model_path, qdq=False):
    """An .onnx path for ``model_path``: an .onnx as is; a .tflite converted through
    trtssd.models (with its own quantisation as Q/DQ nodes when ``qdq``), cached."""
    if model_path.lower().endswith((".tflite", ".pb")) or model_path == "synthetic":
        from ...models.resolve import onnx_for
        if not qdq:
            return onnx_for(model_path)
        if model_path == "synthetic":
            raise InputError("--qdq: the synthetic model has random float weights and no "
                             "quantisation scales; pass the real .tflite")
        return _qdq_onnx_for(model_path)
    if not model_path.lower().endswith(".onnx"):
        raise InputError("model %s is neither .onnx, .tflite nor .pb; pass the ONNX written by "
                         "`trtssd convert`" % model_path)
    return model_path


def _qdq_onnx_for(model_path):
    """The Q/DQ conversion of a .tflite for TensorRT (``trtssd convert --qdq symmetric``:
    int8 with zero points 0, the only explicit INT8 TensorRT builds; the file's own uint8
    zero points are not), cached beside the float one."""
    from ...models import convert, resolve
    src = resolve.resolve_model(model_path)
    base = os.path.splitext(os.path.basename(src))[0]
    out = os.path.join(resolve.default_cache_dir(), "%s-%s-c%s.qdq-symmetric.onnx"
                       % (base, file_sha256(src)[:16], convert.CONVERTER_VERSION))
    if not os.path.isfile(out):
        if not os.path.isdir(os.path.dirname(out)):
            os.makedirs(os.path.dirname(out))
        tmp = "%s.tmp%d.onnx" % (out, os.getpid())
        try:
            convert.convert_model(src, qdq="symmetric").save(tmp)
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return out


def ensure_engine(model_path, options=None, cache_dir=None, output=None, trt=None, gpu=None,
                  echo=print, preprocess=None, cuda_context=None):
    """The engine for this model/options/TensorRT/GPU: cached if it fits, else (re)built.

    Returns ``(engine_path, sidecar)``.
    """
    options = options or BuildOptions()
    api = TrtApi(trt)
    api.require_builder()
    gpu = gpu or gpu_identity(options.device)
    onnx_path = onnx_for_model(model_path, qdq=options.qdq)
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
            for key in ("precision", "max_batch", "dynamic_batch", "version_compatible"):
                got = sidecar.get(key, False if key == "version_compatible" else None)
                if got != getattr(options, key):
                    reasons.append("it was built with %s=%r, not %r"
                                   % (key, got, getattr(options, key)))
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
    parser.add_argument("model", help="ONNX written by `trtssd convert` (or a .tflite, "
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
    parser.add_argument("--qdq", action="store_true",
                        help="INT8 from the model's own quantisation (Q/DQ nodes; a .tflite is "
                             "converted with them): the only INT8 of TensorRT 11")
    parser.add_argument("--version-compatible", action="store_true",
                        help="an engine the lean runtime (tensorrt_lean, same TensorRT version)"
                             " runs; TensorRT 8.6+")
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
                        force=args.force, qdq=args.qdq,
                        version_compatible=args.version_compatible)


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
        prog="trtssd build-engine", description="Build (or find cached) a TensorRT engine for an "
                                         "SSD model converted by trtssd.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


__all__ = ["BuildOptions", "BuildPlan", "build_engine", "parse_network", "configure",
           "build_serialized", "write_cached", "ensure_engine", "onnx_for_model",
           "load_checked_engine", "engine_filename", "read_onnx", "read_sidecar",
           "sidecar_problems", "gpu_identity", "rebuild_command", "CalibrationFeed",
           "make_calibrator", "make_progress_monitor", "add_arguments", "run", "main"]
