"""PyTorch backend: the converted ONNX graph run by a small interpreter of its op set.

The network is built from the ONNX file itself (the same nodes and initializers ONNX Runtime and
TensorRT read), so every backend runs the same weights. On CUDA, bound buffers are wrapped
without copies (``torch.as_tensor`` on ``__cuda_array_interface__``), work goes on the caller's
pycuda stream through ``torch.cuda.ExternalStream`` and, with ``cuda_graph=True``, each context
captures one CUDA graph at creation and replays it. Nothing synchronises inside ``enqueue``.
"""
import numpy as np

from ..core.errors import EnvironmentProblem, InputError, ModelError
from .base import Backend, ExecutionContext
from . import check_bindings

OPS = ("Conv", "Clip", "Relu", "Sigmoid", "Transpose", "Reshape", "Concat", "Add",
       "AveragePool", "MaxPool")


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

    class OnnxNet(nn.Module):
        def __init__(self):
            super(OnnxNet, self).__init__()
            inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
            self.steps = []
            consts = {}

            def tensor_const(name):
                if name not in consts:
                    attr = "c%d" % len(consts)
                    self.register_buffer(attr, torch.from_numpy(
                        np.array(inits[name], dtype=np.float32, order="C", copy=True)))
                    consts[name] = attr
                return consts[name]

            for node in model.graph.node:
                a = {at.name: _attr(at) for at in node.attribute}
                op = node.op_type
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
                        else None
                    hi = float(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] \
                        else None
                    self.steps.append((op, [node.input[0]], node.output[0], (lo, hi)))
                elif op in ("Relu", "Sigmoid"):
                    self.steps.append((op, [node.input[0]], node.output[0], None))
                elif op == "Transpose":
                    self.steps.append((op, [node.input[0]], node.output[0],
                                       tuple(a["perm"])))
                elif op == "Reshape":
                    shape = tuple(int(v) for v in inits[node.input[1]])
                    self.steps.append((op, [node.input[0]], node.output[0], shape))
                elif op == "Concat":
                    self.steps.append((op, list(node.input), node.output[0], int(a["axis"])))
                elif op == "Add":
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
                else:
                    raise ModelError("ONNX op %s is not one the torch backend runs (%s); "
                                     "the model was not made by trtssd's converter"
                                     % (op, ", ".join(OPS)))
            self.input_name = model.graph.input[0].name
            self.output_names = [o.name for o in model.graph.output]

        def forward(self, x):
            env = {self.input_name: x}
            for op, ins, out, p in self.steps:
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
        from ..models.resolve import load_spec, onnx_for
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
        if int(max_batch) < 1:
            raise InputError("max_batch must be >= 1, got %r" % (max_batch,))
        self.torch = torch
        self.onnx_path = onnx_for(onnx_path)
        self.spec = load_spec(self.onnx_path)
        self.device = device
        self.precision = precision
        self.max_batch = int(max_batch)
        self.cuda_graph = bool(cuda_graph) and device == "cuda"
        # channels_last (NHWC activations) by default on CUDA: on the H100 (2026-11-27) the
        # CUDA-graph replay at batch 1 went from 0.581 to 0.514 ms (fp32) and 0.580 to 0.508 ms
        # (fp16), batch 8 fp16 from 7,697 to 9,885 img/s (benchmarks/RESULTS.md)
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
        check_bindings(self, images, box_encodings, class_scores, self.device)
        if self.device == "cpu":
            return _CpuContext(self, images, box_encodings, class_scores)
        return _CudaContext(self, images, box_encodings, class_scores)

    def infer(self, images):
        torch = self.torch
        images = np.ascontiguousarray(images, dtype=self.input_dtype)
        if images.ndim != 4 or images.shape[1:] != self.input_shape(1)[1:]:
            raise InputError("images must be [n, %d, %d, %d], got %s"
                             % (self.input_shape(1)[1:] + (list(images.shape),)))
        self.check_batch(images.shape[0])
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
            ts = torch.cuda.ExternalStream(int(handle))
        with torch.cuda.stream(ts):
            if self.graph is not None:
                self.graph.replay()
            else:
                self._run()

    def close(self):
        self.graph = None
        self.x = self.b = self.s = None
