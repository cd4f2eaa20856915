"""Conformance: trtssd's TensorRT code and the fakes, refereed by NVIDIA's real bindings.

For each version with an x86 wheel on PyPI (8.6.1, 10.3 as on JetPack 6, the newest 10.x, the
newest 11.x, and the 11.x lean runtime), the real extension module is imported with stub
libraries (tests/support/fake_tensorrt/real.py) and its surface dumped. Then:

* every build and run path of trtssd (scenarios.exercise: each precision, INT8 from Q/DQ and
  calibrated, dynamic batch, timing cache, progress monitor, CUDA-graph capture, version-
  compatible engines run by the lean runtime) runs against the fake of that generation behind a
  recorder, and every module attribute, class attribute, enum member, instance attribute read
  or set, and call (positional count, keyword names) it made must exist in the real module and
  be accepted by one of its pybind11 signatures; the methods trtssd's subclasses override
  (logger, calibrator, progress monitor) must exist in the real base class;
* the other way round, each fake offers nothing its real version lacks (module names, class
  members, enum members, properties it lets be set), with the same argument names.

8.2, 8.4 and 8.5 have no x86 wheel: those fakes stay documentation-based. Nothing here runs
TensorRT: the stubs let the module import, not build or infer.
"""
import inspect

import pytest

from support.fake_tensorrt import LEAN, make, real
from support.fake_tensorrt.recorder import Recorder, check, check_overrides
from support.fake_tensorrt.scenarios import exercise

# fake modules' own test hooks (not TensorRT API): call log, fault injection, features
TEST_ONLY = {"calls", "deprecated", "faults", "FEATURES", "FakeTensorRTError"}
REAL_VERSIONS = sorted(real.WHEELS)


def surface_of(label):
    try:
        return real.surface(label)
    except real.Unavailable as e:
        pytest.skip(str(e))


def recorded_run(label, tmp_path, monkeypatch):
    """A Recorder holding what trtssd did to the fake that ``label``'s real version referees."""
    gen = real.FAKE_OF[label]
    if gen == LEAN:
        full = Recorder(make("11"))       # builds (checked against full 11.4 separately)
        rec = Recorder(make(LEAN))
        exercise(full, tmp_path, monkeypatch, run_trt=rec)
    else:
        rec = Recorder(make(gen))
        exercise(rec, tmp_path, monkeypatch)
    return rec


@pytest.mark.parametrize("label", REAL_VERSIONS)
def test_what_trtssd_uses_exists_in_the_real_module(label, tmp_path, monkeypatch):
    surface = surface_of(label)
    rec = recorded_run(label, tmp_path, monkeypatch)
    kinds = set(u.kind for u in rec.uses)
    assert {"module", "class", "get", "call"} <= kinds     # the recorder saw the run
    problems = check(rec.uses, surface) + check_overrides(rec.subclasses(), surface)
    assert not problems, "trtssd uses what the real tensorrt %s lacks:\n  %s" % (
        surface["version"], "\n  ".join(problems))


def _matches(fake_args, real_signatures):
    """The fake's argument names are those of a real signature, up to arguments that the real
    one lets default (the fake need not offer every option)."""
    for sig in real_signatures:
        names = [a["name"] for a in sig]
        if names[:len(fake_args)] == fake_args and all(a["default"]
                                                       for a in sig[len(fake_args):]):
            return True
    return not real_signatures


def _fake_signature(fn):
    fn = inspect.unwrap(fn)
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if params and params[0].name == "self":
        params = params[1:]
    return [p.name for p in params]


def _surface_problems(fake, surface):
    """What ``fake`` offers that the real module lacks, or offers differently."""
    names = surface["names"]
    out = []
    for name in dir(fake):
        if name.startswith("_") or name in TEST_ONLY:
            continue
        value = getattr(fake, name)
        if name not in names:
            out.append("trt.%s is not in the real module" % name)
            continue
        node = names[name]
        if inspect.isclass(value):
            out += _class_problems(name, value, node, names)
        elif callable(value):
            sig = _fake_signature(value)
            reals = [[a["name"] for a in s] for s in node.get("signatures", [])]
            if sig is not None and not _matches(sig, node.get("signatures", [])):
                out.append("trt.%s%s: the real signatures are %s" % (name, tuple(sig), reals))
    return out


