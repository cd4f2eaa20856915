"""PyTorch backend: the converted ONNX graph run by a small interpreter of its op set.

The network is built from the ONNX file itself (the same nodes and initializers ONNX Runtime and
TensorRT read), so every backend runs the same weights. On CUDA, bound buffers are wrapped
without copies (``torch.as_tensor`` on ``__cuda_array_interface__``), work goes on the caller's
pycuda stream through ``torch.cuda.ExternalStream`` and, with ``cuda_graph=True``, each context
captures one CUDA graph at creation and replays it. Nothing synchronises inside ``enqueue``.
"""
import numpy as np

from ..core.errors import EnvironmentProblem, InputError, ModelError
from .base import Backend, ExecutionContext, bind_host_or_cuda

OPS = ("Conv", "Clip", "Relu", "Sigmoid", "Transpose", "Reshape", "Concat", "Add",
       "AveragePool", "MaxPool")
# The ops of foreign SSD graphs (pytorch-ssd's decoding, TF exports, trtssd's own packing of
# post-NMS outputs), run by _generic below. Values computed only from constants and Shape
# (shape arithmetic) stay NumPy on the host, so nothing is copied during a CUDA graph.
GENERIC_OPS = ("Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Slice", "Cast", "Mul",
               "Sub", "Div", "Exp", "Softmax", "Equal", "Less", "Greater", "Where",
               "Identity", "Flatten", "BatchNormalization", "Sqrt", "Pow", "Neg", "Split",
               "ConstantOfShape", "Range", "Min", "Max", "Tanh", "LeakyRelu", "ReduceMax",
               "ReduceMin", "ReduceSum", "ReduceMean")
_HOST_SHAPE_INPUTS = {"Reshape": (1,), "Slice": (1, 2, 3, 4), "Unsqueeze": (1,),
                      "Squeeze": (1,), "Split": (1,), "ConstantOfShape": (0,),
                      "ReduceMax": (1,), "ReduceMin": (1,), "ReduceSum": (1,),
                      "ReduceMean": (1,)}
_ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32,
                7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64}


def _import_torch():
    try:
        import torch
        return torch
    except ImportError:
        raise EnvironmentProblem("the torch backend needs PyTorch: pip install torch (on Jetson, "
                                 "NVIDIA's wheel for your JetPack)")


