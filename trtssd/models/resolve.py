"""Where the model and its labels are, the cached ONNX conversion, and the spec inside it.

Search order for the model: an explicit path, then ``$TRTSSD_MODEL``, then
``<checkout>/../shared/models/detect.tflite`` when running from the source tree.
The ONNX made from a ``.tflite`` is cached under ``$TRTSSD_CACHE`` (default
``~/.cache/trtssd``), keyed on the file's sha256 and the converter version.
"""
import hashlib
import os

from ..core.env import cache_dir
from ..core.errors import ModelError
from ..core.spec import SPEC_METADATA_KEY, ModelSpec
from .tflite_reader import GET_THE_MODEL

MODEL_ENV = "TRTSSD_MODEL"
LABELS_ENV = "TRTSSD_LABELS"
CACHE_ENV = "TRTSSD_CACHE"
DEFAULT_MODEL_NAME = "detect.tflite"
SYNTHETIC = "synthetic"
LABEL_NAMES = ("coco_labels.txt", "labelmap.txt", "labels.txt")


def _checkout_models_dir():
    """``<checkout>/../shared/models``: this file is <checkout>/trtssd/models/resolve.py."""
    here = os.path.dirname(os.path.abspath(__file__))             # <checkout>/trtssd/models
    checkout = os.path.dirname(os.path.dirname(here))
    return os.path.join(os.path.dirname(checkout), "shared", "models")


default_cache_dir = cache_dir     # $TRTSSD_CACHE or ~/.cache/trtssd


def resolve_model(path=None):
    """Path of the model to use (.tflite, .onnx or engine); ModelError says how to get one."""
    if path:
        if not os.path.isfile(path):
            raise ModelError("model file %s does not exist; pass the path of detect.tflite (or "
                             "an .onnx made by `trtssd convert`); %s" % (path, GET_THE_MODEL))
        return os.path.abspath(path)
    env = os.environ.get(MODEL_ENV)
    if env:
        if not os.path.isfile(env):
            raise ModelError("$%s names %s, which does not exist; %s" % (MODEL_ENV, env,
                                                                          GET_THE_MODEL))
        return os.path.abspath(env)
    candidate = os.path.join(_checkout_models_dir(), DEFAULT_MODEL_NAME)
    if os.path.isfile(candidate):
        return candidate
    raise ModelError("no model given: pass --model PATH or set $%s to detect.tflite; %s"
                     % (MODEL_ENV, GET_THE_MODEL))


def resolve_labels(path=None, model_path=None, beside_only=False):
    """Path of the label file: explicit, $TRTSSD_LABELS, or beside the model (labels.txt,
    labelmap.txt, coco_labels.txt, or MODEL.txt / MODEL.labels); None if none. The checkout's
    COCO labels are the fallback only for the COCO SSD (a .tflite or trtssd's own ONNX), not
    for a foreign ONNX (``beside_only``, or found so here)."""
    if path:
        if not os.path.isfile(path):
            raise ModelError("label file %s does not exist; it is labelmap.txt in %s"
                             % (path, GET_THE_MODEL.split("archive ")[-1]))
        return os.path.abspath(path)
    env = os.environ.get(LABELS_ENV)
    if env:
        if not os.path.isfile(env):
            raise ModelError("$%s names %s, which does not exist" % (LABELS_ENV, env))
        return os.path.abspath(env)
    dirs = []
    if model_path and model_path != SYNTHETIC:
        stem = os.path.splitext(os.path.abspath(model_path))[0]
        for p in (stem + ".txt", stem + ".labels"):
            if os.path.isfile(p):
                return p
        dirs.append(os.path.dirname(os.path.abspath(model_path)))
    if not beside_only and not _is_foreign_onnx(model_path):
        dirs.append(_checkout_models_dir())
    for d in dirs:
        for name in LABEL_NAMES:
            p = os.path.join(d, name)
            if os.path.isfile(p):
                return p
    return None