def _class_problems(qual, cls, node, names):
    import enum
    out = []
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        for m in cls.__members__:
            if m not in node.get("values", ()):
                out.append("%s.%s is not a member of the real enum" % (qual, m))
        return out
    members = node.get("members", {})
    seen = set()
    for klass in cls.__mro__:
        if not klass.__module__.endswith("fake_tensorrt._base"):
            continue                  # tuple (Dims), bytes (IHostMemory), object
        for attr, raw in vars(klass).items():
            if attr.startswith("_") or attr in seen:
                continue
            seen.add(attr)
            real_m = members.get(attr)
            if real_m is None:
                out.append("%s.%s is not in the real %s" % (qual, attr, qual))
                continue
            if isinstance(raw, property):
                if real_m["kind"] != "property":
                    out.append("%s.%s is a property in the fake, a %s in the real module"
                               % (qual, attr, real_m["kind"]))
                elif raw.fset is not None and not real_m.get("settable"):
                    out.append("%s.%s can be set in the fake, not in the real module"
                               % (qual, attr))
            elif inspect.isclass(raw):
                sub = names.get(qual + "." + attr)
                if sub is not None:
                    out += _class_problems(qual + "." + attr, raw, sub, names)
            elif callable(raw):
                if real_m["kind"] != "method":
                    out.append("%s.%s is a method in the fake, a %s in the real module"
                               % (qual, attr, real_m["kind"]))
                    continue
                sig = _fake_signature(raw)
                reals = [[a["name"] for a in s] for s in real_m.get("signatures", [])]
                if sig is not None and not _matches(sig, real_m.get("signatures", [])):
                    out.append("%s.%s%s: the real signatures are %s"
                               % (qual, attr, tuple(sig), reals))
    init = vars(cls).get("__init__")
    if init is not None and node.get("init"):
        sig = _fake_signature(init)
        reals = [[a["name"] for a in s] for s in node["init"]]
        if sig is not None and not _matches(sig, node["init"]):
            out.append("%s%s: the real constructors are %s" % (qual, tuple(sig), reals))
    return out


@pytest.mark.parametrize("label", REAL_VERSIONS)
def test_the_fake_offers_nothing_the_real_module_lacks(label, tmp_path, monkeypatch):
    surface = surface_of(label)
    gen = real.FAKE_OF[label]
    fake = make(gen)
    problems = _surface_problems(fake, surface)
    # instance attributes too: those of every object the fake handed trtssd in a full run
    rec = recorded_run(label, tmp_path, monkeypatch)
    for obj in rec.instances:
        cls = type(obj).__name__
        for attr in vars(obj):
            if not attr.startswith("_") and attr not in surface["names"].get(cls, {}).get(
                    "members", {}):
                problems.append("%s instances carry %r, the real %s has no such member"
                                % (cls, attr, cls))
    assert not problems, "the fake of %s offers what the real tensorrt %s lacks:\n  %s" % (
        gen, surface["version"], "\n  ".join(sorted(set(problems))))


def test_the_checker_catches_a_misspelt_name(tmp_path, monkeypatch):
    """The referee can fail: a use the real 11.4 lacks is reported, naming it."""
    surface = surface_of("11.4")
    rec = Recorder(make("11"))
    rec.record("module", "", "IInt8EntropyCalibrator2")
    rec.record("class", "BuilderFlag", "FP16")
    rec.record("get", "IExecutionContext", "set_tensor_adress")
    rec.record("call", "IExecutionContext", "set_tensor_address", 1, ("memory",))
    rec.record("set", "ICudaEngine", "num_io_tensors")
    problems = check(rec.uses, surface)
    text = "\n".join(problems)
    assert "trt.IInt8EntropyCalibrator2 does not exist" in text
    assert "real BuilderFlag has no FP16" in text
    assert "real IExecutionContext has no set_tensor_adress" in text
    assert "set_tensor_address(...) called with 1 positional and keywords ['memory']" not in text
    assert "ICudaEngine.num_io_tensors cannot be set" in text
    assert len(problems) == 4
    rec.record("call", "IExecutionContext", "set_tensor_address", 1, ("mem",))
    assert any("keywords ['mem']" in p for p in check(rec.uses, surface))