def build_module(model, torch):
    """A torch.nn.Module running the ONNX ``model`` (a ModelProto) with its initializers."""
    from onnx import numpy_helper
    nn = torch.nn
    F = torch.nn.functional

    opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [13])

    class OnnxNet(nn.Module):
        def __init__(self):
            super(OnnxNet, self).__init__()
            inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
            for node in model.graph.node:      # Constant nodes are constants like initializers
                if node.op_type == "Constant":
                    inits[node.output[0]] = _constant_value(node)
            self.host = dict(inits)            # NumPy values usable as shapes and indices
            self.opset = opset
            self.steps = []
            consts = {}
            self._consts = consts

            def tensor_const(name):
                if name not in consts:
                    attr = "c%d" % len(consts)
                    self.register_buffer(attr, torch.from_numpy(
                        np.array(inits[name], dtype=np.float32, order="C", copy=True)))
                    consts[name] = attr
                return consts[name]

            hostset = set(inits)     # values computable on the host (constants, shapes)
            for node in model.graph.node:
                a = {at.name: _attr(at) for at in node.attribute}
                op = node.op_type
                if op == "Shape" or (op != "Constant" and all(
                        (not i) or i in hostset for i in node.input)):
                    hostset.update(node.output)
                mixed = any(i in hostset for i in node.input if i)
                if op == "Conv":
                    w = tensor_const(node.input[1])
                    b = tensor_const(node.input[2]) if len(node.input) > 2 and node.input[2] \
                        else None
                    pads = list(a.get("pads", [0, 0, 0, 0]))
                    pt, pl, pb, pr = pads
                    if pt == pb and pl == pr:
                        pre, padding = None, (pt, pl)
                    else:
                        pre, padding = (pl, pr, pt, pb), (0, 0)
                    params = dict(w=w, b=b, stride=tuple(a.get("strides", [1, 1])),
                                  dilation=tuple(a.get("dilations", [1, 1])),
                                  groups=int(a.get("group", 1)), padding=padding, pre=pre)
                    self.steps.append((op, [node.input[0]], node.output[0], params))
                elif op == "Clip":
                    lo = float(inits[node.input[1]]) if len(node.input) > 1 and node.input[1] \
                        else a.get("min")
                    hi = float(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] \
                        else a.get("max")
                    self.steps.append((op, [node.input[0]], node.output[0], (lo, hi)))
                elif op in ("Relu", "Sigmoid"):
                    self.steps.append((op, [node.input[0]], node.output[0], None))
                elif op == "Transpose" and not mixed:
                    self.steps.append((op, [node.input[0]], node.output[0],
                                       tuple(a["perm"])))
                elif op == "Reshape" and node.input[1] in inits:
                    shape = tuple(int(v) for v in inits[node.input[1]])
                    self.steps.append((op, [node.input[0]], node.output[0], shape))
                elif op == "Concat" and not mixed:
                    self.steps.append((op, list(node.input), node.output[0], int(a["axis"])))
                elif op == "Add" and len(node.input) == 2 and not all(
                        i in hostset for i in node.input):
                    ins, cname = [], None
                    for i in node.input:
                        if i in inits:
                            cname = tensor_const(i)
                        else:
                            ins.append(i)
                    self.steps.append((op, ins, node.output[0], cname))
                elif op in ("AveragePool", "MaxPool"):
                    pt, pl, pb, pr = list(a.get("pads", [0, 0, 0, 0]))
                    if (pt != pb or pl != pr) and op == "AveragePool":
                        raise ModelError("the torch backend cannot run an AveragePool with "
                                         "asymmetric pads; use the onnxruntime or tensorrt "
                                         "backend for this model")
                    params = dict(k=tuple(a["kernel_shape"]), s=tuple(a.get("strides", [1, 1])),
                                  pads=(pt, pl, pb, pr))
                    self.steps.append((op, [node.input[0]], node.output[0], params))
                elif op == "Constant":
                    continue
                elif op in GENERIC_OPS or op in ("Reshape", "Add", "Concat", "Transpose",
                                                  "Relu", "Sigmoid", "Clip"):
                    shape_pos = _HOST_SHAPE_INPUTS.get(op, ())
                    for k, name in enumerate(node.input):
                        if name in inits and k not in shape_pos and op not in (
                                "Shape", "Gather"):
                            tensor_const(name)
                        if op == "Gather" and k == 1 and name in inits:
                            self.register_buffer("g%d" % len(consts), torch.from_numpy(
                                np.asarray(inits[name], np.int64).reshape(-1).copy()))
                            consts["gather:" + name] = "g%d" % (len(consts))
                    if op == "BatchNormalization":
                        sc, b0, mean, var = [inits[n].astype(np.float64) for n in node.input[1:5]]
                        k = sc / np.sqrt(var + float(a.get("epsilon", 1e-5)))
                        a["mul"] = tensor_const_array(self, consts, torch, k,
                                                      "bn_mul_" + node.output[0])
                        a["add"] = tensor_const_array(self, consts, torch, b0 - mean * k,
                                                      "bn_add_" + node.output[0])
                    self.steps.append(("G", list(node.input), node.output[0],
                                       (node.op_type, a, list(node.output))))
                else:
                    raise ModelError("ONNX op %s is not one the torch backend runs (%s); "
                                     "use the onnxruntime or tensorrt backend for this model"
                                     % (op, ", ".join(OPS + GENERIC_OPS)))
            self.input_name = model.graph.input[0].name
            self.output_names = [o.name for o in model.graph.output]

        def forward(self, x):
            env = {self.input_name: x}
            for op, ins, out, p in self.steps:
                if op == "G":
                    _generic(self, torch, env, ins, p)
                    continue
                if op == "Conv":
                    v = env[ins[0]]
                    if p["pre"] is not None:
                        v = F.pad(v, p["pre"])
                    b = getattr(self, p["b"]) if p["b"] is not None else None
                    v = F.conv2d(v, getattr(self, p["w"]), b, p["stride"], p["padding"],
                                 p["dilation"], p["groups"])
                elif op == "Clip":
                    v = torch.clamp(env[ins[0]], p[0], p[1])
                elif op == "Relu":
                    v = F.relu(env[ins[0]])
                elif op == "Sigmoid":
                    v = torch.sigmoid(env[ins[0]])
                elif op == "Transpose":
                    v = env[ins[0]].permute(*p)
                elif op == "Reshape":
                    src = env[ins[0]]
                    shape = tuple(src.shape[i] if d == 0 else d for i, d in enumerate(p))
                    v = src.reshape(shape)
                elif op == "Concat":
                    v = torch.cat([env[i] for i in ins], dim=p)
                elif op == "Add":
                    v = env[ins[0]] + (env[ins[1]] if p is None else getattr(self, p))
                elif op == "AveragePool":
                    pt, pl, pb, pr = p["pads"]
                    v = F.avg_pool2d(env[ins[0]], p["k"], p["s"], (pt, pl),
                                     count_include_pad=False)
                else:   # MaxPool
                    pt, pl, pb, pr = p["pads"]
                    v = env[ins[0]]
                    if pt != pb or pl != pr:
                        v = F.pad(v, (pl, pr, pt, pb), value=float("-inf"))
                        pt = pl = 0
                    v = F.max_pool2d(v, p["k"], p["s"], (pt, pl))
                env[out] = v
            return tuple(env[n] for n in self.output_names)

    return OnnxNet()