def _is_foreign_onnx(model_path):
    if not model_path or not str(model_path).lower().endswith(".onnx") or \
            not os.path.isfile(model_path):
        return False
    try:
        return SPEC_METADATA_KEY not in _metadata(model_path)
    except ModelError:
        return False


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def onnx_for(model_path, cache_dir=None):
    """An .onnx for ``model_path``: itself if it is one, else the cached conversion of the
    .tflite (made on first use, written atomically). ``model_path='synthetic'`` gives the
    random-weight model of the same architecture (timing only)."""
    if model_path == SYNTHETIC:
        from .convert import CONVERTER_VERSION, synthetic_model
        out = os.path.join(cache_dir or default_cache_dir(),
                           "synthetic-seed0-c%s.onnx" % CONVERTER_VERSION)
        if not os.path.isfile(out):
            synthetic_model(0).save(out)
        return out
    model_path = resolve_model(model_path)
    if model_path.lower().endswith(".onnx"):
        if SPEC_METADATA_KEY in _metadata(model_path):
            return model_path
        from .onnx_models import prepare_onnx   # a foreign ONNX: recognised and adapted
        return prepare_onnx(model_path, cache_dir=cache_dir)
    from .convert import CONVERTER_VERSION, convert_model
    cache_dir = cache_dir or default_cache_dir()
    digest = file_sha256(model_path)
    base = os.path.splitext(os.path.basename(model_path))[0]
    out = os.path.join(cache_dir, "%s-%s-c%s.onnx" % (base, digest[:16], CONVERTER_VERSION))
    if not _cached_onnx_ok(out):
        _save_cached(convert_model(model_path), out)
    return out


def _metadata(onnx_path):
    """An ONNX file's metadata {key: value}, read without its weights' arrays."""
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        try:
            model = onnx.load(onnx_path, load_external_data=False)
        except Exception as e:
            raise ModelError("%s is not a readable ONNX model (%s: %s); re-create it with "
                             "`trtssd convert detect.tflite -o model.onnx`"
                             % (onnx_path, type(e).__name__, e))
        meta = {p.key: p.value for p in model.metadata_props}
    else:   # onnxruntime alone can read the metadata too
        try:
            import onnxruntime as ort
            meta = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]) \
                .get_modelmeta().custom_metadata_map
        except ImportError:
            from ..core.errors import EnvironmentProblem
            raise EnvironmentProblem("reading an ONNX model needs `onnx` or `onnxruntime`: "
                                     "pip install onnx")
    return meta


def load_spec(onnx_path):
    """The ModelSpec stored in an ONNX file's metadata (key ``trtssd.spec``)."""
    meta = _metadata(onnx_path)
    if SPEC_METADATA_KEY not in meta:
        raise ModelError("%s has no %r metadata, so it was not made by trtssd's converter "
                         "nor adapted by trtssd; give it as --model (a foreign ONNX is "
                         "recognised, or described by a spec: docs/MODELS.md), or convert a "
                         ".tflite with `trtssd convert`" % (onnx_path,
                                                                       SPEC_METADATA_KEY))
    return ModelSpec.from_json(meta[SPEC_METADATA_KEY])


def _cached_onnx_ok(path):
    """A cached conversion that exists and reads back whole (a cut or corrupt one is rebuilt,
    not reported)."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return False
    try:
        import onnx
    except ImportError:
        return True
    try:
        model = onnx.load(path)
    except Exception:
        return False
    return any(p.key == SPEC_METADATA_KEY for p in model.metadata_props)


def _save_cached(converted, path):
    """Write a conversion into the cache; a cache that cannot be written is a one-line error
    naming the folder and the fix."""
    try:
        converted.save(path)
    except OSError as e:
        raise ModelError("cannot write the model cache %s (%s); set $%s to a folder you may "
                         "write to" % (os.path.dirname(path), e.strerror or e, CACHE_ENV))
