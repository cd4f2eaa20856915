"""A membrane around a fake ``tensorrt`` module that records how trtssd uses it.

``Recorder(fake)`` is what trtssd gets instead of the fake: every module attribute it reads,
every class attribute (enum members, nested classes), every instance attribute read or set,
every call with its positional count and keyword names, is recorded in ``uses`` as
``Use(kind, owner, name, nargs, kwargs)``. Objects crossing back into the fake are unwrapped,
so the fake's own checks (isinstance, argument types, call order) still apply. Subclassing
works (``class L(trt.ILogger)`` gets the fake's class through ``__mro_entries__``), and the
classes trtssd derives are listed by ``subclasses()`` so their overrides can be checked too.

``check(uses, surface)`` compares the uses with a real module's surface (real.py) and returns
the list of problems: a name the real module lacks, a property it cannot set, an enum member
it has not, a call no real signature accepts.
"""
import collections
import inspect

Use = collections.namedtuple("Use", "kind owner name nargs kwargs")
# kind: 'module' (trt.<name>), 'class' (Class.<name>), 'get' / 'set' (instance attribute),
# 'call' (owner.name(...)); owner '' for the module, '<Class>' for constructors ('__init__')

# value types handed over as they are: trtssd converts them (tuple(dims), bytes(mem), int(enum))
_VALUE_TYPES = ("Dims", "IHostMemory")


class Recorder(object):
    def __init__(self, fake):
        self._fake = fake
        self.uses = []
        self.instances = []
        names = set()
        for n in dir(fake):
            v = getattr(fake, n)
            if inspect.isclass(v):
                names.add(v)
        self._fake_classes = tuple(names)

    # -------------------------------------------------------------- wrapping
    def wrap(self, value, owner=None):
        if value is None or isinstance(value, (bool, int, float, str, bytes)) and \
                not _is_fake_object(value):
            return value
        if inspect.isclass(value):
            if not _is_fake_callable(value):
                return value                  # numpy's types from nptype, and the like
            return ClassView(self, value, owner or value.__name__)
        if _is_fake_object(value) and not _is_value_type(value):
            self.instances.append(value)
            return InstanceView(self, value)
        if isinstance(value, list):
            return [self.wrap(v) for v in value]
        if callable(value) and _is_fake_callable(value):
            return CallView(self, value, "", owner)
        return value

    def unwrap(self, value):
        if isinstance(value, (InstanceView, ClassView, CallView)):
            return object.__getattribute__(value, "_target")
        if isinstance(value, list):
            return [self.unwrap(v) for v in value]
        if isinstance(value, tuple) and type(value) is tuple:
            return tuple(self.unwrap(v) for v in value)
        return value

    def record(self, kind, owner, name, nargs=None, kwargs=()):
        self.uses.append(Use(kind, owner, name, nargs, tuple(sorted(kwargs))))

    # -------------------------------------------------------------- the module face
    def __getattr__(self, name):
        value = getattr(self._fake, name)       # AttributeError as the fake (or real) gives
        if name.startswith("__"):
            return value
        self.record("module", "", name)
        if inspect.isclass(value):
            return ClassView(self, value, name)
        if callable(value):
            return CallView(self, value, "", name)
        return value

    def subclasses(self):
        """(fake class name, trtssd subclass) for every class trtssd derived from the fake's."""
        out = []
        for cls in self._fake_classes:
            for sub in cls.__subclasses__():
                if sub.__module__.startswith("trtssd"):
                    out.append((cls.__name__, sub))
        return out


def _is_fake_object(value):
    mod = getattr(type(value), "__module__", "") or ""
    return mod.endswith("fake_tensorrt._base") and not isinstance(value, type)


def _is_value_type(value):
    import enum
    return isinstance(value, enum.Enum) or type(value).__name__ in _VALUE_TYPES


def _is_fake_callable(value):
    mod = getattr(value, "__module__", "") or ""
    return mod.endswith("fake_tensorrt._base")


class CallView(object):
    """A callable of the fake: records (owner.name, positional count, keyword names)."""

    def __init__(self, rec, target, owner, name):
        object.__setattr__(self, "_rec", rec)
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args, **kwargs):
        rec = object.__getattribute__(self, "_rec")
        rec.record("call", object.__getattribute__(self, "_owner"),
                   object.__getattribute__(self, "_name"), len(args), kwargs.keys())
        target = object.__getattribute__(self, "_target")
        result = target(*[rec.unwrap(a) for a in args],
                        **dict((k, rec.unwrap(v)) for k, v in kwargs.items()))
        return rec.wrap(result)


class ClassView(object):
    """A class of the fake: class attributes and construction are recorded."""

    def __init__(self, rec, target, qual):
        object.__setattr__(self, "_rec", rec)
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_qual", qual)

    def __mro_entries__(self, bases):
        return (object.__getattribute__(self, "_target"),)

    def __getattribute__(self, name):
        if name == "__mro_entries__":
            return object.__getattribute__(self, name)
        target = object.__getattribute__(self, "_target")
        value = getattr(target, name)
        if name.startswith("__"):
            return value
        rec = object.__getattribute__(self, "_rec")
        qual = object.__getattribute__(self, "_qual")
        rec.record("class", qual, name)
        if inspect.isclass(value):
            return ClassView(rec, value, qual + "." + name)
        return value

    def __call__(self, *args, **kwargs):
        rec = object.__getattribute__(self, "_rec")
        qual = object.__getattribute__(self, "_qual")
        rec.record("call", qual, "__init__", len(args), kwargs.keys())
        target = object.__getattribute__(self, "_target")
        obj = target(*[rec.unwrap(a) for a in args],
                     **dict((k, rec.unwrap(v)) for k, v in kwargs.items()))
        return rec.wrap(obj)