def _attr(at):
    from onnx import helper
    return helper.get_attribute_value(at)


def _constant_value(node):
    from onnx import numpy_helper
    for at in node.attribute:
        v = _attr(at)
        if at.name == "value":
            return numpy_helper.to_array(v)
        if at.name in ("value_float", "value_int"):
            return np.asarray(v)
        if at.name in ("value_floats", "value_ints"):
            return np.asarray(list(v))
    raise ModelError("ONNX Constant node %s has no value the torch backend reads; use the "
                     "onnxruntime backend" % node.output[0])


def tensor_const_array(net, consts, torch, value, key):
    attr = "c%d" % len(consts)
    net.register_buffer(attr, torch.from_numpy(np.asarray(value, np.float32).copy()))
    consts[key] = attr
    return attr


def _generic(net, torch, env, ins, p):
    """One node of GENERIC_OPS (and the general forms of Reshape, Add, Concat, ...): NumPy when
    every input is a host value, torch otherwise (constants as the registered buffers)."""
    op, a, outs = p
    F = torch.nn.functional
    host = net.host

    def get(name):
        if name in env:
            return env[name]
        return host[name]

    def is_host(v):
        return isinstance(v, np.ndarray) or np.isscalar(v)

    def tensor(name):
        v = get(name)
        if not is_host(v):
            return v
        attr = net._consts.get(name)
        if attr is None:
            raise ModelError("the torch backend cannot mix the host value %r into device "
                             "arithmetic (op %s); use the onnxruntime backend" % (name, op))
        return getattr(net, attr)

    vals = [get(i) if i else None for i in ins]
    all_host = all(v is None or is_host(v) for v in vals)

    def ints(v):
        return [int(t) for t in np.asarray(v).reshape(-1)]

    if op == "Shape":
        v = vals[0]
        out = np.asarray(v.shape if is_host(v) else tuple(v.shape), np.int64)
    elif op in ("Identity",):
        out = vals[0]
    elif op == "Cast":
        dt = _ONNX_DTYPES.get(int(a["to"]), np.float32)
        if all_host:
            out = np.asarray(vals[0]).astype(dt)
        else:
            t = vals[0]
            if dt == np.bool_:
                out = t != 0 if t.dtype != torch.bool else t
            elif dt in (np.float32, np.float16, np.float64):
                out = t if t.is_floating_point() else t.float()
            else:
                out = t.to(torch.int64)
    elif op == "Gather":
        axis = int(a.get("axis", 0))
        idx = vals[1]
        if all_host:
            out = np.take(np.asarray(vals[0]), np.asarray(idx), axis=axis)
        elif np.ndim(idx) == 0:
            i = int(idx)
            out = vals[0].select(axis, i if i >= 0 else vals[0].shape[axis] + i)
        else:
            attr = net._consts.get("gather:" + ins[1])
            if attr is None:
                raise ModelError("the torch backend gathers with constant indices only; use "
                                 "the onnxruntime backend")
            out = vals[0].index_select(axis, getattr(net, attr)).reshape(
                tuple(vals[0].shape[:axis]) + np.shape(idx) + tuple(vals[0].shape[axis + 1:]))
    elif op in ("Unsqueeze", "Squeeze"):
        axes = a.get("axes")
        if axes is None and len(ins) > 1 and ins[1]:
            axes = ints(vals[1])
        v = vals[0]
        rank = np.ndim(v) if is_host(v) else v.dim()
        if op == "Unsqueeze":
            for ax in sorted(int(x) % (rank + len(axes)) for x in axes):
                v = np.expand_dims(v, ax) if is_host(v) else v.unsqueeze(ax)
        else:
            axes = list(range(rank)) if axes is None else sorted(
                (int(x) % rank for x in axes), reverse=True)
            for ax in sorted(axes, reverse=True):
                if (np.shape(v)[ax] if is_host(v) else v.shape[ax]) == 1:
                    v = np.squeeze(v, ax) if is_host(v) else v.squeeze(ax)
        out = v
    elif op == "Slice":
        v = vals[0]
        if len(ins) > 1:
            starts, ends = ints(vals[1]), ints(vals[2])
            axes = ints(vals[3]) if len(ins) > 3 and ins[3] else list(range(len(starts)))
            steps = ints(vals[4]) if len(ins) > 4 and ins[4] else [1] * len(starts)
        else:
            starts, ends = list(a["starts"]), list(a["ends"])
            axes = list(a.get("axes", range(len(starts))))
            steps = [1] * len(starts)
        rank = np.ndim(v) if is_host(v) else v.dim()
        index = [slice(None)] * rank
        for st, en, ax, sp in zip(starts, ends, axes, steps):
            dim = (np.shape(v) if is_host(v) else tuple(v.shape))[ax]
            en = max(min(en, dim), -dim - 1) if en < 0 or en > dim else en
            st = max(min(st, dim), -dim)
            if sp < 0:
                raise ModelError("the torch backend runs Slice with positive steps only")
            index[ax % rank] = slice(st, en, sp)
        out = v[tuple(index)]
    elif op == "Concat":
        axis = int(a["axis"])
        if all_host:
            out = np.concatenate([np.atleast_1d(v) for v in vals], axis=axis)
        else:
            out = torch.cat([tensor(i) for i in ins], dim=axis)
    elif op == "Reshape":
        shape = ints(vals[1])
        v = vals[0]
        src = np.shape(v) if is_host(v) else tuple(v.shape)
        shape = tuple(src[i] if d == 0 else d for i, d in enumerate(shape))
        out = np.reshape(v, shape) if is_host(v) else v.reshape(shape)
    elif op == "Transpose":
        perm = a.get("perm")
        v = vals[0]
        out = np.transpose(v, perm) if is_host(v) else v.permute(*perm)
    elif op == "Flatten":
        axis = int(a.get("axis", 1))
        v = vals[0]
        out = v.reshape(tuple(v.shape[:axis]) + (-1,)) if axis > 0 else v.reshape(1, -1)
    elif op == "Softmax":
        v = vals[0]
        axis = int(a.get("axis", -1 if net.opset >= 13 else 1)) % v.dim()
        if net.opset < 13 and axis != v.dim() - 1:   # old semantics: flatten from axis
            shp = v.shape
            out = torch.softmax(v.reshape(tuple(shp[:axis]) + (-1,)), dim=-1).reshape(shp)
        else:
            out = torch.softmax(v, dim=axis)
    elif op == "BatchNormalization":
        v = vals[0]
        shape = (1, -1) + (1,) * (v.dim() - 2)
        out = v * getattr(net, a["mul"]).reshape(shape) + getattr(net, a["add"]).reshape(shape)
    elif op == "Split":
        axis = int(a.get("axis", 0))
        split = a.get("split")
        if split is None and len(ins) > 1 and ins[1]:
            split = ints(vals[1])
        v = tensor(ins[0])
        if split is None:
            n = len(outs)
            split = [v.shape[axis] // n] * n
        for name, part in zip(outs, torch.split(v, list(split), dim=axis)):
            env[name] = part
        return
    elif op.startswith("Reduce"):
        axes = a.get("axes")
        if axes is None and len(ins) > 1 and ins[1]:
            axes = ints(vals[1])
        keep = bool(a.get("keepdims", 1))
        v = tensor(ins[0])
        dims = list(range(v.dim())) if not axes else [int(x) % v.dim() for x in axes]
        if op == "ReduceMax":
            out = v.amax(dim=dims, keepdim=keep)
        elif op == "ReduceMin":
            out = v.amin(dim=dims, keepdim=keep)
        elif op == "ReduceSum":
            out = v.sum(dim=dims, keepdim=keep)
        else:
            out = v.mean(dim=dims, keepdim=keep)
    elif op == "ConstantOfShape":
        raise ModelError("the torch backend does not run ConstantOfShape; use onnxruntime")
    elif op == "Range":
        if not all_host:
            raise ModelError("the torch backend runs Range on constants only")
        out = np.arange(np.asarray(vals[0]).item(), np.asarray(vals[1]).item(),
                        np.asarray(vals[2]).item())
    elif op in ("Exp", "Sqrt", "Neg", "Tanh", "Relu", "Sigmoid", "LeakyRelu", "Clip"):
        v = vals[0]
        if is_host(v):
            v = tensor(ins[0])
        if op == "Exp":
            out = torch.exp(v)
        elif op == "Sqrt":
            out = torch.sqrt(v)
        elif op == "Neg":
            out = -v
        elif op == "Tanh":
            out = torch.tanh(v)
        elif op == "Relu":
            out = F.relu(v)
        elif op == "Sigmoid":
            out = torch.sigmoid(v)
        elif op == "LeakyRelu":
            out = F.leaky_relu(v, float(a.get("alpha", 0.01)))
        else:
            lo = float(vals[1]) if len(ins) > 1 and ins[1] else a.get("min")
            hi = float(vals[2]) if len(ins) > 2 and ins[2] else a.get("max")
            out = torch.clamp(v, lo, hi)
    else:   # binary elementwise
        if all_host:
            x, y = (np.asarray(v) for v in vals[:2])
            out = {"Add": np.add, "Mul": np.multiply, "Sub": np.subtract,
                   "Div": (np.floor_divide if x.dtype.kind in "iu" else np.divide),
                   "Equal": np.equal, "Less": np.less, "Greater": np.greater,
                   "Pow": np.power, "Min": np.minimum, "Max": np.maximum}[op](x, y) \
                if op != "Where" else np.where(x, y, np.asarray(vals[2]))
        else:
            t = [tensor(i) for i in ins]
            if op == "Where":
                out = torch.where(t[0].bool() if t[0].dtype != torch.bool else t[0], t[1], t[2])
            else:
                x, y = t[0], t[1]
                if x.is_floating_point() != y.is_floating_point():
                    f = x.dtype if x.is_floating_point() else y.dtype
                    x, y = x.to(f), y.to(f)
                out = {"Add": torch.add, "Mul": torch.mul, "Sub": torch.sub, "Div": torch.div,
                       "Equal": torch.eq, "Less": torch.lt, "Greater": torch.gt,
                       "Pow": torch.pow, "Min": torch.minimum, "Max": torch.maximum}[op](x, y)
    env[outs[0]] = out


class TorchBackend(Backend):
    """The converted SSD on PyTorch, CUDA (fp32/fp16, optional CUDA graphs) or CPU (fp32)."""
    name = "torch"

    def __init__(self, onnx_path, device="cuda", precision="fp32", max_batch=1, cuda_graph=True,
                 channels_last=None, cudnn_benchmark=True):
        torch = _import_torch()
        try:
            import onnx
        except ImportError:
            raise EnvironmentProblem("the torch backend reads the ONNX model with the `onnx` "
                                     "package: pip install onnx")
        if device not in ("cuda", "cpu"):
            raise InputError("device must be 'cuda' or 'cpu', got %r" % (device,))
        if precision not in ("fp32", "fp16"):
            raise InputError("the torch backend runs precision 'fp32' or 'fp16', not %r (int8 "
                             "needs the tensorrt backend)" % (precision,))
        if device == "cpu" and precision == "fp16":
            raise InputError("fp16 is for device='cuda'; on the CPU use precision='fp32'")
        if device == "cuda" and not torch.cuda.is_available():
            raise EnvironmentProblem("device='cuda' but torch.cuda.is_available() is False "
                                     "(torch %s built for CUDA %s); install a CUDA build of "
                                     "PyTorch or use device='cpu'"
                                     % (torch.__version__, torch.version.cuda))
        self.torch = torch
        self.load_model(onnx_path, device, max_batch, precision)
        self.cuda_graph = bool(cuda_graph) and device == "cuda"
        # channels_last (NHWC activations) by default on CUDA: cuDNN's NHWC convolutions
        # replay faster in the CUDA graph (benchmarks/RESULTS.md, section 3)
        self.channels_last = (device == "cuda") if channels_last is None else bool(channels_last)
        self.tdtype = torch.float16 if precision == "fp16" else torch.float32
        self.input_dtype = np.dtype(np.float16 if precision == "fp16" else np.float32)
        if device == "cuda" and cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        net = build_module(onnx.load(self.onnx_path), torch).eval()
        net = net.to(device=torch.device(device), dtype=self.tdtype)
        if self.channels_last:
            for name, buf in list(net.named_buffers()):
                if buf.dim() == 4:
                    setattr(net, name, buf.contiguous(memory_format=torch.channels_last))
        self.net = net

    def _forward(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=self.torch.channels_last)
        return self.net(x)

    def create_context(self, images, box_encodings, class_scores):
        return bind_host_or_cuda(self, _CpuContext, _CudaContext,
                                 images, box_encodings, class_scores)

    def infer(self, images):
        torch = self.torch
        images = self.host_images(images)
        with torch.no_grad():
            x = torch.from_numpy(images).to(self.device)
            boxes, scores = self._forward(x)
            return (boxes.float().cpu().numpy().copy(), scores.float().cpu().numpy().copy())

    def close(self):
        self.net = None


class _CpuContext(ExecutionContext):
    def __init__(self, backend, images, boxes, scores):
        torch = backend.torch
        self.backend = backend
        self.x = torch.from_numpy(images)
        self.b = torch.from_numpy(boxes)
        self.s = torch.from_numpy(scores)

    def enqueue(self, stream=None):
        with self.backend.torch.no_grad():
            b, s = self.backend._forward(self.x)
            self.b.copy_(b)
            self.s.copy_(s)


class _CudaContext(ExecutionContext):
    def __init__(self, backend, images, boxes, scores):
        torch = backend.torch
        self.backend = backend
        self.torch = torch
        dev = torch.device("cuda")
        self.x = torch.as_tensor(images, device=dev)
        self.b = torch.as_tensor(boxes, device=dev)
        self.s = torch.as_tensor(scores, device=dev)
        self.graph = None
        self._external = {}      # torch's view of a caller's stream, made once per handle
        # the captured graph launched straight on a caller's (pycuda) stream: one driver call
        # instead of torch's stream switch and replay (the network draws no random numbers,
        # so replay's generator bookkeeping has nothing to do)
        self._exec = self._launch = None
        if backend.cuda_graph:
            self._capture()

    def _run(self):
        with self.torch.no_grad():
            b, s = self.backend._forward(self.x)
            self.b.copy_(b)     # casts fp16 -> float32 into the bound buffers
            self.s.copy_(s)

    def _capture(self):
        """Warm up on a side stream (cuDNN picks its algorithms, the allocator fills its pool),
        then capture one forward pass, as PyTorch's CUDA-graph notes prescribe."""
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._run()
        # the warm-up and capture wrote the bound outputs; nothing is pending after this
        torch.cuda.current_stream().synchronize()
        self.graph = graph
        raw = getattr(graph, "raw_cuda_graph_exec", None)
        if raw is not None:
            from ..gpu.cuda import graph_launcher
            try:
                handle = int(raw())
            except Exception:       # not instantiated, or this torch does not say
                handle = 0
            launch = graph_launcher() if handle else None
            if launch is not None:
                self._exec, self._launch = handle, launch

    @property
    def direct_launch(self):
        """True when ``enqueue`` on a caller's stream launches the graph itself."""
        return self._launch is not None

    def enqueue(self, stream=None):
        torch = self.torch
        if stream is None:
            ts = torch.cuda.current_stream()
        elif isinstance(stream, torch.cuda.Stream):     # a torch stream works as well
            ts = stream
        else:
            handle = getattr(stream, "handle_int", None)
            if handle is None:
                handle = getattr(stream, "handle", stream)
            handle = int(handle)
            if self._launch is not None:
                self._launch(self._exec, handle)
                return
            ts = self._external.get(handle)
            if ts is None:
                ts = self._external[handle] = torch.cuda.ExternalStream(handle)
        with torch.cuda.stream(ts):
            if self.graph is not None:
                self.graph.replay()
            else:
                self._run()

    def close(self):
        self._exec = self._launch = None
        self.graph = None
        self._external = {}
        self.x = self.b = self.s = None