class InstanceView(object):
    """An object of the fake: attribute reads, writes and method calls are recorded."""

    def __init__(self, rec, target):
        object.__setattr__(self, "_rec", rec)
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name):
        rec = object.__getattribute__(self, "_rec")
        target = object.__getattribute__(self, "_target")
        owner = type(target).__name__
        value = getattr(target, name)
        rec.record("get", owner, name)
        if inspect.ismethod(value) or callable(value) and not inspect.isclass(value) and \
                _is_fake_callable(value):
            return CallView(rec, value, owner, name)
        return rec.wrap(value)

    def __setattr__(self, name, value):
        rec = object.__getattribute__(self, "_rec")
        target = object.__getattribute__(self, "_target")
        rec.record("set", type(target).__name__, name)
        setattr(target, name, rec.unwrap(value))

    def __repr__(self):
        return "<recorded %r>" % (object.__getattribute__(self, "_target"),)


# ------------------------------------------------------------------ checking against the real
def accepts(signature, nargs, kwargs):
    """Whether one real signature (list of {'name', 'default'}) takes this call."""
    names = [a["name"] for a in signature]
    if any(n.startswith("*") for n in names):
        return True
    if nargs > len(signature):
        return False
    given = set(names[:nargs])
    for k in kwargs:
        if k not in names or k in given:
            return False
        given.add(k)
    return all(a["name"] in given or a["default"] for a in signature)


def _member(surface, owner, name):
    node = surface["names"].get(owner)
    if node is None:
        return None, "the real module has no %s" % owner
    m = node.get("members", {}).get(name)
    if m is None:
        if name in node.get("values", ()):
            return {"kind": "value"}, None
        return None, "real %s has no %s" % (owner, name)
    return m, None


def check(uses, surface, class_names=None):
    """Problems of ``uses`` against ``surface`` (sorted, unique strings)."""
    problems = set()
    ver = surface["version"]
    class_names = class_names or {}
    for u in uses:
        where = "tensorrt %s: " % ver
        if u.kind == "module":
            if u.name not in surface["names"]:
                problems.add(where + "trt.%s does not exist" % u.name)
        elif u.kind in ("class", "get", "set"):
            owner = class_names.get(u.owner, u.owner)
            m, why = _member(surface, owner, u.name)
            if m is None:
                problems.add(where + why + " (%s.%s %s)" % (owner, u.name,
                                                            {"class": "read", "get": "read",
                                                             "set": "set"}[u.kind]))
            elif u.kind == "set" and not (m["kind"] == "property" and m.get("settable")):
                problems.add(where + "%s.%s cannot be set" % (owner, u.name))
        elif u.kind == "call":
            owner = class_names.get(u.owner, u.owner)
            if u.name == "__init__":
                node = surface["names"].get(owner)
                sigs = node.get("init") if node else None
                label = "%s(...)" % owner
            elif owner == "":
                node = surface["names"].get(u.name)
                sigs = node.get("signatures") if node else None
                label = "trt.%s(...)" % u.name
            else:
                m, _ = _member(surface, owner, u.name)
                sigs = m.get("signatures") if m else None
                label = "%s.%s(...)" % (owner, u.name)
            if sigs is None:
                problems.add(where + "%s: no such callable" % label)
            elif sigs and not any(accepts(s, u.nargs, u.kwargs) for s in sigs):
                problems.add(where + "%s called with %d positional and keywords %s; the real "
                             "signatures are %s" % (label, u.nargs, list(u.kwargs),
                                                    [[a["name"] for a in s] for s in sigs]))
    return sorted(problems)


def check_overrides(subclasses, surface):
    """Each method a trtssd subclass overrides (one the fake's base class declares, as TensorRT
    calls it) exists in the real base class and takes the arguments TensorRT passes."""
    problems = set()
    ver = surface["version"]
    for base, sub in subclasses:
        node = surface["names"].get(base)
        if node is None:
            problems.add("tensorrt %s has no %s to derive from" % (ver, base))
            continue
        fake_base = [k for k in sub.__mro__[1:] if k.__name__ == base][0]
        for name, fn in vars(sub).items():
            if name.startswith("_") or not inspect.isfunction(fn) or \
                    not hasattr(fake_base, name):
                continue                       # trtssd's own helpers (logger.errors())
            m = node["members"].get(name)
            if m is None or m["kind"] != "method":
                problems.add("tensorrt %s: %s.%s overrides nothing in the real %s"
                             % (ver, sub.__name__, name, base))
                continue
            params = list(inspect.signature(fn).parameters.values())[1:]
            var = any(p.kind == p.VAR_POSITIONAL for p in params)
            fixed = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            need = [p for p in fixed if p.default is p.empty]
            if m["signatures"] and not any(
                    len(need) <= len(s) and (var or len(fixed) >= len(s))
                    for s in m["signatures"]):
                problems.add("tensorrt %s: %s.%s takes %d arguments; TensorRT calls it with %s"
                             % (ver, sub.__name__, name, len(fixed),
                                [[a["name"] for a in s] for s in m["signatures"]]))
    return sorted(problems)
